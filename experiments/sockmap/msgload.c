#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <signal.h>
static volatile int stop;
static void h(int s) { stop = 1; }
int main(int argc, char **argv) {
  struct bpf_object *obj = bpf_object__open_file(argc > 1 ? argv[1] : "msg.bpf.o", NULL);
  if (!obj || bpf_object__load(obj)) { perror("load"); return 1; }
  int socks = bpf_object__find_map_fd_by_name(obj, "socks");
  int stats = bpf_object__find_map_fd_by_name(obj, "stats");
  int ops = bpf_program__fd(bpf_object__find_program_by_name(obj, "ops"));
  int ver = bpf_program__fd(bpf_object__find_program_by_name(obj, "verdict"));
  int cg = open("/sys/fs/cgroup/unified", O_RDONLY | O_DIRECTORY);
  if (bpf_prog_attach(ver, socks, BPF_SK_MSG_VERDICT, 0)) { perror("attach msg"); return 1; }
  if (bpf_prog_attach(ops, cg, BPF_CGROUP_SOCK_OPS, 0)) { perror("attach ops"); return 1; }
  signal(SIGINT, h); signal(SIGTERM, h);
  fprintf(stderr, "attached\n");
  while (!stop) pause();
  bpf_prog_detach2(ops, cg, BPF_CGROUP_SOCK_OPS);
  for (__u32 i = 0; i < 8; i++) { __u64 v = 0; bpf_map_lookup_elem(stats, &i, &v); fprintf(stderr, "stat %u = %llu\n", i, v); }
  return 0;
}
