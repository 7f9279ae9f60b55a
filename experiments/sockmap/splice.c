#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
int main(int argc, char **argv) {
  int listen_port = atoi(argv[1]), up_port = atoi(argv[2]);
  int use_bpf = argc > 3 && atoi(argv[3]);
  struct bpf_object *obj = bpf_object__open_file("splice.bpf.o", NULL);
  if (!obj || bpf_object__load(obj)) { perror("load"); return 1; }
  int socks = bpf_object__find_map_fd_by_name(obj, "socks");
  int peer = bpf_object__find_map_fd_by_name(obj, "peer");
  int parser = bpf_program__fd(bpf_object__find_program_by_name(obj, "parser"));
  int verdict = bpf_program__fd(bpf_object__find_program_by_name(obj, "verdict"));
  if (bpf_prog_attach(parser, socks, BPF_SK_SKB_STREAM_PARSER, 0)) { perror("attach parser"); return 1; }
  if (bpf_prog_attach(verdict, socks, BPF_SK_SKB_STREAM_VERDICT, 0)) { perror("attach verdict"); return 1; }
  int l = socket(AF_INET, SOCK_STREAM, 0); int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(listen_port), .sin_addr.s_addr = htonl(0x7f000001) };
  if (bind(l, (void*)&a, sizeof a) || listen(l, 1024)) { perror("bind"); return 1; }
  __u32 slot = 0;
  for (;;) {
    int c = accept(l, NULL, NULL); if (c < 0) continue;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in u = { .sin_family = AF_INET, .sin_port = htons(up_port), .sin_addr.s_addr = htonl(0x7f000001) };
    if (connect(s, (void*)&u, sizeof u)) { perror("connect"); close(c); close(s); continue; }
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    __u32 ca = slot++, sa = slot++;
    __u64 cfd = c, sfd = s, ck, sk; socklen_t len = 8;
    getsockopt(c, SOL_SOCKET, SO_COOKIE, &ck, &len); len = 8;
    getsockopt(s, SOL_SOCKET, SO_COOKIE, &sk, &len);
    bpf_map_update_elem(peer, &ck, &sa, BPF_ANY);
    bpf_map_update_elem(peer, &sk, &ca, BPF_ANY);
    if (bpf_map_update_elem(socks, &ca, &cfd, BPF_ANY) || bpf_map_update_elem(socks, &sa, &sfd, BPF_ANY)) { perror("sockmap"); }
    /* keep fds open: leak for the prototype */
  }
}
