package isotcp

// #include "isotcp.h"
import "C"

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// Option configures a connection made by Dial. Options apply in the order given, so a later
// one overrides an earlier one touching the same setting (WithRackSlot and WithTSAP both set
// the TSAPs, WithS7Routing replaces them). An invalid value makes Dial fail with an *Error of
// code ISO_E_INVALID naming the option.
//
// Without options the library's defaults hold: local TSAP 0x0100, remote TSAP 0x0102 (PG,
// rack 0, slot 2), TPDU size 1024, send timeout 5 s, maximum message 65536 bytes, 4096
// fragments per message, TCP keep-alive on (idle 60 s, interval 10 s, 3 probes), the user
// timeout derived from keep-alive, 250 ms between connect attempts to a name's addresses.
type Option func(*dialConfig)

type dialConfig struct {
	steps      []step
	maxMessage int
}

// step is one setter call on the C handle before connecting.
type step struct {
	what  string
	apply func(h *C.iso_conn) C.int32_t
	err   *Error // set when the option's arguments are wrong before any C call
}

func (c *dialConfig) add(what string, apply func(h *C.iso_conn) C.int32_t) {
	c.steps = append(c.steps, step{what: what, apply: apply})
}

func (c *dialConfig) fail(what, format string, args ...interface{}) {
	c.steps = append(c.steps, step{what: what, err: &Error{Code: CodeInvalid, Msg: fmt.Sprintf(format, args...)}})
}

// WithTSAP sets the local (calling, C1) and remote (called, C2) TSAPs as 16-bit values, e.g.
// 0x0100 and 0x0102.
func WithTSAP(local, remote uint16) Option {
	return func(c *dialConfig) {
		c.add("set tsap", func(h *C.iso_conn) C.int32_t {
			return C.iso_set_tsap(h, C.uint16_t(local), C.uint16_t(remote))
		})
	}
}

// WithTSAPBytes sets the TSAPs as byte strings of 1 to 32 bytes, e.g. local {0x06, 0x00} and
// remote []byte("SIMATIC-ROOT-HMI"). The slices are copied when the option is made.
func WithTSAPBytes(local, remote []byte) Option {
	l := append([]byte(nil), local...)
	r := append([]byte(nil), remote...)
	return func(c *dialConfig) {
		if len(l) == 0 || len(r) == 0 {
			c.fail("set tsap bytes", "a TSAP is empty (local %d bytes, remote %d; each needs 1..32)", len(l), len(r))
			return
		}
		c.add("set tsap bytes", func(h *C.iso_conn) C.int32_t {
			return C.iso_set_tsap_bytes(h, bytesPtr(l), C.size_t(len(l)), bytesPtr(r), C.size_t(len(r)))
		})
	}
}

// WithS7TSAP sets local TSAP 0x0100 and the S7 remote TSAP of a connection type (1 PG, 2 OP,
// 3..0x10 S7 basic), rack (0..7) and slot (0..31); see S7TSAP.
func WithS7TSAP(connType, rack, slot uint8) Option {
	return func(c *dialConfig) {
		remote, err := S7TSAP(connType, rack, slot)
		if err != nil {
			e := err.(*Error)
			c.steps = append(c.steps, step{what: "s7 tsap", err: &Error{Code: e.Code, Msg: strings.TrimPrefix(e.Msg, "s7 tsap: ")}})
			return
		}
		WithTSAP(0x0100, remote)(c)
	}
}

// WithRackSlot addresses an S7 CPU by rack and slot with a PG connection: local TSAP 0x0100,
// remote TSAP 0x0100 | rack<<5 | slot (rack 0 slot 2 gives 0x0102; S7-1200/1500 use slot 1).
func WithRackSlot(rack, slot uint8) Option {
	return WithS7TSAP(1, rack, slot)
}

// WithTPDUSize sets the TPDU size offered in the CR: 128, 256, 512, 1024 (default), 2048,
// 4096 or 8192. The peer may lower it; Conn.TPDUSize tells the result.
func WithTPDUSize(size int) Option {
	return func(c *dialConfig) {
		v, ok := u32(size)
		if !ok {
			c.fail("set tpdu size", "TPDU size %d is not one of 128, 256, ..., 8192", size)
			return
		}
		c.add("set tpdu size", func(h *C.iso_conn) C.int32_t { return C.iso_set_tpdu_size(h, v) })
	}
}

// WithRouting adds python-snap7's routing parameters to the CR (C6 subnet, C7 rack/slot of the
// destination); the TSAPs stay as set and address the gateway. Real Siemens gateways need
// WithS7Routing instead.
func WithRouting(subnetID, destRack, destSlot uint16) Option {
	return func(c *dialConfig) {
		c.add("set routing", func(h *C.iso_conn) C.int32_t {
			return C.iso_set_routing(h, C.uint16_t(subnetID), C.uint16_t(destRack), C.uint16_t(destSlot))
		})
	}
}

// WithS7Routing routes through a Siemens gateway (S7 routing): both TSAPs become 28-byte
// extended TSAPs naming the destination. subnetHigh and subnetLow are the halves of the S7
// subnet ID as STEP 7 shows it ("0152-0013" is 0x0152, 0x0013); destAddr is the destination's
// address on that subnet (1 byte MPI/PROFIBUS, or 4 bytes IPv4); connType 1 PG, 2 OP, 3..0x10;
// rack 0..7 and slot 0..31 of the destination CPU.
func WithS7Routing(subnetHigh, subnetLow uint16, destAddr []byte, connType uint8, destRack, destSlot uint16) Option {
	addr := append([]byte(nil), destAddr...)
	return func(c *dialConfig) {
		c.add("set s7 routing", func(h *C.iso_conn) C.int32_t {
			return C.iso_set_routing_s7(h, C.uint16_t(subnetHigh), C.uint16_t(subnetLow),
				bytesPtr(addr), C.size_t(len(addr)), C.uint8_t(connType),
				C.uint16_t(destRack), C.uint16_t(destSlot))
		})
	}
}

// WithMaxMessage sets the largest message sent or received, 128 to 16777216 bytes (default
// 65536). A larger message from the peer fails Recv with ErrTooLarge and closes the connection.
func WithMaxMessage(bytes int) Option {
	return func(c *dialConfig) {
		v, ok := u32(bytes)
		if !ok {
			c.fail("set max message", "maximum message %d is outside 128..16777216", bytes)
			return
		}
		c.add("set max message", func(h *C.iso_conn) C.int32_t { return C.iso_set_max_message(h, v) })
		c.maxMessage = bytes
	}
}

// WithMaxFragments sets the most DTs one received message may have (1..1048576, default 4096).
func WithMaxFragments(n int) Option {
	return func(c *dialConfig) {
		v, ok := u32(n)
		if !ok {
			c.fail("set max fragments", "fragment limit %d is outside 1..1048576", n)
			return
		}
		c.add("set max fragments", func(h *C.iso_conn) C.int32_t { return C.iso_set_max_fragments(h, v) })
	}
}

// WithKeepAlive turns TCP keep-alive on: probes start after idle of silence, repeat every
// interval, and count unanswered probes end the connection. Times are whole seconds (rounded
// up), 1..32767; count 1..32767 (ignored on Windows).
func WithKeepAlive(idle, interval time.Duration, count int) Option {
	return func(c *dialConfig) {
		is, iv := seconds(idle), seconds(interval)
		n, ok := u32(count)
		if !ok {
			c.fail("set keepalive", "keep-alive probe count %d is outside 1..32767", count)
			return
		}
		c.add("set keepalive", func(h *C.iso_conn) C.int32_t { return C.iso_set_keepalive(h, 1, is, iv, n) })
	}
}

// WithoutKeepAlive turns TCP keep-alive off.
func WithoutKeepAlive() Option {
	return func(c *dialConfig) {
		c.add("set keepalive", func(h *C.iso_conn) C.int32_t { return C.iso_set_keepalive(h, 0, 0, 0, 0) })
	}
}

// WithSendTimeout sets the deadline of each Send (default 5 s). 0 means never wait: a Send
// the socket cannot take at once fails with ErrWouldBlock. A negative value means Forever.
func WithSendTimeout(d time.Duration) Option {
	return func(c *dialConfig) {
		ms := timeoutMS(d)
		c.add("set send timeout", func(h *C.iso_conn) C.int32_t { return C.iso_set_send_timeout(h, ms) })
	}
}

// WithUserTimeout bounds how long sent data may stay unacknowledged before the system gives
// up on the connection (TCP_USER_TIMEOUT on Linux; whole seconds on Windows), so a peer that
// vanished under a pending request makes Recv, Poll, Send and Alive report the loss (ErrIO,
// OSError ETIMEDOUT) instead of after about 15 minutes of retransmissions. d is rounded up to
// whole milliseconds, 1 ms to 2073600 s; 0 means the system's default. Negative or larger
// values make Dial fail with ErrInvalid. Without this option (or with
// WithUserTimeoutFromKeepAlive) the bound is idle + interval x count of the keep-alive
// settings while keep-alive is on, the system's default when it is off.
func WithUserTimeout(d time.Duration) Option {
	return func(c *dialConfig) {
		if d < 0 {
			c.fail("set user timeout", "user timeout %v is negative (0 is the system's default)", d)
			return
		}
		ms := timeoutMS(d)
		if ms == C.ISO_USER_TIMEOUT_FROM_KEEPALIVE {
			c.fail("set user timeout", "user timeout %v is above 2073600 s", d)
			return
		}
		c.add("set user timeout", func(h *C.iso_conn) C.int32_t { return C.iso_set_user_timeout(h, ms) })
	}
}

// WithUserTimeoutFromKeepAlive restores the default user timeout: it follows the keep-alive
// settings (see WithUserTimeout).
func WithUserTimeoutFromKeepAlive() Option {
	return func(c *dialConfig) {
		c.add("set user timeout", func(h *C.iso_conn) C.int32_t {
			return C.iso_set_user_timeout(h, C.ISO_USER_TIMEOUT_FROM_KEEPALIVE)
		})
	}
}

// WithConnectAttemptDelay sets the delay between the starts of TCP connects to successive
// addresses of a host name that resolves to several (IPv6 and IPv4, the two CPUs of a
// redundant pair): 0 to 10 s, rounded up to whole milliseconds (default 250 ms, RFC 8305). An
// attempt not complete by then keeps running while the next starts; the first to complete TCP
// and the CC wins, within the one Dial deadline. Negative or larger values make Dial fail
// with ErrInvalid.
func WithConnectAttemptDelay(d time.Duration) Option {
	return func(c *dialConfig) {
		if d < 0 {
			c.fail("set connect attempt delay", "connect attempt delay %v is negative", d)
			return
		}
		ms := timeoutMS(d)
		c.add("set connect attempt delay", func(h *C.iso_conn) C.int32_t { return C.iso_set_connect_attempt_delay(h, ms) })
	}
}

// WithMaxQueued sets how many bytes QueueSend may hold queued (0..268435456, default 262144).
func WithMaxQueued(bytes int) Option {
	return func(c *dialConfig) {
		v, ok := u32(bytes)
		if !ok {
			c.fail("set max queued", "queue limit %d is outside 0..268435456", bytes)
			return
		}
		c.add("set max queued", func(h *C.iso_conn) C.int32_t { return C.iso_set_max_queued(h, v) })
	}
}

// u32 converts n for a uint32_t parameter; false when it does not fit (the library checks the
// actual range).
func u32(n int) (C.uint32_t, bool) {
	if n < 0 || uint64(n) > math.MaxUint32 {
		return 0, false
	}
	return C.uint32_t(n), true
}

// seconds converts d to whole seconds, rounding up; 0 or less gives 0 (which the library
// refuses while keep-alive is on), and values above math.MaxUint32 are clamped.
func seconds(d time.Duration) C.uint32_t {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > math.MaxUint32 {
		return C.uint32_t(math.MaxUint32)
	}
	return C.uint32_t(s)
}

// ListenOption configures a Listener made by Listen.
//
// Without options: TPDU sizes up to 8192 granted, 5 s for a client to send its CR, 64
// handshakes pending at most, every called TSAP accepted, accepted connections with the
// defaults of a dialed one.
type ListenOption func(*listenConfig)

type listenConfig struct {
	steps      []listenStep
	maxMessage int
}

type listenStep struct {
	what  string
	apply func(l *C.iso_listener) C.int32_t
	err   *Error
}

func (c *listenConfig) add(what string, apply func(l *C.iso_listener) C.int32_t) {
	c.steps = append(c.steps, listenStep{what: what, apply: apply})
}

func (c *listenConfig) fail(what, format string, args ...interface{}) {
	c.steps = append(c.steps, listenStep{what: what, err: &Error{Code: CodeInvalid, Msg: fmt.Sprintf(format, args...)}})
}

// ListenMaxTPDU sets the largest TPDU size granted: 128, 256, ..., 8192 (default 8192).
func ListenMaxTPDU(size int) ListenOption {
	return func(c *listenConfig) {
		v, ok := u32(size)
		if !ok {
			c.fail("listener max tpdu", "TPDU size %d is not one of 128, 256, ..., 8192", size)
			return
		}
		c.add("listener max tpdu", func(l *C.iso_listener) C.int32_t { return C.iso_listener_set_max_tpdu(l, v) })
	}
}

// ListenCRTimeout sets how long a client has to send its CR after connecting (1 ms to 1 h,
// default 5 s).
func ListenCRTimeout(d time.Duration) ListenOption {
	return func(c *listenConfig) {
		ms := timeoutMS(d)
		c.add("listener cr timeout", func(l *C.iso_listener) C.int32_t { return C.iso_listener_set_cr_timeout(l, ms) })
	}
}

// ListenMaxPending sets the most handshakes waiting for their CR at once (1..65536, default
// 64); beyond it the oldest is closed.
func ListenMaxPending(n int) ListenOption {
	return func(c *listenConfig) {
		v, ok := u32(n)
		if !ok {
			c.fail("listener max pending", "pending limit %d is outside 1..65536", n)
			return
		}
		c.add("listener max pending", func(l *C.iso_listener) C.int32_t { return C.iso_listener_set_max_pending(l, v) })
	}
}

// ListenMaxMessage sets the maximum message size of accepted connections (128..16777216,
// default 65536).
func ListenMaxMessage(bytes int) ListenOption {
	return func(c *listenConfig) {
		v, ok := u32(bytes)
		if !ok {
			c.fail("listener max message", "maximum message %d is outside 128..16777216", bytes)
			return
		}
		c.add("listener max message", func(l *C.iso_listener) C.int32_t { return C.iso_listener_set_max_message(l, v) })
		c.maxMessage = bytes
	}
}

// ListenMaxQueued sets the send-queue limit of accepted connections (0..268435456, default
// 262144).
func ListenMaxQueued(bytes int) ListenOption {
	return func(c *listenConfig) {
		v, ok := u32(bytes)
		if !ok {
			c.fail("listener max queued", "queue limit %d is outside 0..268435456", bytes)
			return
		}
		c.add("listener max queued", func(l *C.iso_listener) C.int32_t { return C.iso_listener_set_max_queued(l, v) })
	}
}

// ListenAllowTSAP adds a called TSAP (1..32 bytes) to the ones served. While none is added
// every TSAP is accepted; once one is, a CR calling another TSAP is refused with DR reason
// 0x03 (address unknown). Use it once per TSAP.
func ListenAllowTSAP(tsap []byte) ListenOption {
	t := append([]byte(nil), tsap...)
	return func(c *listenConfig) {
		c.add("listener allow tsap", func(l *C.iso_listener) C.int32_t {
			return C.iso_listener_allow_tsap(l, bytesPtr(t), C.size_t(len(t)))
		})
	}
}

// ListenAllowTSAP16 is ListenAllowTSAP for a 16-bit TSAP such as 0x0102 (sent high byte first).
func ListenAllowTSAP16(tsap uint16) ListenOption {
	return ListenAllowTSAP([]byte{byte(tsap >> 8), byte(tsap)})
}
