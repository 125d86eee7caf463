/*
 * TLS inside COTP through the C API of isotcp.dll, against a peer we did not write: the
 * TLS-inside-COTP echo server of tests/peers/tls_echo.py, which runs Python's ssl module
 * (OpenSSL) natively on Linux while this program runs under Wine.
 *
 *   wintls.exe --port P --pin HEX --ca CA.pem --der SERVER.der
 *   wintls.exe --serve 1 --cert SERVER.pem --key SERVER.key
 *
 * --port P       the echo server on 127.0.0.1
 * --pin HEX      the SHA-256 of the server's certificate (DER), 64 hex digits
 * --ca CA.pem    the CA that signed the server's certificate
 * --der FILE     the server's certificate (DER), to compare with iso_tls_peer_certificate
 *
 * Checks: a pinned TLS 1.3 session at TPDU 1024 (messages of 1 byte to 60,000 bytes echoed
 * byte for byte; the exporter's 32 bytes for "EXPERIMENTAL_OMS" equal to what the server derives
 * from OpenSSL's exporter secret; the exporter's length limits; the peer's certificate equal to
 * the server's DER); a TLS 1.2 session verified by the CA file at TPDU 256; a wrong pin failing
 * the handshake with ISO_E_TLS, a message naming both digests, and the connection closed.
 *
 * With --serve the roles turn: it listens on 127.0.0.1, prints "READY <port>", accepts one
 * client (tests/peers/tls_echo.py --connect, OpenSSL verifying our chain and name), runs the
 * server role of iso_start_tls with the identity files, and echoes every message until the
 * client closes; a message "exporter <label>" is answered with our 32-byte exporter, which the
 * client compares with the one it derives from OpenSSL's secret.
 *
 * Output: "PASS <check>" or "FAIL <check>: <why>" per check, then
 * "RESULT <passed> passed, <failed> failed". Exit status 0 only when nothing failed.
 * Plain C11 and the header: it builds for Linux as well (gcc ... libisotcp.a).
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isotcp.h"
#include "checks.h"

#define TIMEOUT_MS 10000
#define LARGEST 60000

static int parse_hex(const char *s, uint8_t *out, size_t n) {
    size_t i;
    if (strlen(s) != 2 * n) return -1;
    for (i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static void to_hex(const uint8_t *p, size_t n, char *out) {
    size_t i;
    for (i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

/* The whole file into a malloc'd buffer; NULL on error. */
static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long size;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    buf = malloc((size_t)size);
    if (buf && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return buf;
}

/* Connects (COTP) and starts TLS with cfg. Returns the handle, or NULL with rc set. */
static iso_conn *open_tls(uint16_t port, uint32_t tpdu, const iso_tls_config *cfg, int32_t *rc) {
    iso_conn *c = NULL;
    *rc = iso_create("127.0.0.1", port, &c);
    if (*rc != ISO_OK) return NULL;
    /* The largest message grows by the records' overhead on the wire. */
    if ((*rc = iso_set_tpdu_size(c, tpdu)) != ISO_OK || (*rc = iso_set_max_message(c, 1 << 17)) != ISO_OK ||
        (*rc = iso_connect(c, TIMEOUT_MS)) != ISO_OK || (*rc = iso_start_tls(c, cfg, TIMEOUT_MS)) != ISO_OK)
        return c;
    return c;
}

static uint8_t out_buf[LARGEST], in_buf[LARGEST + 1024];

/* Sends len bytes of a pattern and checks the echo. Returns 1 when it matched. */
static int echo(const char *name, iso_conn *c, size_t len) {
    size_t i, got = 0;
    int32_t rc;
    for (i = 0; i < len; i++) out_buf[i] = (uint8_t)(i * 31 + len);
    if ((rc = iso_send(c, out_buf, len)) != ISO_OK) {
        fail("%s: send of %u bytes: %s (%d): %s", name, (unsigned)len, iso_strerror(rc), (int)rc, why(c));
        return 0;
    }
    if ((rc = iso_recv(c, in_buf, sizeof in_buf, &got, TIMEOUT_MS)) != ISO_OK) {
        fail("%s: receive of the %u-byte echo: %s (%d): %s", name, (unsigned)len, iso_strerror(rc), (int)rc,
             why(c));
        return 0;
    }
    if (got != len || memcmp(in_buf, out_buf, len) != 0) {
        fail("%s: echo of %u bytes came back as %u bytes that differ", name, (unsigned)len, (unsigned)got);
        return 0;
    }
    return 1;
}

static int echo_sizes(const char *name, iso_conn *c, const size_t *sizes, size_t count) {
    size_t i;
    for (i = 0; i < count; i++)
        if (!echo(name, c, sizes[i])) return 0;
    return 1;
}

static const uint8_t LABEL[] = "EXPERIMENTAL_OMS";
#define LABEL_LEN (sizeof LABEL - 1)

/* Our exporter and the server's (it derives its value from OpenSSL's exporter secret). */
static void exporter_checks(const char *name, iso_conn *c, int tls13) {
    uint8_t ours[32], big[256], request[64];
    size_t got = 0, rlen;
    int32_t rc;
    char h1[65], h2[65];
    rc = iso_tls_export_keying_material(c, LABEL, LABEL_LEN, NULL, 0, ours, sizeof ours);
    if (rc != ISO_OK) {
        fail("%s: exporter: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(c));
        return;
    }
    rlen = (size_t)sprintf((char *)request, "exporter %s", (const char *)LABEL);
    if ((rc = iso_send(c, request, rlen)) != ISO_OK ||
        (rc = iso_recv(c, in_buf, sizeof in_buf, &got, TIMEOUT_MS)) != ISO_OK) {
        fail("%s: asking the server for its exporter: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(c));
        return;
    }
    if (tls13) {
        to_hex(ours, 32, h1);
        to_hex(in_buf, got == 32 ? 32 : 0, h2);
        if (got == 32 && memcmp(in_buf, ours, 32) == 0)
            pass("%s: exporter (32 bytes, EXPERIMENTAL_OMS) equals OpenSSL's: %.16s...", name, h1);
        else
            fail("%s: exporter differs: ours %s, the server's (%u bytes) %s", name, h1, (unsigned)got, h2);
    } else {
        if (got == 3 && memcmp(in_buf, "n/a", 3) == 0)
            pass("%s: exporter gives 32 bytes (TLS 1.2: the server cannot derive its own)", name);
        else
            fail("%s: unexpected answer of %u bytes to the exporter request", name, (unsigned)got);
    }
    rc = iso_tls_export_keying_material(c, LABEL, LABEL_LEN, NULL, 0, big, 255);
    if (rc != ISO_OK) fail("%s: exporter of 255 bytes: %s: %s", name, iso_strerror(rc), why(c));
    rc = iso_tls_export_keying_material(c, LABEL, LABEL_LEN, NULL, 0, big, 256);
    if (rc != ISO_E_INVALID) fail("%s: exporter of 256 bytes gave %d, not ISO_E_INVALID", name, (int)rc);
    rc = iso_tls_export_keying_material(c, LABEL, LABEL_LEN, NULL, 0, big, 0);
    if (rc != ISO_E_INVALID) fail("%s: exporter of 0 bytes gave %d, not ISO_E_INVALID", name, (int)rc);
}

static void certificate_check(const char *name, iso_conn *c, const uint8_t *der, size_t der_len) {
    size_t needed = 0;
    uint8_t *buf;
    int32_t rc = iso_tls_peer_certificate(c, NULL, 0, &needed);
    if (rc != ISO_E_BUFFER_TOO_SMALL || needed != der_len) {
        fail("%s: certificate size query gave %d and %u bytes (the server's DER has %u)", name, (int)rc,
             (unsigned)needed, (unsigned)der_len);
        return;
    }
    buf = malloc(needed);
    rc = iso_tls_peer_certificate(c, buf, needed, &needed);
    if (rc == ISO_OK && needed == der_len && memcmp(buf, der, der_len) == 0)
        pass("%s: the peer's certificate is the server's (%u bytes of DER)", name, (unsigned)der_len);
    else
        fail("%s: the peer's certificate differs from the server's (%d)", name, (int)rc);
    free(buf);
}

static void pinned_tls13(uint16_t port, const uint8_t *pin, const uint8_t *der, size_t der_len) {
    static const char *name = "pinned TLS 1.3, TPDU 1024";
    static const size_t sizes[] = {1, 20, 999, 1000, 4096, 20000, LARGEST};
    iso_tls_config *cfg = NULL;
    iso_conn *c;
    int32_t rc;
    iso_tls_config_create(&cfg);
    iso_tls_config_set_pin_sha256(cfg, pin, 32);
    iso_tls_config_set_versions(cfg, 0x0304, 0x0304);
    c = open_tls(port, 1024, cfg, &rc);
    iso_tls_config_destroy(cfg); /* the session keeps its own copy */
    if (rc != ISO_OK) {
        fail("%s: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(c));
        iso_destroy(c);
        return;
    }
    if (iso_tls_active(c) == 1) pass("%s: handshake done, iso_tls_active 1", name);
    else fail("%s: iso_tls_active is %d", name, (int)iso_tls_active(c));
    if (echo_sizes(name, c, sizes, sizeof sizes / sizeof sizes[0]))
        pass("%s: 7 messages of 1 to %u bytes echoed byte for byte", name, (unsigned)LARGEST);
    exporter_checks(name, c, 1);
    certificate_check(name, c, der, der_len);
    if (echo(name, c, 300)) pass("%s: a message after the exporter and certificate calls", name);
    rc = iso_disconnect(c);
    if (rc == ISO_OK && iso_tls_active(c) == 0) pass("%s: disconnect ends TLS (iso_tls_active 0)", name);
    else fail("%s: after disconnect rc %d, iso_tls_active %d", name, (int)rc, (int)iso_tls_active(c));
    iso_destroy(c);
}

static void ca_tls12(uint16_t port, const char *ca) {
    static const char *name = "CA file, TLS 1.2, TPDU 256";
    static const size_t sizes[] = {1, 230, 231, 5000};
    iso_tls_config *cfg = NULL;
    iso_conn *c;
    int32_t rc;
    iso_tls_config_create(&cfg);
    iso_tls_config_set_ca_file(cfg, ca);
    iso_tls_config_set_versions(cfg, 0x0303, 0x0303);
    c = open_tls(port, 256, cfg, &rc);
    iso_tls_config_destroy(cfg);
    if (rc != ISO_OK) {
        fail("%s: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(c));
        iso_destroy(c);
        return;
    }
    pass("%s: handshake done, the chain verified against the CA file", name);
    if (echo_sizes(name, c, sizes, sizeof sizes / sizeof sizes[0]))
        pass("%s: 4 messages of 1 to 5000 bytes echoed byte for byte", name);
    exporter_checks(name, c, 0);
    iso_destroy(c);
}

static void wrong_pin(uint16_t port, const uint8_t *pin) {
    static const char *name = "wrong pin";
    uint8_t bad[32];
    char bad_hex[65], good_hex[65];
    const char *msg;
    iso_tls_config *cfg = NULL;
    iso_conn *c;
    int32_t rc;
    memcpy(bad, pin, 32);
    bad[31] ^= 0x01;
    to_hex(bad, 32, bad_hex);
    to_hex(pin, 32, good_hex);
    iso_tls_config_create(&cfg);
    iso_tls_config_set_pin_sha256(cfg, bad, 32);
    c = open_tls(port, 1024, cfg, &rc);
    iso_tls_config_destroy(cfg);
    msg = why(c);
    if (rc != ISO_E_TLS) fail("%s: iso_start_tls gave %s (%d), not ISO_E_TLS: %s", name, iso_strerror(rc), (int)rc, msg);
    else if (!strstr(msg, bad_hex) || !strstr(msg, good_hex))
        fail("%s: the message does not name both digests: %s", name, msg);
    else pass("%s: ISO_E_TLS, the message names the pin and the certificate's digest", name);
    if (c && iso_check_connection(c) == 0 && iso_tls_active(c) == 0)
        pass("%s: the failed handshake closed the connection", name);
    else fail("%s: connection still up after a failed handshake", name);
    iso_destroy(c);
}

static void serve_checks(const char *cert, const char *key) {
    static const char *name = "server role";
    iso_listener *l = NULL;
    iso_conn *s = NULL;
    iso_tls_config *cfg = NULL;
    uint16_t port = 0;
    size_t got = 0, needed = 0;
    int messages = 0, exported = 0;
    int32_t rc = iso_listen("127.0.0.1", 0, &l);
    if (rc != ISO_OK || iso_listener_port(l, &port) != ISO_OK) {
        fail("%s: listen: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(NULL));
        iso_listener_destroy(l);
        return;
    }
    printf("READY %u\n", (unsigned)port);
    fflush(stdout);
    if ((rc = iso_accept(l, 60000, &s)) != ISO_OK) {
        fail("%s: accept: %s (%d)", name, iso_strerror(rc), (int)rc);
        iso_listener_destroy(l);
        return;
    }
    iso_tls_config_create(&cfg);
    iso_tls_config_set_identity_files(cfg, cert, key);
    rc = iso_start_tls(s, cfg, TIMEOUT_MS);
    iso_tls_config_destroy(cfg);
    if (rc != ISO_OK) {
        fail("%s: iso_start_tls: %s (%d): %s", name, iso_strerror(rc), (int)rc, why(s));
    } else {
        pass("%s: handshake with OpenSSL's client, iso_tls_active %d", name, (int)iso_tls_active(s));
        rc = iso_tls_peer_certificate(s, NULL, 0, &needed);
        if (rc == ISO_E_INVALID) pass("%s: a client without a certificate: ISO_E_INVALID (%s)", name, why(s));
        else fail("%s: iso_tls_peer_certificate gave %d for a client without a certificate", name, (int)rc);
        for (;;) {
            rc = iso_recv(s, in_buf, sizeof in_buf, &got, TIMEOUT_MS);
            if (rc != ISO_OK) break;
            if (got > 9 && memcmp(in_buf, "exporter ", 9) == 0) {
                uint8_t ours[32];
                rc = iso_tls_export_keying_material(s, in_buf + 9, got - 9, NULL, 0, ours, sizeof ours);
                if (rc == ISO_OK) rc = iso_send(s, ours, sizeof ours);
                exported += rc == ISO_OK;
            } else {
                rc = iso_send(s, in_buf, got);
                messages += rc == ISO_OK;
            }
            if (rc != ISO_OK) break;
        }
        if (rc == ISO_E_CLOSED && messages == 5 && exported == 1)
            pass("%s: 5 messages echoed and the exporter sent, then the client closed (ISO_E_CLOSED)", name);
        else
            fail("%s: %d messages echoed, %d exporters sent, ended by %s (%d): %s", name, messages, exported,
                 iso_strerror(rc), (int)rc, why(s));
    }
    iso_destroy(s);
    iso_listener_destroy(l);
}

int main(int argc, char **argv) {
    const char *pin_hex = NULL, *ca = NULL, *der_path = NULL, *cert = NULL, *key = NULL;
    int serve = 0;
    uint16_t port = 0;
    uint8_t pin[32], *der;
    size_t der_len = 0;
    int i;
    for (i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0) port = (uint16_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--pin") == 0) pin_hex = argv[i + 1];
        else if (strcmp(argv[i], "--ca") == 0) ca = argv[i + 1];
        else if (strcmp(argv[i], "--der") == 0) der_path = argv[i + 1];
        else if (strcmp(argv[i], "--serve") == 0) serve = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--cert") == 0) cert = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0) key = argv[i + 1];
        else break;
    }
    if (serve && i == argc && cert && key) {
        printf("isotcp %s\n", iso_version());
        serve_checks(cert, key);
        printf("RESULT %d passed, %d failed\n", passed, failed);
        fflush(stdout);
        return failed ? 1 : 0;
    }
    if (i != argc || !port || !pin_hex || !ca || !der_path || parse_hex(pin_hex, pin, 32) != 0) {
        fprintf(stderr, "usage: wintls --port P --pin HEX64 --ca CA.pem --der SERVER.der\n"
                        "       wintls --serve 1 --cert SERVER.pem --key SERVER.key\n");
        return 64;
    }
    der = read_file(der_path, &der_len);
    if (!der) {
        fprintf(stderr, "wintls: cannot read %s\n", der_path);
        return 1;
    }
    printf("isotcp %s\n", iso_version());
    pinned_tls13(port, pin, der, der_len);
    ca_tls12(port, ca);
    wrong_pin(port, pin);
    free(der);
    printf("RESULT %d passed, %d failed\n", passed, failed);
    fflush(stdout);
    return failed ? 1 : 0;
}
