/*
 * The benchmark's peer: one program on the other end of the wire for the raw-TCP floor, isotcp
 * and python-snap7's transport, so every contender talks to the same code.
 *
 *   peer [--multi] [--dump DIR]
 *
 * Listens on 127.0.0.1 (a free port), prints "READY <port>" and serves until its stdin reaches
 * EOF. Blocking sockets throughout.
 *
 * Per connection it reads TPKT packets (4-byte header, then the body) out of what the socket
 * delivers and answers:
 *   - CR: a 22-byte CC (DST-REF = the CR's SRC-REF, SRC-REF 0x0001, class 0, C0 = the TPDU size
 *     the CR asked for, both TSAPs echoed; docs/PROTOCOL.md §4.6);
 *   - DT: collected up to the DT with EOT, then the whole message (every DT of it) is written
 *     back as the same bytes, with one write;
 *   - DR: the connection is closed.
 * The called TSAP of the CR picks the connection's behaviour:
 *   0x0102 (or anything else): echo every message;
 *   0x0103: sink: messages are read and counted, only messages of at most 64 payload bytes are
 *           echoed (a client streams, then sends a small message and waits for its echo: the
 *           answer means every byte before it was read).
 *
 * Without --multi, connections are served one after the other: accept, then blocking reads
 * until EOF, then the next accept (single-connection workloads). With --multi, one thread
 * serves every connection through epoll (readiness only; reads and writes stay blocking): the
 * many-connections and idle-connections workloads.
 * Every accepted socket gets TCP_NODELAY and SO_RCVBUF = 4 MiB (the kernel caps it at
 * net.core.rmem_max).
 * --dump DIR writes the bytes received on connection N to DIR/conn-N.bin (used to check that
 * the contenders put the same bytes on the wire).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define SINK_TSAP 0x0103
#define SINK_ECHO_MAX 64
#define PEER_RCVBUF (4 << 20)

typedef struct {
    int fd;
    int sink;
    int dump_fd;
    uint8_t *buf;
    size_t cap, have;
    /* Next packet to look at; start of the message being collected and whether one is open. */
    size_t scan;
    size_t msg_start;
    size_t msg_payload;
    int in_msg;
    unsigned long long messages;
} conn_t;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Answers a CR (body = the TPDU after the TPKT header). Returns -1 to close. */
static int answer_cr(conn_t *c, const uint8_t *tpdu, size_t len) {
    uint8_t cc[64];
    size_t n = 0, i;
    const uint8_t *calling = NULL, *called = NULL;
    uint8_t calling_len = 0, called_len = 0, size_code = 0x0A;
    if (len < 7) return -1;
    for (i = 7; i + 2 <= len;) {
        uint8_t code = tpdu[i], plen = tpdu[i + 1];
        if (i + 2 + plen > len) return -1;
        if (code == 0xC0 && plen == 1) size_code = tpdu[i + 2];
        if (code == 0xC1 && plen <= 16) { calling = tpdu + i + 2; calling_len = plen; }
        if (code == 0xC2 && plen <= 16) { called = tpdu + i + 2; called_len = plen; }
        i += 2 + (size_t)plen;
    }
    c->sink = called_len == 2 && ((unsigned)called[0] << 8 | called[1]) == SINK_TSAP;
    cc[n++] = 3; cc[n++] = 0; cc[n++] = 0; cc[n++] = 0; /* length below */
    cc[n++] = 0;                                        /* LI below */
    cc[n++] = 0xD0;
    cc[n++] = tpdu[4]; cc[n++] = tpdu[5];               /* DST-REF = the CR's SRC-REF */
    cc[n++] = 0x00; cc[n++] = 0x01;                     /* our SRC-REF */
    cc[n++] = 0x00;                                     /* class 0 */
    cc[n++] = 0xC0; cc[n++] = 1; cc[n++] = size_code;
    if (calling) { cc[n++] = 0xC1; cc[n++] = calling_len; memcpy(cc + n, calling, calling_len); n += calling_len; }
    if (called) { cc[n++] = 0xC2; cc[n++] = called_len; memcpy(cc + n, called, called_len); n += called_len; }
    cc[2] = (uint8_t)(n >> 8);
    cc[3] = (uint8_t)n;
    cc[4] = (uint8_t)(n - 5);
    return write_all(c->fd, cc, n);
}

/*
 * Handles every whole TPKT in c->buf from c->scan on. Bytes of an unfinished echo message stay
 * in the buffer (from msg_start), so the echo is written from where they were read.
 * Returns -1 to close.
 */
static int process(conn_t *c) {
    size_t keep;
    for (;;) {
        size_t plen;
        const uint8_t *p;
        if (c->scan + 4 > c->have) break;
        p = c->buf + c->scan;
        if (p[0] != 3) return -1;
        plen = (size_t)p[2] << 8 | p[3];
        if (plen < 7) return -1;
        if (c->scan + plen > c->have) break;
        switch (p[5] & 0xF0) {
        case 0xE0: /* CR */
            if (answer_cr(c, p + 4, plen - 4) != 0) return -1;
            c->scan += plen;
            break;
        case 0xF0: /* DT */
            if (!c->in_msg) {
                c->in_msg = 1;
                c->msg_start = c->scan;
                c->msg_payload = 0;
            }
            c->msg_payload += plen - 7;
            c->scan += plen;
            if (p[6] & 0x80) {
                c->messages++;
                if (!c->sink || c->msg_payload <= SINK_ECHO_MAX) {
                    if (write_all(c->fd, c->buf + c->msg_start, c->scan - c->msg_start) != 0) return -1;
                }
                c->in_msg = 0;
            } else if (c->sink) {
                /* A sink keeps nothing of a message it will not echo. */
                c->msg_start = c->scan;
            }
            break;
        case 0x80: /* DR: the client is leaving */
            return -1;
        default:
            return -1;
        }
    }
    /* Drop what is fully handled; keep the open message and any partial packet. */
    keep = c->in_msg ? c->msg_start : c->scan;
    if (keep > 0) {
        memmove(c->buf, c->buf + keep, c->have - keep);
        c->have -= keep;
        c->scan -= keep;
        if (c->in_msg) c->msg_start -= keep;
    }
    return 0;
}

/* One read into the connection's buffer, then processing. Returns -1 on EOF/error/close. */
static int serve_once(conn_t *c) {
    ssize_t got;
    if (c->cap - c->have < 65536 + 8) {
        size_t ncap = c->cap ? c->cap * 2 : 16384;
        while (ncap - c->have < 65536 + 8) ncap *= 2;
        c->buf = realloc(c->buf, ncap);
        if (!c->buf) die("peer: realloc");
        c->cap = ncap;
    }
    got = read(c->fd, c->buf + c->have, c->cap - c->have);
    if (got < 0 && errno == EINTR) return 0;
    if (got <= 0) return -1;
    if (c->dump_fd >= 0 && write_all(c->dump_fd, c->buf + c->have, (size_t)got) != 0) die("peer: dump");
    c->have += (size_t)got;
    return process(c);
}

static void conn_close(conn_t *c) {
    close(c->fd);
    if (c->dump_fd >= 0) close(c->dump_fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
    c->dump_fd = -1;
}

static void conn_init(conn_t *c, int fd) {
    int one = 1;
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->dump_fd = -1;
    int rcvbuf = PEER_RCVBUF;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* A large fixed receive buffer: streams are drained without the kernel running short of
     * receive memory (which makes loopback throughput jump between regimes). */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
}

static int listen_any(uint16_t *port) {
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) die("peer: socket");
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) die("peer: bind");
    if (listen(fd, 4096) != 0) die("peer: listen");
    if (getsockname(fd, (struct sockaddr *)&a, &alen) != 0) die("peer: getsockname");
    *port = ntohs(a.sin_port);
    return fd;
}

static void serve_sequential(int lfd, const char *dump_dir) {
    unsigned long long n = 0;
    for (;;) {
        struct pollfd pf[2] = {{lfd, POLLIN, 0}, {0, POLLIN, 0}};
        conn_t c;
        int fd;
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR) continue;
            die("peer: poll");
        }
        if (pf[1].revents) {
            char tmp[256];
            if (read(0, tmp, sizeof tmp) <= 0) return;
        }
        if (!(pf[0].revents & POLLIN)) continue;
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) continue;
        conn_init(&c, fd);
        if (dump_dir) {
            char path[4096];
            snprintf(path, sizeof path, "%s/conn-%llu.bin", dump_dir, n);
            c.dump_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (c.dump_fd < 0) die("peer: open dump file");
        }
        n++;
        while (serve_once(&c) == 0) {
        }
        conn_close(&c);
    }
}

static void ep_add(int ep, int fd, uint64_t key) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.u64 = key;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("peer: epoll_ctl");
}

static void serve_multi(int lfd) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    conn_t **conns = NULL;
    size_t nconns = 0, cap = 0;
    if (ep < 0) die("peer: epoll_create1");
    if (fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) != 0) die("peer: fcntl");
    ep_add(ep, lfd, 0);
    ep_add(ep, 0, 1);
    for (;;) {
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, -1), i;
        if (n < 0) {
            if (errno == EINTR) continue;
            die("peer: epoll_wait");
        }
        for (i = 0; i < n; i++) {
            uint64_t key = evs[i].data.u64;
            if (key == 1) {
                char tmp[256];
                if (read(0, tmp, sizeof tmp) <= 0) return;
                continue;
            }
            if (key == 0) {
                /* Take every pending connection (non-blocking accept only here). */
                for (;;) {
                    /* The listening socket is non-blocking; accepted ones are blocking. */
                    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                    size_t slot;
                    if (fd < 0) break;
                    for (slot = 0; slot < nconns && conns[slot]; slot++) {
                    }
                    if (slot == nconns) {
                        if (nconns == cap) {
                            cap = cap ? cap * 2 : 1024;
                            conns = realloc(conns, cap * sizeof *conns);
                            if (!conns) die("peer: realloc");
                        }
                        nconns++;
                    }
                    conns[slot] = malloc(sizeof(conn_t));
                    if (!conns[slot]) die("peer: malloc");
                    conn_init(conns[slot], fd);
                    ep_add(ep, fd, slot + 2);
                }
                continue;
            }
            {
                size_t slot = (size_t)(key - 2);
                conn_t *c = conns[slot];
                if (!c) continue;
                if (serve_once(c) != 0) {
                    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                    conn_close(c);
                    free(c);
                    conns[slot] = NULL;
                }
            }
        }
    }
}

int main(int argc, char **argv) {
    int multi = 0, a, lfd;
    const char *dump_dir = NULL;
    uint16_t port = 0;
    struct rlimit rl;
    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--multi") == 0) multi = 1;
        else if (strcmp(argv[a], "--dump") == 0 && a + 1 < argc) dump_dir = argv[++a];
        else {
            fprintf(stderr, "usage: peer [--multi] [--dump DIR]\n");
            return 64;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    lfd = listen_any(&port);
    printf("READY %u\n", (unsigned)port);
    fflush(stdout);
    if (multi) serve_multi(lfd);
    else serve_sequential(lfd, dump_dir);
    return 0;
}
