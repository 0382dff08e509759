// A fixed-rate, open-loop HTTP/1.1 load generator for the benchmark's latency figures (wrk2's idea,
// in one small file since wrk2 is not packaged). Requests are evenly spaced, 1/RATE apart, and each
// one's latency is measured from when it was due, not from when it could be sent: a target that
// stalls is charged for every request that waited behind the stall (no coordinated omission). hey's
// -q, by contrast, paces each of its workers on its own and they tick together: "1,000 req/s" from 10
// workers arrives as a burst of 10 every 10 ms.
//
// Several targets are measured interleaved, in slices: target k gets slices k, k+T, k+2T, ... so that
// each sees the same moments of a shared, noisy machine, and "latency added over direct" compares like
// with like. Each target gets RATE requests/s during its slices, DURATION seconds of them in all (after
// a warm-up of its own), on connections of its own.
//
//   cc -O2 -o paced bench/paced.c
//   paced [-r RATE] [-d SECONDS] [-s SLICE_MS] [-c CONNECTIONS] [-w WARMUP_SECONDS] URL...
//   (defaults: 1000 req/s, 10 s, 500 ms slices, 32 connections per target, 1 s warm-up)
//
// URL is http://IPv4:PORT/PATH. Prints one JSON line per target: requests (measured), answered (warm-up
// included: what the target served), errors, late (due while
// all of the target's connections were busy), and latency percentiles in ms. Responses must carry a
// Content-Length (the benchmark's upstream does). Bounded: it sends a fixed number of requests and
// gives up on answers still missing 10 s after the last one was due.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_TARGETS 16
#define MAX_CONNS 256
#define BUF_BYTES 65536
#define NS 1000000000LL

typedef struct Target Target;

typedef struct {
  Target *target;
  int fd;          // -1 until first needed: connections are opened on demand, as a client pool does
  int busy;
  int stale;       // the request in flight went out on a connection idle for over a second
  int64_t idle_since;
  int64_t due_ns;  // when the request in flight was due
  size_t have;     // bytes of the response read so far
  size_t need;     // head + body length, once the head is parsed; 0 before
  char buf[BUF_BYTES];
} Conn;

struct Target {
  const char *url;
  struct sockaddr_in addr;
  char request[1024];
  size_t request_len;
  Conn *conns;
  long done, measured, errors, late;
  int64_t *waiting;  // due times of requests waiting for a free connection, oldest first
  long waiting_head, waiting_tail;
  int64_t *latency;  // ns, of the requests after the warm-up
};

static Target targets[MAX_TARGETS];
static int ntargets, nconns = 32;
static long warm;
static int epfd;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

static void die(const char *what) {
  perror(what);
  exit(2);
}

#define STALE_NS NS

static void connect_conn(Conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) die("socket");
  if (connect(c->fd, (struct sockaddr *)&c->target->addr, sizeof c->target->addr) != 0) die(c->target->url);
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) die("epoll_ctl");
  c->busy = 0;
  c->idle_since = now_ns();
  c->have = c->need = 0;
}

static void disconnect(Conn *c) {
  epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  c->fd = -1;
  c->busy = 0;
}

static void released(Conn *c);

static void finish(Target *t, int64_t took, int failed) {
  if (failed) t->errors++;
  else if (t->done >= warm) t->latency[t->measured++] = took;
  t->done++;
}

// The request is small and the socket's buffer empty, so one blocking write sends it whole. A write
// that fails is the request's error: the connection is dropped and the request counted as done.
static void send_request(Conn *c, int64_t due) {
  if (c->fd < 0) connect_conn(c);
  c->busy = 1;
  c->stale = now_ns() - c->idle_since > STALE_NS;
  c->due_ns = due;
  c->have = c->need = 0;
  if (write(c->fd, c->target->request, c->target->request_len) == (ssize_t)c->target->request_len) return;
  disconnect(c);
  finish(c->target, 0, 1);
  released(c);
}

// A request goes out on the first free connection, open ones first, so that few connections carry
// the traffic and the rest open only when requests overlap.
static void issue(Target *t, int64_t due) {
  Conn *unopened = NULL;
  for (int i = 0; i < nconns; i++) {
    Conn *c = &t->conns[i];
    if (c->busy) continue;
    if (c->fd >= 0) {
      send_request(c, due);
      return;
    }
    if (unopened == NULL) unopened = c;
  }
  if (unopened != NULL) {
    send_request(unopened, due);
    return;
  }
  t->late++;
  t->waiting[t->waiting_tail++] = due;
}

// A connection came free: it takes the oldest request of its target still waiting, if any.
static void released(Conn *c) {
  c->busy = 0;
  Target *t = c->target;
  if (t->waiting_head < t->waiting_tail) send_request(c, t->waiting[t->waiting_head++]);
}

// Length of head + body once the head is complete; 0 while it is not; -1 if it has no Content-Length.
static long response_length(const char *buf, size_t have) {
  const char *end = memmem(buf, have, "\r\n\r\n", 4);
  if (end == NULL) return 0;
  size_t head = (size_t)(end - buf) + 4;
  for (const char *line = memchr(buf, '\n', head); line != NULL && line < end;
       line = memchr(line + 1, '\n', (size_t)(end - line))) {
    if (strncasecmp(line + 1, "content-length:", 15) == 0) return (long)head + strtol(line + 16, NULL, 10);
  }
  return -1;
}

static void readable(Conn *c) {
  if (!c->busy) {  // an idle connection closed by the server (keep-alive timeout, or a 408): drop it
    disconnect(c);
    return;
  }
  ssize_t got = read(c->fd, c->buf + c->have, BUF_BYTES - c->have);
  if (got <= 0) {
    // The peer closed or reset. On a connection idle for over a second, before any byte of an answer,
    // that is the keep-alive race every HTTP client meets (the server closed it as the request left):
    // the request goes again, still charged from when it was due. Otherwise the request failed.
    int retry = c->stale && c->have == 0;
    int64_t due = c->due_ns;
    disconnect(c);
    if (retry) {
      send_request(c, due);
      return;
    }
    finish(c->target, 0, 1);
    released(c);
    return;
  }
  c->have += (size_t)got;
  if (c->need == 0) {
    long length = response_length(c->buf, c->have);
    if (length < 0 || length > BUF_BYTES) {
      fprintf(stderr, "paced: %s: responses must carry a Content-Length under %d bytes\n", c->target->url, BUF_BYTES);
      exit(2);
    }
    c->need = (size_t)length;
  }
  if (c->need == 0 || c->have < c->need) return;
  finish(c->target, now_ns() - c->due_ns, 0);
  c->idle_since = now_ns();
  released(c);
}

static void parse_url(Target *t, const char *url) {
  char host[64];
  unsigned port;
  int path_at = 0;
  t->url = url;
  if (sscanf(url, "http://%63[0-9.]:%u%n", host, &port, &path_at) != 2 || port == 0 || port > 65535 ||
      inet_pton(AF_INET, host, &t->addr.sin_addr) != 1) {
    fprintf(stderr, "paced: %s: expected http://IPv4:PORT/PATH\n", url);
    exit(2);
  }
  t->addr.sin_family = AF_INET;
  t->addr.sin_port = htons((uint16_t)port);
  const char *path = url[path_at] ? url + path_at : "/";
  t->request_len = (size_t)snprintf(t->request, sizeof t->request, "GET %s HTTP/1.1\r\nHost: %s:%u\r\n\r\n", path, host, port);
}

static int compare(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static double percentile_ms(const int64_t *sorted, long n, double p) {
  if (n == 0) return 0;
  long i = (long)(p * (double)n);
  return (double)sorted[i < n ? i : n - 1] / 1e6;
}

int main(int argc, char **argv) {
  double rate = 1000, seconds = 10, warmup = 1, slice_ms = 500;
  for (int opt; (opt = getopt(argc, argv, "r:d:s:c:w:")) != -1;) {
    if (opt == 'r') rate = atof(optarg);
    else if (opt == 'd') seconds = atof(optarg);
    else if (opt == 's') slice_ms = atof(optarg);
    else if (opt == 'c') nconns = atoi(optarg);
    else if (opt == 'w') warmup = atof(optarg);
    else return 2;
  }
  ntargets = argc - optind;
  if (rate <= 0 || seconds <= 0 || slice_ms <= 0 || warmup < 0 || nconns < 1 || nconns > MAX_CONNS || ntargets < 1 ||
      ntargets > MAX_TARGETS) {
    fprintf(stderr, "usage: paced [-r RATE] [-d SECONDS] [-s SLICE_MS] [-c CONNECTIONS] [-w WARMUP_SECONDS] URL...\n");
    return 2;
  }
  prctl(PR_SET_TIMERSLACK, 1UL);  // wake on time: the default 50 us of slack would pace unevenly

  epfd = epoll_create1(0);
  if (epfd < 0) die("epoll_create1");
  warm = (long)(warmup * rate);
  long per_target = warm + (long)(seconds * rate);
  for (int k = 0; k < ntargets; k++) {
    Target *t = &targets[k];
    parse_url(t, argv[optind + k]);
    t->conns = calloc((size_t)nconns, sizeof *t->conns);
    t->waiting = calloc((size_t)per_target, sizeof *t->waiting);
    t->latency = calloc((size_t)per_target, sizeof *t->latency);
    if (t->conns == NULL || t->waiting == NULL || t->latency == NULL) die("calloc");
    for (int i = 0; i < nconns; i++) {
      t->conns[i].target = t;
      t->conns[i].fd = -1;
    }
  }
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  if (tfd < 0) die("timerfd_create");
  struct epoll_event tev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, tfd, &tev) != 0) die("epoll_ctl timer");

  int64_t period = (int64_t)(NS / rate);
  long per_slice = (long)(rate * slice_ms / 1000);
  if (per_slice < 1) per_slice = 1;
  long total = per_target * ntargets, next = 0;
  int64_t start = now_ns() + NS / 100;
  int64_t give_up = start + total * period + 10 * NS;
  for (;;) {
    long done = 0;
    for (int k = 0; k < ntargets; k++) done += targets[k].done;
    if (done >= total) break;
    int64_t now = now_ns();
    if (now > give_up) {
      for (int k = 0; k < ntargets; k++) targets[k].errors += per_target - targets[k].done;
      break;
    }
    for (; next < total && start + next * period <= now; next++) issue(&targets[(next / per_slice) % ntargets], start + next * period);
    if (next < total) {
      int64_t due = start + next * period;
      struct itimerspec its = {.it_value = {.tv_sec = due / NS, .tv_nsec = due % NS}};
      timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    }
    struct epoll_event events[64];
    int n = epoll_wait(epfd, events, 64, 1000);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int e = 0; e < n; e++) {
      if (events[e].data.ptr != NULL) {
        readable(events[e].data.ptr);
      } else {
        uint64_t expirations;
        if (read(tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("read timer");
      }
    }
  }
  for (int k = 0; k < ntargets; k++) {
    Target *t = &targets[k];
    qsort(t->latency, (size_t)t->measured, sizeof *t->latency, compare);
    printf("{\"url\":\"%s\",\"requests\":%ld,\"answered\":%ld,\"errors\":%ld,\"late\":%ld,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
           "\"p999\":%.3f,\"max\":%.3f}\n",
           t->url, t->measured, t->done, t->errors, t->late, percentile_ms(t->latency, t->measured, 0.5),
           percentile_ms(t->latency, t->measured, 0.9), percentile_ms(t->latency, t->measured, 0.99),
           percentile_ms(t->latency, t->measured, 0.999),
           t->measured ? (double)t->latency[t->measured - 1] / 1e6 : 0);
  }
  return 0;
}
