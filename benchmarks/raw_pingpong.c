/* Raw round-trip baselines for the engine benchmarks: what the hardware and the kernel cost
 * before any RPC layer. Two processes (fork), the server pinned to one CPU, the client to another;
 * the client times every round trip with CLOCK_MONOTONIC and writes them (ns, one per line).
 *
 *   raw_pingpong MODE ITERATIONS WARMUP SERVER_CPU CLIENT_CPU SAMPLES_FILE
 *
 * MODE:
 *   shm   spin ping-pong on one shared cache line (MAP_SHARED|MAP_ANONYMOUS): the client
 *         publishes an odd sequence number, the server answers with the next even one;
 *         both spin (no syscalls). The floor for any shared-memory transport.
 *   unix  blocking 8-byte write/read over a socketpair(AF_UNIX, SOCK_STREAM).
 *   tcp   blocking 8-byte send/recv over TCP loopback (127.0.0.1, TCP_NODELAY on both ends).
 *   tcpspin  the same over non-blocking sockets, both ends busy-polling recv (MSG_DONTWAIT)
 *         instead of sleeping in it: the floor of a TCP transport that polls its sockets.
 *
 * Prints one summary line (JSON) on stdout; exits non-zero with a message on any failure.
 * Compiled by benchmarks/raw_baselines.py with `cc -O2`.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CACHE_LINE 64

struct line {
  _Alignas(CACHE_LINE) _Atomic uint64_t seq;
  char pad[CACHE_LINE - sizeof(uint64_t)];
};

static void die(const char *what) {
  fprintf(stderr, "raw_pingpong: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* Fails before forking when a CPU is not one this process may run on. */
static void check_cpu(int cpu) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) die("sched_getaffinity");
  if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &set)) {
    fprintf(stderr, "raw_pingpong: CPU %d is not in this process's allowed CPUs\n", cpu);
    exit(2);
  }
}

static void pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    fprintf(stderr, "raw_pingpong: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
    exit(1);
  }
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int spin_reads; /* tcpspin: non-blocking sockets, the caller polls */

static void full_write(int fd, const void *buf, size_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (spin_reads && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        relax();
        continue;
      }
      die("write");
    }
    p += k;
    n -= (size_t)k;
  }
}

/* Returns 0 on end of stream before any byte, 1 when n bytes were read. */
static int full_read(int fd, void *buf, size_t n) {
  char *p = buf;
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, p + got, n - got);
    if (k < 0) {
      if (errno == EINTR) continue;
      if (spin_reads && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        relax();
        continue;
      }
      die("read");
    }
    if (k == 0) {
      if (got == 0) return 0;
      errno = EPROTO;
      die("read (short message)");
    }
    got += (size_t)k;
  }
  return 1;
}

static void set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) die("fcntl(O_NONBLOCK)");
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double pct(const uint64_t *sorted, long n, double p) { /* nearest rank */
  long k = (long)(p / 100.0 * (double)n + 0.999999999);
  if (k < 1) k = 1;
  if (k > n) k = n;
  return (double)sorted[k - 1] / 1000.0;
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s shm|unix|tcp|tcpspin ITERATIONS WARMUP SERVER_CPU CLIENT_CPU SAMPLES_FILE\n",
            argv[0]);
    return 2;
  }
  const char *mode = argv[1];
  long iters = atol(argv[2]), warmup = atol(argv[3]);
  int server_cpu = atoi(argv[4]), client_cpu = atoi(argv[5]);
  const char *samples_path = argv[6];
  if (iters < 1 || warmup < 0) {
    fprintf(stderr, "raw_pingpong: ITERATIONS must be >= 1 and WARMUP >= 0\n");
    return 2;
  }
  int is_shm = strcmp(mode, "shm") == 0, is_unix = strcmp(mode, "unix") == 0,
      is_tcp = strcmp(mode, "tcp") == 0 || strcmp(mode, "tcpspin") == 0;
  spin_reads = strcmp(mode, "tcpspin") == 0;
  if (!is_shm && !is_unix && !is_tcp) {
    fprintf(stderr, "raw_pingpong: unknown mode '%s' (shm, unix, tcp or tcpspin)\n", mode);
    return 2;
  }
  check_cpu(server_cpu);
  check_cpu(client_cpu);
  long total = iters + warmup;
  uint64_t *samples = calloc((size_t)iters, sizeof *samples);
  if (!samples) die("calloc");

  struct line *line = NULL;
  int fds[2] = {-1, -1};
  int listener = -1;
  struct sockaddr_in addr;
  socklen_t addrlen = sizeof addr;
  if (is_shm) {
    line = mmap(NULL, sizeof *line, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (line == MAP_FAILED) die("mmap");
    atomic_store(&line->seq, 0);
  } else if (is_unix) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) die("socketpair");
  } else {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    if (listener < 0) die("socket");
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
    if (listen(listener, 1) != 0) die("listen");
    if (getsockname(listener, (struct sockaddr *)&addr, &addrlen) != 0) die("getsockname");
  }

  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) { /* server */
    pin(server_cpu);
    if (is_shm) {
      for (uint64_t i = 0; i < (uint64_t)total; i++) {
        uint64_t want = 2 * i + 1;
        while (atomic_load_explicit(&line->seq, memory_order_acquire) != want) relax();
        atomic_store_explicit(&line->seq, want + 1, memory_order_release);
      }
      _exit(0);
    }
    int fd;
    if (is_unix) {
      close(fds[0]);
      fd = fds[1];
    } else {
      fd = accept(listener, NULL, NULL);
      if (fd < 0) die("accept");
      int one = 1;
      if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
      if (spin_reads) set_nonblocking(fd);
    }
    uint64_t msg;
    while (full_read(fd, &msg, sizeof msg)) full_write(fd, &msg, sizeof msg);
    _exit(0);
  }

  /* client */
  pin(client_cpu);
  int fd = -1;
  if (is_unix) {
    close(fds[1]);
    fd = fds[0];
  } else if (is_tcp) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) die("connect");
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) die("TCP_NODELAY");
    if (spin_reads) set_nonblocking(fd);
    close(listener);
  }
  for (long i = 0; i < total; i++) {
    uint64_t t0 = now_ns();
    if (is_shm) {
      uint64_t want = 2 * (uint64_t)i + 2;
      atomic_store_explicit(&line->seq, want - 1, memory_order_release);
      for (unsigned long spins = 1; atomic_load_explicit(&line->seq, memory_order_acquire) != want;
           spins++) {
        relax();
        if ((spins & 0xfffffu) == 0 && waitpid(child, NULL, WNOHANG) == child) {
          fprintf(stderr, "raw_pingpong: server process died\n");
          return 1;
        }
      }
    } else {
      uint64_t msg = (uint64_t)i;
      full_write(fd, &msg, sizeof msg);
      if (!full_read(fd, &msg, sizeof msg) || msg != (uint64_t)i) {
        errno = EPROTO;
        die("unexpected reply");
      }
    }
    uint64_t t1 = now_ns();
    if (i >= warmup) samples[i - warmup] = t1 - t0;
  }
  if (fd >= 0) close(fd); /* the server sees end of stream and exits */
  int status = 0;
  if (waitpid(child, &status, 0) < 0) die("waitpid");
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    fprintf(stderr, "raw_pingpong: server process failed (status %d)\n", status);
    return 1;
  }

  FILE *out = fopen(samples_path, "w");
  if (!out) die(samples_path);
  for (long i = 0; i < iters; i++) fprintf(out, "%llu\n", (unsigned long long)samples[i]);
  if (fclose(out) != 0) die("fclose");

  qsort(samples, (size_t)iters, sizeof *samples, cmp_u64);
  double sum = 0;
  for (long i = 0; i < iters; i++) sum += (double)samples[i];
  printf("{\"mode\": \"%s\", \"iterations\": %ld, \"warmup\": %ld, \"server_cpu\": %d, "
         "\"client_cpu\": %d, \"min_us\": %.3f, \"median_us\": %.3f, \"p90_us\": %.3f, "
         "\"p99_us\": %.3f, \"mean_us\": %.3f, \"max_us\": %.3f}\n",
         mode, iters, warmup, server_cpu, client_cpu, (double)samples[0] / 1000.0,
         pct(samples, iters, 50), pct(samples, iters, 90), pct(samples, iters, 99),
         sum / (double)iters / 1000.0, (double)samples[iters - 1] / 1000.0);
  free(samples);
  return 0;
}
