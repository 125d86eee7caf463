/*
 * Load test of isotcp the way a SCADA gateway uses it: ONE thread drives every connection
 * through epoll on iso_get_fd / iso_listener_get_fd and zero-timeout calls (iso_recv(..., 0),
 * iso_queue_send, iso_flush(..., 0)).
 *
 *   load server                                 echo server on isotcp's listener; prints
 *                                               "READY <port>", serves until stdin reaches EOF,
 *                                               then prints its totals and peak RSS
 *   load client --port P [--conns N] [--messages M] [--max-size S] [--seed X]
 *                                               N connections, each exchanging M echo messages of
 *                                               random size 16..S; checks every byte
 *   load s7 --port P [--conns N] [--messages M]  N connections to an S7 server (DB1 byte i = i &
 *                                               0xFF), each doing M DB reads of random size and
 *                                               offset; checks every byte
 *
 * Exit status 0 only when every message arrived whole, intact and in order. Each mode prints its
 * peak RSS and the RSS it grew by per connection. Connections are opened one after the other
 * with a blocking iso_connect before the exchange starts; the exchange itself never blocks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "isotcp.h"

#define MAX_MESSAGE 65536

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Current resident set size in KiB, from /proc/self/statm. */
static long rss_kib(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static long peak_rss_kib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void die(const char *what, iso_conn *c, int32_t rc) {
    char msg[512] = "";
    if (c) iso_last_error(c, msg, sizeof msg, NULL);
    else iso_thread_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "load: %s: %s (%d): %s\n", what, iso_strerror(rc), (int)rc, msg);
    exit(1);
}

static void raise_fd_limit(unsigned need) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static uint32_t fnv1a(const uint8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h;
}

/* xorshift32: deterministic per (connection, message), so nothing sent needs to be kept. */
static uint32_t next_rand(uint32_t *s) {
    uint32_t x = *s ? *s : 0x9E3779B9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_events(int ep, int fd, uint32_t events, uint64_t key, int op) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.u64 = key;
    if (epoll_ctl(ep, op, fd, &ev) != 0) {
        perror("load: epoll_ctl");
        exit(1);
    }
}

static int conn_fd(iso_conn *c) {
    int64_t fd = -1;
    int32_t rc = iso_get_fd(c, &fd);
    if (rc != ISO_OK) die("iso_get_fd", c, rc);
    return (int)fd;
}

/* Writable interest follows the send queue: asked for only while bytes wait. */
static void watch(int ep, iso_conn *c, uint64_t key, int *want_out) {
    size_t pending = 0;
    int want;
    iso_get_send_pending(c, &pending);
    want = pending > 0;
    if (want != *want_out) {
        set_events(ep, conn_fd(c), EPOLLIN | (want ? EPOLLOUT : 0), key, EPOLL_CTL_MOD);
        *want_out = want;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* server: echo every message back                                                            */

typedef struct {
    iso_conn *conn;
    int want_out;
} peer_t;

/* Takes every handshake that completed; each new connection is watched with key index + 2. */
static void accept_all(iso_listener *l, int ep, peer_t **peers, size_t *npeers, size_t *cap, size_t *open_now,
                       size_t *most_open) {
    for (;;) {
        iso_conn *c = NULL;
        if (iso_accept(l, 0, &c) != ISO_OK) return;
        if (*npeers == *cap) {
            peer_t *grown;
            *cap = *cap ? *cap * 2 : 1024;
            grown = realloc(*peers, *cap * sizeof *grown);
            if (!grown) { fprintf(stderr, "load: out of memory\n"); exit(1); }
            *peers = grown;
        }
        (*peers)[*npeers].conn = c;
        (*peers)[*npeers].want_out = 0;
        set_events(ep, conn_fd(c), EPOLLIN, *npeers + 2, EPOLL_CTL_ADD);
        (*npeers)++;
        if (++*open_now > *most_open) *most_open = *open_now;
    }
}

static int run_server(void) {
    static uint8_t buf[MAX_MESSAGE];
    iso_listener *l = NULL;
    uint16_t port = 0;
    int64_t lfd = -1;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    peer_t *peers = NULL;
    size_t npeers = 0, cap = 0, open_now = 0, most_open = 0;
    unsigned long long echoed = 0, bytes = 0;
    long base_rss;
    int32_t rc;

    raise_fd_limit(65536);
    if ((rc = iso_listen("127.0.0.1", 0, &l)) != ISO_OK) die("iso_listen", NULL, rc);
    iso_listener_set_max_pending(l, 4096);
    iso_listener_set_max_queued(l, 1 << 20);
    iso_listener_port(l, &port);
    iso_listener_get_fd(l, &lfd);
    set_events(ep, (int)lfd, EPOLLIN, 0, EPOLL_CTL_ADD);
    set_events(ep, 0, EPOLLIN, 1, EPOLL_CTL_ADD); /* stdin: EOF ends the server */
    base_rss = rss_kib();
    printf("READY %u\n", (unsigned)port);
    fflush(stdout);

    for (;;) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 100), i;
        if (n < 0 && errno != EINTR) { perror("load: epoll_wait"); return 1; }
        if (n <= 0) {
            /* Handshakes time out even when no event comes. */
            accept_all(l, ep, &peers, &npeers, &cap, &open_now, &most_open);
            continue;
        }
        for (i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == 1) {
                char tmp[64];
                ssize_t got = read(0, tmp, sizeof tmp);
                if (got <= 0) goto done;
                continue;
            }
            if (key == 0) {
                accept_all(l, ep, &peers, &npeers, &cap, &open_now, &most_open);
                continue;
            }
            {
                peer_t *p = &peers[key - 2];
                int closed = 0;
                if (!p->conn) continue;
                if (evs[i].events & EPOLLOUT) {
                    rc = iso_flush(p->conn, 0);
                    if (rc != ISO_OK && rc != ISO_E_WOULD_BLOCK) closed = 1;
                }
                while (!closed) {
                    size_t len = 0;
                    rc = iso_recv(p->conn, buf, sizeof buf, &len, 0);
                    if (rc == ISO_E_WOULD_BLOCK) break;
                    if (rc != ISO_OK) { closed = 1; break; }
                    rc = iso_queue_send(p->conn, buf, len);
                    if (rc != ISO_OK) die("iso_queue_send (server)", p->conn, rc);
                    echoed++;
                    bytes += len;
                }
                if (closed) {
                    if (rc != ISO_E_CLOSED) {
                        char msg[256] = "";
                        iso_last_error(p->conn, msg, sizeof msg, NULL);
                        fprintf(stderr, "load: server connection ended: %s: %s\n", iso_strerror(rc), msg);
                    }
                    iso_destroy(p->conn);
                    p->conn = NULL;
                    open_now--;
                    continue;
                }
                watch(ep, p->conn, key, &p->want_out);
            }
        }
    }
done:
    {
        size_t i;
        for (i = 0; i < npeers; i++) iso_destroy(peers[i].conn);
    }
    free(peers);
    iso_listener_destroy(l);
    printf("server: %zu connections accepted, %zu at once at most, %llu messages (%llu bytes) echoed\n",
           npeers, most_open, echoed, bytes);
    printf("server: RSS %ld KiB before accepting, peak %ld KiB: %.1f KiB per connection\n", base_rss,
           peak_rss_kib(), most_open ? (double)(peak_rss_kib() - base_rss) / (double)most_open : 0.0);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* client side, shared by the echo and S7 modes                                               */

typedef struct {
    iso_conn *conn;
    uint32_t done;     /* answers checked */
    uint32_t rng;      /* state that produced the request in flight */
    int want_out;
} client_t;

typedef struct {
    int s7;
    unsigned max_size;
    unsigned pdu;        /* S7 PDU size granted (s7 mode) */
    unsigned long long bytes;
} job_t;

/* Builds request number c->done of connection `id` into `out`; returns its length. */
static size_t build_request(const job_t *job, client_t *c, uint32_t id, uint8_t *out) {
    uint32_t r = next_rand(&c->rng);
    if (job->s7) {
        /* Read var of `count` bytes at DB1.DBB`start`; the answer must fit the PDU. */
        static const uint8_t tmpl[24] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01,
                                         0x12, 0x0A, 0x10, 0x02, 0x00, 0x00, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00};
        unsigned count = 1 + r % (job->pdu - 18 - 4);
        unsigned start = (r >> 16) % (1024 - count + 1);
        memcpy(out, tmpl, sizeof tmpl);
        out[4] = (uint8_t)(c->done >> 8);
        out[5] = (uint8_t)c->done;
        out[16] = (uint8_t)(count >> 8);
        out[17] = (uint8_t)count;
        put32(out + 20, start * 8);
        out[20] = 0x84;
        return sizeof tmpl;
    } else {
        size_t len = 16 + r % (job->max_size - 16 + 1), i;
        uint32_t fill = r;
        put32(out, id);
        put32(out + 4, c->done);
        put32(out + 8, (uint32_t)len);
        for (i = 12; i < len - 4; i++) out[i] = (uint8_t)(next_rand(&fill) >> 24);
        put32(out + len - 4, fnv1a(out, len - 4));
        return len;
    }
}

/* Checks the answer to the request in `req`; returns 0 when it is exactly right. */
static int check_answer(const job_t *job, const uint8_t *req, size_t req_len, const uint8_t *ans, size_t len) {
    if (job->s7) {
        unsigned count = (unsigned)req[16] << 8 | req[17];
        unsigned start = (get32(req + 20) & 0xFFFFFF) / 8, i;
        if (len != 18 + count || ans[1] != 0x03 || ans[4] != req[4] || ans[5] != req[5] || ans[14] != 0xFF)
            return 1;
        for (i = 0; i < count; i++)
            if (ans[18 + i] != (uint8_t)(start + i)) return 1;
        return 0;
    }
    return len != req_len || memcmp(req, ans, len) != 0 || fnv1a(ans, len - 4) != get32(ans + len - 4);
}

static int run_client(int s7, const char *host, unsigned port, unsigned nconns, unsigned messages,
                      unsigned max_size, uint32_t seed) {
    static uint8_t req[MAX_MESSAGE], ans[MAX_MESSAGE];
    client_t *cl = calloc(nconns, sizeof *cl);
    job_t job;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    unsigned i, finished = 0;
    unsigned long long total = 0, corrupt = 0;
    long base_rss;
    double t0, t1;
    int32_t rc;

    memset(&job, 0, sizeof job);
    job.s7 = s7;
    job.max_size = max_size;
    if (!cl || ep < 0) { fprintf(stderr, "load: setup failed\n"); return 1; }
    raise_fd_limit(nconns + 64);
    base_rss = rss_kib();

    for (i = 0; i < nconns; i++) {
        if ((rc = iso_create(host, (uint16_t)port, &cl[i].conn)) != ISO_OK) die("iso_create", NULL, rc);
        iso_set_max_queued(cl[i].conn, 1 << 20);
        if ((rc = iso_connect(cl[i].conn, 10000)) != ISO_OK) die("iso_connect", cl[i].conn, rc);
        cl[i].rng = seed ^ (i * 2654435761u);
        set_events(ep, conn_fd(cl[i].conn), EPOLLIN, i, EPOLL_CTL_ADD);
    }
    if (s7) {
        /* S7 setup communication on every connection (blocking; not part of the measured part). */
        static const uint8_t setup[] = {0x32, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x08, 0x00, 0x00,
                                        0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x03, 0xC0};
        for (i = 0; i < nconns; i++) {
            size_t len = 0;
            if ((rc = iso_send(cl[i].conn, setup, sizeof setup)) != ISO_OK) die("setup send", cl[i].conn, rc);
            if ((rc = iso_recv(cl[i].conn, ans, sizeof ans, &len, 10000)) != ISO_OK) die("setup recv", cl[i].conn, rc);
            if (len < 20 || ans[1] != 0x03) { fprintf(stderr, "load: setup refused\n"); return 1; }
            job.pdu = (unsigned)ans[18] << 8 | ans[19];
        }
        if (job.pdu < 64) { fprintf(stderr, "load: PDU %u too small\n", job.pdu); return 1; }
    }
    printf("%s: %u connections open, RSS %ld KiB (%ld KiB before)\n", s7 ? "s7" : "client", nconns, rss_kib(), base_rss);

    t0 = now_s();
    for (i = 0; i < nconns; i++) {
        uint32_t before = cl[i].rng;
        size_t len = build_request(&job, &cl[i], i, req);
        cl[i].rng = before; /* the answer's check rebuilds the same request */
        rc = iso_queue_send(cl[i].conn, req, len);
        if (rc != ISO_OK) die("iso_queue_send", cl[i].conn, rc);
        watch(ep, cl[i].conn, i, &cl[i].want_out);
    }
    while (finished < nconns) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 10000), k;
        if (n == 0) { fprintf(stderr, "load: no progress for 10 s (%u of %u connections done)\n", finished, nconns); return 1; }
        if (n < 0) { if (errno == EINTR) continue; perror("load: epoll_wait"); return 1; }
        for (k = 0; k < n; k++) {
            client_t *c = &cl[evs[k].data.u64];
            uint32_t id = (uint32_t)evs[k].data.u64;
            if (c->done >= messages) continue;
            if (evs[k].events & EPOLLOUT) {
                rc = iso_flush(c->conn, 0);
                if (rc != ISO_OK && rc != ISO_E_WOULD_BLOCK) die("iso_flush", c->conn, rc);
            }
            for (;;) {
                size_t len = 0, req_len;
                uint32_t before = c->rng;
                rc = iso_recv(c->conn, ans, sizeof ans, &len, 0);
                if (rc == ISO_E_WOULD_BLOCK) break;
                if (rc != ISO_OK) die("iso_recv", c->conn, rc);
                req_len = build_request(&job, c, id, req);
                if (check_answer(&job, req, req_len, ans, len)) {
                    corrupt++;
                    fprintf(stderr, "load: connection %u message %u: wrong answer (%zu bytes)\n", id, c->done, len);
                }
                job.bytes += len;
                total++;
                c->done++;
                if (c->done == messages) {
                    finished++;
                    set_events(ep, conn_fd(c->conn), 0, id, EPOLL_CTL_DEL);
                    break;
                }
                before = c->rng;
                req_len = build_request(&job, c, id, req);
                c->rng = before;
                rc = iso_queue_send(c->conn, req, req_len);
                if (rc != ISO_OK) die("iso_queue_send", c->conn, rc);
            }
            if (c->done < messages) watch(ep, c->conn, id, &c->want_out);
        }
    }
    t1 = now_s();
    printf("%s: %u connections x %u messages: %llu answers checked, %llu wrong, %llu lost, in %.2f s "
           "(%.0f messages/s, %.1f MB/s of answers)\n",
           s7 ? "s7" : "client", nconns, messages, total, corrupt,
           (unsigned long long)nconns * messages - total, t1 - t0, (double)total / (t1 - t0),
           (double)job.bytes / (t1 - t0) / 1e6);
    printf("%s: RSS %ld KiB before connecting, peak %ld KiB: %.1f KiB per connection\n", s7 ? "s7" : "client",
           base_rss, peak_rss_kib(), (double)(peak_rss_kib() - base_rss) / nconns);
    for (i = 0; i < nconns; i++) iso_destroy(cl[i].conn);
    free(cl);
    close(ep);
    return corrupt || total != (unsigned long long)nconns * messages;
}

int main(int argc, char **argv) {
    unsigned port = 0, conns = 1000, messages = 1000, max_size = 8192;
    uint32_t seed = 12345;
    const char *host = "127.0.0.1";
    int a;
    if (argc < 2) goto usage;
    if (strcmp(argv[1], "server") == 0) return run_server();
    for (a = 2; a + 1 < argc; a += 2) {
        unsigned long v = strtoul(argv[a + 1], NULL, 0);
        if (strcmp(argv[a], "--port") == 0) port = (unsigned)v;
        else if (strcmp(argv[a], "--host") == 0) host = argv[a + 1];
        else if (strcmp(argv[a], "--conns") == 0) conns = (unsigned)v;
        else if (strcmp(argv[a], "--messages") == 0) messages = (unsigned)v;
        else if (strcmp(argv[a], "--max-size") == 0) max_size = (unsigned)v;
        else if (strcmp(argv[a], "--seed") == 0) seed = (uint32_t)v;
        else goto usage;
    }
    if (a != argc || port == 0 || port > 65535 || conns == 0 || messages == 0 || max_size < 16 || max_size > MAX_MESSAGE)
        goto usage;
    if (strcmp(argv[1], "client") == 0) return run_client(0, host, port, conns, messages, max_size, seed);
    if (strcmp(argv[1], "s7") == 0) return run_client(1, host, port, conns, messages, max_size, seed);
usage:
    fprintf(stderr, "usage: load server | load client|s7 --port P [--host H] [--conns N] [--messages M] "
                    "[--max-size S] [--seed X]\n");
    return 64;
}
