/*
 * The benchmark's client side in C: the raw-TCP floor, isotcp through its C ABI (linked
 * statically), and the native snap7 client (libsnap7.so, loaded with dlopen).
 *
 *   client WORKLOAD CONTENDER --port P [options]
 *
 * One run is one batch of one contender: it connects, warms up, runs the measured loop and
 * prints one line "RESULT key=value ...". benches/bench.py runs the batches, alternating the
 * contenders round by round, and keeps the medians.
 *
 * Workloads and contenders (raw = the floor, iso = isotcp, snap7 = the native client):
 *   rtt       raw|iso      --size S --tpdu T --iters N   one message out, its echo back
 *   stream    raw|rawv|iso --size S --tpdu T --iters N   N messages one way, then a 20-byte
 *                                                       message whose echo ends the batch;
 *                                                       rawv: the same bytes by writev, two
 *                                                       entries (header, payload) per DT
 *   pipe      raw|iso      --size S --depth D --iters N  D requests in flight on one connection
 *   many      raw|iso      --conns C --size S --iters M  C connections from one thread (epoll),
 *                                                       one request in flight on each, M each
 *   handshake raw|iso      --iters N                     TCP connect + CR/CC + close, N times
 *   idle      raw|iso      --conns C                     C connected idle connections: memory
 *   s7read    raw|iso|snap7 --lib L --iters N            S7 read of 4 bytes of DB1
 *   s7connect raw|iso|snap7 --lib L --iters N            TCP + CR/CC + S7 setup + close
 *   tlsrtt    iso --size S --pin HEX --iters N           TLS inside COTP: one message out, its
 *                                                       echo back (after iso_start_tls)
 *   tlshandshake iso --pin HEX --iters N                 iso_connect + iso_start_tls +
 *                                                       iso_disconnect, N times (and
 *                                                       iso_start_tls alone: tls_us_per_op)
 * The TLS workloads verify the server by the SHA-256 pin of its certificate (--pin, 64 hex
 * digits); their floor, rustls over TCP, is benches/tls_floor.rs.
 *
 * "raw" writes exactly the bytes isotcp puts on the wire (the CR, then every message as DTs of
 * the negotiated TPDU size) with blocking sockets and TCP_NODELAY, and reads the echo as a
 * byte count: the cost of the same bytes with no library in between.
 *
 * Every RESULT line also has cpu_s: the user + system CPU time of this process during the
 * measured loop (getrusage).
 * Around the measured loop the program makes two marker system calls, write(-1, "BENCH_BEGIN")
 * and write(-1, "BENCH_END"), so that an strace log can be cut to the steady state.
 * Built with -DCOUNT_ALLOC and -Wl,--wrap=malloc,... it also counts the heap calls made inside
 * the measured loop (allocs=..., frees=...).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "isotcp.h"

#define ECHO_TSAP 0x0102
#define SINK_TSAP 0x0103
#define MAX_MESSAGE 65536
/* Framed size of the largest message at the smallest TPDU used here (1024). */
#define MAX_FRAMED (MAX_MESSAGE + 7 * (MAX_MESSAGE / 1021 + 1))

/* ------------------------------------------------------------------------------------------ */
/* heap call counting (only with -DCOUNT_ALLOC and the --wrap link options)                    */

static volatile int g_counting;
static unsigned long long g_allocs, g_frees;

#ifdef COUNT_ALLOC
void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void __real_free(void *);
int __real_posix_memalign(void **, size_t, size_t);
void *__real_aligned_alloc(size_t, size_t);
void *__wrap_malloc(size_t n) {
    if (g_counting) g_allocs++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b) {
    if (g_counting) g_allocs++;
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n) {
    if (g_counting) g_allocs++;
    return __real_realloc(p, n);
}
void __wrap_free(void *p) {
    if (g_counting && p) g_frees++;
    __real_free(p);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    if (g_counting) g_allocs++;
    return __real_posix_memalign(p, a, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    if (g_counting) g_allocs++;
    return __real_aligned_alloc(a, n);
}
#endif

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                      */

static const char *g_workload, *g_contender;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void marker(const char *text) {
    /* A failing write that strace shows with its text: where the measured loop starts/ends. */
    syscall(SYS_write, -1, text, strlen(text));
}

static double g_cpu0, g_cpu_s;

/* User + system CPU time of this process, in seconds. */
static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec / 1e6;
}

static void begin_measure(void) {
    marker("BENCH_BEGIN");
    g_allocs = g_frees = 0;
    g_cpu0 = cpu_now();
    g_counting = 1;
}

static void end_measure(void) {
    g_counting = 0;
    g_cpu_s = cpu_now() - g_cpu0;
    marker("BENCH_END");
}

static void fail(const char *fmt, const char *detail) {
    fprintf(stderr, "client %s %s: ", g_workload, g_contender);
    fprintf(stderr, fmt, detail);
    fputc('\n', stderr);
    exit(1);
}

static void iso_fail(const char *what, iso_conn *c, int32_t rc) {
    char msg[512] = "";
    if (c) iso_last_error(c, msg, sizeof msg, NULL);
    else iso_thread_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "client %s %s: %s: %s (%d): %s\n", g_workload, g_contender, what, iso_strerror(rc), (int)rc, msg);
    exit(1);
}

static void print_result(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void print_result(const char *fmt, ...) {
    va_list ap;
    printf("RESULT workload=%s contender=%s ", g_workload, g_contender);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf(" cpu_s=%.6f", g_cpu_s);
#ifdef COUNT_ALLOC
    printf(" allocs=%llu frees=%llu", g_allocs, g_frees);
#endif
    printf("\n");
    fflush(stdout);
}

static void raise_fd_limit(void) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed) {
    size_t i;
    for (i = 0; i < n; i++) p[i] = (uint8_t)(i * 131u + seed);
}

/* Resident set size in bytes (/proc/self/statm). */
static long long rss_bytes(void) {
    long long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%lld %lld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Bytes the C heap has handed out (small blocks + mmapped blocks). */
static long long heap_bytes(void) {
    struct mallinfo2 mi = mallinfo2();
    return (long long)mi.uordblks + (long long)mi.hblkhd;
}

/* ------------------------------------------------------------------------------------------ */
/* the wire: what isotcp sends, built here for the raw floor                                   */

/* The CR isotcp sends: C1, C2, C0; DST-REF 0, SRC-REF 0x0001, class 0 (22 bytes). */
static size_t build_cr(uint8_t *out, uint16_t calling, uint16_t called, unsigned tpdu) {
    uint8_t code = 7;
    while ((1u << code) < tpdu) code++;
    const uint8_t cr[22] = {3, 0, 0, 22, 17, 0xE0, 0, 0, 0, 1, 0,
                            0xC1, 2, (uint8_t)(calling >> 8), (uint8_t)calling,
                            0xC2, 2, (uint8_t)(called >> 8), (uint8_t)called,
                            0xC0, 1, code};
    memcpy(out, cr, sizeof cr);
    return sizeof cr;
}

/* A message as DTs of at most `tpdu` bytes (payload tpdu - 3), EOT on the last. */
static size_t frame_message(uint8_t *out, const uint8_t *msg, size_t len, unsigned tpdu) {
    size_t per = tpdu - 3, off = 0, n = 0;
    while (off < len) {
        size_t chunk = len - off < per ? len - off : per;
        size_t plen = chunk + 7;
        out[n++] = 3;
        out[n++] = 0;
        out[n++] = (uint8_t)(plen >> 8);
        out[n++] = (uint8_t)plen;
        out[n++] = 2;
        out[n++] = 0xF0;
        out[n++] = off + chunk == len ? 0x80 : 0x00;
        memcpy(out + n, msg + off, chunk);
        n += chunk;
        off += chunk;
    }
    return n;
}

/* The same DTs as frame_message, as an iovec of 2 entries per DT (header, payload slice of msg):
 * the shape of isotcp's vectored write. `hdrs` holds 7 bytes per DT. Returns the entry count. */
static int frame_iovec(struct iovec *iov, uint8_t (*hdrs)[7], const uint8_t *msg, size_t len, unsigned tpdu) {
    size_t per = tpdu - 3, off = 0;
    int k = 0;
    while (off < len) {
        size_t chunk = len - off < per ? len - off : per;
        size_t plen = chunk + 7;
        uint8_t *h = hdrs[k / 2];
        h[0] = 3; h[1] = 0; h[2] = (uint8_t)(plen >> 8); h[3] = (uint8_t)plen;
        h[4] = 2; h[5] = 0xF0; h[6] = off + chunk == len ? 0x80 : 0x00;
        iov[k].iov_base = h;
        iov[k].iov_len = 7;
        iov[k + 1].iov_base = (void *)(msg + off);
        iov[k + 1].iov_len = chunk;
        k += 2;
        off += chunk;
    }
    return k;
}

/* writev of the whole iovec, continuing after partial writes (the iovec is consumed). */
static void writev_all(int fd, struct iovec *iov, int cnt) {
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt > 1024 ? 1024 : cnt);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("writev: %s", strerror(errno));
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
}

static void write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("write: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
}

static void read_exact(int fd, uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) fail("read: %s", r == 0 ? "connection closed by the peer" : strerror(errno));
        p += r;
        n -= (size_t)r;
    }
}

static int tcp_connect(unsigned port) {
    struct sockaddr_in a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("socket: %s", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) fail("connect: %s", strerror(errno));
    return fd;
}

/* Raw TCP connect, the CR isotcp would send, and the 22-byte CC. */
static int raw_open(unsigned port, uint16_t called, unsigned tpdu) {
    uint8_t cr[32], cc[22];
    int fd = tcp_connect(port);
    write_all(fd, cr, build_cr(cr, 0x0100, called, tpdu));
    read_exact(fd, cc, sizeof cc);
    if (cc[5] != 0xD0) fail("%s", "no CC");
    return fd;
}

static iso_conn *iso_open(unsigned port, uint16_t called, unsigned tpdu) {
    iso_conn *c = NULL;
    int32_t rc = iso_create("127.0.0.1", (uint16_t)port, &c);
    if (rc != ISO_OK) iso_fail("iso_create", NULL, rc);
    if ((rc = iso_set_tsap(c, 0x0100, called)) != ISO_OK) iso_fail("iso_set_tsap", c, rc);
    if ((rc = iso_set_tpdu_size(c, tpdu)) != ISO_OK) iso_fail("iso_set_tpdu_size", c, rc);
    if ((rc = iso_connect(c, 10000)) != ISO_OK) iso_fail("iso_connect", c, rc);
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* options                                                                                     */

typedef struct {
    unsigned port, size, tpdu, iters, warmup, depth, conns;
    const char *lib, *pin;
} opts_t;

/* ------------------------------------------------------------------------------------------ */
/* rtt: request/response round trips                                                           */

static uint8_t g_msg[MAX_MESSAGE], g_ans[MAX_MESSAGE + 64];
static uint8_t g_framed[MAX_FRAMED], g_rbuf[MAX_FRAMED];

/* One raw round trip: the framed message out, as many bytes back. Kept apart for callgrind. */
__attribute__((noinline)) void raw_send_recv(int fd, const uint8_t *framed, size_t flen, uint8_t *rbuf) {
    write_all(fd, framed, flen);
    read_exact(fd, rbuf, flen);
}

static void iso_send_recv(iso_conn *c, const uint8_t *msg, size_t len) {
    size_t n = 0;
    int32_t rc = iso_send(c, msg, len);
    if (rc != ISO_OK) iso_fail("iso_send", c, rc);
    rc = iso_recv(c, g_ans, sizeof g_ans, &n, 10000);
    if (rc != ISO_OK) iso_fail("iso_recv", c, rc);
    if (n != len) fail("%s", "echo of another length");
}

static void run_rtt(const opts_t *o) {
    unsigned i;
    double t0, t1;
    fill_pattern(g_msg, o->size, 7);
    if (strcmp(g_contender, "raw") == 0) {
        int fd = raw_open(o->port, ECHO_TSAP, o->tpdu);
        size_t flen = frame_message(g_framed, g_msg, o->size, o->tpdu);
        for (i = 0; i < o->warmup; i++) raw_send_recv(fd, g_framed, flen, g_rbuf);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) raw_send_recv(fd, g_framed, flen, g_rbuf);
        t1 = now_s();
        end_measure();
        if (memcmp(g_rbuf, g_framed, flen) != 0) fail("%s", "echo differs");
        close(fd);
    } else {
        iso_conn *c = iso_open(o->port, ECHO_TSAP, o->tpdu);
        for (i = 0; i < o->warmup; i++) iso_send_recv(c, g_msg, o->size);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) iso_send_recv(c, g_msg, o->size);
        t1 = now_s();
        end_measure();
        if (memcmp(g_ans, g_msg, o->size) != 0) fail("%s", "echo differs");
        iso_destroy(c);
    }
    print_result("size=%u tpdu=%u iters=%u seconds=%.6f us_per_op=%.3f", o->size, o->tpdu, o->iters, t1 - t0,
                 (t1 - t0) * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */
/* stream: one-way messages, acknowledged at the end                                           */

static void run_stream(const opts_t *o) {
    static uint8_t end_framed[64];
    uint8_t end_msg[20], end_ans[64];
    unsigned i;
    double t0, t1;
    fill_pattern(g_msg, o->size, 3);
    fill_pattern(end_msg, sizeof end_msg, 99);
    if (strcmp(g_contender, "rawv") == 0) {
        /* The floor with isotcp's write shape: one writev of header + payload slices per DT. */
        static struct iovec iov[2 * (MAX_MESSAGE / 125 + 1)], work[2 * (MAX_MESSAGE / 125 + 1)];
        static uint8_t hdrs[MAX_MESSAGE / 125 + 1][7];
        int fd = raw_open(o->port, SINK_TSAP, o->tpdu);
        int cnt = frame_iovec(iov, hdrs, g_msg, o->size, o->tpdu);
        size_t elen = frame_message(end_framed, end_msg, sizeof end_msg, o->tpdu);
        for (i = 0; i < o->warmup; i++) {
            memcpy(work, iov, (size_t)cnt * sizeof *iov);
            writev_all(fd, work, cnt);
        }
        write_all(fd, end_framed, elen);
        read_exact(fd, end_ans, elen);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) {
            memcpy(work, iov, (size_t)cnt * sizeof *iov);
            writev_all(fd, work, cnt);
        }
        write_all(fd, end_framed, elen);
        read_exact(fd, end_ans, elen);
        t1 = now_s();
        end_measure();
        close(fd);
    } else if (strcmp(g_contender, "raw") == 0) {
        int fd = raw_open(o->port, SINK_TSAP, o->tpdu);
        size_t flen = frame_message(g_framed, g_msg, o->size, o->tpdu);
        size_t elen = frame_message(end_framed, end_msg, sizeof end_msg, o->tpdu);
        for (i = 0; i < o->warmup; i++) write_all(fd, g_framed, flen);
        write_all(fd, end_framed, elen);
        read_exact(fd, end_ans, elen);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) write_all(fd, g_framed, flen);
        write_all(fd, end_framed, elen);
        read_exact(fd, end_ans, elen);
        t1 = now_s();
        end_measure();
        close(fd);
    } else {
        iso_conn *c = iso_open(o->port, SINK_TSAP, o->tpdu);
        int32_t rc;
        size_t n;
        for (i = 0; i < o->warmup; i++)
            if ((rc = iso_send(c, g_msg, o->size)) != ISO_OK) iso_fail("iso_send", c, rc);
        if ((rc = iso_send(c, end_msg, sizeof end_msg)) != ISO_OK) iso_fail("iso_send", c, rc);
        if ((rc = iso_recv(c, end_ans, sizeof end_ans, &n, 10000)) != ISO_OK) iso_fail("iso_recv", c, rc);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++)
            if ((rc = iso_send(c, g_msg, o->size)) != ISO_OK) iso_fail("iso_send", c, rc);
        if ((rc = iso_send(c, end_msg, sizeof end_msg)) != ISO_OK) iso_fail("iso_send", c, rc);
        if ((rc = iso_recv(c, end_ans, sizeof end_ans, &n, 10000)) != ISO_OK) iso_fail("iso_recv", c, rc);
        t1 = now_s();
        end_measure();
        iso_destroy(c);
    }
    print_result("size=%u tpdu=%u iters=%u seconds=%.6f mb_per_s=%.3f us_per_op=%.3f", o->size, o->tpdu, o->iters,
                 t1 - t0, (double)o->size * o->iters / (t1 - t0) / 1e6, (t1 - t0) * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */
/* pipe: D requests in flight on one connection                                                */

static void run_pipe(const opts_t *o) {
    unsigned sent = 0, done = 0;
    double t0, t1;
    fill_pattern(g_msg, o->size, 5);
    if (strcmp(g_contender, "raw") == 0) {
        int fd = raw_open(o->port, ECHO_TSAP, o->tpdu);
        size_t flen = frame_message(g_framed, g_msg, o->size, o->tpdu);
        unsigned long long got = 0;
        unsigned w;
        for (w = 0; w < o->warmup; w++) raw_send_recv(fd, g_framed, flen, g_rbuf);
        begin_measure();
        t0 = now_s();
        while (sent < o->depth && sent < o->iters) {
            write_all(fd, g_framed, flen);
            sent++;
        }
        while (done < o->iters) {
            ssize_t r = read(fd, g_rbuf, sizeof g_rbuf);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) fail("read: %s", r == 0 ? "closed" : strerror(errno));
            got += (unsigned long long)r;
            done = (unsigned)(got / flen);
            while (sent < o->iters && sent - done < o->depth) {
                write_all(fd, g_framed, flen);
                sent++;
            }
        }
        t1 = now_s();
        end_measure();
        close(fd);
    } else {
        iso_conn *c = iso_open(o->port, ECHO_TSAP, o->tpdu);
        int32_t rc;
        unsigned w;
        for (w = 0; w < o->warmup; w++) iso_send_recv(c, g_msg, o->size);
        begin_measure();
        t0 = now_s();
        while (sent < o->depth && sent < o->iters) {
            if ((rc = iso_send(c, g_msg, o->size)) != ISO_OK) iso_fail("iso_send", c, rc);
            sent++;
        }
        while (done < o->iters) {
            size_t n = 0;
            if ((rc = iso_recv(c, g_ans, sizeof g_ans, &n, 10000)) != ISO_OK) iso_fail("iso_recv", c, rc);
            if (n != o->size) fail("%s", "echo of another length");
            done++;
            if (sent < o->iters) {
                if ((rc = iso_send(c, g_msg, o->size)) != ISO_OK) iso_fail("iso_send", c, rc);
                sent++;
            }
        }
        t1 = now_s();
        end_measure();
        iso_destroy(c);
    }
    print_result("size=%u depth=%u iters=%u seconds=%.6f msgs_per_s=%.1f us_per_op=%.3f", o->size, o->depth, o->iters,
                 t1 - t0, o->iters / (t1 - t0), (t1 - t0) * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */
/* many: C connections from one thread, one request in flight on each                          */

typedef struct {
    int fd;
    iso_conn *conn;
    size_t got;
    unsigned done;
    int want_out;
} mconn_t;

static void ep_ctl(int ep, int op, int fd, uint32_t events, uint64_t key) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = key;
    if (epoll_ctl(ep, op, fd, &ev) != 0) fail("epoll_ctl: %s", strerror(errno));
}

static void run_many(const opts_t *o) {
    mconn_t *m = calloc(o->conns, sizeof *m);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int raw = strcmp(g_contender, "raw") == 0;
    size_t flen;
    unsigned i, finished = 0;
    unsigned long long total = 0;
    double t0, t1;
    if (!m || ep < 0) fail("%s", "setup");
    raise_fd_limit();
    fill_pattern(g_msg, o->size, 11);
    flen = frame_message(g_framed, g_msg, o->size, o->tpdu);
    for (i = 0; i < o->conns; i++) {
        if (raw) {
            m[i].fd = raw_open(o->port, ECHO_TSAP, o->tpdu);
        } else {
            int64_t fd = -1;
            m[i].conn = iso_open(o->port, ECHO_TSAP, o->tpdu);
            iso_get_fd(m[i].conn, &fd);
            m[i].fd = (int)fd;
        }
        ep_ctl(ep, EPOLL_CTL_ADD, m[i].fd, EPOLLIN, i);
    }
    begin_measure();
    t0 = now_s();
    for (i = 0; i < o->conns; i++) {
        if (raw) {
            write_all(m[i].fd, g_framed, flen);
        } else {
            int32_t rc = iso_queue_send(m[i].conn, g_msg, o->size);
            if (rc != ISO_OK) iso_fail("iso_queue_send", m[i].conn, rc);
        }
    }
    while (finished < o->conns) {
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, 10000), k;
        if (n == 0) fail("%s", "no progress for 10 s");
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("epoll_wait: %s", strerror(errno));
        }
        for (k = 0; k < n; k++) {
            unsigned id = (unsigned)evs[k].data.u64;
            mconn_t *c = &m[id];
            int complete = 0;
            if (raw) {
                ssize_t r = read(c->fd, g_rbuf, flen - c->got);
                if (r <= 0) fail("read: %s", r == 0 ? "closed" : strerror(errno));
                c->got += (size_t)r;
                if (c->got == flen) {
                    c->got = 0;
                    complete = 1;
                }
            } else {
                int32_t rc;
                size_t len = 0;
                if (evs[k].events & EPOLLOUT) {
                    rc = iso_flush(c->conn, 0);
                    if (rc != ISO_OK && rc != ISO_E_WOULD_BLOCK) iso_fail("iso_flush", c->conn, rc);
                }
                rc = iso_recv(c->conn, g_ans, sizeof g_ans, &len, 0);
                if (rc == ISO_OK) {
                    if (len != o->size) fail("%s", "echo of another length");
                    complete = 1;
                } else if (rc != ISO_E_WOULD_BLOCK) {
                    iso_fail("iso_recv", c->conn, rc);
                }
            }
            if (!complete) continue;
            total++;
            if (++c->done == o->iters) {
                finished++;
                ep_ctl(ep, EPOLL_CTL_DEL, c->fd, 0, id);
                continue;
            }
            if (raw) {
                write_all(c->fd, g_framed, flen);
            } else {
                size_t pending = 0;
                int32_t rc = iso_queue_send(c->conn, g_msg, o->size);
                if (rc != ISO_OK) iso_fail("iso_queue_send", c->conn, rc);
                iso_get_send_pending(c->conn, &pending);
                if ((pending > 0) != c->want_out) {
                    c->want_out = pending > 0;
                    ep_ctl(ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | (c->want_out ? EPOLLOUT : 0), id);
                }
            }
        }
    }
    t1 = now_s();
    end_measure();
    for (i = 0; i < o->conns; i++) {
        if (raw) close(m[i].fd);
        else iso_destroy(m[i].conn);
    }
    free(m);
    close(ep);
    print_result("conns=%u size=%u iters=%u messages=%llu seconds=%.6f msgs_per_s=%.1f us_per_op=%.3f", o->conns, o->size,
                 o->iters, total, t1 - t0, total / (t1 - t0), (t1 - t0) * 1e6 / (double)total);
}

/* ------------------------------------------------------------------------------------------ */
/* handshake: TCP connect + CR/CC + close                                                      */

static void run_handshake(const opts_t *o) {
    unsigned i;
    double t0, t1;
    if (strcmp(g_contender, "raw") == 0) {
        for (i = 0; i < o->warmup; i++) close(raw_open(o->port, ECHO_TSAP, o->tpdu));
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) close(raw_open(o->port, ECHO_TSAP, o->tpdu));
        t1 = now_s();
        end_measure();
    } else {
        iso_conn *c = NULL;
        int32_t rc = iso_create("127.0.0.1", (uint16_t)o->port, &c);
        if (rc != ISO_OK) iso_fail("iso_create", NULL, rc);
        iso_set_tsap(c, 0x0100, ECHO_TSAP);
        iso_set_tpdu_size(c, o->tpdu);
        for (i = 0; i < o->warmup; i++) {
            if ((rc = iso_connect(c, 10000)) != ISO_OK) iso_fail("iso_connect", c, rc);
            iso_disconnect(c);
        }
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) {
            if ((rc = iso_connect(c, 10000)) != ISO_OK) iso_fail("iso_connect", c, rc);
            iso_disconnect(c);
        }
        t1 = now_s();
        end_measure();
        iso_destroy(c);
    }
    print_result("iters=%u seconds=%.6f us_per_op=%.3f", o->iters, t1 - t0, (t1 - t0) * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */
/* idle: memory of C connected, idle connections                                               */

static void run_idle(const opts_t *o) {
    int raw = strcmp(g_contender, "raw") == 0;
    int *fds = calloc(o->conns + 1, sizeof *fds);
    iso_conn **cs = calloc(o->conns + 1, sizeof *cs);
    long long rss0, rss1, heap0, heap1;
    unsigned i;
    if (!fds || !cs) fail("%s", "out of memory");
    raise_fd_limit();
    memset(fds, 0, (o->conns + 1) * sizeof *fds);
    memset(cs, 0, (o->conns + 1) * sizeof *cs);
    /* One connection first, so that one-time set-up is not counted per connection. */
    if (raw) fds[0] = raw_open(o->port, ECHO_TSAP, o->tpdu);
    else cs[0] = iso_open(o->port, ECHO_TSAP, o->tpdu);
    rss0 = rss_bytes();
    heap0 = heap_bytes();
    for (i = 1; i <= o->conns; i++) {
        if (raw) fds[i] = raw_open(o->port, ECHO_TSAP, o->tpdu);
        else cs[i] = iso_open(o->port, ECHO_TSAP, o->tpdu);
    }
    rss1 = rss_bytes();
    heap1 = heap_bytes();
    print_result("conns=%u rss_before=%lld rss_after=%lld rss_per_conn=%.1f heap_per_conn=%.1f", o->conns, rss0, rss1,
                 (double)(rss1 - rss0) / o->conns, (double)(heap1 - heap0) / o->conns);
    for (i = 0; i <= o->conns; i++) {
        if (raw) close(fds[i]);
        else iso_destroy(cs[i]);
    }
    free(fds);
    free(cs);
}

/* ------------------------------------------------------------------------------------------ */
/* S7 against the native snap7 server: isotcp vs the native snap7 client                       */

/* S7 setup communication (PDU 480) and a read of 4 bytes of DB1 at offset 0 (docs/PROTOCOL.md §9.5). */
static const uint8_t S7_SETUP[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
                                   0x00, 0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0};
static const uint8_t S7_READ4[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01,
                                   0x12, 0x0A, 0x10, 0x02, 0x00, 0x04, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00};

/* The part of snap7's C API used here (S7Object is a pointer-sized handle). */
typedef uintptr_t s7obj;
typedef struct {
    s7obj (*create)(void);
    void (*destroy)(s7obj *);
    int (*set_param)(s7obj, int, void *);
    int (*connect_to)(s7obj, const char *, int, int);
    int (*disconnect)(s7obj);
    int (*db_read)(s7obj, int, int, int, void *);
    int (*error_text)(int, char *, int);
} snap7_api;

static void *must_sym(void *lib, const char *name) {
    void *p = dlsym(lib, name);
    if (!p) fail("dlsym %s", name);
    return p;
}

static snap7_api load_snap7(const char *path) {
    snap7_api api;
    void *lib;
    if (!path) fail("%s", "--lib PATH (libsnap7.so) is needed");
    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) fail("dlopen: %s", dlerror());
    *(void **)&api.create = must_sym(lib, "Cli_Create");
    *(void **)&api.destroy = must_sym(lib, "Cli_Destroy");
    *(void **)&api.set_param = must_sym(lib, "Cli_SetParam");
    *(void **)&api.connect_to = must_sym(lib, "Cli_ConnectTo");
    *(void **)&api.disconnect = must_sym(lib, "Cli_Disconnect");
    *(void **)&api.db_read = must_sym(lib, "Cli_DBRead");
    *(void **)&api.error_text = must_sym(lib, "Cli_ErrorText");
    return api;
}

static void snap7_fail(const snap7_api *api, const char *what, int rc) {
    char text[256] = "";
    api->error_text(rc, text, sizeof text);
    fprintf(stderr, "client %s snap7: %s: 0x%X %s\n", g_workload, what, (unsigned)rc, text);
    exit(1);
}

#define SNAP7_REMOTE_PORT 2 /* parameter number of the remote TCP port (uint16) */

static s7obj snap7_open(const snap7_api *api, unsigned port) {
    s7obj cli = api->create();
    uint16_t p = (uint16_t)port;
    int rc = api->set_param(cli, SNAP7_REMOTE_PORT, &p);
    if (rc != 0) snap7_fail(api, "Cli_SetParam", rc);
    return cli;
}

static void iso_s7_setup(iso_conn *c) {
    size_t n = 0;
    int32_t rc = iso_send(c, S7_SETUP, sizeof S7_SETUP);
    if (rc != ISO_OK) iso_fail("iso_send setup", c, rc);
    if ((rc = iso_recv(c, g_ans, sizeof g_ans, &n, 10000)) != ISO_OK) iso_fail("iso_recv setup", c, rc);
    if (n < 20 || g_ans[1] != 0x03) fail("%s", "setup communication refused");
}

static void iso_s7_read(iso_conn *c) {
    size_t n = 0;
    int32_t rc = iso_send(c, S7_READ4, sizeof S7_READ4);
    if (rc != ISO_OK) iso_fail("iso_send read", c, rc);
    if ((rc = iso_recv(c, g_ans, sizeof g_ans, &n, 10000)) != ISO_OK) iso_fail("iso_recv read", c, rc);
    if (n != 22 || g_ans[14] != 0xFF || g_ans[18] != 0 || g_ans[19] != 1 || g_ans[20] != 2 || g_ans[21] != 3)
        fail("%s", "unexpected read answer");
}

static void snap7_read(const snap7_api *api, s7obj cli) {
    uint8_t buf[4] = {9, 9, 9, 9};
    int rc = api->db_read(cli, 1, 0, 4, buf);
    if (rc != 0) snap7_fail(api, "Cli_DBRead", rc);
    if (buf[0] != 0 || buf[1] != 1 || buf[2] != 2 || buf[3] != 3) fail("%s", "unexpected DB1 bytes");
}

/* Raw floor for the S7 workloads: the same framed bytes isotcp sends, blocking reads. */
static int raw_s7_open(unsigned port) {
    uint8_t framed[64], hdr[4];
    size_t flen, body;
    int fd = raw_open(port, 0x0102, 1024);
    flen = frame_message(framed, S7_SETUP, sizeof S7_SETUP, 1024);
    write_all(fd, framed, flen);
    read_exact(fd, hdr, 4);
    body = ((size_t)hdr[2] << 8 | hdr[3]) - 4;
    if (body > sizeof g_rbuf) fail("%s", "setup answer too long");
    read_exact(fd, g_rbuf, body);
    if (body < 23 || g_rbuf[4] != 0x03) fail("%s", "setup communication refused");
    return fd;
}

/* The answer to S7_READ4 is 29 bytes on the wire: TPKT + DT header + 22 bytes of S7. */
static void raw_s7_read(int fd, const uint8_t *framed, size_t flen) {
    write_all(fd, framed, flen);
    read_exact(fd, g_rbuf, 29);
    if (g_rbuf[5] != 0xF0 || g_rbuf[7 + 14] != 0xFF || g_rbuf[25] != 0 || g_rbuf[26] != 1 || g_rbuf[27] != 2 ||
        g_rbuf[28] != 3)
        fail("%s", "unexpected read answer");
}

static void run_s7read(const opts_t *o) {
    unsigned i;
    double t0, t1;
    if (strcmp(g_contender, "snap7") == 0) {
        snap7_api api = load_snap7(o->lib);
        s7obj cli = snap7_open(&api, o->port);
        int rc = api.connect_to(cli, "127.0.0.1", 0, 2);
        if (rc != 0) snap7_fail(&api, "Cli_ConnectTo", rc);
        for (i = 0; i < o->warmup; i++) snap7_read(&api, cli);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) snap7_read(&api, cli);
        t1 = now_s();
        end_measure();
        api.disconnect(cli);
        api.destroy(&cli);
    } else if (strcmp(g_contender, "raw") == 0) {
        uint8_t framed[64];
        size_t flen = frame_message(framed, S7_READ4, sizeof S7_READ4, 1024);
        int fd = raw_s7_open(o->port);
        for (i = 0; i < o->warmup; i++) raw_s7_read(fd, framed, flen);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) raw_s7_read(fd, framed, flen);
        t1 = now_s();
        end_measure();
        close(fd);
    } else {
        iso_conn *c = iso_open(o->port, ECHO_TSAP, 1024);
        iso_s7_setup(c);
        for (i = 0; i < o->warmup; i++) iso_s7_read(c);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) iso_s7_read(c);
        t1 = now_s();
        end_measure();
        iso_destroy(c);
    }
    print_result("iters=%u seconds=%.6f us_per_op=%.3f", o->iters, t1 - t0, (t1 - t0) * 1e6 / o->iters);
}

static void snap7_connect_close(const snap7_api *api, s7obj cli) {
    int rc = api->connect_to(cli, "127.0.0.1", 0, 2);
    if (rc != 0) snap7_fail(api, "Cli_ConnectTo", rc);
    api->disconnect(cli);
}

static void iso_connect_close(iso_conn *c) {
    int32_t rc = iso_connect(c, 10000);
    if (rc != ISO_OK) iso_fail("iso_connect", c, rc);
    iso_s7_setup(c);
    iso_disconnect(c);
}

static void run_s7connect(const opts_t *o) {
    unsigned i;
    double t0, t1;
    if (strcmp(g_contender, "snap7") == 0) {
        snap7_api api = load_snap7(o->lib);
        s7obj cli = snap7_open(&api, o->port);
        for (i = 0; i < o->warmup; i++) snap7_connect_close(&api, cli);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) snap7_connect_close(&api, cli);
        t1 = now_s();
        end_measure();
        api.destroy(&cli);
    } else if (strcmp(g_contender, "raw") == 0) {
        for (i = 0; i < o->warmup; i++) close(raw_s7_open(o->port));
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) close(raw_s7_open(o->port));
        t1 = now_s();
        end_measure();
    } else {
        iso_conn *c = NULL;
        int32_t rc = iso_create("127.0.0.1", (uint16_t)o->port, &c);
        if (rc != ISO_OK) iso_fail("iso_create", NULL, rc);
        iso_set_tsap(c, 0x0100, 0x0102);
        for (i = 0; i < o->warmup; i++) iso_connect_close(c);
        begin_measure();
        t0 = now_s();
        for (i = 0; i < o->iters; i++) iso_connect_close(c);
        t1 = now_s();
        end_measure();
        iso_destroy(c);
    }
    print_result("iters=%u seconds=%.6f us_per_op=%.3f", o->iters, t1 - t0, (t1 - t0) * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */
/* TLS inside COTP: round trips and handshakes through iso_start_tls                           */

static iso_tls_config *tls_pinned(const char *pin_hex) {
    uint8_t pin[32];
    iso_tls_config *cfg = NULL;
    unsigned i, v;
    int32_t rc;
    if (!pin_hex || strlen(pin_hex) != 64) fail("%s", "--pin needs 64 hex digits");
    for (i = 0; i < 32; i++) {
        if (sscanf(pin_hex + 2 * i, "%2x", &v) != 1) fail("%s", "--pin needs 64 hex digits");
        pin[i] = (uint8_t)v;
    }
    if ((rc = iso_tls_config_create(&cfg)) != ISO_OK) iso_fail("iso_tls_config_create", NULL, rc);
    if ((rc = iso_tls_config_set_pin_sha256(cfg, pin, sizeof pin)) != ISO_OK)
        iso_fail("iso_tls_config_set_pin_sha256", NULL, rc);
    return cfg;
}

/* A handle for the TLS workloads: TPDU 1024, room for a 64 KiB message's records. */
static iso_conn *tls_handle(unsigned port, unsigned tpdu) {
    iso_conn *c = NULL;
    int32_t rc = iso_create("127.0.0.1", (uint16_t)port, &c);
    if (rc != ISO_OK) iso_fail("iso_create", NULL, rc);
    if ((rc = iso_set_tsap(c, 0x0100, ECHO_TSAP)) != ISO_OK) iso_fail("iso_set_tsap", c, rc);
    if ((rc = iso_set_tpdu_size(c, tpdu)) != ISO_OK) iso_fail("iso_set_tpdu_size", c, rc);
    /* A 64 KiB message grows by its records' overhead on the wire. */
    if ((rc = iso_set_max_message(c, 2 * MAX_MESSAGE)) != ISO_OK) iso_fail("iso_set_max_message", c, rc);
    return c;
}

/* iso_connect + iso_start_tls; returns the seconds iso_start_tls took. */
static double tls_connect(iso_conn *c, const iso_tls_config *cfg) {
    double t;
    int32_t rc = iso_connect(c, 10000);
    if (rc != ISO_OK) iso_fail("iso_connect", c, rc);
    t = now_s();
    if ((rc = iso_start_tls(c, cfg, 10000)) != ISO_OK) iso_fail("iso_start_tls", c, rc);
    return now_s() - t;
}

static void run_tlsrtt(const opts_t *o) {
    unsigned i;
    double t0, t1;
    iso_tls_config *cfg = tls_pinned(o->pin);
    iso_conn *c = tls_handle(o->port, o->tpdu);
    fill_pattern(g_msg, o->size, 7);
    tls_connect(c, cfg);
    for (i = 0; i < o->warmup; i++) iso_send_recv(c, g_msg, o->size);
    begin_measure();
    t0 = now_s();
    for (i = 0; i < o->iters; i++) iso_send_recv(c, g_msg, o->size);
    t1 = now_s();
    end_measure();
    if (memcmp(g_ans, g_msg, o->size) != 0) fail("%s", "echo differs");
    iso_destroy(c);
    iso_tls_config_destroy(cfg);
    print_result("size=%u tpdu=%u iters=%u seconds=%.6f us_per_op=%.3f", o->size, o->tpdu, o->iters, t1 - t0,
                 (t1 - t0) * 1e6 / o->iters);
}

static void run_tlshandshake(const opts_t *o) {
    unsigned i;
    double t0, t1, tls_s = 0;
    iso_tls_config *cfg = tls_pinned(o->pin);
    iso_conn *c = tls_handle(o->port, o->tpdu);
    for (i = 0; i < o->warmup; i++) {
        tls_connect(c, cfg);
        iso_disconnect(c);
    }
    begin_measure();
    t0 = now_s();
    for (i = 0; i < o->iters; i++) {
        tls_s += tls_connect(c, cfg);
        iso_disconnect(c);
    }
    t1 = now_s();
    end_measure();
    iso_destroy(c);
    iso_tls_config_destroy(cfg);
    /* tls_us_per_op: iso_start_tls alone, on the open COTP connection. */
    print_result("iters=%u seconds=%.6f us_per_op=%.3f tls_us_per_op=%.3f", o->iters, t1 - t0,
                 (t1 - t0) * 1e6 / o->iters, tls_s * 1e6 / o->iters);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    opts_t o = {0, 20, 1024, 1000, 100, 8, 1000, NULL, NULL};
    int a;
    if (argc < 3) goto usage;
    g_workload = argv[1];
    g_contender = argv[2];
    for (a = 3; a + 1 < argc; a += 2) {
        const char *k = argv[a], *v = argv[a + 1];
        unsigned long n = strtoul(v, NULL, 0);
        if (strcmp(k, "--port") == 0) o.port = (unsigned)n;
        else if (strcmp(k, "--size") == 0) o.size = (unsigned)n;
        else if (strcmp(k, "--tpdu") == 0) o.tpdu = (unsigned)n;
        else if (strcmp(k, "--iters") == 0) o.iters = (unsigned)n;
        else if (strcmp(k, "--warmup") == 0) o.warmup = (unsigned)n;
        else if (strcmp(k, "--depth") == 0) o.depth = (unsigned)n;
        else if (strcmp(k, "--conns") == 0) o.conns = (unsigned)n;
        else if (strcmp(k, "--lib") == 0) o.lib = v;
        else if (strcmp(k, "--pin") == 0) o.pin = v;
        else goto usage;
    }
    if (a != argc || o.port == 0 || o.size == 0 || o.size > MAX_MESSAGE || o.iters == 0 || o.tpdu < 128 ||
        o.tpdu > 8192 || o.depth == 0 || o.conns == 0)
        goto usage;
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(g_workload, "rtt") == 0) run_rtt(&o);
    else if (strcmp(g_workload, "stream") == 0) run_stream(&o);
    else if (strcmp(g_workload, "pipe") == 0) run_pipe(&o);
    else if (strcmp(g_workload, "many") == 0) run_many(&o);
    else if (strcmp(g_workload, "handshake") == 0) run_handshake(&o);
    else if (strcmp(g_workload, "idle") == 0) run_idle(&o);
    else if (strcmp(g_workload, "s7read") == 0) run_s7read(&o);
    else if (strcmp(g_workload, "s7connect") == 0) run_s7connect(&o);
    else if (strcmp(g_workload, "tlsrtt") == 0) run_tlsrtt(&o);
    else if (strcmp(g_workload, "tlshandshake") == 0) run_tlshandshake(&o);
    else goto usage;
    return 0;
usage:
    fprintf(stderr, "usage: client rtt|stream|pipe|many|handshake|idle|s7read|s7connect|tlsrtt|tlshandshake "
                    "raw|iso|snap7 --port P [--size S] [--tpdu T] [--iters N] [--warmup W] [--depth D] [--conns C] "
                    "[--lib libsnap7.so] [--pin HEX]\n");
    return 64;
}
