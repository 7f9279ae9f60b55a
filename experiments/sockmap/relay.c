// A user-space relay (epoll, one thread), optionally with the replies in the kernel.
#define _GNU_SOURCE
// Usage: relay LISTEN_PORT SERVER_PORT [1 = replies in the kernel]
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <errno.h>
struct key { __u32 lip, rip, lport, rport; };
static int peer[65536];
int main(int argc, char **argv) {
  int lport = atoi(argv[1]), sport = atoi(argv[2]), kern = argc > 3 && atoi(argv[3]);
  int clients = -1, reply_to = -1, cg = -1, ops = -1;
  if (kern) {
    struct bpf_object *obj = bpf_object__open_file("reply.bpf.o", NULL);
    if (!obj || bpf_object__load(obj)) { perror("load"); return 1; }
    int servers = bpf_object__find_map_fd_by_name(obj, "servers");
    clients = bpf_object__find_map_fd_by_name(obj, "clients");
    reply_to = bpf_object__find_map_fd_by_name(obj, "reply_to");
    ops = bpf_program__fd(bpf_object__find_program_by_name(obj, "ops"));
    int ver = bpf_program__fd(bpf_object__find_program_by_name(obj, "verdict"));
    cg = open("/sys/fs/cgroup/unified", O_RDONLY | O_DIRECTORY);
    if (bpf_prog_attach(ver, servers, BPF_SK_MSG_VERDICT, 0)) { perror("attach msg"); return 1; }
    if (bpf_prog_attach(ops, cg, BPF_CGROUP_SOCK_OPS, 0)) { perror("attach ops"); return 1; }
  }
  int one = 1, l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(lport), .sin_addr.s_addr = htonl(0x7f000001) };
  if (bind(l, (void*)&a, sizeof a) || listen(l, 1024)) { perror("bind"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = { .events = EPOLLIN, .data.fd = l };
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  struct epoll_event evs[256]; char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        int c;
        while ((c = accept4(l, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          int s = socket(AF_INET, SOCK_STREAM, 0);
          struct sockaddr_in u = { .sin_family = AF_INET, .sin_port = htons(sport), .sin_addr.s_addr = htonl(0x7f000001) };
          if (connect(s, (void*)&u, sizeof u)) { perror("connect"); close(c); close(s); continue; }
          fcntl(s, F_SETFL, O_NONBLOCK);
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          peer[c] = s; peer[s] = c;
          if (kern) {
            struct sockaddr_in me; socklen_t len = sizeof me;
            getsockname(s, (void*)&me, &len);
            // The server's socket sees the relay's upstream socket from the other side.
            struct key k = { .lip = u.sin_addr.s_addr, .rip = me.sin_addr.s_addr, .lport = sport, .rport = ntohs(me.sin_port) };
            __u32 slot = c; __u64 cfd = c;
            if (bpf_map_update_elem(clients, &slot, &cfd, BPF_ANY)) perror("clients");
            if (bpf_map_update_elem(reply_to, &k, &slot, BPF_ANY)) perror("reply_to");
          }
          struct epoll_event e1 = { .events = EPOLLIN, .data.fd = c }, e2 = { .events = EPOLLIN, .data.fd = s };
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &e1); epoll_ctl(ep, EPOLL_CTL_ADD, s, &e2);
        }
        continue;
      }
      ssize_t r = read(fd, buf, sizeof buf);
      if (r <= 0) {
        if (r < 0 && errno == EAGAIN) continue;
        int p = peer[fd]; close(fd); close(p); continue;
      }
      // Blocking-enough for a benchmark: the peer's buffer has room for a reply.
      ssize_t off = 0;
      while (off < r) { ssize_t w = write(peer[fd], buf + off, r - off); if (w < 0) { if (errno == EAGAIN) continue; break; } off += w; }
    }
  }
}
