/*
 * A small S7-like responder on top of isotcp's passive side: it answers S7 "setup
 * communication", "read var" and "write var" jobs on data blocks kept in memory. Enough for a
 * PLC simulator in tests and demos; not a full S7 server.
 */
#ifndef S7_RESPONDER_H
#define S7_RESPONDER_H

#include <stddef.h>
#include <stdint.h>

#include "isotcp.h"

#define S7_MAX_DBS 8

typedef struct s7_db {
    uint16_t number;
    uint8_t *data;
    size_t size;
} s7_db;

typedef struct s7_memory {
    s7_db dbs[S7_MAX_DBS];
    size_t count;
    uint16_t max_pdu; /* largest S7 PDU granted in setup communication */
} s7_memory;

/*
 * Builds the answer to one S7 job in `req` into `resp` (capacity `cap`).
 * Returns the answer's length, or 0 when the request is not an S7 job (no answer).
 */
size_t s7_answer(s7_memory *mem, const uint8_t *req, size_t len, uint8_t *resp, size_t cap);

/*
 * Serves one accepted connection until the client closes it or an error occurs.
 * Returns the number of requests answered; `*rc_out` gets the isotcp code that ended it
 * (ISO_E_CLOSED for a normal close).
 */
long s7_serve(iso_conn *conn, s7_memory *mem, int32_t *rc_out);

#endif
