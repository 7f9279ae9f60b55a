// Loads synmark.bpf.o: the sockops program on a cgroup (the client node's pods), the
// tc program on an interface's ingress (the server node's side), one shared key.
// Usage: load OBJ CGROUP NETNS IFNAME PORT (the cgroup opened here, the interface in
// the network namespace NETNS, e.g. /run/netns/sm-b: `ip netns exec` would hide the
// cgroup mount). Prints the counters every second until SIGINT/SIGTERM, then detaches.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <sched.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>

static volatile int stop;
static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char **argv) {
  if (argc != 6) { fprintf(stderr, "usage: %s OBJ CGROUP NETNS IFNAME PORT\n", argv[0]); return 2; }
  struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
  if (!obj || bpf_object__load(obj)) { perror("load"); return 1; }
  unsigned long long k[2];
  if (getrandom(k, sizeof(k), 0) != sizeof(k)) { perror("getrandom"); return 1; }
  unsigned int zero = 0;
  bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "key"), &zero, k, 0);
  unsigned short port = (unsigned short)atoi(argv[5]);
  unsigned char one = 1;
  bpf_map_update_elem(bpf_object__find_map_fd_by_name(obj, "ports"), &port, &one, 0);
  int cg = open(argv[2], O_RDONLY);
  struct bpf_program *vouch = bpf_object__find_program_by_name(obj, "vouch");
  struct bpf_link *l = bpf_program__attach_cgroup(vouch, cg);
  if (!l) { perror("attach sockops"); return 1; }
  int ns = open(argv[3], O_RDONLY);
  if (ns < 0 || setns(ns, CLONE_NEWNET)) { perror("setns"); return 1; }
  int ifindex = if_nametoindex(argv[4]);
  DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
  bpf_tc_hook_create(&hook);
  DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1,
                      .prog_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "check")));
  if (bpf_tc_attach(&hook, &opts)) { perror("attach tc"); return 1; }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int counts = bpf_object__find_map_fd_by_name(obj, "counts");
  printf("ready\n");
  fflush(stdout);
  while (!stop) {
    sleep(1);
    unsigned long long c[5] = {0};
    for (unsigned int i = 0; i < 5; i++) bpf_map_lookup_elem(counts, &i, &c[i]);
    printf("tagged=%llu verified=%llu bad=%llu untagged=%llu replayed=%llu\n", c[0], c[1],
           c[2], c[3], c[4]);
    fflush(stdout);
  }
  opts.flags = opts.prog_fd = opts.prog_id = 0;
  bpf_tc_detach(&hook, &opts);
  hook.attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS;
  bpf_tc_hook_destroy(&hook);
  bpf_link__destroy(l);
  return 0;
}
