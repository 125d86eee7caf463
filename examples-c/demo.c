/*
 * isotcp demo: a PLC-like S7 responder on isotcp's listener, and a client talking to it through
 * isotcp's client API, in one process. Prints every step: the negotiated TPDU size, the TSAPs,
 * each request and its round-trip time.
 *
 *   demo [--tpdu N]      (default 1024; try 256 to see a read answer segmented into DTs)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isotcp.h"
#include "s7_responder.h"

static iso_listener *listener;
static s7_memory memory;
static uint8_t db1[1024];

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void fail(const char *what, iso_conn *c, int32_t rc) {
    char msg[512];
    if (c) iso_last_error(c, msg, sizeof msg, NULL);
    else iso_thread_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "demo: %s failed: %s (%d): %s\n", what, iso_strerror(rc), (int)rc, msg);
    exit(1);
}

static void print_tsap(const char *label, const uint8_t *t, size_t n) {
    size_t i;
    printf("%s ", label);
    for (i = 0; i < n; i++) printf("%02X", t[i]);
    printf("\n");
}

/* The PLC side: accept one client and answer its S7 jobs until it disconnects. */
static void *plc(void *arg) {
    iso_conn *conn = NULL;
    uint8_t tsap[32];
    size_t n;
    uint32_t tpdu;
    int32_t rc, end = 0;
    long answered;
    (void)arg;
    rc = iso_accept(listener, 5000, &conn);
    if (rc != ISO_OK) fail("iso_accept", NULL, rc);
    iso_get_tpdu_size(conn, &tpdu);
    printf("[plc]    accepted a client: TPDU %u\n", (unsigned)tpdu);
    if (iso_get_calling_tsap(conn, tsap, sizeof tsap, &n) == ISO_OK) print_tsap("[plc]    calling TSAP", tsap, n);
    if (iso_get_remote_tsap(conn, tsap, sizeof tsap, &n) == ISO_OK) print_tsap("[plc]    called TSAP ", tsap, n);
    answered = s7_serve(conn, &memory, &end);
    printf("[plc]    client left after %ld requests (%s)\n", answered, iso_strerror(end));
    iso_destroy(conn);
    return NULL;
}

/* Sends one S7 job and waits for its answer; prints the round trip. */
static size_t request(iso_conn *c, const char *what, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
    size_t got = 0;
    double t0 = now_us();
    int32_t rc = iso_send(c, req, len);
    if (rc != ISO_OK) fail("iso_send", c, rc);
    rc = iso_recv(c, resp, cap, &got, 5000);
    if (rc != ISO_OK) fail("iso_recv", c, rc);
    printf("[client] %-34s %5zu bytes out, %5zu back, round trip %7.1f us\n", what, len, got, now_us() - t0);
    return got;
}

int main(int argc, char **argv) {
    static const uint8_t setup[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
                                    0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0};
    uint8_t read_req[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01,
                          0x12, 0x0A, 0x10, 0x02, 0x00, 0x04, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00};
    uint8_t resp[4096];
    uint32_t tpdu_offer = 1024, tpdu = 0;
    uint16_t port = 0, remote_tsap = 0;
    iso_conn *client = NULL;
    pthread_t plc_thread;
    size_t i, n;
    int32_t rc;

    if (argc == 3 && strcmp(argv[1], "--tpdu") == 0) tpdu_offer = (uint32_t)strtoul(argv[2], NULL, 10);
    for (i = 0; i < sizeof db1; i++) db1[i] = (uint8_t)i;
    memory.dbs[0].number = 1;
    memory.dbs[0].data = db1;
    memory.dbs[0].size = sizeof db1;
    memory.count = 1;
    memory.max_pdu = 480;

    printf("isotcp %s demo\n", iso_version());
    rc = iso_listen("127.0.0.1", 0, &listener);
    if (rc != ISO_OK) fail("iso_listen", NULL, rc);
    iso_listener_port(listener, &port);
    printf("[plc]    listening on 127.0.0.1:%u, DB1 = 1024 bytes (byte i = i & 0xFF)\n", (unsigned)port);
    if (pthread_create(&plc_thread, NULL, plc, NULL) != 0) return 1;

    rc = iso_create("127.0.0.1", port, &client);
    if (rc != ISO_OK) fail("iso_create", NULL, rc);
    iso_s7_tsap(1, 0, 2, &remote_tsap);
    if ((rc = iso_set_tsap(client, 0x0100, remote_tsap)) != ISO_OK) fail("iso_set_tsap", client, rc);
    if ((rc = iso_set_tpdu_size(client, tpdu_offer)) != ISO_OK) fail("iso_set_tpdu_size", client, rc);
    {
        double t0 = now_us();
        rc = iso_connect(client, 3000);
        if (rc != ISO_OK) fail("iso_connect", client, rc);
        iso_get_tpdu_size(client, &tpdu);
        printf("[client] connected (TCP + CR/CC) in %.1f us: local TSAP 0100, remote TSAP %04X (rack 0, slot 2), "
               "TPDU offered %u, negotiated %u\n", now_us() - t0, (unsigned)remote_tsap, (unsigned)tpdu_offer, (unsigned)tpdu);
    }

    n = request(client, "S7 setup communication (PDU 480)", setup, sizeof setup, resp, sizeof resp);
    if (n < 20) { fprintf(stderr, "demo: short setup answer\n"); return 1; }
    printf("[client]   S7 PDU size granted: %u\n", (unsigned)(resp[18] << 8 | resp[19]));

    n = request(client, "S7 read DB1.DBB0, 4 bytes", read_req, sizeof read_req, resp, sizeof resp);
    if (n != 22 || resp[14] != 0xFF) { fprintf(stderr, "demo: bad read answer\n"); return 1; }
    printf("[client]   DB1.DBB0..3 = %02X %02X %02X %02X\n", resp[18], resp[19], resp[20], resp[21]);

    /* A read of 400 bytes at DB1.DBB100: at TPDU 256 the answer arrives in two DTs. */
    read_req[16] = 0x01; read_req[17] = 0x90;            /* count 400 */
    read_req[22] = 0x03; read_req[23] = 0x20;            /* address 100 * 8 */
    n = request(client, "S7 read DB1.DBB100, 400 bytes", read_req, sizeof read_req, resp, sizeof resp);
    if (n != 418 || resp[14] != 0xFF || resp[18] != 100 || resp[417] != (uint8_t)(499 & 0xFF)) {
        fprintf(stderr, "demo: bad large read answer\n");
        return 1;
    }
    printf("[client]   DB1.DBB100..499 = %02X %02X ... %02X (checked, %s)\n", resp[18], resp[19], resp[417],
           tpdu < 421 ? "reassembled from several DTs" : "one DT");

    printf("[client] connection alive: %d\n", (int)iso_check_connection(client));
    iso_disconnect(client);
    printf("[client] disconnected\n");
    pthread_join(plc_thread, NULL);
    iso_destroy(client);
    iso_listener_destroy(listener);
    printf("demo finished: all answers checked\n");
    return 0;
}
