/*
 * s7_read: reads bytes of a data block from an S7 PLC (or an S7 server) over isotcp and prints
 * them in hex. Shows the whole client API in a program one can copy from.
 *
 *   s7_read HOST [--port P] [--rack R] [--slot S] [--tpdu N] [--db N] [--start B] [--size N]
 *           [--timeout MS]
 *
 * Exit status: 0 when the read succeeded, 1 on a transport error (the code's name and message are
 * printed), 2 when the PLC answered with an S7 error, 64 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isotcp.h"

static int usage(void) {
    fprintf(stderr, "usage: s7_read HOST [--port P] [--rack R] [--slot S] [--tpdu N] [--db N] "
                    "[--start B] [--size N] [--timeout MS]\n");
    return 64;
}

static int transport_error(const char *what, iso_conn *c, int32_t rc) {
    char msg[512] = "";
    if (c) iso_last_error(c, msg, sizeof msg, NULL);
    else iso_thread_last_error(msg, sizeof msg, NULL);
    fprintf(stderr, "s7_read: %s: %s (%d): %s\n", what, iso_strerror(rc), (int)rc, msg);
    return 1;
}

/* One S7 job: send it whole, receive its whole answer. */
static int32_t exchange(iso_conn *c, const uint8_t *req, size_t len, uint8_t *resp, size_t cap,
                        size_t *got, uint32_t timeout_ms) {
    int32_t rc = iso_send(c, req, len);
    if (rc != ISO_OK) return rc;
    return iso_recv(c, resp, cap, got, timeout_ms);
}

int main(int argc, char **argv) {
    const char *host;
    unsigned long port = 102, rack = 0, slot = 2, tpdu = 1024, db = 1, start = 0, size = 4, timeout = 3000;
    static const uint8_t setup[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
                                    0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0};
    uint8_t req[24] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01,
                       0x12, 0x0A, 0x10, 0x02, 0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00};
    static uint8_t resp[65536];
    iso_conn *c = NULL;
    uint16_t remote_tsap;
    uint32_t negotiated = 0;
    size_t got = 0, i, pdu;
    unsigned long bit_address;
    int32_t rc;
    int a;

    if (argc < 2 || argv[1][0] == '-') return usage();
    host = argv[1];
    for (a = 2; a + 1 < argc; a += 2) {
        unsigned long v = strtoul(argv[a + 1], NULL, 0);
        if (strcmp(argv[a], "--port") == 0) port = v;
        else if (strcmp(argv[a], "--rack") == 0) rack = v;
        else if (strcmp(argv[a], "--slot") == 0) slot = v;
        else if (strcmp(argv[a], "--tpdu") == 0) tpdu = v;
        else if (strcmp(argv[a], "--db") == 0) db = v;
        else if (strcmp(argv[a], "--start") == 0) start = v;
        else if (strcmp(argv[a], "--size") == 0) size = v;
        else if (strcmp(argv[a], "--timeout") == 0) timeout = v;
        else return usage();
    }
    if (a != argc || port == 0 || port > 65535 || rack > 7 || slot > 31 || db == 0 || db > 65535 ||
        size == 0 || size > 65535 || start > 0x1FFFFF)
        return usage();

    rc = iso_create(host, (uint16_t)port, &c);
    if (rc != ISO_OK) return transport_error("iso_create", NULL, rc);
    if ((rc = iso_s7_tsap(1, (uint8_t)rack, (uint8_t)slot, &remote_tsap)) != ISO_OK ||
        (rc = iso_set_tsap(c, 0x0100, remote_tsap)) != ISO_OK ||
        (rc = iso_set_tpdu_size(c, (uint32_t)tpdu)) != ISO_OK) {
        int r = transport_error("configure", c, rc);
        iso_destroy(c);
        return r;
    }
    rc = iso_connect(c, (uint32_t)timeout);
    if (rc != ISO_OK) {
        int r = transport_error("iso_connect", c, rc);
        iso_destroy(c);
        return r;
    }
    iso_get_tpdu_size(c, &negotiated);
    printf("connected to %s:%lu, remote TSAP %04X, TPDU %u\n", host, port, (unsigned)remote_tsap, (unsigned)negotiated);

    rc = exchange(c, setup, sizeof setup, resp, sizeof resp, &got, (uint32_t)timeout);
    if (rc != ISO_OK) {
        int r = transport_error("setup communication", c, rc);
        iso_destroy(c);
        return r;
    }
    if (got < 20 || resp[0] != 0x32 || resp[1] != 0x03 || resp[10] != 0 || resp[11] != 0) {
        fprintf(stderr, "s7_read: setup communication refused by the PLC\n");
        iso_destroy(c);
        return 2;
    }
    pdu = (size_t)resp[18] << 8 | resp[19];
    printf("S7 PDU size: %zu\n", pdu);

    /* ReadVar of `size` bytes at DB`db`.DBB`start` (address in bits). */
    req[16] = (uint8_t)(size >> 8);
    req[17] = (uint8_t)size;
    req[18] = (uint8_t)(db >> 8);
    req[19] = (uint8_t)db;
    bit_address = start * 8;
    req[21] = (uint8_t)(bit_address >> 16);
    req[22] = (uint8_t)(bit_address >> 8);
    req[23] = (uint8_t)bit_address;
    rc = exchange(c, req, sizeof req, resp, sizeof resp, &got, (uint32_t)timeout);
    if (rc != ISO_OK) {
        int r = transport_error("read", c, rc);
        iso_destroy(c);
        return r;
    }
    if (got < 18 || resp[1] != 0x03 || resp[10] != 0 || resp[11] != 0 || resp[14] != 0xFF || got != 18 + size) {
        fprintf(stderr, "s7_read: the PLC refused the read (%zu bytes back, item code %02X)\n", got,
                got > 14 ? resp[14] : 0);
        iso_destroy(c);
        return 2;
    }
    printf("DB%lu.DBB%lu, %lu bytes:", db, start, size);
    for (i = 0; i < size; i++) printf("%s%02X", i % 16 ? " " : "\n  ", resp[18 + i]);
    printf("\n");
    iso_disconnect(c);
    iso_destroy(c);
    return 0;
}
