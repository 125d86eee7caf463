/*
 * Caller abuse through the C ABI: every exported function of isotcp.h called the way a careless
 * or hostile C program would call it, each result compared with the code the header documents.
 *
 *   abuse [--messages N] [--quiet]
 *
 * --messages N   messages each way in the concurrency section (default 100000; the sanitizer and
 *                valgrind runs pass a smaller number).
 * --quiet        print only failures, the coverage lines and the summary.
 *
 * Output: one "FAIL ..." line per mismatch, one "covers <function>" line per exported function
 * whose NULL arguments were checked (tests/c_programs.rs compares this list with the header),
 * then "abuse: N checks, F failed". Exit status 0 only when nothing failed.
 *
 * Checks that may crash the process (lengths the library might trust before validating them)
 * run in a forked child, so a crash is reported as a failure of that one check.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "isotcp.h"

/* ------------------------------------------------------------------------------------------ */
/* Bookkeeping                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static long checks, failures;
static int quiet;
static const char *section = "";

/* The longest a "prompt" return may take after iso_disconnect (valgrind is slow). */
#define PROMPT_MS 2000.0

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(long ms) {
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static const char *code_name(int32_t rc) {
    switch (rc) {
    case ISO_OK: return "ISO_OK";
    case ISO_E_INVALID: return "ISO_E_INVALID";
    case ISO_E_STATE: return "ISO_E_STATE";
    case ISO_E_RESOLVE: return "ISO_E_RESOLVE";
    case ISO_E_REFUSED: return "ISO_E_REFUSED";
    case ISO_E_TIMEOUT: return "ISO_E_TIMEOUT";
    case ISO_E_WOULD_BLOCK: return "ISO_E_WOULD_BLOCK";
    case ISO_E_CLOSED: return "ISO_E_CLOSED";
    case ISO_E_REJECTED: return "ISO_E_REJECTED";
    case ISO_E_PROTOCOL: return "ISO_E_PROTOCOL";
    case ISO_E_TOO_LARGE: return "ISO_E_TOO_LARGE";
    case ISO_E_BUFFER_TOO_SMALL: return "ISO_E_BUFFER_TOO_SMALL";
    case ISO_E_IO: return "ISO_E_IO";
    case ISO_E_PANIC: return "ISO_E_PANIC";
    case ISO_E_POISONED: return "ISO_E_POISONED";
    case ISO_E_TLS: return "ISO_E_TLS";
    case 1: return "1";
    default: return "(other)";
    }
}

/* Records one check; on failure prints what was wanted and the thread's last error. */
static int check(int ok, const char *fmt, ...) {
    va_list ap;
    pthread_mutex_lock(&report_lock);
    checks++;
    if (!ok) {
        char msg[512] = "";
        failures++;
        iso_thread_last_error(msg, sizeof msg, NULL);
        printf("FAIL [%s] ", section);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf(" (thread last error: %s)\n", msg);
        fflush(stdout);
    }
    pthread_mutex_unlock(&report_lock);
    return ok;
}

/* A call's result compared with the one documented code. */
#define EXPECT(call, want)                                                                       \
    do {                                                                                         \
        int32_t got_ = (call);                                                                   \
        check(got_ == (want), "%s:%d: %s = %d %s, expected %s", __FILE__, __LINE__, #call,       \
              (int)got_, code_name(got_), #want);                                                \
    } while (0)

/* A call whose result may be either of two codes (the header leaves the order open). */
#define EXPECT2(call, want1, want2)                                                              \
    do {                                                                                         \
        int32_t got_ = (call);                                                                   \
        check(got_ == (want1) || got_ == (want2), "%s:%d: %s = %d %s, expected %s or %s",        \
              __FILE__, __LINE__, #call, (int)got_, code_name(got_), #want1, #want2);            \
    } while (0)

#define EXPECT_TRUE(cond) check((cond) != 0, "%s:%d: %s is false", __FILE__, __LINE__, #cond)

static void begin(const char *name) {
    section = name;
    if (!quiet) {
        printf("-- %s\n", name);
        fflush(stdout);
    }
}

/* Exported functions whose abuse was checked, printed as "covers NAME" at the end. */
static const char *covered[128];
static size_t n_covered;

static void cover(const char *name) {
    size_t i;
    for (i = 0; i < n_covered; i++)
        if (strcmp(covered[i], name) == 0) return;
    if (n_covered < sizeof covered / sizeof covered[0]) covered[n_covered++] = name;
}

static void die(const char *what) {
    char msg[512] = "";
    iso_thread_last_error(msg, sizeof msg, NULL);
    printf("FATAL [%s] %s (thread last error: %s)\n", section, what, msg);
    fflush(stdout);
    exit(2);
}

/* ------------------------------------------------------------------------------------------ */
/* Connections inside this process: a listener and a client talking to each other              */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    iso_listener *l;
    uint32_t timeout_ms;
    iso_conn *out;
    int32_t rc;
} accept_job;

static void *accept_thread(void *arg) {
    accept_job *j = (accept_job *)arg;
    j->rc = iso_accept(j->l, j->timeout_ms, &j->out);
    return NULL;
}

/* Connects `client` to listener `l` (accepting on a helper thread); returns the server side. */
static iso_conn *connect_pair(iso_listener *l, iso_conn *client) {
    accept_job j;
    pthread_t t;
    int32_t rc;
    j.l = l;
    j.timeout_ms = 20000;
    j.out = NULL;
    j.rc = 1;
    if (pthread_create(&t, NULL, accept_thread, &j) != 0) die("pthread_create");
    rc = iso_connect(client, 20000);
    pthread_join(t, NULL);
    if (rc != ISO_OK || j.rc != ISO_OK || j.out == NULL) {
        printf("connect_pair: connect %s, accept %s\n", code_name(rc), code_name(j.rc));
        die("connect_pair");
    }
    return j.out;
}

static iso_listener *listen_local(void) {
    iso_listener *l = NULL;
    if (iso_listen("127.0.0.1", 0, &l) != ISO_OK || l == NULL) die("iso_listen");
    return l;
}

static uint16_t port_of(iso_listener *l) {
    uint16_t port = 0;
    if (iso_listener_port(l, &port) != ISO_OK) die("iso_listener_port");
    return port;
}

static iso_conn *client_for(iso_listener *l) {
    iso_conn *c = NULL;
    if (iso_create("127.0.0.1", port_of(l), &c) != ISO_OK || c == NULL) die("iso_create");
    return c;
}

/* ------------------------------------------------------------------------------------------ */
/* Messages with checkable content                                                              */
/* ------------------------------------------------------------------------------------------ */

#define BIG_MESSAGE 3000 /* three DTs at the default TPDU size of 1024 */

static size_t msg_len(uint32_t seq) {
    if (seq % 997 == 0) return BIG_MESSAGE;
    return 8 + (size_t)((seq * 7919u) % 600u);
}

static uint8_t msg_byte(uint32_t tag, uint32_t seq, size_t j) {
    uint32_t x = tag * 2654435761u ^ seq * 40503u ^ (uint32_t)j * 2246822519u;
    return (uint8_t)(x ^ x >> 13 ^ x >> 24);
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A message: tag (4 bytes), sequence number (4 bytes), then bytes derived from both. */
static size_t make_msg(uint8_t *buf, uint32_t tag, uint32_t seq) {
    size_t len = msg_len(seq), j;
    put32(buf, tag);
    put32(buf + 4, seq);
    for (j = 8; j < len; j++) buf[j] = msg_byte(tag, seq, j);
    return len;
}

/* 1 when `buf` is an intact message; its tag and sequence number go to *tag and *seq. */
static int intact_msg(const uint8_t *buf, size_t len, uint32_t *tag, uint32_t *seq) {
    size_t j;
    if (len < 8) return 0;
    *tag = get32(buf);
    *seq = get32(buf + 4);
    if (len != msg_len(*seq)) return 0;
    for (j = 8; j < len; j++)
        if (buf[j] != msg_byte(*tag, *seq, j)) return 0;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Sections                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void static_functions(void) {
    int32_t code;
    const char *texts[17];
    size_t i, k;
    begin("static functions");
    for (code = ISO_E_TLS; code <= ISO_OK; code++) {
        const char *t = iso_strerror(code);
        EXPECT_TRUE(t != NULL && t[0] != '\0');
        texts[-code] = t;
    }
    for (i = 0; i < 16; i++)
        for (k = i + 1; k < 16; k++) check(texts[i] && texts[k] && strcmp(texts[i], texts[k]) != 0,
                                           "iso_strerror(-%zu) and iso_strerror(-%zu) are the same text", i, k);
    {
        const int32_t unknown[] = {1, 2, -16, -100, INT32_MIN, INT32_MAX};
        for (i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
            const char *t = iso_strerror(unknown[i]);
            check(t != NULL && t[0] != '\0', "iso_strerror(%ld) is NULL or empty", (long)unknown[i]);
            for (k = 0; t && k < 16; k++)
                check(texts[k] == NULL || strcmp(t, texts[k]) != 0,
                      "iso_strerror(%ld) repeats the text of code -%zu", (long)unknown[i], k);
        }
    }
    EXPECT_TRUE(iso_version() != NULL && strcmp(iso_version(), ISO_VERSION) == 0);
    EXPECT_TRUE(iso_version_number() == ISO_VERSION_NUMBER);
    EXPECT_TRUE(ISO_VERSION_NUMBER == (ISO_VERSION_MAJOR << 16 | ISO_VERSION_MINOR << 8 | ISO_VERSION_PATCH));
    cover("iso_strerror");
    cover("iso_version");
    cover("iso_version_number");
}

static void create_and_destroy(void) {
    static const char *bad_hosts[] = {"", "a b", "host:102", "..", "a..b", "exa mple.com", "\xff\xfe",
                                      "[]", "[127.0.0.1", "bad/host", "ho\tst"};
    static const char *good_hosts[] = {"127.0.0.1", "::1", "[::1]", "localhost", "plc-1.example.com", "a",
                                       "192.168.0.10", "fe80::1"};
    char long_name[400];
    iso_conn *c;
    size_t i;
    begin("iso_create / iso_destroy");
    c = (iso_conn *)&c; /* not NULL: iso_create must set it to NULL on failure */
    EXPECT(iso_create(NULL, 102, &c), ISO_E_INVALID);
    EXPECT_TRUE(c == NULL);
    EXPECT(iso_create("127.0.0.1", 102, NULL), ISO_E_INVALID);
    EXPECT(iso_create(NULL, 102, NULL), ISO_E_INVALID);
    for (i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
        c = (iso_conn *)&c;
        EXPECT(iso_create(bad_hosts[i], 102, &c), ISO_E_INVALID);
        check(c == NULL, "iso_create(bad host #%zu) left *out non-NULL", i);
        iso_destroy(c);
    }
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    c = (iso_conn *)&c;
    EXPECT(iso_create(long_name, 102, &c), ISO_E_INVALID);
    EXPECT_TRUE(c == NULL);
    for (i = 0; i < sizeof good_hosts / sizeof good_hosts[0]; i++) {
        c = NULL;
        EXPECT(iso_create(good_hosts[i], 0, &c), ISO_OK);
        check(c != NULL, "iso_create(%s) gave no handle", good_hosts[i]);
        iso_destroy(c);
    }
    /* Port 0 and 65535 are just numbers here (no network I/O). */
    c = NULL;
    EXPECT(iso_create("127.0.0.1", 65535, &c), ISO_OK);
    iso_destroy(c);
    iso_destroy(NULL);
    iso_listener_destroy(NULL);
    EXPECT(iso_listener_shutdown(NULL), ISO_E_INVALID);
    cover("iso_listener_shutdown");
    cover("iso_create");
    cover("iso_destroy");
    cover("iso_listener_destroy");
}

/* NULL for every pointer parameter of every function taking one, on a fresh handle. */
static void null_pointers(void) {
    iso_conn *c = NULL, *out = NULL;
    iso_listener *l = NULL, *lout = NULL;
    uint8_t buf[64] = {0};
    char text[64];
    size_t n = 0;
    uint32_t u32 = 0;
    uint16_t u16 = 0;
    uint64_t u64 = 0;
    int64_t fd = 0;

    begin("NULL pointers");
    if (iso_create("127.0.0.1", 102, &c) != ISO_OK) die("iso_create");
    l = listen_local();

    EXPECT(iso_set_tsap(NULL, 0x0100, 0x0102), ISO_E_INVALID);
    cover("iso_set_tsap");
    EXPECT(iso_set_tsap_bytes(NULL, buf, 2, buf, 2), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, NULL, 2, buf, 2), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, buf, 2, NULL, 2), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, NULL, 0, NULL, 0), ISO_E_INVALID);
    cover("iso_set_tsap_bytes");
    EXPECT(iso_set_tpdu_size(NULL, 1024), ISO_E_INVALID);
    cover("iso_set_tpdu_size");
    EXPECT(iso_set_routing(NULL, 1, 0, 2), ISO_E_INVALID);
    cover("iso_set_routing");
    EXPECT(iso_set_routing_s7(NULL, 0x0152, 0x0013, buf, 1, 1, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, NULL, 1, 1, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, NULL, 0, 1, 0, 2), ISO_E_INVALID);
    cover("iso_set_routing_s7");
    EXPECT(iso_set_send_timeout(NULL, 100), ISO_E_INVALID);
    cover("iso_set_send_timeout");
    EXPECT(iso_set_max_message(NULL, 65536), ISO_E_INVALID);
    cover("iso_set_max_message");
    EXPECT(iso_set_max_fragments(NULL, 16), ISO_E_INVALID);
    cover("iso_set_max_fragments");
    EXPECT(iso_set_keepalive(NULL, 1, 60, 10, 3), ISO_E_INVALID);
    cover("iso_set_keepalive");
    EXPECT(iso_set_max_queued(NULL, 1024), ISO_E_INVALID);
    cover("iso_set_max_queued");
    EXPECT(iso_connect(NULL, 100), ISO_E_INVALID);
    EXPECT(iso_connect(NULL, 0), ISO_E_INVALID);
    cover("iso_connect");
    EXPECT(iso_reconnect(NULL, 100), ISO_E_INVALID);
    EXPECT(iso_set_user_timeout(NULL, 1000), ISO_E_INVALID);
    EXPECT(iso_set_user_timeout(c, 2073600001u), ISO_E_INVALID);
    EXPECT(iso_set_user_timeout(c, 0), ISO_OK);
    EXPECT(iso_set_user_timeout(c, ISO_USER_TIMEOUT_FROM_KEEPALIVE), ISO_OK);
    cover("iso_set_user_timeout");
    EXPECT(iso_set_connect_attempt_delay(NULL, 250), ISO_E_INVALID);
    EXPECT(iso_set_connect_attempt_delay(c, 10001), ISO_E_INVALID);
    EXPECT(iso_set_connect_attempt_delay(c, 250), ISO_OK);
    cover("iso_set_connect_attempt_delay");
    {
        int32_t phase = -1;
        EXPECT(iso_get_connect_phase(NULL, &phase), ISO_E_INVALID);
        EXPECT(iso_get_connect_phase(c, NULL), ISO_E_INVALID);
        EXPECT(iso_get_connect_phase(c, &phase), ISO_OK);
        EXPECT_TRUE(phase == ISO_PHASE_NONE);
        cover("iso_get_connect_phase");
    }
    cover("iso_reconnect");
    EXPECT(iso_send(NULL, buf, 4), ISO_E_INVALID);
    EXPECT2(iso_send(c, NULL, 4), ISO_E_INVALID, ISO_E_STATE);
    EXPECT2(iso_send(c, NULL, 0), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_send");
    EXPECT(iso_queue_send(NULL, buf, 4), ISO_E_INVALID);
    EXPECT2(iso_queue_send(c, NULL, 4), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_queue_send");
    EXPECT(iso_flush(NULL, 0), ISO_E_INVALID);
    cover("iso_flush");
    EXPECT(iso_get_send_pending(NULL, &n), ISO_E_INVALID);
    EXPECT(iso_get_send_pending(c, NULL), ISO_E_INVALID);
    cover("iso_get_send_pending");
    EXPECT(iso_poll(NULL, 0), ISO_E_INVALID);
    cover("iso_poll");
    EXPECT(iso_recv(NULL, buf, sizeof buf, &n, 0), ISO_E_INVALID);
    EXPECT2(iso_recv(c, NULL, sizeof buf, &n, 0), ISO_E_INVALID, ISO_E_STATE);
    EXPECT2(iso_recv(c, buf, sizeof buf, NULL, 0), ISO_E_INVALID, ISO_E_STATE);
    EXPECT2(iso_recv(c, NULL, 0, NULL, 0), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_recv");
    EXPECT(iso_check_connection(NULL), ISO_E_INVALID);
    cover("iso_check_connection");
    EXPECT(iso_disconnect(NULL), ISO_E_INVALID);
    cover("iso_disconnect");
    {
        iso_tls_config *tc = NULL;
        uint8_t pin[32] = {0};
        EXPECT(iso_tls_config_create(NULL), ISO_E_INVALID);
        if (iso_tls_config_create(&tc) != ISO_OK || tc == NULL) die("iso_tls_config_create");
        cover("iso_tls_config_create");
        EXPECT(iso_tls_config_set_ca_file(NULL, "ca.pem"), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_ca_file(tc, NULL), ISO_E_INVALID);
        cover("iso_tls_config_set_ca_file");
        EXPECT(iso_tls_config_set_pin_sha256(NULL, pin, 32), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_pin_sha256(tc, NULL, 32), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_pin_sha256(tc, pin, 31), ISO_E_INVALID);
        cover("iso_tls_config_set_pin_sha256");
        EXPECT(iso_tls_config_set_insecure(NULL, 1), ISO_E_INVALID);
        cover("iso_tls_config_set_insecure");
        EXPECT(iso_tls_config_set_server_name(NULL, "plc"), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_server_name(tc, NULL), ISO_OK);
        cover("iso_tls_config_set_server_name");
        EXPECT(iso_tls_config_set_identity_files(NULL, "c.pem", "k.pem"), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_identity_files(tc, NULL, "k.pem"), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_identity_files(tc, "c.pem", NULL), ISO_E_INVALID);
        cover("iso_tls_config_set_identity_files");
        EXPECT(iso_tls_config_set_versions(NULL, 0x0303, 0x0304), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_versions(tc, 0x0304, 0x0303), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_versions(tc, 0x0301, 0x0304), ISO_E_INVALID);
        cover("iso_tls_config_set_versions");
        EXPECT(iso_tls_config_set_keylog_file(NULL, "keys.log"), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_keylog_file(tc, "keys.log"), ISO_OK);
        EXPECT(iso_tls_config_set_keylog_file(tc, NULL), ISO_E_INVALID);
        cover("iso_tls_config_set_keylog_file");
        EXPECT(iso_tls_config_set_max_record_size(NULL, 0), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_max_record_size(tc, 31), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_max_record_size(tc, 16385), ISO_E_INVALID);
        EXPECT(iso_tls_config_set_max_record_size(tc, 0), ISO_OK);
        cover("iso_tls_config_set_max_record_size");
        EXPECT(iso_start_tls(NULL, tc, 0), ISO_E_INVALID);
        EXPECT(iso_start_tls(c, NULL, 0), ISO_E_INVALID);
        EXPECT(iso_start_tls(c, tc, 0), ISO_E_STATE);
        cover("iso_start_tls");
        EXPECT(iso_tls_active(NULL), ISO_E_INVALID);
        EXPECT(iso_tls_active(c), 0);
        cover("iso_tls_active");
        EXPECT(iso_tls_export_keying_material(NULL, pin, 4, NULL, 0, buf, 32), ISO_E_INVALID);
        EXPECT(iso_tls_export_keying_material(c, NULL, 4, NULL, 0, buf, 32), ISO_E_INVALID);
        EXPECT(iso_tls_export_keying_material(c, pin, 4, NULL, 0, NULL, 32), ISO_E_INVALID);
        EXPECT(iso_tls_export_keying_material(c, pin, 4, NULL, 0, buf, 32), ISO_E_STATE);
        cover("iso_tls_export_keying_material");
        EXPECT(iso_tls_peer_certificate(NULL, buf, sizeof buf, &n), ISO_E_INVALID);
        EXPECT(iso_tls_peer_certificate(c, buf, sizeof buf, NULL), ISO_E_INVALID);
        EXPECT(iso_tls_peer_certificate(c, buf, sizeof buf, &n), ISO_E_STATE);
        cover("iso_tls_peer_certificate");
        iso_tls_config_destroy(NULL);
        iso_tls_config_destroy(tc);
        cover("iso_tls_config_destroy");
    }
    EXPECT(iso_get_tpdu_size(NULL, &u32), ISO_E_INVALID);
    EXPECT2(iso_get_tpdu_size(c, NULL), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_get_tpdu_size");
    EXPECT(iso_get_fd(NULL, &fd), ISO_E_INVALID);
    EXPECT2(iso_get_fd(c, NULL), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_get_fd");
    EXPECT(iso_get_remote_tsap(NULL, buf, sizeof buf, &n), ISO_E_INVALID);
    EXPECT2(iso_get_remote_tsap(c, NULL, sizeof buf, &n), ISO_E_INVALID, ISO_E_STATE);
    EXPECT2(iso_get_remote_tsap(c, buf, sizeof buf, NULL), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_get_remote_tsap");
    EXPECT(iso_get_calling_tsap(NULL, buf, sizeof buf, &n), ISO_E_INVALID);
    EXPECT2(iso_get_calling_tsap(c, NULL, sizeof buf, &n), ISO_E_INVALID, ISO_E_STATE);
    EXPECT2(iso_get_calling_tsap(c, buf, sizeof buf, NULL), ISO_E_INVALID, ISO_E_STATE);
    cover("iso_get_calling_tsap");
    EXPECT(iso_last_error(NULL, text, sizeof text, &n), ISO_E_INVALID);
    EXPECT(iso_last_error(NULL, NULL, 0, NULL), ISO_E_INVALID);
    /* Size query: buf NULL with cap 0 reports the size; the text does not fit. */
    {
        char full[512];
        size_t len = 0;
        EXPECT(iso_last_error(c, full, sizeof full, &len), ISO_OK);
        n = 0;
        EXPECT(iso_last_error(c, NULL, 0, &n), ISO_E_BUFFER_TOO_SMALL);
        EXPECT_TRUE(n == len && n == strlen(full) + 1);
    }
    EXPECT(iso_last_error(c, NULL, 0, NULL), ISO_E_BUFFER_TOO_SMALL);
    /* NULL with a non-zero capacity: not documented; it must neither crash nor succeed. */
    EXPECT2(iso_last_error(c, NULL, sizeof text, &n), ISO_E_INVALID, ISO_E_BUFFER_TOO_SMALL);
    cover("iso_last_error");
    EXPECT(iso_thread_last_error(NULL, 0, &n), ISO_E_BUFFER_TOO_SMALL);
    EXPECT(iso_thread_last_error(NULL, 0, NULL), ISO_E_BUFFER_TOO_SMALL);
    EXPECT(iso_thread_last_error(text, sizeof text, NULL), ISO_OK);
    EXPECT2(iso_thread_last_error(NULL, sizeof text, &n), ISO_E_INVALID, ISO_E_BUFFER_TOO_SMALL);
    cover("iso_thread_last_error");
    {
        int32_t os = -1;
        EXPECT(iso_last_os_error(NULL, &os), ISO_E_INVALID);
        EXPECT(iso_last_os_error(c, NULL), ISO_E_INVALID);
        EXPECT(iso_last_os_error(c, &os), ISO_OK);
        EXPECT_TRUE(os == 0); /* the failures so far were argument errors */
        cover("iso_last_os_error");
        EXPECT(iso_thread_last_os_error(NULL), ISO_E_INVALID);
        EXPECT(iso_thread_last_os_error(&os), ISO_OK);
        EXPECT_TRUE(os == 0);
        cover("iso_thread_last_os_error");
    }
    EXPECT(iso_s7_tsap(1, 0, 2, NULL), ISO_E_INVALID);
    cover("iso_s7_tsap");
    /* Tracing: a NULL callback and a NULL path turn it off, at any time. */
    EXPECT(iso_set_trace(NULL, NULL, NULL), ISO_E_INVALID);
    EXPECT(iso_set_trace(c, NULL, NULL), ISO_OK);
    cover("iso_set_trace");
    EXPECT(iso_set_trace_file(NULL, "trace.pcap"), ISO_E_INVALID);
    EXPECT(iso_set_trace_file(c, NULL), ISO_OK);
    EXPECT(iso_set_trace_file(c, "/nonexistent-directory/trace.pcap"), ISO_E_IO);
    cover("iso_set_trace_file");
    /* Never fails: every code, also unknown ones, maps to some snap7 value. */
    EXPECT_TRUE(iso_snap7_error(ISO_OK) == 0);
    EXPECT_TRUE(iso_snap7_error(ISO_E_REJECTED) == 0x00010000);
    EXPECT_TRUE(iso_snap7_error(-9999) == 0x000B0000);
    cover("iso_snap7_error");

    lout = (iso_listener *)&lout;
    EXPECT(iso_listen("127.0.0.1", 0, NULL), ISO_E_INVALID);
    EXPECT(iso_listen(NULL, 0, NULL), ISO_E_INVALID);
    /* NULL bind host is documented: every IPv6 and IPv4 address. */
    EXPECT(iso_listen(NULL, 0, &lout), ISO_OK);
    EXPECT_TRUE(lout != NULL && lout != (iso_listener *)&lout);
    if (lout != (iso_listener *)&lout) iso_listener_destroy(lout);
    cover("iso_listen");
    EXPECT(iso_listener_port(NULL, &u16), ISO_E_INVALID);
    EXPECT(iso_listener_port(l, NULL), ISO_E_INVALID);
    cover("iso_listener_port");
    out = (iso_conn *)&out;
    EXPECT(iso_accept(NULL, 0, &out), ISO_E_INVALID);
    EXPECT(iso_accept(l, 0, NULL), ISO_E_INVALID);
    EXPECT(iso_accept(NULL, 0, NULL), ISO_E_INVALID);
    EXPECT_TRUE(out == (iso_conn *)&out); /* written only on success */
    cover("iso_accept");
    EXPECT(iso_listener_get_fd(NULL, &fd), ISO_E_INVALID);
    EXPECT(iso_listener_get_fd(l, NULL), ISO_E_INVALID);
    cover("iso_listener_get_fd");
    EXPECT(iso_listener_next_timeout(NULL, &u32), ISO_E_INVALID);
    EXPECT(iso_listener_next_timeout(l, NULL), ISO_E_INVALID);
    cover("iso_listener_next_timeout");
    EXPECT(iso_listener_set_max_tpdu(NULL, 1024), ISO_E_INVALID);
    cover("iso_listener_set_max_tpdu");
    EXPECT(iso_listener_set_cr_timeout(NULL, 1000), ISO_E_INVALID);
    cover("iso_listener_set_cr_timeout");
    EXPECT(iso_listener_set_max_pending(NULL, 10), ISO_E_INVALID);
    cover("iso_listener_set_max_pending");
    EXPECT(iso_listener_set_max_queued(NULL, 1024), ISO_E_INVALID);
    cover("iso_listener_set_max_queued");
    EXPECT(iso_listener_set_max_message(NULL, 1024), ISO_E_INVALID);
    cover("iso_listener_set_max_message");
    EXPECT(iso_listener_allow_tsap(NULL, buf, 2), ISO_E_INVALID);
    EXPECT(iso_listener_allow_tsap(l, NULL, 2), ISO_E_INVALID);
    EXPECT(iso_listener_allow_tsap(l, NULL, 0), ISO_E_INVALID);
    cover("iso_listener_allow_tsap");
    EXPECT(iso_listener_set_filter(NULL, NULL, NULL), ISO_E_INVALID);
    EXPECT(iso_listener_set_filter(l, NULL, NULL), ISO_OK); /* NULL filter: removes it */
    EXPECT(iso_listener_set_filter(l, NULL, buf), ISO_OK);
    cover("iso_listener_set_filter");
    EXPECT(iso_listener_refused_count(NULL, &u64), ISO_E_INVALID);
    EXPECT(iso_listener_refused_count(l, NULL), ISO_E_INVALID);
    cover("iso_listener_refused_count");
    EXPECT(iso_listener_last_error(NULL, text, sizeof text, &n), ISO_E_INVALID);
    {
        char full[512];
        size_t len = 0;
        EXPECT(iso_listener_last_error(l, full, sizeof full, &len), ISO_OK);
        EXPECT_TRUE(strstr(full, "NULL") != NULL); /* from iso_accept(l, 0, NULL) above */
        n = 0;
        EXPECT(iso_listener_last_error(l, NULL, 0, &n), ISO_E_BUFFER_TOO_SMALL);
        EXPECT_TRUE(n == len && n == strlen(full) + 1);
    }
    EXPECT(iso_listener_last_error(l, NULL, 0, NULL), ISO_E_BUFFER_TOO_SMALL);
    cover("iso_listener_last_error");

    iso_listener_destroy(l);
    iso_destroy(c);
}

/* Every setter with values inside and outside its documented range, on a fresh handle. */
static void setter_ranges(void) {
    static const uint32_t good_tpdu[] = {128, 256, 512, 1024, 2048, 4096, 8192};
    static const uint32_t bad_tpdu[] = {0, 1, 64, 127, 129, 1000, 1023, 3000, 16384, 65536, UINT32_MAX};
    uint8_t t32[32], t33[33], addr[17];
    iso_conn *c = NULL;
    iso_listener *l;
    uint16_t tsap = 0xFFFF;
    size_t i;

    begin("setter ranges");
    if (iso_create("127.0.0.1", 102, &c) != ISO_OK) die("iso_create");
    memset(t32, 'T', sizeof t32);
    memset(t33, 'T', sizeof t33);
    memset(addr, 2, sizeof addr);

    EXPECT(iso_set_tsap(c, 0, 0), ISO_OK);
    EXPECT(iso_set_tsap(c, 0xFFFF, 0xFFFF), ISO_OK);
    EXPECT(iso_set_tsap(c, 0x0100, 0x0102), ISO_OK);

    EXPECT(iso_set_tsap_bytes(c, t32, 1, t32, 1), ISO_OK);
    EXPECT(iso_set_tsap_bytes(c, t32, 32, t32, 32), ISO_OK);
    EXPECT(iso_set_tsap_bytes(c, t32, 0, t32, 2), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, t32, 2, t32, 0), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, t33, 33, t32, 2), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, t32, 2, t33, 33), ISO_E_INVALID);
    EXPECT(iso_set_tsap_bytes(c, (const uint8_t *)"\x06\x00", 2, (const uint8_t *)"SIMATIC-ROOT-HMI", 16), ISO_OK);

    for (i = 0; i < sizeof good_tpdu / sizeof good_tpdu[0]; i++) EXPECT(iso_set_tpdu_size(c, good_tpdu[i]), ISO_OK);
    for (i = 0; i < sizeof bad_tpdu / sizeof bad_tpdu[0]; i++)
        EXPECT(iso_set_tpdu_size(c, bad_tpdu[i]), ISO_E_INVALID);

    EXPECT(iso_set_routing(c, 0x1234, 0, 2), ISO_OK);
    EXPECT(iso_set_routing(c, 0xFFFF, 7, 31), ISO_OK);
    EXPECT(iso_set_routing(c, 1, 8, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing(c, 1, 0, 32), ISO_E_INVALID);
    EXPECT(iso_set_routing(c, 1, 0xFFFF, 0xFFFF), ISO_E_INVALID);
    /* The longest TSAPs plus routing parameters still make a CR of at most 128 bytes. */
    EXPECT(iso_set_tsap_bytes(c, t32, 32, t32, 32), ISO_OK);
    EXPECT(iso_set_routing(c, 1, 0, 2), ISO_OK);

    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 1, 0, 2), ISO_OK);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 4, 2, 7, 31), ISO_OK);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 16, 0x10, 0, 2), ISO_OK);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 0, 1, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 17, 1, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 1, 8, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 1, 0, 32), ISO_E_INVALID);
    /* conn_type is documented as 1 (PG), 2 (OP) or 3..0x10 (S7 basic). */
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 0, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 0x11, 0, 2), ISO_E_INVALID);
    EXPECT(iso_set_routing_s7(c, 0x0152, 0x0013, addr, 1, 0xFF, 0, 2), ISO_E_INVALID);

    EXPECT(iso_set_send_timeout(c, 0), ISO_OK);
    EXPECT(iso_set_send_timeout(c, UINT32_MAX), ISO_OK);
    EXPECT(iso_set_send_timeout(c, 5000), ISO_OK);

    EXPECT(iso_set_max_message(c, 0), ISO_E_INVALID);
    EXPECT(iso_set_max_message(c, 127), ISO_E_INVALID);
    EXPECT(iso_set_max_message(c, 128), ISO_OK);
    EXPECT(iso_set_max_message(c, 16777216), ISO_OK);
    EXPECT(iso_set_max_message(c, 16777217), ISO_E_INVALID);
    EXPECT(iso_set_max_message(c, UINT32_MAX), ISO_E_INVALID);
    EXPECT(iso_set_max_message(c, 65536), ISO_OK);

    EXPECT(iso_set_max_fragments(c, 0), ISO_E_INVALID);
    EXPECT(iso_set_max_fragments(c, 1), ISO_OK);
    EXPECT(iso_set_max_fragments(c, 1048576), ISO_OK);
    EXPECT(iso_set_max_fragments(c, 1048577), ISO_E_INVALID);
    EXPECT(iso_set_max_fragments(c, UINT32_MAX), ISO_E_INVALID);
    EXPECT(iso_set_max_fragments(c, 4096), ISO_OK);

    EXPECT(iso_set_keepalive(c, 1, 60, 10, 3), ISO_OK);
    EXPECT(iso_set_keepalive(c, -7, 1, 1, 1), ISO_OK);
    EXPECT(iso_set_keepalive(c, 1, 32767, 32767, 32767), ISO_OK);
    EXPECT(iso_set_keepalive(c, 1, 0, 10, 3), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 1, 60, 0, 3), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 1, 60, 10, 0), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 1, 32768, 10, 3), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 1, 60, UINT32_MAX, 3), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 1, 60, 10, UINT32_MAX), ISO_E_INVALID);
    EXPECT(iso_set_keepalive(c, 0, 0, 0, 0), ISO_OK);

    EXPECT(iso_set_max_queued(c, 0), ISO_OK);
    EXPECT(iso_set_max_queued(c, 268435456), ISO_OK);
    EXPECT(iso_set_max_queued(c, 268435457), ISO_E_INVALID);
    EXPECT(iso_set_max_queued(c, UINT32_MAX), ISO_E_INVALID);
    EXPECT(iso_set_max_queued(c, 262144), ISO_OK);

    EXPECT(iso_s7_tsap(1, 0, 2, &tsap), ISO_OK);
    EXPECT_TRUE(tsap == 0x0102);
    EXPECT(iso_s7_tsap(2, 1, 3, &tsap), ISO_OK);
    EXPECT_TRUE(tsap == 0x0223);
    EXPECT(iso_s7_tsap(0x10, 7, 31, &tsap), ISO_OK);
    EXPECT_TRUE(tsap == 0x10FF);
    tsap = 0xABCD;
    EXPECT(iso_s7_tsap(1, 8, 2, &tsap), ISO_E_INVALID);
    EXPECT(iso_s7_tsap(1, 0, 32, &tsap), ISO_E_INVALID);
    EXPECT(iso_s7_tsap(1, 255, 255, &tsap), ISO_E_INVALID);
    EXPECT_TRUE(tsap == 0xABCD); /* written only on success */
    /* conn_type is documented as 1 (PG), 2 (OP) or 3..0x10 (S7 basic). */
    EXPECT(iso_s7_tsap(0, 0, 2, &tsap), ISO_E_INVALID);
    EXPECT(iso_s7_tsap(0x11, 0, 2, &tsap), ISO_E_INVALID);
    EXPECT(iso_s7_tsap(0xFF, 0, 2, &tsap), ISO_E_INVALID);

    l = listen_local();
    for (i = 0; i < sizeof good_tpdu / sizeof good_tpdu[0]; i++)
        EXPECT(iso_listener_set_max_tpdu(l, good_tpdu[i]), ISO_OK);
    for (i = 0; i < sizeof bad_tpdu / sizeof bad_tpdu[0]; i++)
        EXPECT(iso_listener_set_max_tpdu(l, bad_tpdu[i]), ISO_E_INVALID);
    EXPECT(iso_listener_set_cr_timeout(l, 0), ISO_E_INVALID);
    EXPECT(iso_listener_set_cr_timeout(l, 1), ISO_OK);
    EXPECT(iso_listener_set_cr_timeout(l, 3600000), ISO_OK);
    EXPECT(iso_listener_set_cr_timeout(l, 3600001), ISO_E_INVALID);
    EXPECT(iso_listener_set_cr_timeout(l, UINT32_MAX), ISO_E_INVALID);
    EXPECT(iso_listener_set_max_pending(l, 0), ISO_E_INVALID);
    EXPECT(iso_listener_set_max_pending(l, 1), ISO_OK);
    EXPECT(iso_listener_set_max_pending(l, 65536), ISO_OK);
    EXPECT(iso_listener_set_max_pending(l, 65537), ISO_E_INVALID);
    EXPECT(iso_listener_set_max_queued(l, 0), ISO_OK);
    EXPECT(iso_listener_set_max_queued(l, 268435456), ISO_OK);
    EXPECT(iso_listener_set_max_queued(l, 268435457), ISO_E_INVALID);
    EXPECT(iso_listener_set_max_message(l, 127), ISO_E_INVALID);
    EXPECT(iso_listener_set_max_message(l, 128), ISO_OK);
    EXPECT(iso_listener_set_max_message(l, 16777216), ISO_OK);
    EXPECT(iso_listener_set_max_message(l, 16777217), ISO_E_INVALID);
    EXPECT(iso_listener_allow_tsap(l, t32, 0), ISO_E_INVALID);
    EXPECT(iso_listener_allow_tsap(l, t33, 33), ISO_E_INVALID);
    EXPECT(iso_listener_allow_tsap(l, t32, 32), ISO_OK);
    EXPECT(iso_listener_allow_tsap(l, t32, 32), ISO_OK); /* twice: kept once */
    EXPECT(iso_listener_allow_tsap(l, t32, 1), ISO_OK);
    iso_listener_destroy(l);

    /* A listener on a port in use: ISO_E_IO, *out NULL. */
    l = listen_local();
    {
        iso_listener *second = (iso_listener *)&second;
        EXPECT(iso_listen("127.0.0.1", port_of(l), &second), ISO_E_IO);
        EXPECT_TRUE(second == NULL);
        second = (iso_listener *)&second;
        EXPECT(iso_listen("not a host!", 0, &second), ISO_E_INVALID);
        EXPECT_TRUE(second == NULL);
        second = (iso_listener *)&second;
        EXPECT(iso_listen("\xff", 0, &second), ISO_E_INVALID);
        EXPECT_TRUE(second == NULL);
    }
    iso_listener_destroy(l);
    iso_destroy(c);
}

/* The last-error functions: size query, truncation, exact fit, per-thread separation. */
static void *other_thread_last_error(void *arg) {
    char *text = (char *)arg;
    iso_thread_last_error(text, 256, NULL);
    return NULL;
}

static void last_errors(void) {
    iso_conn *c = NULL;
    char text[512], small[8];
    size_t needed = 0, full;
    pthread_t t;
    int32_t rc;

    begin("last error sizing");
    if (iso_create("127.0.0.1", 102, &c) != ISO_OK) die("iso_create");
    EXPECT(iso_last_error(c, text, sizeof text, &needed), ISO_OK);
    EXPECT_TRUE(strcmp(text, "no error") == 0 && needed == 9);

    EXPECT(iso_set_tpdu_size(c, 1000), ISO_E_INVALID);
    EXPECT(iso_last_error(c, NULL, 0, &needed), ISO_E_BUFFER_TOO_SMALL);
    full = needed;
    EXPECT_TRUE(full > 10);
    EXPECT(iso_last_error(c, text, sizeof text, &needed), ISO_OK);
    EXPECT_TRUE(needed == full && strlen(text) + 1 == full);
    EXPECT_TRUE(strstr(text, "1000") != NULL);
    /* Exact fit, one byte short, a tiny buffer, a one-byte buffer. */
    {
        char *exact = (char *)malloc(full), *canary = (char *)malloc(full + 1);
        if (!exact || !canary) die("malloc");
        EXPECT(iso_last_error(c, exact, full, &needed), ISO_OK);
        EXPECT_TRUE(strcmp(exact, text) == 0);
        memset(canary, '#', full + 1);
        EXPECT(iso_last_error(c, canary, full - 1, &needed), ISO_E_BUFFER_TOO_SMALL);
        EXPECT_TRUE(needed == full && canary[full - 2] == '\0' && canary[full - 1] == '#' &&
                    strncmp(canary, text, full - 2) == 0);
        free(exact);
        free(canary);
    }
    memset(small, '#', sizeof small);
    EXPECT(iso_last_error(c, small, 5, &needed), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(small[4] == '\0' && small[5] == '#' && strncmp(small, text, 4) == 0 && needed == full);
    memset(small, '#', sizeof small);
    EXPECT(iso_last_error(c, small, 1, &needed), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(small[0] == '\0' && small[1] == '#');
    /* A huge capacity only matters up to the text's length. */
    EXPECT(iso_last_error(c, text, SIZE_MAX, &needed), ISO_OK);
    EXPECT_TRUE(strlen(text) + 1 == full);

    /* The thread's copy matches; another thread has its own ("no error"). */
    EXPECT(iso_thread_last_error(text, sizeof text, &needed), ISO_OK);
    EXPECT_TRUE(needed == full && strstr(text, "1000") != NULL);
    EXPECT(iso_thread_last_error(small, 3, &needed), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(small[2] == '\0' && needed == full);
    memset(text, 0, sizeof text);
    if (pthread_create(&t, NULL, other_thread_last_error, text) != 0) die("pthread_create");
    pthread_join(t, NULL);
    EXPECT_TRUE(strcmp(text, "no error") == 0);

    /* A successful call leaves the handle's last error as it was. */
    EXPECT(iso_set_tpdu_size(c, 512), ISO_OK);
    EXPECT(iso_last_error(c, text, sizeof text, &needed), ISO_OK);
    EXPECT_TRUE(strstr(text, "1000") != NULL);
    /* A NULL handle error reaches the thread's last error. */
    rc = iso_set_tpdu_size(NULL, 512);
    EXPECT_TRUE(rc == ISO_E_INVALID);
    EXPECT(iso_thread_last_error(text, sizeof text, NULL), ISO_OK);
    EXPECT_TRUE(strstr(text, "NULL") != NULL);
    iso_destroy(c);
}

/* Calls that need a connection, on a handle that has none. */
static void wrong_state_unconnected(void) {
    iso_conn *c = NULL;
    uint8_t buf[64] = {1, 2, 3, 4};
    size_t n = 12345;
    uint32_t u32 = 777;
    int64_t fd = -77;

    begin("wrong state: before connect");
    if (iso_create("127.0.0.1", 102, &c) != ISO_OK) die("iso_create");
    EXPECT(iso_send(c, buf, 4), ISO_E_STATE);
    EXPECT(iso_queue_send(c, buf, 4), ISO_E_STATE);
    EXPECT(iso_flush(c, 0), ISO_E_STATE);
    EXPECT(iso_flush(c, 100), ISO_E_STATE);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_STATE);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 100), ISO_E_STATE);
    EXPECT(iso_recv(c, buf, 0, &n, 0), ISO_E_STATE);
    EXPECT_TRUE(n == 12345);
    EXPECT(iso_poll(c, 0), ISO_E_STATE);
    EXPECT(iso_poll(c, 100), ISO_E_STATE);
    EXPECT(iso_get_tpdu_size(c, &u32), ISO_E_STATE);
    EXPECT_TRUE(u32 == 777);
    EXPECT(iso_get_fd(c, &fd), ISO_E_STATE);
    EXPECT_TRUE(fd == -77);
    EXPECT(iso_get_remote_tsap(c, buf, sizeof buf, &n), ISO_E_STATE);
    EXPECT(iso_get_calling_tsap(c, buf, sizeof buf, &n), ISO_E_STATE);
    EXPECT_TRUE(n == 12345);
    EXPECT(iso_check_connection(c), 0);
    EXPECT(iso_disconnect(c), ISO_OK);
    EXPECT(iso_disconnect(c), ISO_OK);
    n = 99;
    EXPECT(iso_get_send_pending(c, &n), ISO_OK);
    EXPECT_TRUE(n == 0);
    iso_destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Lengths a caller may get wrong: run in a child process, so a crash fails one check only      */
/* ------------------------------------------------------------------------------------------ */

static iso_conn *g_client, *g_server;
static iso_listener *g_listener;
static uint8_t *g_guarded_2, *g_guarded_1, *g_guarded_100;

/* `n` readable bytes directly followed by an inaccessible page: reading past them faults. */
static uint8_t *guarded(size_t n) {
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *base = (uint8_t *)mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) die("mmap");
    if (mprotect(base + page, (size_t)page, PROT_NONE) != 0) die("mprotect");
    memset(base + page - n, 2, n);
    return base + page - n;
}

typedef int32_t (*probe_fn)(void);

static void expect_in_child(const char *what, probe_fn probe, int32_t want) {
    pid_t pid;
    int status = 0;
    fflush(stdout);
    pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        int32_t rc = probe();
        _exit((int)(rc + 100) & 0xFF);
    }
    if (waitpid(pid, &status, 0) != pid) die("waitpid");
    if (WIFSIGNALED(status)) {
        check(0, "%s: the process died of signal %d (%s), expected %s", what, WTERMSIG(status),
              strsignal(WTERMSIG(status)), code_name(want));
    } else {
        int32_t got = WEXITSTATUS(status) - 100;
        check(got == want, "%s = %d %s, expected %s", what, (int)got, code_name(got), code_name(want));
    }
}

static int32_t probe_tsap_bytes_33(void) { return iso_set_tsap_bytes(g_client, g_guarded_2, 33, g_guarded_2, 2); }
static int32_t probe_tsap_bytes_remote_1m(void) { return iso_set_tsap_bytes(g_client, g_guarded_2, 2, g_guarded_2, (size_t)1 << 20); }
static int32_t probe_tsap_bytes_2p40(void) { return iso_set_tsap_bytes(g_client, g_guarded_2, (size_t)1 << 40, g_guarded_2, 2); }
static int32_t probe_tsap_bytes_max(void) { return iso_set_tsap_bytes(g_client, g_guarded_2, SIZE_MAX, g_guarded_2, 2); }
static int32_t probe_routing_17(void) { return iso_set_routing_s7(g_client, 1, 2, g_guarded_1, 17, 1, 0, 2); }
static int32_t probe_routing_1m(void) { return iso_set_routing_s7(g_client, 1, 2, g_guarded_1, (size_t)1 << 20, 1, 0, 2); }
static int32_t probe_routing_max(void) { return iso_set_routing_s7(g_client, 1, 2, g_guarded_1, SIZE_MAX, 1, 0, 2); }
static int32_t probe_allow_33(void) { return iso_listener_allow_tsap(g_listener, g_guarded_2, 33); }
static int32_t probe_allow_max(void) { return iso_listener_allow_tsap(g_listener, g_guarded_2, SIZE_MAX); }
static int32_t probe_send_65537(void) { return iso_send(g_client, g_guarded_100, 65537); }
static int32_t probe_send_2p40(void) { return iso_send(g_client, g_guarded_100, (size_t)1 << 40); }
static int32_t probe_send_max(void) { return iso_send(g_client, g_guarded_100, SIZE_MAX); }
static int32_t probe_queue_send_max(void) { return iso_queue_send(g_client, g_guarded_100, SIZE_MAX); }
static int32_t probe_queue_send_2p40(void) { return iso_queue_send(g_client, g_guarded_100, (size_t)1 << 40); }
static int32_t probe_recv_cap_max(void) {
    uint8_t buf[16];
    size_t n = 0;
    return iso_recv(g_client, buf, SIZE_MAX, &n, 0);
}
static int32_t probe_remote_tsap_cap_max(void) {
    uint8_t buf[32];
    size_t n = 0;
    int32_t rc = iso_get_remote_tsap(g_client, buf, SIZE_MAX, &n);
    return rc == ISO_OK && (n != 2 || buf[0] != 0x01 || buf[1] != 0x02) ? 1 : rc;
}
static int32_t probe_thread_last_error_cap_max(void) {
    char buf[512];
    return iso_thread_last_error(buf, SIZE_MAX, NULL);
}

static void lengths(void) {
    begin("lengths: zero, too long, huge (each in a child process)");
    g_listener = listen_local();
    g_client = client_for(g_listener);
    g_server = connect_pair(g_listener, g_client);
    g_guarded_1 = guarded(1);
    g_guarded_2 = guarded(2);
    g_guarded_100 = guarded(100);

    /* Lengths above the limit, with fewer bytes behind the pointer than claimed: the length must
       be refused before any byte is read. */
    expect_in_child("iso_send(len 65537 > maximum message, 100 bytes readable)", probe_send_65537, ISO_E_TOO_LARGE);
    expect_in_child("iso_send(len 2^40)", probe_send_2p40, ISO_E_TOO_LARGE);
    expect_in_child("iso_send(len SIZE_MAX)", probe_send_max, ISO_E_INVALID);
    expect_in_child("iso_queue_send(len 2^40)", probe_queue_send_2p40, ISO_E_TOO_LARGE);
    expect_in_child("iso_queue_send(len SIZE_MAX)", probe_queue_send_max, ISO_E_INVALID);
    expect_in_child("iso_recv(cap SIZE_MAX, nothing received, timeout 0)", probe_recv_cap_max, ISO_E_INVALID);
    expect_in_child("iso_get_remote_tsap(cap SIZE_MAX)", probe_remote_tsap_cap_max, ISO_OK);
    expect_in_child("iso_thread_last_error(cap SIZE_MAX)", probe_thread_last_error_cap_max, ISO_OK);
    expect_in_child("iso_listener_allow_tsap(len 33, 2 bytes readable)", probe_allow_33, ISO_E_INVALID);
    expect_in_child("iso_listener_allow_tsap(len SIZE_MAX)", probe_allow_max, ISO_E_INVALID);

    /* The setters on an unconnected handle, where the length is the only thing wrong. */
    iso_disconnect(g_client);
    expect_in_child("iso_set_tsap_bytes(local_len 33, 2 bytes readable)", probe_tsap_bytes_33, ISO_E_INVALID);
    expect_in_child("iso_set_tsap_bytes(remote_len 2^20, 2 bytes readable)", probe_tsap_bytes_remote_1m, ISO_E_INVALID);
    expect_in_child("iso_set_tsap_bytes(local_len 2^40)", probe_tsap_bytes_2p40, ISO_E_INVALID);
    expect_in_child("iso_set_tsap_bytes(local_len SIZE_MAX)", probe_tsap_bytes_max, ISO_E_INVALID);
    expect_in_child("iso_set_routing_s7(dest_addr_len 17, 1 byte readable)", probe_routing_17, ISO_E_INVALID);
    expect_in_child("iso_set_routing_s7(dest_addr_len 2^20, 1 byte readable)", probe_routing_1m, ISO_E_INVALID);
    expect_in_child("iso_set_routing_s7(dest_addr_len SIZE_MAX)", probe_routing_max, ISO_E_INVALID);
    expect_in_child("iso_send(len SIZE_MAX) unconnected", probe_send_max, ISO_E_INVALID);
    expect_in_child("iso_recv(cap SIZE_MAX) unconnected", probe_recv_cap_max, ISO_E_INVALID);

    iso_destroy(g_server);
    iso_destroy(g_client);
    iso_listener_destroy(g_listener);
    g_server = g_client = NULL;
    g_listener = NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* A connected pair                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void connected_pair(void) {
    iso_listener *l = listen_local();
    iso_conn *c = client_for(l), *s;
    uint8_t buf[8192], msg[4096], tsap[32];
    size_t n, i;
    uint32_t tpdu = 0;
    int64_t fd = -1;

    begin("connected pair: state, sizes, buffers");
    EXPECT(iso_set_tpdu_size(c, 2048), ISO_OK);
    s = connect_pair(l, c);
    EXPECT(iso_check_connection(c), 1);
    EXPECT(iso_check_connection(s), 1);
    EXPECT(iso_get_tpdu_size(c, &tpdu), ISO_OK);
    EXPECT_TRUE(tpdu == 2048);
    EXPECT(iso_get_tpdu_size(s, &tpdu), ISO_OK);
    EXPECT_TRUE(tpdu == 2048);
    EXPECT(iso_get_fd(c, &fd), ISO_OK);
    EXPECT_TRUE(fd >= 0);
    EXPECT(iso_listener_get_fd(l, &fd), ISO_OK);
    EXPECT_TRUE(fd >= 0);
    {
        uint32_t next = 0;
        EXPECT(iso_listener_next_timeout(l, &next), ISO_OK);
        EXPECT_TRUE(next == UINT32_MAX);
    }

    /* NULL outputs on a connected handle: only the NULL is wrong. */
    EXPECT(iso_get_tpdu_size(c, NULL), ISO_E_INVALID);
    EXPECT(iso_get_fd(c, NULL), ISO_E_INVALID);
    EXPECT(iso_get_remote_tsap(c, NULL, 32, &n), ISO_E_INVALID);
    EXPECT(iso_get_remote_tsap(c, tsap, sizeof tsap, NULL), ISO_E_INVALID);
    EXPECT(iso_get_calling_tsap(c, NULL, 32, &n), ISO_E_INVALID);
    EXPECT(iso_get_calling_tsap(c, tsap, sizeof tsap, NULL), ISO_E_INVALID);
    EXPECT(iso_send(c, NULL, 4), ISO_E_INVALID);
    EXPECT(iso_send(c, NULL, 0), ISO_E_INVALID);
    EXPECT(iso_send(c, msg, 0), ISO_E_INVALID);
    EXPECT(iso_queue_send(c, NULL, 4), ISO_E_INVALID);
    EXPECT(iso_queue_send(c, msg, 0), ISO_E_INVALID);
    EXPECT(iso_recv(c, NULL, sizeof buf, &n, 0), ISO_E_INVALID);
    /* NULL with capacity 0 is a size query: nothing queued yet, so it would block. */
    EXPECT(iso_recv(c, NULL, 0, &n, 0), ISO_E_WOULD_BLOCK);
    EXPECT(iso_recv(c, buf, sizeof buf, NULL, 0), ISO_E_INVALID);
    EXPECT(iso_get_send_pending(c, NULL), ISO_E_INVALID);

    /* TSAPs of both sides; too small a buffer copies nothing and reports the length. */
    memset(tsap, 0xEE, sizeof tsap);
    EXPECT(iso_get_remote_tsap(c, tsap, sizeof tsap, &n), ISO_OK);
    EXPECT_TRUE(n == 2 && tsap[0] == 0x01 && tsap[1] == 0x02);
    EXPECT(iso_get_calling_tsap(c, tsap, sizeof tsap, &n), ISO_OK);
    EXPECT_TRUE(n == 2 && tsap[0] == 0x01 && tsap[1] == 0x00);
    EXPECT(iso_get_remote_tsap(s, tsap, sizeof tsap, &n), ISO_OK);
    EXPECT_TRUE(n == 2 && tsap[0] == 0x01 && tsap[1] == 0x02);
    EXPECT(iso_get_calling_tsap(s, tsap, sizeof tsap, &n), ISO_OK);
    EXPECT_TRUE(n == 2 && tsap[0] == 0x01 && tsap[1] == 0x00);
    memset(tsap, 0xEE, sizeof tsap);
    n = 0;
    EXPECT(iso_get_remote_tsap(c, tsap, 1, &n), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 2 && tsap[0] == 0xEE);
    n = 0;
    EXPECT(iso_get_calling_tsap(s, tsap, 0, &n), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 2 && tsap[0] == 0xEE);

    /* Setters and connect while connected; an accepted connection cannot connect. */
    EXPECT(iso_set_tsap(c, 0x0100, 0x0102), ISO_E_STATE);
    EXPECT(iso_set_tsap_bytes(c, tsap, 2, tsap, 2), ISO_E_STATE);
    EXPECT(iso_set_tpdu_size(c, 1024), ISO_E_STATE);
    EXPECT(iso_set_routing(c, 1, 0, 2), ISO_E_STATE);
    EXPECT(iso_set_routing_s7(c, 1, 2, tsap, 1, 1, 0, 2), ISO_E_STATE);
    EXPECT(iso_set_send_timeout(c, 100), ISO_E_STATE);
    EXPECT(iso_set_max_message(c, 1024), ISO_E_STATE);
    EXPECT(iso_set_max_fragments(c, 10), ISO_E_STATE);
    EXPECT(iso_set_keepalive(c, 0, 0, 0, 0), ISO_E_STATE);
    EXPECT(iso_set_max_queued(c, 1024), ISO_E_STATE);
    EXPECT(iso_connect(c, 1000), ISO_E_STATE);
    EXPECT(iso_connect(c, 0), ISO_E_STATE);
    EXPECT(iso_connect(s, 1000), ISO_E_STATE);
    EXPECT(iso_set_tpdu_size(s, 1024), ISO_E_STATE);
    EXPECT(iso_set_max_message(s, 1024), ISO_E_STATE);
    EXPECT(iso_check_connection(c), 1); /* none of that hurt the connection */

    /* Nothing to receive: timeouts, and nothing lost by them. */
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_WOULD_BLOCK);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 30), ISO_E_TIMEOUT);
    EXPECT(iso_poll(c, 0), 0);
    EXPECT(iso_poll(c, 30), 0);
    EXPECT(iso_flush(c, 0), ISO_OK);
    n = 7;
    EXPECT(iso_get_send_pending(c, &n), ISO_OK);
    EXPECT_TRUE(n == 0);

    /* Buffer too small: size reported, message kept, the next call with room gets it. */
    begin("buffer too small");
    for (i = 0; i < sizeof msg; i++) msg[i] = (uint8_t)(i * 13 + 5);
    EXPECT(iso_send(s, msg, 3000), ISO_OK); /* two DTs at TPDU 2048 */
    EXPECT(iso_send(s, msg + 1, 10), ISO_OK);
    EXPECT(iso_poll(c, 5000), 1);
    n = 0;
    EXPECT(iso_recv(c, buf, 10, &n, 5000), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 3000);
    n = 0;
    EXPECT(iso_recv(c, buf, 2999, &n, 0), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 3000);
    n = 0;
    EXPECT(iso_recv(c, buf, 0, &n, 0), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 3000);
    n = 0;
    EXPECT(iso_recv(c, NULL, 0, &n, 0), ISO_E_BUFFER_TOO_SMALL); /* size query */
    EXPECT_TRUE(n == 3000);
    EXPECT(iso_poll(c, 0), 1);
    memset(buf, 0, sizeof buf);
    EXPECT(iso_recv(c, buf, 3000, &n, 0), ISO_OK);
    EXPECT_TRUE(n == 3000 && memcmp(buf, msg, 3000) == 0);
    EXPECT(iso_recv(c, buf, 9, &n, 5000), ISO_E_BUFFER_TOO_SMALL);
    EXPECT_TRUE(n == 10);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 10 && memcmp(buf, msg + 1, 10) == 0);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_WOULD_BLOCK);

    /* Too large to send: refused, the connection stays usable. */
    begin("too large");
    {
        uint8_t *big = (uint8_t *)malloc(65537);
        if (!big) die("malloc");
        memset(big, 0x5A, 65537);
        EXPECT(iso_send(c, big, 65537), ISO_E_TOO_LARGE);
        EXPECT(iso_queue_send(c, big, 65537), ISO_E_TOO_LARGE);
        EXPECT(iso_send(c, big, 65536), ISO_OK); /* exactly the maximum */
        EXPECT(iso_recv(s, buf, sizeof buf, &n, 5000), ISO_E_BUFFER_TOO_SMALL);
        EXPECT_TRUE(n == 65536);
        EXPECT(iso_recv(s, big, 65537, &n, 5000), ISO_OK);
        EXPECT_TRUE(n == 65536 && big[0] == 0x5A && big[65535] == 0x5A);
        free(big);
    }
    EXPECT(iso_check_connection(c), 1);
    EXPECT(iso_send(c, msg, 5), ISO_OK);
    EXPECT(iso_recv(s, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 5 && memcmp(buf, msg, 5) == 0);

    /* Disconnect: calls that need the connection say STATE; setters work again; reconnect. */
    begin("disconnect and reconnect");
    EXPECT(iso_disconnect(c), ISO_OK);
    EXPECT(iso_send(c, msg, 4), ISO_E_STATE);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_STATE);
    EXPECT(iso_poll(c, 0), ISO_E_STATE);
    EXPECT(iso_get_tpdu_size(c, &tpdu), ISO_E_STATE);
    EXPECT(iso_check_connection(c), 0);
    EXPECT(iso_disconnect(c), ISO_OK);
    EXPECT(iso_set_tpdu_size(c, 512), ISO_OK);
    EXPECT(iso_set_max_message(c, 128), ISO_OK);
    /* The server side sees the close once its buffered data is gone. */
    EXPECT(iso_recv(s, buf, sizeof buf, &n, 5000), ISO_E_CLOSED);
    EXPECT(iso_check_connection(s), 0);
    EXPECT(iso_send(s, msg, 4), ISO_E_CLOSED);
    iso_destroy(s);

    s = connect_pair(l, c);
    EXPECT(iso_get_tpdu_size(c, &tpdu), ISO_OK);
    EXPECT_TRUE(tpdu == 512);
    /* A received message above our maximum message (128): TOO_LARGE, the connection closes. */
    EXPECT(iso_send(s, msg, 1000), ISO_OK);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_E_TOO_LARGE);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_STATE);
    EXPECT(iso_send(c, msg, 4), ISO_E_STATE);
    EXPECT(iso_check_connection(c), 0);
    iso_destroy(s);

    /* The peer sends two messages and goes away: both are read, then CLOSED. */
    begin("peer closes");
    EXPECT(iso_set_max_message(c, 65536), ISO_OK);
    s = connect_pair(l, c);
    EXPECT(iso_send(s, msg, 100), ISO_OK);
    EXPECT(iso_send(s, msg + 100, 200), ISO_OK);
    iso_destroy(s);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 100 && memcmp(buf, msg, 100) == 0);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 200 && memcmp(buf, msg + 100, 200) == 0);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_E_CLOSED);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 0), ISO_E_CLOSED);
    EXPECT(iso_poll(c, 0), ISO_E_CLOSED);
    EXPECT(iso_check_connection(c), 0);
    EXPECT(iso_send(c, msg, 4), ISO_E_CLOSED);
    /* iso_connect would now replace the ended connection (tests/scripted checks that); here
       the listener must see no stray handshake, so the handle is disconnected instead. */
    EXPECT(iso_disconnect(c), ISO_OK);

    /* An accepted connection outlives its listener. */
    begin("listener destroyed under an accepted connection");
    s = connect_pair(l, c);
    iso_listener_destroy(l);
    EXPECT(iso_send(c, msg, 64), ISO_OK);
    EXPECT(iso_recv(s, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 64 && memcmp(buf, msg, 64) == 0);
    EXPECT(iso_send(s, msg, 32), ISO_OK);
    EXPECT(iso_recv(c, buf, sizeof buf, &n, 5000), ISO_OK);
    EXPECT_TRUE(n == 32);
    iso_destroy(s);
    iso_destroy(c); /* destroyed while connected */
}

/* ------------------------------------------------------------------------------------------ */
/* Connect failures, and setters racing a connect                                               */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    iso_conn *c;
    uint32_t timeout_ms;
    atomic_int started;
    int32_t rc;
    double elapsed_ms;
} connect_job;

static void *connect_thread(void *arg) {
    connect_job *j = (connect_job *)arg;
    double t0 = now_ms();
    j->started = 1;
    j->rc = iso_connect(j->c, j->timeout_ms);
    j->elapsed_ms = now_ms() - t0;
    return NULL;
}

static void connect_failures(void) {
    iso_listener *l;
    iso_conn *c;
    uint16_t closed_port;
    char text[512];
    connect_job j;
    pthread_t t;

    begin("connect failures");
    /* A port nobody listens on. */
    l = listen_local();
    closed_port = port_of(l);
    iso_listener_destroy(l);
    if (iso_create("127.0.0.1", closed_port, &c) != ISO_OK) die("iso_create");
    EXPECT(iso_connect(c, 3000), ISO_E_REFUSED);
    EXPECT(iso_last_error(c, text, sizeof text, NULL), ISO_OK);
    EXPECT_TRUE(strcmp(text, "no error") != 0);
    {
        int32_t os = 0;
        EXPECT(iso_last_os_error(c, &os), ISO_OK);
        EXPECT_TRUE(os == ECONNREFUSED);
    }
    EXPECT(iso_check_connection(c), 0);
    EXPECT(iso_send(c, (const uint8_t *)"x", 1), ISO_E_STATE);
    iso_destroy(c);

    /* A listener that never accepts: TCP connects, the CC never comes. */
    l = listen_local();
    c = client_for(l);
    EXPECT(iso_connect(c, 0), ISO_E_WOULD_BLOCK);
    EXPECT(iso_send(c, (const uint8_t *)"x", 1), ISO_E_STATE);
    j.c = c;
    j.timeout_ms = 1500;
    j.started = 0;
    j.rc = 1;
    if (pthread_create(&t, NULL, connect_thread, &j) != 0) die("pthread_create");
    while (!j.started) sleep_ms(1);
    sleep_ms(300);
    /* While connecting: setters and a second connect are refused. */
    EXPECT(iso_set_tpdu_size(c, 512), ISO_E_STATE);
    EXPECT(iso_set_tsap(c, 0x0100, 0x0102), ISO_E_STATE);
    EXPECT(iso_connect(c, 100), ISO_E_STATE);
    pthread_join(t, NULL);
    EXPECT_TRUE(j.rc == ISO_E_TIMEOUT);
    check(j.elapsed_ms >= 1400 && j.elapsed_ms < 1500 + PROMPT_MS, "connect deadline 1500 ms took %.0f ms",
          j.elapsed_ms);
    EXPECT(iso_set_tpdu_size(c, 512), ISO_OK); /* usable again */
    iso_destroy(c);
    iso_listener_destroy(l);
}

/* ------------------------------------------------------------------------------------------ */
/* A CR filter that returns nonsense                                                            */
/* ------------------------------------------------------------------------------------------ */

static int32_t verdict_filter(void *user, const uint8_t *calling, size_t calling_len, const uint8_t *called,
                              size_t called_len) {
    (void)calling;
    (void)calling_len;
    (void)called;
    (void)called_len;
    return atomic_load((atomic_int *)user);
}

static void filters(void) {
    static const struct {
        int32_t verdict;
        const char *reason;
    } cases[] = {{0x81, "0x81"}, {-5, "0x03"}, {256, "0x03"}, {INT32_MIN, "0x03"}, {1, "0x01"}, {255, "0xFF"}};
    iso_listener *l = listen_local();
    iso_conn *c = client_for(l);
    atomic_int verdict;
    uint64_t refused = 99;
    char text[512];
    size_t i;
    accept_job j;
    pthread_t t;

    begin("CR filter verdicts");
    atomic_init(&verdict, 0);
    EXPECT(iso_listener_set_filter(l, verdict_filter, &verdict), ISO_OK);
    /* One accept call sees every refused CR and returns with the first accepted one. */
    j.l = l;
    j.timeout_ms = 60000;
    j.out = NULL;
    j.rc = 1;
    if (pthread_create(&t, NULL, accept_thread, &j) != 0) die("pthread_create");
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        atomic_store(&verdict, cases[i].verdict);
        EXPECT(iso_connect(c, 20000), ISO_E_REJECTED);
        iso_last_error(c, text, sizeof text, NULL);
        check(strstr(text, cases[i].reason) != NULL, "verdict %ld: last error \"%s\" lacks reason %s",
              (long)cases[i].verdict, text, cases[i].reason);
    }
    EXPECT(iso_listener_refused_count(l, &refused), ISO_OK);
    EXPECT_TRUE(refused == sizeof cases / sizeof cases[0]);
    /* Documented: a refused CR is "counted in iso_listener_refused_count and described by
       iso_listener_last_error; the wait goes on" - so also while iso_accept still waits. */
    EXPECT(iso_listener_last_error(l, text, sizeof text, NULL), ISO_OK);
    check(strstr(text, "0xFF") != NULL, "while iso_accept waits, after %llu refusals, the listener's last error is \"%s\"",
          (unsigned long long)refused, text);
    /* Removing the filter while iso_accept waits: the next client gets in. */
    EXPECT(iso_listener_set_filter(l, NULL, NULL), ISO_OK);
    EXPECT(iso_connect(c, 20000), ISO_OK);
    pthread_join(t, NULL);
    check(j.rc == ISO_OK && j.out != NULL, "accept after the refusals: %s", code_name(j.rc));
    EXPECT(iso_listener_last_error(l, text, sizeof text, NULL), ISO_OK);
    check(strstr(text, "0xFF") != NULL, "after iso_accept returned, the listener's last error is \"%s\"", text);
    EXPECT(iso_check_connection(c), 1);
    iso_destroy(j.out);
    iso_destroy(c);
    iso_listener_destroy(l);
}

/* ------------------------------------------------------------------------------------------ */
/* iso_disconnect from another thread wakes a blocked iso_recv, iso_poll and iso_send            */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    iso_conn *c;
    int what; /* 0 recv, 1 poll, 2 send until blocked */
    atomic_int started;
    atomic_long progress;
    int32_t rc;
    double returned_at;
} blocked_job;

static void *blocked_thread(void *arg) {
    blocked_job *j = (blocked_job *)arg;
    static uint8_t rx[70000];
    size_t n;
    j->started = 1;
    if (j->what == 0) {
        j->rc = iso_recv(j->c, rx, sizeof rx, &n, 60000);
    } else if (j->what == 1) {
        j->rc = iso_poll(j->c, 60000);
    } else {
        uint8_t *m = (uint8_t *)calloc(1, 65536);
        if (!m) die("calloc");
        for (;;) {
            j->rc = iso_send(j->c, m, 65536);
            if (j->rc != ISO_OK) break;
            j->progress++;
        }
        free(m);
    }
    j->returned_at = now_ms();
    return NULL;
}

static void disconnect_wakes(void) {
    static const char *names[] = {"iso_recv", "iso_poll", "iso_send"};
    int what;
    begin("iso_disconnect from another thread");
    for (what = 0; what < 3; what++) {
        iso_listener *l = listen_local();
        iso_conn *c = client_for(l), *s;
        blocked_job j;
        pthread_t t;
        double t0;
        if (what == 2) EXPECT(iso_set_send_timeout(c, 60000), ISO_OK);
        s = connect_pair(l, c);
        j.c = c;
        j.what = what;
        j.started = 0;
        j.progress = 0;
        j.rc = 1;
        j.returned_at = 0;
        if (pthread_create(&t, NULL, blocked_thread, &j) != 0) die("pthread_create");
        while (!j.started) sleep_ms(1);
        if (what == 2) {
            /* Wait until the sends stop making progress: the socket buffers are full. */
            long last = -1;
            while (j.progress != last) {
                last = j.progress;
                sleep_ms(300);
            }
        } else {
            sleep_ms(300);
        }
        t0 = now_ms();
        EXPECT(iso_disconnect(c), ISO_OK);
        pthread_join(t, NULL);
        check(j.rc == ISO_E_STATE, "%s blocked during iso_disconnect returned %d %s, expected ISO_E_STATE",
              names[what], (int)j.rc, code_name(j.rc));
        check(j.returned_at - t0 < PROMPT_MS, "%s returned %.0f ms after iso_disconnect", names[what],
              j.returned_at - t0);
        if (!quiet)
            printf("   %s returned %.1f ms after iso_disconnect%s\n", names[what], j.returned_at - t0,
                   what == 2 ? " (after filling the socket buffers)" : "");
        EXPECT(iso_check_connection(c), 0);
        iso_destroy(s);
        iso_destroy(c);
        iso_listener_destroy(l);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrency: a sender and a receiver on one connection, the peer echoing                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct {
    iso_conn *c;
    long count;     /* messages to handle */
    int tag;        /* sender: tag of the messages made */
    int poll_every; /* receiver: call iso_poll before every n-th receive (0: never) */
    long done;
    long bad;
    int32_t rc;
    /* two-receiver mode: shared state */
    pthread_mutex_t *seen_lock;
    unsigned char *seen; /* [tag 1..2][seq] */
    long *seen_total;
    long expect_total;
} stream_job;

static void *sender(void *arg) {
    stream_job *j = (stream_job *)arg;
    uint8_t buf[BIG_MESSAGE];
    long i;
    j->rc = ISO_OK;
    for (i = 0; i < j->count; i++) {
        size_t len = make_msg(buf, (uint32_t)j->tag, (uint32_t)i);
        int32_t rc = iso_send(j->c, buf, len);
        if (rc != ISO_OK) {
            j->rc = rc;
            break;
        }
        j->done++;
    }
    return NULL;
}

/* Receives `count` messages in order (tag 0, seq 0, 1, ...) and checks each. */
static void *ordered_receiver(void *arg) {
    stream_job *j = (stream_job *)arg;
    uint8_t buf[BIG_MESSAGE + 16];
    long i;
    j->rc = ISO_OK;
    for (i = 0; i < j->count; i++) {
        size_t n = 0;
        uint32_t tag, seq;
        int32_t rc;
        if (j->poll_every && i % j->poll_every == 0) {
            rc = iso_poll(j->c, 20000);
            if (rc != 1) {
                j->rc = rc == 0 ? ISO_E_TIMEOUT : rc;
                break;
            }
        }
        rc = iso_recv(j->c, buf, sizeof buf, &n, 20000);
        if (rc != ISO_OK) {
            j->rc = rc;
            break;
        }
        if (!intact_msg(buf, n, &tag, &seq) || tag != (uint32_t)j->tag || seq != (uint32_t)i) {
            if (j->bad++ < 5) printf("FAIL [%s] message %ld: %zu bytes, tag %u, seq %u\n", section, i, n, tag, seq);
        }
        j->done++;
    }
    return NULL;
}

/* The server side: receives every message, checks it and the per-tag order, sends it back. */
static void *echo(void *arg) {
    stream_job *j = (stream_job *)arg;
    uint8_t buf[BIG_MESSAGE + 16];
    uint32_t next[3] = {0, 0, 0};
    long i;
    j->rc = ISO_OK;
    for (i = 0; i < j->count; i++) {
        size_t n = 0;
        uint32_t tag = 0, seq = 0;
        int32_t rc = iso_recv(j->c, buf, sizeof buf, &n, 20000);
        if (rc != ISO_OK) {
            j->rc = rc;
            break;
        }
        if (!intact_msg(buf, n, &tag, &seq) || tag > 2 || seq != next[tag]) {
            if (j->bad++ < 5)
                printf("FAIL [%s] echo: message %ld: %zu bytes, tag %u, seq %u (expected seq %u)\n", section, i, n,
                       tag, seq, tag <= 2 ? next[tag] : 0);
        } else {
            next[tag]++;
        }
        rc = iso_send(j->c, buf, n);
        if (rc != ISO_OK) {
            j->rc = rc;
            break;
        }
        j->done++;
    }
    return NULL;
}

/* One of two receivers sharing a connection: records each (tag, seq) seen. */
static void *shared_receiver(void *arg) {
    stream_job *j = (stream_job *)arg;
    uint8_t buf[BIG_MESSAGE + 16];
    j->rc = ISO_OK;
    for (;;) {
        size_t n = 0;
        uint32_t tag = 0, seq = 0;
        int32_t rc;
        pthread_mutex_lock(j->seen_lock);
        if (*j->seen_total >= j->expect_total) {
            pthread_mutex_unlock(j->seen_lock);
            break;
        }
        pthread_mutex_unlock(j->seen_lock);
        rc = iso_recv(j->c, buf, sizeof buf, &n, 200);
        if (rc == ISO_E_TIMEOUT) continue;
        if (rc != ISO_OK) {
            j->rc = rc;
            break;
        }
        pthread_mutex_lock(j->seen_lock);
        if (!intact_msg(buf, n, &tag, &seq) || tag < 1 || tag > 2 || (long)seq >= j->count ||
            j->seen[(tag - 1) * (size_t)j->count + seq]++) {
            if (j->bad++ < 5) printf("FAIL [%s] receiver: %zu bytes, tag %u, seq %u\n", section, n, tag, seq);
        }
        (*j->seen_total)++;
        pthread_mutex_unlock(j->seen_lock);
        j->done++;
    }
    return NULL;
}

static void concurrency(long messages) {
    iso_listener *l = listen_local();
    iso_conn *c = client_for(l), *s;
    stream_job tx, rx, ec;
    pthread_t ttx, trx, tec;
    double t0, ms;

    begin("concurrent send and receive on one connection");
    s = connect_pair(l, c);
    memset(&tx, 0, sizeof tx);
    memset(&rx, 0, sizeof rx);
    memset(&ec, 0, sizeof ec);
    tx.c = rx.c = c;
    ec.c = s;
    tx.count = rx.count = ec.count = messages;
    tx.tag = rx.tag = 0;
    rx.poll_every = 10;
    t0 = now_ms();
    if (pthread_create(&tec, NULL, echo, &ec) != 0 || pthread_create(&trx, NULL, ordered_receiver, &rx) != 0 ||
        pthread_create(&ttx, NULL, sender, &tx) != 0)
        die("pthread_create");
    pthread_join(ttx, NULL);
    pthread_join(trx, NULL);
    pthread_join(tec, NULL);
    ms = now_ms() - t0;
    check(tx.rc == ISO_OK && tx.done == messages, "sender: %ld of %ld sent, last %s", tx.done, messages,
          code_name(tx.rc));
    check(ec.rc == ISO_OK && ec.done == messages && ec.bad == 0, "echo: %ld of %ld, %ld bad, last %s", ec.done,
          messages, ec.bad, code_name(ec.rc));
    check(rx.rc == ISO_OK && rx.done == messages && rx.bad == 0, "receiver: %ld of %ld, %ld bad, last %s", rx.done,
          messages, rx.bad, code_name(rx.rc));
    printf("   concurrent: %ld messages each way, content and order checked, in %.0f ms\n", messages, ms);

    /* Two senders and two receivers on the same client connection: whole messages, never
       interleaved; each sender's order kept (checked by the echo side). */
    begin("two senders and two receivers on one connection");
    {
        long per_sender = messages / 10 > 0 ? messages / 10 : 1;
        stream_job tx1, tx2, rx1, rx2, echo2;
        pthread_t t1, t2, t3, t4, t5;
        pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
        unsigned char *seen = (unsigned char *)calloc(2, (size_t)per_sender);
        long seen_total = 0, i, missing = 0;
        if (!seen) die("calloc");
        memset(&tx1, 0, sizeof tx1);
        tx1.c = c;
        tx1.count = per_sender;
        tx2 = tx1;
        tx1.tag = 1;
        tx2.tag = 2;
        memset(&echo2, 0, sizeof echo2);
        echo2.c = s;
        echo2.count = 2 * per_sender;
        memset(&rx1, 0, sizeof rx1);
        rx1.c = c;
        rx1.count = per_sender;
        rx1.seen_lock = &seen_lock;
        rx1.seen = seen;
        rx1.seen_total = &seen_total;
        rx1.expect_total = 2 * per_sender;
        rx2 = rx1;
        t0 = now_ms();
        if (pthread_create(&t1, NULL, echo, &echo2) != 0 || pthread_create(&t2, NULL, shared_receiver, &rx1) != 0 ||
            pthread_create(&t3, NULL, shared_receiver, &rx2) != 0 || pthread_create(&t4, NULL, sender, &tx1) != 0 ||
            pthread_create(&t5, NULL, sender, &tx2) != 0)
            die("pthread_create");
        pthread_join(t4, NULL);
        pthread_join(t5, NULL);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_join(t3, NULL);
        ms = now_ms() - t0;
        for (i = 0; i < 2 * per_sender; i++) missing += seen[i] != 1;
        check(tx1.rc == ISO_OK && tx2.rc == ISO_OK && tx1.done + tx2.done == 2 * per_sender, "senders: %ld + %ld sent",
              tx1.done, tx2.done);
        check(echo2.rc == ISO_OK && echo2.bad == 0 && echo2.done == 2 * per_sender,
              "echo: %ld handled, %ld bad or out of order, last %s", echo2.done, echo2.bad, code_name(echo2.rc));
        check(rx1.rc == ISO_OK && rx2.rc == ISO_OK && rx1.bad + rx2.bad == 0 && missing == 0,
              "receivers: %ld + %ld received, %ld bad, %ld missing or repeated, last %s / %s", rx1.done, rx2.done,
              rx1.bad + rx2.bad, missing, code_name(rx1.rc), code_name(rx2.rc));
        printf("   two senders, two receivers: %ld messages each way, in %.0f ms (receivers got %ld and %ld)\n",
               2 * per_sender, ms, rx1.done, rx2.done);
        free(seen);
        pthread_mutex_destroy(&seen_lock);
    }
    iso_destroy(s);
    iso_destroy(c);
    iso_listener_destroy(l);
}

int main(int argc, char **argv) {
    long messages = 100000;
    double t0 = now_ms();
    size_t i;
    int a;

    for (a = 1; a < argc; a++) {
        if (strcmp(argv[a], "--messages") == 0 && a + 1 < argc) {
            messages = strtol(argv[++a], NULL, 10);
            if (messages < 1) messages = 1;
        } else if (strcmp(argv[a], "--quiet") == 0) {
            quiet = 1;
        } else {
            fprintf(stderr, "usage: abuse [--messages N] [--quiet]\n");
            return 64;
        }
    }
    /* A hang fails the run instead of blocking the harness forever. */
    alarm(900);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("abuse: isotcp %s, %ld messages each way\n", iso_version(), messages);

    /* First, while this process has one thread: the checks run in forked children. */
    lengths();
    static_functions();
    create_and_destroy();
    null_pointers();
    setter_ranges();
    last_errors();
    wrong_state_unconnected();
    connected_pair();
    connect_failures();
    filters();
    disconnect_wakes();
    concurrency(messages);

    for (i = 0; i < n_covered; i++) printf("covers %s\n", covered[i]);
    printf("abuse: %ld checks, %ld failed, %.1f s\n", checks, failures, (now_ms() - t0) / 1e3);
    return failures ? 1 : 0;
}
