/*
 * The Windows build of isotcp (isotcp.dll, or libisotcp.a with ISOTCP_STATIC) against real S7
 * peers: python-snap7 3.3.0's server and the native snap7 1.4.2 server as servers, the native
 * snap7 client and python-snap7's client as clients of our listener.
 *
 *   wintest.exe [--py3 PORT] [--native PORT] [--closed PORT] [--silent PORT] [--transfer 1]
 *               [--serve N]
 *
 * --py3 PORT, --native PORT   an S7 server on 127.0.0.1 (DB1 byte i = i & 0xFF; DB2 writable):
 *                             setup communication, DB1 reads checked byte for byte, a 300-byte
 *                             write at TPDU 256 (sent as 2 DTs) to DB2 and read back, a receive
 *                             timeout, a select() on the handle of iso_get_fd, and a disconnect
 *                             from another thread waking a blocked iso_recv.
 * --closed PORT               a port nobody listens on: iso_connect gives ISO_E_REFUSED.
 * --silent PORT               a listening socket that never answers the CR: iso_connect gives
 *                             ISO_E_TIMEOUT after its deadline.
 * --transfer 1                both sides in this process (no peer): a 1 MiB message at TPDU
 *                             8192 sent and received whole, and a 16 MiB send nobody reads
 *                             ending with ISO_E_TIMEOUT at the send timeout.
 * --serve N                   listens on 127.0.0.1 (port chosen by the system), prints
 *                             "READY <port>", then accepts N clients one after the other and
 *                             answers their S7 jobs (setup communication, read, write) on DB1
 *                             (byte i = i & 0xFF) and DB2 (zeros) with s7_answer() of
 *                             examples-c/s7_responder.c until each client closes.
 *
 * Output: "PASS <check>" or "FAIL <check>: <why>" per check, then
 * "RESULT <passed> passed, <failed> failed". Exit status 0 only when nothing failed.
 */
#include <winsock2.h>
#include <windows.h>

#include <fcntl.h>
#include <inttypes.h>
#include <io.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isotcp.h"
#include "checks.h"
#include "s7_responder.h"

/* ------------------------------------------------------------------------------------------ */
/* Reporting (pass, fail, why: checks.h)                                                       */
/* ------------------------------------------------------------------------------------------ */

static uint64_t now_ms(void) { return (uint64_t)GetTickCount64(); }

static char *hex(const uint8_t *p, size_t n) {
    static char buf[3 * 64 + 8];
    size_t i, o = 0;
    for (i = 0; i < n && i < 64; i++) o += (size_t)sprintf(buf + o, "%02x ", p[i]);
    if (n > 64) strcpy(buf + o, "...");
    else if (o) buf[o - 1] = 0;
    else buf[0] = 0;
    return buf;
}

/* ------------------------------------------------------------------------------------------ */
/* S7 requests                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static uint16_t pdu_ref = 1;

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Setup communication asking for PDU 480. */
static size_t s7_setup(uint8_t *req) {
    static const uint8_t setup[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00,
                                    0x00, 0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0};
    memcpy(req, setup, sizeof setup);
    put16(req + 4, pdu_ref++);
    return sizeof setup;
}

/* The S7ANY item of `count` bytes of DB `db` from byte `start`. */
static void s7_item(uint8_t *p, uint16_t db, uint32_t start, uint16_t count) {
    uint32_t bits = start * 8;
    p[0] = 0x12; p[1] = 0x0A; p[2] = 0x10; p[3] = 0x02; /* BYTE */
    put16(p + 4, count);
    put16(p + 6, db);
    p[8] = 0x84; /* DB area */
    p[9] = (uint8_t)(bits >> 16); p[10] = (uint8_t)(bits >> 8); p[11] = (uint8_t)bits;
}

static size_t s7_read_req(uint8_t *req, uint16_t db, uint32_t start, uint16_t count) {
    static const uint8_t head[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0E,
                                   0x00, 0x00, 0x04, 0x01};
    memcpy(req, head, sizeof head);
    put16(req + 4, pdu_ref++);
    s7_item(req + 12, db, start, count);
    return 24;
}

static size_t s7_write_req(uint8_t *req, uint16_t db, uint32_t start, const uint8_t *data,
                           uint16_t count) {
    static const uint8_t head[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0E,
                                   0x00, 0x00, 0x05, 0x01};
    memcpy(req, head, sizeof head);
    put16(req + 4, pdu_ref++);
    put16(req + 8, (uint16_t)(4 + count));
    s7_item(req + 12, db, start, count);
    req[24] = 0x00;
    req[25] = 0x04; /* length in bits */
    put16(req + 26, (uint16_t)(count * 8));
    memcpy(req + 28, data, count);
    return 28u + count;
}

/* An ack-data answer without error for the request `req`; NULL when fine, else the reason. */
static const char *s7_ack_problem(const uint8_t *req, const uint8_t *resp, size_t len) {
    static char buf[160];
    if (len < 14) return "answer shorter than 14 bytes";
    if (resp[0] != 0x32 || resp[1] != 0x03) return "not an ack-data answer";
    if (get16(resp + 4) != get16(req + 4)) return "PDU reference not echoed";
    if (resp[10] != 0 || resp[11] != 0) {
        sprintf(buf, "error class 0x%02x code 0x%02x", resp[10], resp[11]);
        return buf;
    }
    if (resp[12] != req[10]) return "function not echoed";
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Client side: against a real S7 server                                                       */
/* ------------------------------------------------------------------------------------------ */

typedef struct trace_count {
    int dt_sent;      /* DTs sent */
    int eot_sent;     /* of which with EOT */
    size_t max_sent;  /* longest TPKT sent */
} trace_count;

static void count_frames(void *user, int32_t direction, const uint8_t *frame, size_t len) {
    trace_count *t = (trace_count *)user;
    if (direction != ISO_TRACE_SENT || len < 7 || frame[5] != 0xF0) return;
    t->dt_sent++;
    if (frame[6] & 0x80) t->eot_sent++;
    if (len > t->max_sent) t->max_sent = len;
}

static iso_conn *open_conn(const char *name, uint16_t port, uint32_t tpdu) {
    iso_conn *c = NULL;
    int32_t rc = iso_create("127.0.0.1", port, &c);
    if (rc != ISO_OK) {
        fail("%s: iso_create: %s: %s", name, iso_strerror(rc), why(NULL));
        return NULL;
    }
    if ((rc = iso_set_tsap(c, 0x0100, 0x0102)) != ISO_OK ||
        (rc = iso_set_tpdu_size(c, tpdu)) != ISO_OK) {
        fail("%s: setting TSAPs/TPDU: %s: %s", name, iso_strerror(rc), why(c));
        iso_destroy(c);
        return NULL;
    }
    rc = iso_connect(c, 3000);
    if (rc != ISO_OK) {
        fail("%s: iso_connect (TPDU %u): %s: %s", name, (unsigned)tpdu, iso_strerror(rc), why(c));
        iso_destroy(c);
        return NULL;
    }
    return c;
}

/* Sends `req` and receives the answer into `resp`; 0 on failure (reported). */
static size_t request(const char *name, iso_conn *c, const uint8_t *req, size_t len,
                      uint8_t *resp, size_t cap) {
    size_t n = 0;
    int32_t rc = iso_send(c, req, len);
    if (rc != ISO_OK) {
        fail("%s: iso_send of %u bytes: %s: %s", name, (unsigned)len, iso_strerror(rc), why(c));
        return 0;
    }
    rc = iso_recv(c, resp, cap, &n, 3000);
    if (rc != ISO_OK) {
        fail("%s: iso_recv: %s: %s", name, iso_strerror(rc), why(c));
        return 0;
    }
    return n;
}

/* Setup communication; returns the negotiated PDU length or 0. */
static uint16_t setup_comm(const char *name, iso_conn *c) {
    uint8_t req[32], resp[512];
    size_t len = s7_setup(req), n = request(name, c, req, len, resp, sizeof resp);
    const char *problem;
    if (n == 0) return 0;
    problem = s7_ack_problem(req, resp, n);
    if (problem == NULL && n != 20) problem = "setup answer is not 20 bytes";
    if (problem) {
        fail("%s: setup communication: %s: %s", name, problem, hex(resp, n));
        return 0;
    }
    return get16(resp + 18);
}

/* Reads `count` bytes of DB `db` from `start`; 1 when the data equal `expect`. */
static int read_db(const char *name, iso_conn *c, uint16_t db, uint32_t start, uint16_t count,
                   const uint8_t *expect) {
    uint8_t req[32], resp[1024];
    size_t len = s7_read_req(req, db, start, count), n = request(name, c, req, len, resp, sizeof resp);
    const char *problem;
    size_t i;
    if (n == 0) return 0;
    problem = s7_ack_problem(req, resp, n);
    if (problem == NULL && (n != 18u + count || resp[14] != 0xFF || resp[15] != 0x04 ||
                            get16(resp + 16) != count * 8))
        problem = "unexpected read answer";
    if (problem) {
        fail("%s: read DB%u.%u[%u]: %s: %s", name, db, (unsigned)start, count, problem, hex(resp, n));
        return 0;
    }
    for (i = 0; i < count; i++) {
        if (resp[18 + i] != expect[i]) {
            fail("%s: read DB%u.%u[%u]: byte %u is 0x%02x, expected 0x%02x", name, db,
                 (unsigned)start, count, (unsigned)(start + i), resp[18 + i], expect[i]);
            return 0;
        }
    }
    return 1;
}

typedef struct blocked_recv {
    iso_conn *conn;
    int32_t rc;
    uint64_t returned_ms;
} blocked_recv;

static DWORD WINAPI recv_thread(LPVOID arg) {
    blocked_recv *b = (blocked_recv *)arg;
    uint8_t buf[512];
    size_t n = 0;
    b->rc = iso_recv(b->conn, buf, sizeof buf, &n, 10000);
    b->returned_ms = now_ms();
    return 0;
}

static void client_checks(const char *name, uint16_t port) {
    uint8_t db1[1024], pattern[300], req[512], resp[1024];
    iso_conn *c;
    uint16_t pdu;
    uint32_t tpdu = 0;
    int64_t fd = 0;
    size_t i, n;
    int32_t rc;
    uint64_t t0, elapsed;

    for (i = 0; i < sizeof db1; i++) db1[i] = (uint8_t)(i & 0xFF);

    /* Connect, setup communication, DB1 reads. */
    t0 = now_ms();
    c = open_conn(name, port, 1024);
    if (!c) return;
    elapsed = now_ms() - t0;
    rc = iso_get_tpdu_size(c, &tpdu);
    if (rc == ISO_OK && tpdu == 1024)
        pass("%s: connect (TCP + CR/CC) in %u ms, TPDU 1024", name, (unsigned)elapsed);
    else
        fail("%s: negotiated TPDU: rc %d, size %u (offered 1024)", name, rc, (unsigned)tpdu);
    pdu = setup_comm(name, c);
    if (pdu == 480) pass("%s: setup communication, PDU 480", name);
    else if (pdu) fail("%s: setup communication: PDU %u, expected 480", name, pdu);
    if (read_db(name, c, 1, 0, 4, db1) && read_db(name, c, 1, 300, 222, db1 + 300) &&
        read_db(name, c, 1, 600, 400, db1 + 600))
        pass("%s: DB1 reads (4 bytes at 0, 222 at 300, 400 at 600), every byte i & 0xFF", name);

    /* Receive timeout: nothing was sent, so nothing comes. */
    t0 = now_ms();
    rc = iso_recv(c, resp, sizeof resp, &n, 300);
    elapsed = now_ms() - t0;
    if (rc == ISO_E_TIMEOUT && elapsed >= 250 && elapsed < 2000)
        pass("%s: iso_recv with nothing sent: ISO_E_TIMEOUT after %u ms (300 asked)", name,
             (unsigned)elapsed);
    else
        fail("%s: iso_recv with nothing sent: %s after %u ms, expected ISO_E_TIMEOUT after 300",
             name, iso_strerror(rc), (unsigned)elapsed);
    rc = iso_recv(c, resp, sizeof resp, &n, 0);
    if (rc == ISO_E_WOULD_BLOCK && iso_poll(c, 0) == 0 && iso_check_connection(c) == 1)
        pass("%s: timeout 0: ISO_E_WOULD_BLOCK, iso_poll 0, iso_check_connection 1", name);
    else
        fail("%s: timeout 0: iso_recv %s (expected ISO_E_WOULD_BLOCK), iso_poll %d, check %d",
             name, iso_strerror(rc), iso_poll(c, 0), iso_check_connection(c));

    /* The handle of iso_get_fd is a SOCKET the caller's select() accepts. */
    rc = iso_get_fd(c, &fd);
    if (rc != ISO_OK) {
        fail("%s: iso_get_fd: %s: %s", name, iso_strerror(rc), why(c));
    } else {
        SOCKET s = (SOCKET)fd;
        fd_set readable;
        struct timeval tv;
        int sel;
        size_t len = s7_read_req(req, 1, 10, 4);
        rc = iso_send(c, req, len);
        FD_ZERO(&readable);
        FD_SET(s, &readable);
        tv.tv_sec = 3;
        tv.tv_usec = 0;
        sel = select(0, &readable, NULL, NULL, &tv);
        n = 0;
        if (rc == ISO_OK && sel == 1) {
            /* Readable: the answer may still be partial, so allow a short wait. */
            rc = iso_recv(c, resp, sizeof resp, &n, 1000);
        }
        if (sel == 1 && rc == ISO_OK && n == 22 && memcmp(resp + 18, db1 + 10, 4) == 0)
            pass("%s: iso_get_fd gives a SOCKET (%" PRId64 ") that select() reports readable",
                 name, fd);
        else
            fail("%s: select() on iso_get_fd's SOCKET %" PRId64 ": select %d (WSA error %d), %s, "
                 "%u bytes", name, fd, sel, sel < 0 ? WSAGetLastError() : 0, iso_strerror(rc),
                 (unsigned)n);
    }

    /* iso_disconnect from this thread wakes an iso_recv blocked in another one. */
    {
        blocked_recv b;
        HANDLE th;
        uint64_t woke;
        b.conn = c;
        b.rc = 1;
        b.returned_ms = 0;
        th = CreateThread(NULL, 0, recv_thread, &b, 0, NULL);
        if (!th) {
            fail("%s: CreateThread: error %lu", name, (unsigned long)GetLastError());
        } else {
            Sleep(200);
            t0 = now_ms();
            rc = iso_disconnect(c);
            WaitForSingleObject(th, 15000);
            CloseHandle(th);
            woke = b.returned_ms >= t0 ? b.returned_ms - t0 : 0;
            if (rc == ISO_OK && b.rc == ISO_E_STATE && b.returned_ms && woke < 1000)
                pass("%s: iso_disconnect woke a blocked iso_recv after %u ms (ISO_E_STATE)", name,
                     (unsigned)woke);
            else
                fail("%s: iso_disconnect during iso_recv: disconnect %s, recv %s after %u ms",
                     name, iso_strerror(rc), b.rc == 1 ? "(still blocked)" : iso_strerror(b.rc),
                     (unsigned)woke);
        }
    }
    iso_destroy(c);

    /* Segmentation: a 300-byte write to DB2 at TPDU 256 goes out as 2 DTs; read back. */
    c = open_conn(name, port, 256);
    if (!c) return;
    rc = iso_get_tpdu_size(c, &tpdu);
    if (rc != ISO_OK || tpdu != 256) {
        fail("%s: negotiated TPDU: rc %d, size %u (offered 256)", name, rc, (unsigned)tpdu);
    } else if ((pdu = setup_comm(name, c)) != 0) {
        trace_count t;
        size_t len;
        memset(&t, 0, sizeof t);
        for (i = 0; i < sizeof pattern; i++) pattern[i] = (uint8_t)(i * 7 + 3);
        len = s7_write_req(req, 2, 100, pattern, (uint16_t)sizeof pattern);
        iso_set_trace(c, count_frames, &t);
        n = request(name, c, req, len, resp, sizeof resp);
        iso_set_trace(c, NULL, NULL);
        if (n) {
            const char *problem = s7_ack_problem(req, resp, n);
            if (problem == NULL && (n != 15 || resp[14] != 0xFF)) problem = "write not confirmed";
            if (problem)
                fail("%s: write 300 bytes to DB2: %s: %s", name, problem, hex(resp, n));
            else if (t.dt_sent != 2 || t.eot_sent != 1 || t.max_sent > 260)
                fail("%s: write of %u bytes at TPDU 256: %d DTs (%d with EOT), largest TPKT %u",
                     name, (unsigned)len, t.dt_sent, t.eot_sent, (unsigned)t.max_sent);
            else if (read_db(name, c, 2, 100, 300, pattern))
                pass("%s: TPDU 256: %u-byte S7 write sent as %d DTs, DB2 read back equal", name,
                     (unsigned)len, t.dt_sent);
        }
    }
    iso_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Connection failures                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void refused_check(uint16_t port) {
    iso_conn *c = NULL;
    uint64_t t0, elapsed;
    int32_t rc = iso_create("127.0.0.1", port, &c);
    if (rc != ISO_OK) {
        fail("refused: iso_create: %s", iso_strerror(rc));
        return;
    }
    t0 = now_ms();
    rc = iso_connect(c, 3000);
    elapsed = now_ms() - t0;
    if (rc == ISO_E_REFUSED && elapsed < 2500)
        pass("closed port %u: ISO_E_REFUSED after %u ms (%s)", port, (unsigned)elapsed, why(c));
    else
        fail("closed port %u: %s after %u ms, expected ISO_E_REFUSED at once: %s", port,
             iso_strerror(rc), (unsigned)elapsed, why(c));
    iso_destroy(c);
}

static void silent_check(uint16_t port) {
    iso_conn *c = NULL;
    uint64_t t0, elapsed;
    int32_t rc = iso_create("127.0.0.1", port, &c);
    if (rc != ISO_OK) {
        fail("silent: iso_create: %s", iso_strerror(rc));
        return;
    }
    t0 = now_ms();
    rc = iso_connect(c, 500);
    elapsed = now_ms() - t0;
    if (rc == ISO_E_TIMEOUT && elapsed >= 450 && elapsed < 2500)
        pass("CR never answered: ISO_E_TIMEOUT after %u ms (500 asked)", (unsigned)elapsed);
    else
        fail("CR never answered: %s after %u ms, expected ISO_E_TIMEOUT after 500: %s",
             iso_strerror(rc), (unsigned)elapsed, why(c));
    iso_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Listener side: native clients connect to us                                                 */
/* ------------------------------------------------------------------------------------------ */

static uint8_t srv_db1[1024], srv_db2[1024];
static uint8_t srv_req[65536], srv_resp[65536];

/* Answers the client's S7 jobs until it closes; returns the number of answers, -1 on error. */
static long serve_client(iso_conn *c, int32_t *end_rc) {
    s7_memory mem;
    long answered = 0;
    memset(&mem, 0, sizeof mem);
    mem.dbs[0].number = 1;
    mem.dbs[0].data = srv_db1;
    mem.dbs[0].size = sizeof srv_db1;
    mem.dbs[1].number = 2;
    mem.dbs[1].data = srv_db2;
    mem.dbs[1].size = sizeof srv_db2;
    mem.count = 2;
    mem.max_pdu = 480;
    for (;;) {
        size_t len = 0, n;
        int32_t rc = iso_recv(c, srv_req, sizeof srv_req, &len, 20000);
        if (rc != ISO_OK) {
            *end_rc = rc;
            return answered;
        }
        n = s7_answer(&mem, srv_req, len, srv_resp, sizeof srv_resp);
        if (n == 0) {
            *end_rc = ISO_E_PROTOCOL;
            return -1;
        }
        rc = iso_send(c, srv_resp, n);
        if (rc != ISO_OK) {
            *end_rc = rc;
            return -1;
        }
        answered++;
    }
}

static void listener_checks(int clients) {
    iso_listener *l = NULL;
    iso_conn *c = NULL;
    uint16_t port = 0;
    uint64_t t0, elapsed;
    int32_t rc;
    int i;

    for (i = 0; i < (int)sizeof srv_db1; i++) srv_db1[i] = (uint8_t)(i & 0xFF);
    rc = iso_listen("127.0.0.1", 0, &l);
    if (rc != ISO_OK || iso_listener_port(l, &port) != ISO_OK || port == 0) {
        fail("iso_listen on 127.0.0.1: %s: %s", iso_strerror(rc), why(NULL));
        printf("READY 0\n");
        iso_listener_destroy(l);
        return;
    }

    t0 = now_ms();
    rc = iso_accept(l, 300, &c);
    elapsed = now_ms() - t0;
    if (rc == ISO_E_TIMEOUT && c == NULL && elapsed >= 250 && elapsed < 2000)
        pass("listener: iso_accept with nobody coming: ISO_E_TIMEOUT after %u ms (300 asked)",
             (unsigned)elapsed);
    else
        fail("listener: iso_accept with nobody coming: %s after %u ms, expected ISO_E_TIMEOUT",
             iso_strerror(rc), (unsigned)elapsed);
    iso_destroy(c);
    c = NULL;

    printf("READY %u\n", port);
    for (i = 0; i < clients; i++) {
        int32_t end_rc = ISO_OK;
        long answered;
        uint32_t tpdu = 0;
        rc = iso_accept(l, 30000, &c);
        if (rc != ISO_OK) {
            char msg[512];
            iso_listener_last_error(l, msg, sizeof msg, NULL);
            fail("listener: client %d: iso_accept: %s: %s (listener: %s)", i + 1,
                 iso_strerror(rc), why(NULL), msg);
            break;
        }
        iso_get_tpdu_size(c, &tpdu);
        answered = serve_client(c, &end_rc);
        if (answered >= 2 && end_rc == ISO_E_CLOSED && iso_check_connection(c) == 0)
            pass("listener: client %d: CR/CC (TPDU %u), %ld S7 jobs answered, close seen "
                 "(ISO_E_CLOSED, iso_check_connection 0)", i + 1, (unsigned)tpdu, answered);
        else
            fail("listener: client %d: %ld jobs answered, ended with %s, check_connection %d: %s",
                 i + 1, answered, iso_strerror(end_rc), iso_check_connection(c), why(c));
        iso_destroy(c);
        c = NULL;
    }
    iso_listener_destroy(l);
}

/* ------------------------------------------------------------------------------------------ */
/* Both sides in this process: large messages and a send that cannot complete                  */
/* ------------------------------------------------------------------------------------------ */

#define BIG (1u << 20)      /* a 1 MiB message: 129 DTs at TPDU 8192 */
#define HUGE (16u << 20)    /* more than the loopback socket buffers take */

typedef struct peer_job {
    iso_conn *conn;
    int32_t rc;
    uint8_t *buf;
    size_t len;
} peer_job;

static DWORD WINAPI connect_job(LPVOID arg) {
    peer_job *j = (peer_job *)arg;
    j->rc = iso_connect(j->conn, 5000);
    return 0;
}

static DWORD WINAPI recv_job(LPVOID arg) {
    peer_job *j = (peer_job *)arg;
    j->rc = iso_recv(j->conn, j->buf, j->len, &j->len, 10000);
    return 0;
}

static void transfer_checks(void) {
    iso_listener *l = NULL;
    iso_conn *client = NULL, *server = NULL;
    uint16_t port = 0;
    uint8_t *out = (uint8_t *)malloc(HUGE), *in = (uint8_t *)malloc(BIG + 16);
    peer_job j;
    HANDLE th;
    size_t i;
    int32_t rc;
    uint64_t t0, elapsed;

    if (!out || !in) {
        fail("transfer: out of memory");
        goto done;
    }
    for (i = 0; i < HUGE; i++) out[i] = (uint8_t)(i * 31 + (i >> 12));
    if ((rc = iso_listen("127.0.0.1", 0, &l)) != ISO_OK || iso_listener_port(l, &port) != ISO_OK ||
        iso_listener_set_max_message(l, HUGE) != ISO_OK ||
        (rc = iso_create("127.0.0.1", port, &client)) != ISO_OK ||
        iso_set_tpdu_size(client, 8192) != ISO_OK || iso_set_max_message(client, HUGE) != ISO_OK ||
        iso_set_send_timeout(client, 1000) != ISO_OK) {
        fail("transfer: setting up both sides: %s: %s", iso_strerror(rc), why(NULL));
        goto done;
    }
    j.conn = client;
    j.rc = 1;
    th = CreateThread(NULL, 0, connect_job, &j, 0, NULL);
    rc = th ? iso_accept(l, 5000, &server) : ISO_E_IO;
    if (th) {
        WaitForSingleObject(th, 10000);
        CloseHandle(th);
    }
    if (rc != ISO_OK || j.rc != ISO_OK) {
        fail("transfer: accept %s, connect %s: %s", iso_strerror(rc), iso_strerror(j.rc), why(client));
        goto done;
    }

    /* 1 MiB from the client while the server receives it in another thread. */
    j.conn = server;
    j.rc = 1;
    j.buf = in;
    j.len = BIG + 16;
    th = CreateThread(NULL, 0, recv_job, &j, 0, NULL);
    t0 = now_ms();
    rc = th ? iso_send(client, out, BIG) : ISO_E_IO;
    if (th) {
        WaitForSingleObject(th, 15000);
        CloseHandle(th);
    }
    elapsed = now_ms() - t0;
    if (rc == ISO_OK && j.rc == ISO_OK && j.len == BIG && memcmp(in, out, BIG) == 0)
        pass("transfer: 1 MiB message at TPDU 8192 sent and received whole in %u ms",
             (unsigned)elapsed);
    else
        fail("transfer: 1 MiB message: send %s (%s), receive %s, %u bytes", iso_strerror(rc),
             why(client), j.rc == 1 ? "(no result)" : iso_strerror(j.rc), (unsigned)j.len);

    /* Nobody reads: a 16 MiB send fills the socket buffers and ends at the send timeout. */
    t0 = now_ms();
    rc = iso_send(client, out, HUGE);
    elapsed = now_ms() - t0;
    if (rc == ISO_E_TIMEOUT && elapsed >= 900 && elapsed < 5000 && iso_check_connection(client) == 0)
        pass("transfer: 16 MiB send with no reader: ISO_E_TIMEOUT after %u ms (send timeout 1000), "
             "connection closed (part was sent)", (unsigned)elapsed);
    else
        fail("transfer: 16 MiB send with no reader: %s after %u ms, check_connection %d: %s",
             iso_strerror(rc), (unsigned)elapsed, iso_check_connection(client), why(client));

done:
    iso_destroy(client);
    iso_destroy(server);
    iso_listener_destroy(l);
    free(out);
    free(in);
}

/* ------------------------------------------------------------------------------------------ */

static uint16_t port_arg(const char *s) {
    long v = strtol(s, NULL, 10);
    if (v <= 0 || v > 65535) {
        fprintf(stderr, "wintest: bad port %s\n", s);
        exit(2);
    }
    return (uint16_t)v;
}

int main(int argc, char **argv) {
    uint16_t py3 = 0, native = 0, closed = 0, silent = 0;
    int serve = 0, transfer = 0, i;

    /* Unbuffered, and no CR added to line ends: the harness reads the lines as they come. */
    setvbuf(stdout, NULL, _IONBF, 0);
    _setmode(_fileno(stdout), _O_BINARY);

    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--py3") == 0) py3 = port_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--native") == 0) native = port_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--closed") == 0) closed = port_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--silent") == 0) silent = port_arg(argv[i + 1]);
        else if (strcmp(argv[i], "--serve") == 0) serve = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--transfer") == 0) transfer = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "wintest: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (i != argc) {
        fprintf(stderr, "wintest: %s needs a value\n", argv[i]);
        return 2;
    }

    if (strcmp(iso_version(), ISO_VERSION) == 0 && iso_version_number() == ISO_VERSION_NUMBER)
        pass("library %s matches the header", iso_version());
    else
        fail("library %s (0x%x), header %s (0x%x)", iso_version(), iso_version_number(),
             ISO_VERSION, ISO_VERSION_NUMBER);
    {
        /* iso_get_fd hands out a SOCKET; this program also uses Winsock directly. */
        WSADATA wsa;
        if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0) fail("WSAStartup: %d", WSAGetLastError());
    }

    if (py3) client_checks("python-snap7 3.3.0 server", py3);
    if (native) client_checks("native snap7 server", native);
    if (closed) refused_check(closed);
    if (silent) silent_check(silent);
    if (transfer) transfer_checks();
    if (serve > 0) listener_checks(serve);

    printf("RESULT %d passed, %d failed\n", passed, failed);
    WSACleanup();
    return failed == 0 && passed > 0 ? 0 : 1;
}
