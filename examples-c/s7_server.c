/*
 * A PLC simulator on isotcp's listener: serves DB1 (1024 bytes, byte i = i & 0xFF) and DB2
 * (1024 zero bytes, writable) to any number of S7 clients, one thread each.
 *
 *   s7_server [--port N] [--max-tpdu N] [--allow-tsap HEX]
 *
 * Prints "READY <port>" once listening, then one line per client, and stops when its standard
 * input reaches end of file (so a test harness that dies never leaves it running).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isotcp.h"
#include "s7_responder.h"

static s7_memory memory;
static uint8_t db1[1024], db2[1024];
static pthread_mutex_t memory_lock = PTHREAD_MUTEX_INITIALIZER;
static iso_listener *listener;

static void *serve(void *arg) {
    iso_conn *conn = (iso_conn *)arg;
    uint8_t req[65536], resp[65536];
    uint32_t tpdu = 0;
    long answered = 0;
    int32_t rc;
    iso_get_tpdu_size(conn, &tpdu);
    printf("client connected, TPDU %u\n", (unsigned)tpdu);
    fflush(stdout);
    for (;;) {
        size_t len = 0, n;
        rc = iso_recv(conn, req, sizeof req, &len, 60000);
        if (rc == ISO_E_TIMEOUT) continue;
        if (rc != ISO_OK) break;
        pthread_mutex_lock(&memory_lock);
        n = s7_answer(&memory, req, len, resp, sizeof resp);
        pthread_mutex_unlock(&memory_lock);
        if (n && (rc = iso_send(conn, resp, n)) != ISO_OK) break;
        answered += n != 0;
    }
    printf("client left after %ld requests: %s\n", answered, iso_strerror(rc));
    fflush(stdout);
    iso_destroy(conn);
    return NULL;
}

static void *acceptor(void *arg) {
    (void)arg;
    for (;;) {
        iso_conn *conn = NULL;
        pthread_t t;
        int32_t rc = iso_accept(listener, 1000, &conn);
        if (rc == ISO_E_TIMEOUT) continue;
        if (rc != ISO_OK) {
            char msg[256];
            iso_listener_last_error(listener, msg, sizeof msg, NULL);
            printf("accept: %s: %s\n", iso_strerror(rc), msg);
            fflush(stdout);
            continue;
        }
        if (pthread_create(&t, NULL, serve, conn) != 0) iso_destroy(conn);
        else pthread_detach(t);
    }
    return NULL;
}

static int hex_to_bytes(const char *hex, uint8_t *out, size_t cap, size_t *n) {
    size_t len = strlen(hex), i;
    if (len % 2 || len / 2 > cap || len == 0) return 0;
    for (i = 0; i < len / 2; i++) {
        char two[3] = {hex[2 * i], hex[2 * i + 1], 0};
        char *end;
        out[i] = (uint8_t)strtoul(two, &end, 16);
        if (*end) return 0;
    }
    *n = len / 2;
    return 1;
}

int main(int argc, char **argv) {
    uint16_t port = 0;
    pthread_t t;
    int i, c;
    size_t k;
    for (k = 0; k < sizeof db1; k++) db1[k] = (uint8_t)k;
    memory.dbs[0].number = 1; memory.dbs[0].data = db1; memory.dbs[0].size = sizeof db1;
    memory.dbs[1].number = 2; memory.dbs[1].data = db2; memory.dbs[1].size = sizeof db2;
    memory.count = 2;
    memory.max_pdu = 480;

    for (i = 1; i < argc; i++)
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = (uint16_t)atoi(argv[++i]);
    if (iso_listen("127.0.0.1", port, &listener) != ISO_OK) {
        char msg[256];
        iso_thread_last_error(msg, sizeof msg, NULL);
        fprintf(stderr, "s7_server: %s\n", msg);
        return 1;
    }
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--max-tpdu") == 0 && i + 1 < argc) {
            iso_listener_set_max_tpdu(listener, (uint32_t)atoi(argv[++i]));
        } else if (strcmp(argv[i], "--allow-tsap") == 0 && i + 1 < argc) {
            uint8_t tsap[32];
            size_t n;
            if (!hex_to_bytes(argv[++i], tsap, sizeof tsap, &n)) return 2;
            iso_listener_allow_tsap(listener, tsap, n);
        }
    }
    iso_listener_port(listener, &port);
    printf("READY %u\n", (unsigned)port);
    fflush(stdout);
    if (pthread_create(&t, NULL, acceptor, NULL) != 0) return 1;
    while ((c = getchar()) != EOF) {
    }
    return 0;
}
