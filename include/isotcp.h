/*
 * isotcp: ISO on TCP (RFC 1006 TPKT + ISO 8073 class 0 COTP) for Siemens S7.
 * Generated from the Rust source by cbindgen; do not edit.
 *
 * Every function returning int32_t returns ISO_OK (0) on success or a negative ISO_E_* code;
 * iso_strerror() names a code and iso_last_error() gives the message of a handle's last error.
 *
 * Pointer contract: every pointer argument is NULL or valid, for the whole call, for what the
 * function does with it: a string is NUL-terminated, a buffer holds the length given (nothing
 * is read or written through it when that length is 0), an out-pointer takes one write, a
 * handle was created and not yet destroyed. A NULL where something is needed gives
 * ISO_E_INVALID; any other invalid pointer cannot be detected and is undefined behaviour.
 */
#ifndef ISOTCP_H
#define ISOTCP_H

#include <stddef.h>
#include <stdint.h>
#define ISO_VERSION_MAJOR 0
#define ISO_VERSION_MINOR 1
#define ISO_VERSION_PATCH 0
#define ISO_VERSION "0.1.0"

#if defined(_WIN32) && !defined(ISOTCP_STATIC)
#  if defined(ISOTCP_BUILDING)
#    define ISO_API __declspec(dllexport)
#  else
#    define ISO_API __declspec(dllimport)
#  endif
#else
#  define ISO_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Success.
 */
#define ISO_OK 0

/**
 * Invalid argument: NULL pointer, bad host string, TSAP empty or too long, TPDU size not allowed, empty message.
 */
#define ISO_E_INVALID -1

/**
 * Not allowed now: send/recv before connect, connect while connected, a setter after connect.
 */
#define ISO_E_STATE -2

/**
 * The host name could not be resolved.
 */
#define ISO_E_RESOLVE -3

/**
 * The TCP connection was refused.
 */
#define ISO_E_REFUSED -4

/**
 * The operation's deadline passed; nothing received is lost.
 */
#define ISO_E_TIMEOUT -5

/**
 * Timeout 0 was given and the operation cannot complete now.
 */
#define ISO_E_WOULD_BLOCK -6

/**
 * The peer closed or reset the connection (also during COTP connect), or ended it with DR/ER.
 */
#define ISO_E_CLOSED -7

/**
 * The peer refused the COTP connection with DR or ER (reason/cause in the last error).
 */
#define ISO_E_REJECTED -8

/**
 * Malformed or unexpected TPKT/COTP data from the peer; the connection is closed.
 */
#define ISO_E_PROTOCOL -9

/**
 * A message above a limit (send above the maximum message size; received message above the receive limit).
 */
#define ISO_E_TOO_LARGE -10

/**
 * The caller's buffer is too small; `*out_len` gets the size needed; the message stays queued.
 */
#define ISO_E_BUFFER_TOO_SMALL -11

/**
 * Other operating-system error (OS error code in the last error).
 */
#define ISO_E_IO -12

/**
 * Internal error caught at the boundary; the handle is now poisoned.
 */
#define ISO_E_PANIC -13

/**
 * The handle is unusable after an internal error; destroy it.
 */
#define ISO_E_POISONED -14

/**
 * TLS failed: handshake, certificate rejected, a bad record or an alert (the last error says
 * which).
 */
#define ISO_E_TLS -15

/**
 * major << 16 | minor << 8 | patch; equal to `iso_version_number()`.
 */
#define ISO_VERSION_NUMBER 256

/**
 * `iso_set_user_timeout` value restoring the default: the bound follows the keep-alive
 * settings.
 */
#define ISO_USER_TIMEOUT_FROM_KEEPALIVE UINT32_MAX

/**
 * `iso_get_connect_phase`: the last connect succeeded, or none ran.
 */
#define ISO_PHASE_NONE 0

/**
 * `iso_get_connect_phase`: resolving the host name failed.
 */
#define ISO_PHASE_RESOLVE 1

/**
 * `iso_get_connect_phase`: no address completed the TCP connect: the PLC is unreachable.
 */
#define ISO_PHASE_TCP 2

/**
 * `iso_get_connect_phase`: TCP was up and the CR sent, but no CC confirmed it: the PLC is
 * reachable and refused (DR/ER, a close or reset: usually TSAP, rack or slot) or did not answer.
 */
#define ISO_PHASE_COTP 3

/**
 * `direction` of a traced frame received from the peer.
 */
#define ISO_TRACE_RECEIVED 0

/**
 * `direction` of a traced frame we sent.
 */
#define ISO_TRACE_SENT 1

/**
 * An ISO-on-TCP connection handle (opaque). Create with `iso_create`, free with `iso_destroy`.
 */
typedef struct iso_conn iso_conn;

/**
 * A listening endpoint (opaque). Create with `iso_listen`, free with `iso_listener_destroy`.
 */
typedef struct iso_listener iso_listener;

/**
 * TLS settings (opaque): what to verify and what to present. Create with
 * `iso_tls_config_create`, free with `iso_tls_config_destroy`; `iso_start_tls` copies it.
 */
typedef struct iso_tls_config iso_tls_config;

/**
 * Decides on a valid CR: `calling`/`called` are the CR's TSAPs (length 0 when absent; valid
 * only during the call). Return 0 to accept, or 1..255 to refuse with that DR reason (e.g. 0x03
 * "address unknown", 0x81 "congestion"); any other value refuses with 0x03. Runs on the thread
 * calling `iso_accept`; must not call functions of the same listener.
 */
typedef int32_t (*iso_cr_filter)(void *user,
                                 const uint8_t *calling,
                                 size_t calling_len,
                                 const uint8_t *called,
                                 size_t called_len);

/**
 * Receives one traced frame: a whole TPKT packet (4-byte header included) as on the wire,
 * valid only during the call. `direction` is ISO_TRACE_SENT or ISO_TRACE_RECEIVED. Runs on the
 * thread doing the I/O, inside the library; it must return promptly and must not call isotcp
 * functions on the same connection.
 */
typedef void (*iso_trace_fn)(void *user, int32_t direction, const uint8_t *frame, size_t len);

/**
 * Static text describing a result code. Never NULL, never to be freed; an unknown code gives
 * a text saying so. Thread-safe.
 */
ISO_API const char *iso_strerror(int32_t code);

/**
 * The library version, e.g. "0.1.0". Static, never NULL. Thread-safe.
 */
ISO_API const char *iso_version(void);

/**
 * The version as major << 16 | minor << 8 | patch, equal to ISO_VERSION_NUMBER in the header
 * the program was compiled with (compare them to detect a mismatched library). Thread-safe.
 */
ISO_API uint32_t iso_version_number(void);

/**
 * Creates a connection handle for `host` (a name, an IPv4 literal, or an IPv6 literal with or
 * without brackets) and TCP `port` (102 for S7). No network I/O happens here.
 *
 * Defaults: local TSAP 0x0100, remote TSAP 0x0102 (rack 0, slot 2), TPDU size 1024, send
 * timeout 5000 ms, maximum message 65536 bytes, 4096 fragments per message, TCP keep-alive
 * (idle 60 s, interval 10 s, 3 probes).
 *
 * On success `*out` is the new handle; on error `*out` is set to NULL (if `out` is not NULL)
 * and the message is available from `iso_thread_last_error`.
 * Errors: ISO_E_INVALID (NULL argument, host not UTF-8, empty or not a host name).
 * Thread-safe.
 */
ISO_API int32_t iso_create(const char *host, uint16_t port, iso_conn **out);

/**
 * Closes the connection (if any; with TLS, after a best-effort close_notify) and frees the
 * handle. NULL is a no-op.
 * Thread rules: must be the last call on the handle; no other call may be in progress on it.
 */
ISO_API void iso_destroy(iso_conn *conn);

/**
 * Sets the local (calling, C1) and remote (called, C2) TSAPs as 16-bit values, e.g. 0x0100 and
 * 0x0102 (rack 0, slot 2; see `iso_s7_tsap`).
 * Errors: ISO_E_INVALID (NULL), ISO_E_STATE (connected or connecting).
 * Thread rules: not concurrently with `iso_connect` or other setters on the same handle.
 */
ISO_API int32_t iso_set_tsap(iso_conn *conn, uint16_t local_tsap, uint16_t remote_tsap);

/**
 * Sets the TSAPs as byte strings of 1 to 32 bytes each, e.g. local {0x06, 0x00} and remote
 * "SIMATIC-ROOT-HMI" (16 bytes, no NUL) for S7CommPlus. The bytes are copied.
 * Errors: ISO_E_INVALID (NULL, a length outside 1..32, or a CR that would exceed 128 bytes),
 * ISO_E_STATE (connected or connecting).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API
int32_t iso_set_tsap_bytes(iso_conn *conn,
                           const uint8_t *local,
                           size_t local_len,
                           const uint8_t *remote,
                           size_t remote_len);

/**
 * Sets the TPDU size offered in the CR: 128, 256, 512, 1024 (default), 2048, 4096 or 8192.
 * The peer's CC may lower it; `iso_get_tpdu_size` tells the result.
 * Errors: ISO_E_INVALID (another value), ISO_E_STATE (connected or connecting).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_tpdu_size(iso_conn *conn, uint32_t size);

/**
 * Routing to a PLC behind a gateway, python-snap7 3.x encoding: appends the CR parameters
 * `C6 02 <subnet_id>` and `C7 02 01 <rack << 5 | slot>` after C0; the TSAPs stay as set (the
 * remote TSAP addresses the gateway). Only python-snap7's server is known to accept this form;
 * real Siemens gateways need `iso_set_routing_s7`. Rack 0..7, slot 0..31.
 * Errors: ISO_E_INVALID (rack or slot out of range, CR too long), ISO_E_STATE.
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API
int32_t iso_set_routing(iso_conn *conn,
                        uint16_t subnet_id,
                        uint16_t dest_rack,
                        uint16_t dest_slot);

/**
 * Routing through a real Siemens gateway (S7 routing, libnodave's form): replaces both TSAPs by
 * 28-byte extended TSAPs naming the destination subnet and station.
 *
 * `subnet_high` and `subnet_low` are the two halves of the S7 subnet ID as STEP 7 shows it
 * ("0152-0013" is 0x0152, 0x0013). `dest_addr` is the destination's address on that subnet:
 * 1 byte (MPI/PROFIBUS address) or 4 bytes (IPv4), at most 16; it is copied. `conn_type` is
 * 1 (PG), 2 (OP) or 3..0x10 (S7 basic); rack 0..7, slot 0..31 of the destination CPU.
 * A later `iso_set_tsap`/`iso_set_tsap_bytes` replaces the TSAPs again.
 * Errors: ISO_E_INVALID (NULL, lengths, ranges), ISO_E_STATE.
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API
int32_t iso_set_routing_s7(iso_conn *conn,
                           uint16_t subnet_high,
                           uint16_t subnet_low,
                           const uint8_t *dest_addr,
                           size_t dest_addr_len,
                           uint8_t conn_type,
                           uint16_t dest_rack,
                           uint16_t dest_slot);

/**
 * Sets the deadline of each `iso_send` (default 5000 ms). 0 means "never wait": a send the
 * socket cannot take at once returns ISO_E_WOULD_BLOCK.
 * Errors: ISO_E_STATE (connected or connecting).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_send_timeout(iso_conn *conn, uint32_t timeout_ms);

/**
 * Sets the largest message sent or received, 128 to 16777216 bytes (default 65536). A larger
 * message to send gives ISO_E_TOO_LARGE; a larger message from the peer gives ISO_E_TOO_LARGE
 * and closes the connection.
 * Errors: ISO_E_INVALID (out of range), ISO_E_STATE.
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_max_message(iso_conn *conn, uint32_t bytes);

/**
 * Sets the largest number of DTs one received message may have (default 4096, 1..1048576).
 * More gives ISO_E_TOO_LARGE and closes the connection.
 * Errors: ISO_E_INVALID (out of range), ISO_E_STATE.
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_max_fragments(iso_conn *conn, uint32_t fragments);

/**
 * Sets TCP keep-alive: `enable` 0 turns it off; otherwise probes start after `idle_s` seconds
 * of silence, repeat every `interval_s` seconds, and `count` unanswered probes end the
 * connection (count is ignored on Windows, which uses 10). Default: on, 60, 10, 3.
 * Errors: ISO_E_INVALID (a zero time or count while enabled, or above 32767), ISO_E_STATE.
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API
int32_t iso_set_keepalive(iso_conn *conn,
                          int32_t enable,
                          uint32_t idle_s,
                          uint32_t interval_s,
                          uint32_t count);

/**
 * Bounds how long data sent may stay unacknowledged before the system gives up on the
 * connection (TCP_USER_TIMEOUT on Linux, TCP_MAXRT on Windows, whole seconds there). Keep-alive
 * only probes an idle connection; this finds a peer that vanished under a pending request,
 * which the system would otherwise retransmit to for about 15 minutes. The loss is then
 * reported by `iso_recv`, `iso_poll`, `iso_send` and `iso_check_connection` (ISO_E_IO, "no
 * acknowledgement from the peer for N s: the link or the peer is down", OS error ETIMEDOUT).
 * `timeout_ms`: 1..2073600000; 0 for the system's default; ISO_USER_TIMEOUT_FROM_KEEPALIVE
 * (the default) for idle + interval x count of the keep-alive settings while keep-alive is on
 * (the system's default when it is off), so that one setting governs both cases.
 * Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected or connecting).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_user_timeout(iso_conn *conn, uint32_t timeout_ms);

/**
 * Sets the delay between the starts of TCP connects to successive addresses of a host name
 * that resolves to several (IPv6 and IPv4, or the two CPUs of an S7-1500R/H or S7-400H pair),
 * 0..10000 ms (default 250, RFC 8305's connection attempt delay): an attempt not complete by
 * then keeps running while the next starts; the first to complete TCP and the CC is kept, the
 * others closed, all within the one `iso_connect` deadline. A dead first address thus costs
 * this delay, not a share of the deadline.
 * Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected or connecting).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_connect_attempt_delay(iso_conn *conn, uint32_t delay_ms);

/**
 * Writes to `*out` the phase in which the handle's last `iso_connect`/`iso_reconnect` failed:
 * ISO_PHASE_RESOLVE, ISO_PHASE_TCP or ISO_PHASE_COTP, or ISO_PHASE_NONE after a successful
 * connect (or before any). Tells "PLC unreachable" from "PLC reachable, ISO refused" when both
 * end in ISO_E_TIMEOUT. Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_get_connect_phase(const iso_conn *conn, int32_t *out);

/**
 * Connects: resolves the host, opens TCP (trying every address the name resolves to), sends
 * the CR and validates the CC, all within one deadline of `timeout_ms`. Timeout 0 returns
 * ISO_E_WOULD_BLOCK unless everything completes at once.
 * A connection the peer has ended (closed, reset, DR/ER) is replaced; messages it still held
 * are dropped.
 * Errors: ISO_E_STATE (already connected, or ended by `iso_disconnect` from another thread
 * while waiting for the CC), ISO_E_RESOLVE, ISO_E_REFUSED, ISO_E_TIMEOUT,
 * ISO_E_CLOSED (the peer closed or reset TCP after the CR: usually a wrong TSAP, rack or slot),
 * ISO_E_REJECTED (DR or ER; the last error names the reason), ISO_E_PROTOCOL (a malformed CC),
 * ISO_E_IO.
 * Thread rules: not concurrently with setters or another `iso_connect` on the same handle.
 */
ISO_API int32_t iso_connect(iso_conn *conn, uint32_t timeout_ms);

/**
 * Sends one whole message of `len` bytes (copied before return), segmented into DTs of the
 * negotiated TPDU size, within the send timeout.
 * Errors: ISO_E_INVALID (NULL data, len 0 or above PTRDIFF_MAX), ISO_E_STATE (not connected),
 * ISO_E_TOO_LARGE (above the maximum message), ISO_E_TIMEOUT (nothing sent: the connection is
 * intact; part sent: the connection is closed, since the peer would see half a message),
 * ISO_E_CLOSED, ISO_E_IO. After `iso_start_tls` the message is encrypted and its records go
 * out as one TSDU; the maximum message then applies to the records (22 to 29 bytes more per
 * record), and a send that fails after encrypting closes the connection (ISO_E_TLS,
 * ISO_E_TIMEOUT): the records' sequence numbers are spent.
 * Thread rules: may run while another thread is in `iso_recv`/`iso_poll`; concurrent
 * `iso_send` calls on one handle are serialised.
 */
ISO_API int32_t iso_send(iso_conn *conn, const uint8_t *data, size_t len);

/**
 * Waits up to `timeout_ms` for a whole message. Returns 1 when one is ready (the next
 * `iso_recv` returns it at once), 0 when none completed within the timeout (bytes of a partial
 * message stay buffered), or a negative error: ISO_E_STATE, ISO_E_CLOSED (the peer closed and
 * no whole message is buffered), ISO_E_PROTOCOL, ISO_E_TOO_LARGE, ISO_E_IO, ISO_E_TLS.
 * With TLS it looks through TLS: 1 only when plaintext is ready; TSDUs holding only TLS
 * handshake records or part of a record are read and kept but are not a message.
 * Thread rules: as `iso_recv`.
 */
ISO_API int32_t iso_poll(iso_conn *conn, uint32_t timeout_ms);

/**
 * Receives one whole message into `buf` (capacity `cap`), waiting up to `timeout_ms`.
 * On success `*out_len` is the message length. `buf` NULL with `cap` 0 asks for the size of the
 * next message: ISO_E_BUFFER_TOO_SMALL with the size in `*out_len`, the message stays queued.
 * Errors: ISO_E_INVALID (NULL out_len, NULL buf with cap > 0, cap above PTRDIFF_MAX),
 * ISO_E_STATE, ISO_E_TIMEOUT / ISO_E_WOULD_BLOCK (timeout 0) when no whole message arrived:
 * nothing is lost, the next call continues;
 * ISO_E_BUFFER_TOO_SMALL: `*out_len` is the size needed and the message stays queued;
 * ISO_E_CLOSED (peer closed, reset, or sent DR/ER, after any buffered messages were read);
 * ISO_E_PROTOCOL and ISO_E_TOO_LARGE (the connection is closed), ISO_E_IO.
 * After `iso_start_tls` it returns the plaintext of one TSDU (reading on while a record spans
 * TSDUs); ISO_E_TLS for a bad record or an alert (the connection is closed); ISO_E_CLOSED,
 * "the peer ended the TLS session (close_notify)", after the data that came before it.
 * Thread rules: may run while another thread is in `iso_send`; `iso_disconnect` from another
 * thread makes it return ISO_E_STATE promptly. Two concurrent receivers are serialised.
 */
ISO_API
int32_t iso_recv(iso_conn *conn,
                 uint8_t *buf,
                 size_t cap,
                 size_t *out_len,
                 uint32_t timeout_ms);

/**
 * Returns 1 when the connection can carry a new request, 0 as soon as anything says it is gone:
 * not connected; the peer closed (FIN) or reset it; a DR or ER was received; the socket has a
 * pending error, which is how the system reports that it gave up on the peer (the user timeout
 * with data in flight, or unanswered keep-alive probes when idle). Messages already received
 * stay readable. Never blocks, consumes nothing.
 * What it cannot know: a peer that went silent (cable pulled, PLC switched off) without a FIN
 * or RST is indistinguishable from an idle one until keep-alive or the user timeout
 * (`iso_set_keepalive`, `iso_set_user_timeout`) gives up on it; and a DR still in the socket's
 * buffer is seen once `iso_poll`/`iso_recv` reads it (PLCs close TCP after a DR, which is
 * seen at once). NULL gives ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_check_connection(iso_conn *conn);

/**
 * Closes the connection (without DR: class 0 releases by closing TCP; with TLS, after a
 * close_notify sent best effort within ~100 ms and skipped while another thread is in the
 * middle of a send) and wakes any thread blocked in `iso_recv`, `iso_poll` or `iso_send` on
 * it; an `iso_connect` waiting for the CC ends too (ISO_E_STATE). Not connected: ISO_OK. The handle keeps
 * its settings and may connect again. Thread-safe.
 */
ISO_API
int32_t iso_disconnect(iso_conn *conn);

/**
 * Ends the connection and connects again with the same settings, all within one deadline of
 * `timeout_ms`: when the COTP connection is still up a DR (reason 0x80, normal disconnect)
 * goes out first so the PLC releases its side at once, then the socket is closed, then the
 * connect runs as `iso_connect`. Not connected: it just connects. Repeated reconnects leave
 * nothing behind at the PLC: it holds one connection from this handle at most.
 * Errors: those of `iso_connect`; ISO_E_STATE on a handle `iso_accept` returned.
 * Thread rules: as `iso_connect`.
 */
ISO_API int32_t iso_reconnect(iso_conn *conn, uint32_t timeout_ms);

/**
 * Writes the negotiated TPDU size to `*out`.
 * Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
 */
ISO_API int32_t iso_get_tpdu_size(const iso_conn *conn, uint32_t *out);

/**
 * Writes the connection's socket (a file descriptor; a SOCKET on Windows) to `*out`, for
 * select/poll/epoll. Wait for readability, then call `iso_poll(conn, 0)`/`iso_recv(..., 0)`.
 * Do not read, write or close it yourself. Valid until `iso_disconnect`/`iso_destroy`.
 * Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
 */
ISO_API int32_t iso_get_fd(const iso_conn *conn, int64_t *out);

/**
 * Copies the called TSAP in use (C2: the remote TSAP this connection asked for) into `buf`.
 * `*out_len` gets its length; when `cap` is smaller, ISO_E_BUFFER_TOO_SMALL and nothing is
 * copied. Errors: ISO_E_INVALID (NULL), ISO_E_STATE (not connected). Thread-safe.
 */
ISO_API
int32_t iso_get_remote_tsap(const iso_conn *conn,
                            uint8_t *buf,
                            size_t cap,
                            size_t *out_len);

/**
 * Copies the calling TSAP in use (C1: the local TSAP) into `buf`; as `iso_get_remote_tsap`.
 */
ISO_API
int32_t iso_get_calling_tsap(const iso_conn *conn,
                             uint8_t *buf,
                             size_t cap,
                             size_t *out_len);

/**
 * Copies the handle's last error message, NUL-terminated, into `buf` (truncated to `cap`), and
 * writes the size it needs including the NUL to `*out_needed` (if not NULL). `buf` may be NULL
 * with `cap` 0 to ask for the size. Works on a poisoned handle. The message stays until the next
 * error on the handle; "no error" before the first.
 * Returns ISO_OK, ISO_E_BUFFER_TOO_SMALL (truncated), or ISO_E_INVALID (NULL conn).
 * Thread-safe.
 */
ISO_API int32_t iso_last_error(const iso_conn *conn, char *buf, size_t cap, size_t *out_needed);

/**
 * The calling thread's last error message from any isotcp call (including `iso_create`, which
 * has no handle to keep it), copied as by `iso_last_error`. Thread-safe (per thread).
 */
ISO_API int32_t iso_thread_last_error(char *buf, size_t cap, size_t *out_needed);

/**
 * Writes to `*out` the operating system's error code behind the handle's last failure: errno
 * on Linux and macOS, the WSA code on Windows (what snap7 calls LastTcpError), e.g. 111
 * (ECONNREFUSED) after ISO_E_REFUSED, 104 (ECONNRESET) after a reset, 110 (ETIMEDOUT) after
 * the system gave up on an unanswered connection. 0 when the last failure had no OS error (a
 * deadline of our own, a protocol error, a refusal by DR) or before the first failure.
 * Works on a poisoned handle. Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_last_os_error(const iso_conn *conn, int32_t *out);

/**
 * Writes to `*out` the OS error code of the calling thread's last failure from any isotcp call
 * (including `iso_create` and `iso_listen`, which have no handle to keep it), as
 * `iso_last_os_error`. Errors: ISO_E_INVALID (NULL). Thread-safe (per thread).
 */
ISO_API int32_t iso_thread_last_os_error(int32_t *out);

/**
 * The S7 remote TSAP for a connection type (1 PG, 2 OP, 3..0x10 S7 basic), rack (0..7) and slot
 * (0..31): (conn_type << 8) | rack << 5 | slot, written to `*out`.
 * Errors: ISO_E_INVALID (NULL or out of range). Thread-safe.
 */
ISO_API int32_t iso_s7_tsap(uint8_t conn_type, uint8_t rack, uint8_t slot, uint16_t *out);

/**
 * Listens on `bind_host` and `port`. `bind_host` NULL, "" or "::" listens on every IPv6 and
 * IPv4 address; "0.0.0.0" on every IPv4 address; "127.0.0.1", "::1" or a host name on that
 * address. Port 0 picks a free port (see `iso_listener_port`).
 * Defaults: grants TPDU sizes up to 8192, a client has 5000 ms to send its CR, 64 handshakes
 * pending at most, any called TSAP accepted; accepted connections get the defaults of
 * `iso_create` (maximum message 65536, send timeout 5000 ms, keep-alive).
 * On error `*out` is NULL and `iso_thread_last_error` has the message.
 * Errors: ISO_E_INVALID (NULL out, bad host), ISO_E_RESOLVE, ISO_E_IO (e.g. port in use).
 * Thread-safe.
 */
ISO_API int32_t iso_listen(const char *bind_host, uint16_t port, iso_listener **out);

/**
 * Stops listening and frees the listener. Connections it accepted stay open (each is destroyed
 * on its own); handshakes still pending are closed. NULL is a no-op.
 */
ISO_API void iso_listener_destroy(iso_listener *l);

/**
 * Stops accepting for good, from any thread: a thread blocked in `iso_accept` on this listener
 * returns ISO_E_STATE promptly, later `iso_accept` calls return ISO_E_STATE, handshakes in
 * progress are closed. Connections already accepted are not affected. Call it before
 * `iso_listener_destroy` when another thread may be in `iso_accept`; destroy only after that
 * thread has returned. Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_listener_shutdown(const iso_listener *l);

/**
 * Writes the port listened on to `*out`. Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_listener_port(const iso_listener *l, uint16_t *out);

/**
 * Waits up to `timeout_ms` for a client with a valid, accepted CR; answers it with a CC
 * (DST-REF = its SRC-REF, TPDU = min(requested, maximum), 128 when the CR had none, both TSAPs
 * echoed) and writes the new connection to `*out`, which works like a connected `iso_conn`
 * (except that it cannot `iso_connect`; destroy it with `iso_destroy`).
 * Clients run their handshakes side by side: a slow or silent one delays nobody and is closed
 * after the CR timeout. An invalid or filtered CR is answered with DR and closed, counted in
 * `iso_listener_refused_count` and described by `iso_listener_last_error`; the wait goes on.
 * Timeout 0 never blocks: ISO_E_WOULD_BLOCK when no client is ready.
 * Errors: ISO_E_INVALID (NULL), ISO_E_TIMEOUT, ISO_E_WOULD_BLOCK, ISO_E_IO. `*out` is written
 * only on success.
 * Thread rules: concurrent calls on one listener are serialised.
 */
ISO_API int32_t iso_accept(iso_listener *l, uint32_t timeout_ms, iso_conn **out);

/**
 * Writes a descriptor for event loops to `*out`: it becomes readable when `iso_accept(l, 0, ...)`
 * may have work (a new client, or data from a client still in its handshake). On Linux it is an
 * epoll descriptor covering the listening socket and pending handshakes; elsewhere it is the
 * listening socket, and a loop should also call `iso_accept(l, 0, ...)` when
 * `iso_listener_next_timeout` expires. Do not read, close or modify it.
 * Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_listener_get_fd(const iso_listener *l, int64_t *out);

/**
 * Writes to `*out` the milliseconds until an event loop should call `iso_accept(l, 0, ...)`
 * even if `iso_listener_get_fd` stayed quiet, or UINT32_MAX when no handshake is pending: the
 * earliest CR timeout, and on systems where that descriptor is only the listening socket (not
 * Linux) at most 20 ms while handshakes are pending, since their CRs do not wake it there.
 * Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_listener_next_timeout(const iso_listener *l, uint32_t *out);

/**
 * Sets the largest TPDU size granted: 128, 256, ..., 8192 (default 8192).
 * Errors: ISO_E_INVALID (another value or NULL). Thread-safe.
 */
ISO_API int32_t iso_listener_set_max_tpdu(iso_listener *l, uint32_t size);

/**
 * Sets how long a client has to send its CR after connecting (1..3600000 ms, default 5000).
 * Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_set_cr_timeout(iso_listener *l, uint32_t timeout_ms);

/**
 * Sets the most handshakes waiting for their CR at once (1..65536, default 64); beyond it the
 * oldest is closed. Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_set_max_pending(iso_listener *l, uint32_t count);

/**
 * Sets the send-queue limit (`iso_set_max_queued`) of connections accepted from now on
 * (0..268435456, default 262144). Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_set_max_queued(iso_listener *l, uint32_t bytes);

/**
 * Sets the maximum message size of connections accepted from now on (128..16777216).
 * Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_set_max_message(iso_listener *l, uint32_t bytes);

/**
 * Adds a called TSAP (1..32 bytes, copied) to the ones served. While the list is empty every
 * TSAP is accepted; once it has entries, a CR calling another TSAP is refused with DR reason
 * 0x03 (address unknown). Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_allow_tsap(iso_listener *l, const uint8_t *tsap, size_t len);

/**
 * Installs (or with NULL `filter`, removes) a function deciding on each valid CR, after the
 * TSAP list. `user` is passed back unchanged and must stay valid while installed.
 * Errors: ISO_E_INVALID (NULL listener). Thread-safe.
 */
ISO_API int32_t iso_listener_set_filter(iso_listener *l, iso_cr_filter filter, void *user);

/**
 * Writes the number of handshakes refused or dropped (bad CR, filter, CR timeout, overflow) to
 * `*out`. Errors: ISO_E_INVALID. Thread-safe.
 */
ISO_API int32_t iso_listener_refused_count(const iso_listener *l, uint64_t *out);

/**
 * The listener's last error or refusal (e.g. "127.0.0.1:40112: CR refused with DR reason 0x84
 * (mismatched references): CR DST-REF is 0x0005, must be 0"), copied as by `iso_last_error`.
 */
ISO_API
int32_t iso_listener_last_error(const iso_listener *l,
                                char *buf,
                                size_t cap,
                                size_t *out_needed);

/**
 * Sends one whole message without blocking: the DTs the socket does not take at once are
 * copied into the connection's send queue, in order, to be written by `iso_flush` (or by the
 * next `iso_queue_send`/`iso_send`, which write queued bytes first). A message is always
 * accepted when nothing is queued; otherwise it must fit within the queue limit
 * (`iso_set_max_queued`).
 * Errors: ISO_E_INVALID (NULL data, len 0 or above PTRDIFF_MAX), ISO_E_STATE, ISO_E_TOO_LARGE
 * (above the maximum message), ISO_E_WOULD_BLOCK (the queue is full: nothing of this message
 * was queued; wait for writability and call `iso_flush`), ISO_E_CLOSED, ISO_E_IO, ISO_E_TLS.
 * After `iso_start_tls` the message is encrypted as by `iso_send` (its records one per DT
 * by default) and queued in order with every other send; a full queue is found before
 * anything is encrypted, so ISO_E_WOULD_BLOCK loses nothing.
 * Thread rules: as `iso_send`, with which it is serialised.
 */
ISO_API int32_t iso_queue_send(iso_conn *conn, const uint8_t *data, size_t len);

/**
 * Writes queued bytes, waiting up to `timeout_ms` for the socket to take them. ISO_OK when the
 * queue is empty (also when nothing was queued). Bytes that do not go out stay queued, in order.
 * Errors: ISO_E_STATE, ISO_E_WOULD_BLOCK (timeout 0 and bytes remain), ISO_E_TIMEOUT,
 * ISO_E_CLOSED, ISO_E_IO.
 * Thread rules: as `iso_send`.
 */
ISO_API int32_t iso_flush(iso_conn *conn, uint32_t timeout_ms);

/**
 * Writes to `*out` the number of queued bytes not yet written (0 when not connected). While it
 * is above 0, wait for the socket to be writable and call `iso_flush(conn, 0)`.
 * Errors: ISO_E_INVALID (NULL). Thread-safe.
 */
ISO_API int32_t iso_get_send_pending(const iso_conn *conn, size_t *out);

/**
 * Sets how many bytes `iso_queue_send` may hold queued (0..268435456, default 262144). A
 * message is always accepted when the queue is empty, so the bound is this limit plus one
 * message.
 * Errors: ISO_E_INVALID (above the range), ISO_E_STATE (connected).
 * Thread rules: as `iso_set_tsap`.
 */
ISO_API int32_t iso_set_max_queued(iso_conn *conn, uint32_t bytes);

/**
 * The snap7 error value closest to an isotcp code: 0 for ISO_OK; for example ISO_E_REFUSED ->
 * 0x0003 (errTCPConnectionFailed), ISO_E_TIMEOUT -> 0x0004 (errTCPReceiveTimeout),
 * ISO_E_CLOSED -> 0x0008 (errTCPConnectionReset), ISO_E_REJECTED -> 0x00010000
 * (errIsoConnect), ISO_E_PROTOCOL -> 0x00030000 (errIsoInvalidPDU). The full table is in
 * MIGRATING.md. An unknown code gives 0x000B0000 (errIsoInvalidParams). Thread-safe; never fails.
 */
ISO_API int32_t iso_snap7_error(int32_t code);

/**
 * Creates a TLS configuration that verifies nothing yet: set a CA file, a pin, or (labs only)
 * insecure before `iso_start_tls`. On error `*out` is NULL. Errors: ISO_E_INVALID (NULL out;
 * a library built without TLS).
 */
ISO_API int32_t iso_tls_config_create(iso_tls_config **out);

/**
 * Frees a TLS configuration. NULL is a no-op. Sessions started with it are not affected.
 */
ISO_API void iso_tls_config_destroy(iso_tls_config *cfg);

/**
 * The PEM file of CA certificates the peer's chain must verify against (read at
 * `iso_start_tls`). On the server role it also requires a client certificate, verified
 * against these CAs (mutual TLS). Errors: ISO_E_INVALID (NULL, not UTF-8).
 */
ISO_API int32_t iso_tls_config_set_ca_file(iso_tls_config *cfg, const char *pem_path);

/**
 * The SHA-256 of the peer's certificate (DER) that it must match; `len` must be 32. On the
 * server role it also requires a client certificate, which must match the pin (mutual TLS).
 * Errors: ISO_E_INVALID (NULL, wrong length).
 */
ISO_API
int32_t iso_tls_config_set_pin_sha256(iso_tls_config *cfg,
                                      const uint8_t *digest,
                                      size_t len);

/**
 * 1: accept any peer certificate (labs only: anyone on the path can read and change the
 * traffic); on the server role, ask no client for a certificate. 0: verify (the default).
 * Errors: ISO_E_INVALID (NULL).
 */
ISO_API int32_t iso_tls_config_set_insecure(iso_tls_config *cfg, int32_t no_verification);

/**
 * The name the peer's certificate must carry, also sent as SNI; NULL: no name check (the
 * default, as PLC certificates rarely name their address). Errors: ISO_E_INVALID.
 */
ISO_API int32_t iso_tls_config_set_server_name(iso_tls_config *cfg, const char *name);

/**
 * Our certificate chain and private key (PEM files, read at `iso_start_tls`): needed by the
 * server role; for a client, needed only by a server that requires client certificates (one
 * without fails the handshake with ISO_E_TLS, the last error naming the server's alert and
 * that no identity is set). Errors: ISO_E_INVALID (NULL, not UTF-8).
 */
ISO_API
int32_t iso_tls_config_set_identity_files(iso_tls_config *cfg,
                                          const char *cert_chain_pem,
                                          const char *key_pem);

/**
 * The protocol versions allowed: 0x0303 (TLS 1.2) to 0x0304 (TLS 1.3), the default both.
 * Errors: ISO_E_INVALID (NULL, unknown version, min above max).
 */
ISO_API int32_t iso_tls_config_set_versions(iso_tls_config *cfg, uint16_t min, uint16_t max);

/**
 * An NSS key log file (SSLKEYLOGFILE format) that each session started with this config appends
 * its secrets to: with a frame trace (pcap) it lets Wireshark decrypt the payloads. Anyone who
 * can read the file can read the traffic. Errors: ISO_E_INVALID (NULL, not UTF-8).
 */
ISO_API int32_t iso_tls_config_set_keylog_file(iso_tls_config *cfg, const char *path);

/**
 * The largest plaintext of one TLS record we send: 0 (the default) sizes records so that each
 * fits one DT of the negotiated TPDU; 32 to 16384 allows larger records, which then span
 * several DTs of their TSDU (not every PLC is known to accept that). Either way no DT
 * exceeds the negotiated TPDU size. Errors: ISO_E_INVALID (NULL, out of range).
 */
ISO_API int32_t iso_tls_config_set_max_record_size(iso_tls_config *cfg, uint32_t bytes);

/**
 * Runs the TLS handshake on a connected handle within `timeout_ms`: the client role on a
 * handle `iso_connect` connected, the server role on one `iso_accept` returned (which needs
 * the identity files, and with a CA file or pin set requires a client certificate). The config
 * is copied. From then on `iso_send`, `iso_recv`, `iso_poll` and `iso_queue_send` carry TLS,
 * and `iso_disconnect`/`iso_destroy` send a close_notify first (best effort, at most ~100 ms).
 * Errors: ISO_E_INVALID (NULL; no CA file, pin or insecure set; unreadable files; TLS already
 * started; a library built without TLS), ISO_E_STATE (not connected), ISO_E_TIMEOUT,
 * ISO_E_TLS (handshake failed, certificate rejected, an alert from the peer: the last error
 * says which, in words), ISO_E_CLOSED, ISO_E_IO. A failed handshake closes the connection.
 * A client without a certificate that a server asked for waits up to 150 ms after its side of
 * the handshake for the server's verdict. With insecure set, the last error says so on
 * success.
 * Thread rules: no other call in progress on the handle.
 */
ISO_API int32_t iso_start_tls(iso_conn *conn, const iso_tls_config *cfg, uint32_t timeout_ms);

/**
 * 1 when TLS is started on the handle's current connection, 0 otherwise (also after a TLS
 * failure closed it, and always in a library built without TLS); ISO_E_INVALID for NULL.
 * Thread-safe.
 */
ISO_API int32_t iso_tls_active(const iso_conn *conn);

/**
 * Keying material from the TLS exporter (RFC 5705, RFC 8446 §7.5) into `out` (1 to 255
 * bytes): `label`, and `context` (NULL with `context_len` 0: no context, as S7CommPlus uses).
 * Errors: ISO_E_INVALID (NULL, bad length), ISO_E_STATE (TLS not started), ISO_E_TLS.
 */
ISO_API
int32_t iso_tls_export_keying_material(const iso_conn *conn,
                                       const uint8_t *label,
                                       size_t label_len,
                                       const uint8_t *context,
                                       size_t context_len,
                                       uint8_t *out,
                                       size_t out_len);

/**
 * The peer's certificate (DER) into `buf` (capacity `cap`); `*out_needed` gets its size.
 * `buf` NULL with `cap` 0 asks for the size (ISO_E_BUFFER_TOO_SMALL).
 * Errors: ISO_E_INVALID (NULL out_needed, no certificate), ISO_E_STATE (TLS not started),
 * ISO_E_BUFFER_TOO_SMALL.
 */
ISO_API
int32_t iso_tls_peer_certificate(const iso_conn *conn,
                                 uint8_t *buf,
                                 size_t cap,
                                 size_t *out_needed);

/**
 * Installs (or with NULL `callback`, removes) a trace callback. May be called at any time, also while
 * connected; `user` is passed back unchanged and must stay valid while installed. Frames sent
 * are traced when handed to the socket (or to the send queue), frames received when processed.
 * Errors: ISO_E_INVALID (NULL conn). Thread-safe.
 */
ISO_API
int32_t iso_set_trace(iso_conn *conn,
                      iso_trace_fn callback,
                      void *user);

/**
 * Writes every frame of the connection to a pcap capture file at `path` (created or truncated;
 * NULL stops and closes it). Frames carry synthetic IP/TCP headers with the connection's real
 * addresses and ports, so Wireshark decodes TPKT/COTP/S7comm directly on port 102 (elsewhere:
 * Decode As TPKT, or `tshark -d tcp.port==PORT,tpkt`). The file is flushed after each frame.
 * If writing fails (disk full), file tracing stops and the connection carries on.
 * May be called at any time. Errors: ISO_E_INVALID (NULL conn, path not UTF-8), ISO_E_IO (the
 * file cannot be created). Thread-safe.
 */
ISO_API int32_t iso_set_trace_file(iso_conn *conn, const char *path);

#ifdef __cplusplus
}  /* extern "C" */
#endif

#endif  /* ISOTCP_H */
