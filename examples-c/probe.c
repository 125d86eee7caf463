/*
 * isotcp-probe: what an S7 device on the network answers, for the engineer at the plant.
 *
 *   isotcp-probe HOST [--port P] [--rack R --slot S | --tsap LOCAL:REMOTE] [--tpdu N]
 *                     [--timeout MS] [--scan] [--no-s7]
 *
 * Without --scan: reports whether TCP reaches the device, its COTP answer (CC with the
 * negotiated TPDU size and TSAPs, or DR/ER with the reason, or a reset), the time of TCP connect
 * plus CR/CC, and (unless --no-s7) the round-trip time of an S7 "setup communication".
 * With --scan: tries the usual connection types, racks and slots (and the S7CommPlus and LOGO!
 * TSAPs) and lists which remote TSAPs the device accepts.
 *
 * Exit status: 0 when the COTP connection (or, with --scan, at least one) was accepted; 1 when
 * TCP works but COTP was refused; 2 when TCP does not reach the device; 64 on a usage error.
 * TSAPs are hex: --tsap 0100:0102, or a string in quotes: --tsap 0600:SIMATIC-ROOT-HMI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isotcp.h"

typedef struct {
    uint8_t bytes[32];
    size_t len;
} tsap_t;

typedef enum { ACCEPTED, REFUSED_COTP, NO_TCP } outcome_t;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int usage(void) {
    fprintf(stderr, "usage: isotcp-probe HOST [--port P] [--rack R --slot S | --tsap LOCAL:REMOTE] "
                    "[--tpdu N] [--timeout MS] [--scan] [--no-s7]\n");
    return 64;
}

/* Hex digits ("0102") become bytes; anything else is taken as text ("SIMATIC-ROOT-HMI"). */
static int parse_tsap(const char *s, size_t n, tsap_t *out) {
    size_t i;
    int hex = n > 0 && n % 2 == 0 && n <= 64;
    for (i = 0; hex && i < n; i++)
        if (!strchr("0123456789abcdefABCDEF", s[i])) hex = 0;
    if (hex) {
        for (i = 0; i < n / 2; i++) {
            char pair[3] = {s[2 * i], s[2 * i + 1], 0};
            out->bytes[i] = (uint8_t)strtoul(pair, NULL, 16);
        }
        out->len = n / 2;
        return 0;
    }
    if (n == 0 || n > sizeof out->bytes) return -1;
    memcpy(out->bytes, s, n);
    out->len = n;
    return 0;
}

static void print_tsap(const uint8_t *b, size_t n) {
    size_t i, text = n > 2;
    for (i = 0; i < n && text; i++)
        if (b[i] < 0x20 || b[i] > 0x7E) text = 0;
    if (text) printf("\"%.*s\"", (int)n, (const char *)b);
    else
        for (i = 0; i < n; i++) printf("%02X", b[i]);
}

static tsap_t tsap16(uint16_t v) {
    tsap_t t;
    t.bytes[0] = (uint8_t)(v >> 8);
    t.bytes[1] = (uint8_t)v;
    t.len = 2;
    return t;
}

/* One attempt: connect with these TSAPs, describe the answer in `what`. */
static outcome_t attempt(const char *host, uint16_t port, const tsap_t *local, const tsap_t *remote, uint32_t tpdu,
                         uint32_t timeout, int quiet, int s7, char *what, size_t cap) {
    iso_conn *c = NULL;
    char msg[512] = "";
    double t0, connect_ms;
    int32_t rc = iso_create(host, port, &c);
    outcome_t result;
    if (rc != ISO_OK) {
        iso_thread_last_error(msg, sizeof msg, NULL);
        snprintf(what, cap, "%s", msg);
        return NO_TCP;
    }
    iso_set_tsap_bytes(c, local->bytes, local->len, remote->bytes, remote->len);
    iso_set_tpdu_size(c, tpdu);
    t0 = now_ms();
    rc = iso_connect(c, timeout);
    connect_ms = now_ms() - t0;
    iso_last_error(c, msg, sizeof msg, NULL);
    switch (rc) {
    case ISO_OK: {
        uint32_t negotiated = 0;
        iso_get_tpdu_size(c, &negotiated);
        snprintf(what, cap, "CC, TPDU %u, %.2f ms", (unsigned)negotiated, connect_ms);
        if (!quiet) {
            uint8_t t[32];
            size_t n = 0;
            printf("  TCP    reachable\n");
            printf("  COTP   CC: TPDU %u negotiated (offered %u), TSAPs ", (unsigned)negotiated, (unsigned)tpdu);
            if (iso_get_calling_tsap(c, t, sizeof t, &n) == ISO_OK) print_tsap(t, n);
            printf(" -> ");
            if (iso_get_remote_tsap(c, t, sizeof t, &n) == ISO_OK) print_tsap(t, n);
            printf("; TCP + CR/CC in %.2f ms\n", connect_ms);
        }
        if (!quiet && s7) {
            static const uint8_t setup[] = {0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
                                            0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0};
            uint8_t resp[1024];
            size_t got = 0;
            double t1 = now_ms();
            rc = iso_send(c, setup, sizeof setup);
            if (rc == ISO_OK) rc = iso_recv(c, resp, sizeof resp, &got, timeout);
            if (rc == ISO_OK && got >= 20 && resp[0] == 0x32 && resp[1] == 0x03 && resp[10] == 0 && resp[11] == 0)
                printf("  S7     setup communication: PDU %u, round trip %.2f ms\n",
                       (unsigned)(resp[18] << 8 | resp[19]), now_ms() - t1);
            else if (rc == ISO_OK)
                printf("  S7     setup communication refused or not S7 (%zu bytes back)\n", got);
            else {
                iso_last_error(c, msg, sizeof msg, NULL);
                printf("  S7     no answer to setup communication: %s: %s\n", iso_strerror(rc), msg);
            }
        }
        result = ACCEPTED;
        break;
    }
    case ISO_E_REJECTED:
    case ISO_E_CLOSED:
    case ISO_E_PROTOCOL:
        snprintf(what, cap, "%s", msg);
        if (!quiet) {
            printf("  TCP    reachable\n");
            printf("  COTP   %s: %s\n", rc == ISO_E_REJECTED ? "refused" : rc == ISO_E_CLOSED ? "no CC" : "bad answer",
                   msg);
        }
        result = REFUSED_COTP;
        break;
    case ISO_E_TIMEOUT:
        snprintf(what, cap, "%s", msg);
        /* The message says which phase ran out of time. */
        result = strstr(msg, "COTP") ? REFUSED_COTP : NO_TCP;
        if (!quiet) {
            printf("  TCP    %s\n", result == NO_TCP ? "no answer (host down, filtered, or wrong address)" : "reachable");
            if (result == REFUSED_COTP) printf("  COTP   no answer to the CR within %u ms\n", (unsigned)timeout);
        }
        break;
    default:
        snprintf(what, cap, "%s", msg);
        if (!quiet) printf("  TCP    %s: %s\n", iso_strerror(rc), msg);
        result = NO_TCP;
    }
    iso_destroy(c);
    return result;
}

static const char *type_name(unsigned t) {
    return t == 1 ? "PG" : t == 2 ? "OP" : "S7 basic";
}

static int scan(const char *host, uint16_t port, uint32_t tpdu, uint32_t timeout) {
    static const unsigned types[] = {1, 2, 3};
    static const unsigned racks[] = {0, 1};
    static const unsigned slots[] = {0, 1, 2, 3, 4};
    char what[512];
    tsap_t local = tsap16(0x0100), remote;
    int accepted = 0, tcp = 1;
    size_t a, b, k;
    printf("scanning %s:%u (timeout %u ms per attempt)\n", host, (unsigned)port, (unsigned)timeout);
    for (a = 0; a < sizeof types / sizeof *types && tcp; a++)
        for (b = 0; b < sizeof racks / sizeof *racks && tcp; b++)
            for (k = 0; k < sizeof slots / sizeof *slots && tcp; k++) {
                uint16_t t = 0;
                outcome_t o;
                iso_s7_tsap((uint8_t)types[a], (uint8_t)racks[b], (uint8_t)slots[k], &t);
                remote = tsap16(t);
                o = attempt(host, port, &local, &remote, tpdu, timeout, 1, 0, what, sizeof what);
                printf("  %04X  %-8s rack %u slot %u  %s  %s\n", (unsigned)t, type_name(types[a]), racks[b], slots[k],
                       o == ACCEPTED ? "ACCEPTED" : "refused ", what);
                accepted += o == ACCEPTED;
                if (o == NO_TCP) tcp = 0;
            }
    if (tcp) {
        static const struct { uint16_t local; const char *remote; const char *label; } extra[] = {
            {0x0600, "SIMATIC-ROOT-HMI", "S7CommPlus HMI"},
            {0x0100, "0200", "LOGO! (0200)"},
            {0x0200, "0300", "LOGO! (0300)"},
            {0x1000, "1001", "S7-200 CP 243-1"},
        };
        for (a = 0; a < sizeof extra / sizeof *extra; a++) {
            outcome_t o;
            local = tsap16(extra[a].local);
            parse_tsap(extra[a].remote, strlen(extra[a].remote), &remote);
            o = attempt(host, port, &local, &remote, tpdu, timeout, 1, 0, what, sizeof what);
            printf("  %-20s %04X -> ", extra[a].label, (unsigned)extra[a].local);
            print_tsap(remote.bytes, remote.len);
            printf("  %s  %s\n", o == ACCEPTED ? "ACCEPTED" : "refused ", what);
            accepted += o == ACCEPTED;
        }
    }
    if (!tcp) {
        printf("TCP does not reach %s:%u: %s\n", host, (unsigned)port, what);
        return 2;
    }
    printf("%d TSAP%s accepted\n", accepted, accepted == 1 ? "" : "s");
    return accepted ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *host;
    unsigned long port = 102, rack = 0, slot = 2, tpdu = 1024, timeout = 2000;
    int do_scan = 0, s7 = 1, have_tsap = 0, a;
    tsap_t local = tsap16(0x0100), remote;
    char what[512];
    uint16_t t = 0;

    if (argc < 2 || argv[1][0] == '-') return usage();
    host = argv[1];
    for (a = 2; a < argc; a++) {
        const char *opt = argv[a], *val = a + 1 < argc ? argv[a + 1] : NULL;
        if (strcmp(opt, "--scan") == 0) { do_scan = 1; continue; }
        if (strcmp(opt, "--no-s7") == 0) { s7 = 0; continue; }
        if (!val) return usage();
        a++;
        if (strcmp(opt, "--port") == 0) port = strtoul(val, NULL, 0);
        else if (strcmp(opt, "--rack") == 0) rack = strtoul(val, NULL, 0);
        else if (strcmp(opt, "--slot") == 0) slot = strtoul(val, NULL, 0);
        else if (strcmp(opt, "--tpdu") == 0) tpdu = strtoul(val, NULL, 0);
        else if (strcmp(opt, "--timeout") == 0) timeout = strtoul(val, NULL, 0);
        else if (strcmp(opt, "--tsap") == 0) {
            const char *colon = strchr(val, ':');
            if (!colon || parse_tsap(val, (size_t)(colon - val), &local) != 0 ||
                parse_tsap(colon + 1, strlen(colon + 1), &remote) != 0)
                return usage();
            have_tsap = 1;
        } else return usage();
    }
    if (port == 0 || port > 65535 || rack > 7 || slot > 31 || timeout == 0) return usage();
    if (do_scan) return scan(host, (uint16_t)port, (uint32_t)tpdu, (uint32_t)timeout);

    if (!have_tsap) {
        iso_s7_tsap(1, (uint8_t)rack, (uint8_t)slot, &t);
        remote = tsap16(t);
    }
    printf("probe %s:%lu, TSAPs ", host, port);
    print_tsap(local.bytes, local.len);
    printf(" -> ");
    print_tsap(remote.bytes, remote.len);
    if (!have_tsap) printf(" (PG, rack %lu, slot %lu)", rack, slot);
    printf(", TPDU %lu offered\n", tpdu);
    switch (attempt(host, (uint16_t)port, &local, &remote, (uint32_t)tpdu, (uint32_t)timeout, 0, s7, what, sizeof what)) {
    case ACCEPTED: return 0;
    case REFUSED_COTP: return 1;
    default: return 2;
    }
}
