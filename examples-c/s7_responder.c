/* S7 job answering for the examples and tests: see s7_responder.h. */
#include "s7_responder.h"

#include <string.h>

#define S7_PROTOCOL_ID 0x32
#define ROSCTR_JOB 0x01
#define ROSCTR_ACK_DATA 0x03
#define FN_SETUP 0xF0
#define FN_READ 0x04
#define FN_WRITE 0x05
#define AREA_DB 0x84
#define RET_OK 0xFF
#define RET_OUT_OF_RANGE 0x05
#define RET_NOT_AVAILABLE 0x0A
#define RET_TYPE_UNSUPPORTED 0x06

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }

static s7_db *find_db(s7_memory *mem, uint16_t number) {
    size_t i;
    for (i = 0; i < mem->count; i++)
        if (mem->dbs[i].number == number) return &mem->dbs[i];
    return NULL;
}

/* Ack-data header: 12 bytes, error class/code 0. */
static size_t ack_header(uint8_t *resp, const uint8_t *req, uint16_t param_len, uint16_t data_len) {
    resp[0] = S7_PROTOCOL_ID;
    resp[1] = ROSCTR_ACK_DATA;
    resp[2] = 0; resp[3] = 0;
    resp[4] = req[4]; resp[5] = req[5]; /* PDU reference echoed */
    put16(resp + 6, param_len);
    put16(resp + 8, data_len);
    resp[10] = 0; resp[11] = 0;
    return 12;
}

/* An S7ANY item: 12 0A 10 <type> <count:2> <db:2> <area> <address:3 bits>. */
typedef struct item { uint8_t type; uint16_t count; uint16_t db; uint8_t area; uint32_t byte_addr; } item;

static int parse_item(const uint8_t *p, item *it) {
    if (p[0] != 0x12 || p[1] != 0x0A || p[2] != 0x10) return 0;
    it->type = p[3];
    it->count = be16(p + 4);
    it->db = be16(p + 6);
    it->area = p[8];
    it->byte_addr = ((uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11]) >> 3;
    return 1;
}

/* Bytes an item covers: byte/char/word... sized types; bits are not served. */
static size_t item_bytes(const item *it) {
    switch (it->type) {
    case 0x02: case 0x03: return it->count;          /* BYTE, CHAR */
    case 0x04: case 0x05: return 2u * it->count;      /* WORD, INT */
    case 0x06: case 0x07: case 0x08: return 4u * it->count; /* DWORD, DINT, REAL */
    default: return 0;
    }
}

static uint8_t check_item(s7_memory *mem, const item *it, s7_db **db_out) {
    s7_db *db;
    size_t n = item_bytes(it);
    if (n == 0) return RET_TYPE_UNSUPPORTED;
    if (it->area != AREA_DB || (db = find_db(mem, it->db)) == NULL) return RET_NOT_AVAILABLE;
    if (it->byte_addr > db->size || n > db->size - it->byte_addr) return RET_OUT_OF_RANGE;
    *db_out = db;
    return RET_OK;
}

static size_t answer_setup(s7_memory *mem, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
    uint16_t pdu;
    if (len < 18 || cap < 20) return 0;
    pdu = be16(req + 16);
    if (pdu > mem->max_pdu) pdu = mem->max_pdu;
    ack_header(resp, req, 8, 0);
    memcpy(resp + 12, req + 10, 6); /* function, reserved, AmQ calling, AmQ called */
    put16(resp + 18, pdu);
    return 20;
}

static size_t answer_read(s7_memory *mem, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
    uint8_t count = req[11];
    size_t i, pos = 14, param_len = 2;
    if (len < 12 || 12u + 12u * count > len || cap < 14) return 0;
    resp[12] = FN_READ;
    resp[13] = count;
    for (i = 0; i < count; i++) {
        item it;
        s7_db *db = NULL;
        uint8_t rc;
        size_t n;
        if (!parse_item(req + 12 + 12 * i, &it)) return 0;
        rc = check_item(mem, &it, &db);
        n = rc == RET_OK ? item_bytes(&it) : 0;
        if (pos + 4 + n + 1 > cap) rc = RET_OUT_OF_RANGE, n = 0;
        resp[pos] = rc;
        resp[pos + 1] = rc == RET_OK ? 0x04 : 0x00; /* transport size: bytes, length in bits */
        put16(resp + pos + 2, (uint16_t)(n * 8));
        if (n) memcpy(resp + pos + 4, db->data + it.byte_addr, n);
        pos += 4 + n;
        if ((n & 1) && i + 1 < count) resp[pos++] = 0; /* items are padded to even length */
    }
    ack_header(resp, req, (uint16_t)param_len, (uint16_t)(pos - 14));
    return pos;
}

static size_t answer_write(s7_memory *mem, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
    uint8_t count = req[11];
    uint16_t param_len = be16(req + 6);
    size_t i, data = 10 + (size_t)param_len;
    if (len < 12 || cap < 14u + count || 12 + 12u * count > data) return 0;
    resp[12] = FN_WRITE;
    resp[13] = count;
    for (i = 0; i < count; i++) {
        item it;
        s7_db *db = NULL;
        uint8_t rc;
        size_t n;
        if (!parse_item(req + 12 + 12 * i, &it) || data + 4 > len) return 0;
        n = be16(req + data + 2);
        if (req[data + 1] == 0x04) n /= 8; /* length in bits */
        rc = check_item(mem, &it, &db);
        if (rc == RET_OK && (n != item_bytes(&it) || data + 4 + n > len)) rc = RET_OUT_OF_RANGE;
        if (rc == RET_OK) memcpy(db->data + it.byte_addr, req + data + 4, n);
        resp[14 + i] = rc;
        data += 4 + n + ((n & 1) && i + 1 < count ? 1 : 0);
    }
    ack_header(resp, req, 2, count);
    return 14u + count;
}

size_t s7_answer(s7_memory *mem, const uint8_t *req, size_t len, uint8_t *resp, size_t cap) {
    if (len < 12 || req[0] != S7_PROTOCOL_ID || req[1] != ROSCTR_JOB) return 0;
    switch (req[10]) {
    case FN_SETUP: return answer_setup(mem, req, len, resp, cap);
    case FN_READ: return answer_read(mem, req, len, resp, cap);
    case FN_WRITE: return answer_write(mem, req, len, resp, cap);
    default: return 0;
    }
}

long s7_serve(iso_conn *conn, s7_memory *mem, int32_t *rc_out) {
    static const size_t cap = 65536;
    uint8_t req[65536], resp[65536];
    long answered = 0;
    for (;;) {
        size_t len = 0, n;
        int32_t rc = iso_recv(conn, req, cap, &len, 60000);
        if (rc == ISO_E_TIMEOUT) continue;
        if (rc != ISO_OK) { *rc_out = rc; return answered; }
        n = s7_answer(mem, req, len, resp, cap);
        if (n == 0) continue;
        rc = iso_send(conn, resp, n);
        if (rc != ISO_OK) { *rc_out = rc; return answered; }
        answered++;
    }
}
