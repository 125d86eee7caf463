package isotcp

// #include <stdlib.h>
// #include "isotcp.h"
import "C"

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// DefaultDialTimeout bounds the COTP connect of a Dial whose context has no deadline.
const DefaultDialTimeout = 30 * time.Second

// defaultMaxMessage is the library's default maximum message size.
const defaultMaxMessage = 65536

// Conn is one ISO-on-TCP connection, dialed (Dial) or accepted (Listener.Accept).
//
// All methods may be called from any goroutine. One goroutine may be in Send (or QueueSend,
// Flush) while another is in Recv, RecvInto or Poll; two senders or two receivers are
// serialised by the library. Close wakes every blocked call.
type Conn struct {
	// mu is held shared by every call that uses h and exclusively by Close while it frees h,
	// so h is never freed while a call is in progress on it.
	mu         sync.RWMutex
	h          *C.iso_conn // nil once closed
	closing    atomic.Bool
	closeOnce  sync.Once
	tpdu       atomic.Int32 // renewed by Reconnect
	maxMessage int
	name       string // "host:port" of a dialed connection, "accepted" for an accepted one
}

func newConn(h *C.iso_conn, maxMessage int, name string) *Conn {
	c := &Conn{h: h, maxMessage: maxMessage, name: name}
	c.readTPDU(h)
	runtime.SetFinalizer(c, (*Conn).Close)
	return c
}

func (c *Conn) readTPDU(h *C.iso_conn) {
	var size C.uint32_t
	if C.iso_get_tpdu_size(h, &size) == C.ISO_OK {
		c.tpdu.Store(int32(size))
	}
}

// Dial connects to host (a name, an IPv4 literal, or an IPv6 literal with or without
// brackets) and TCP port (102 for S7): it resolves the name, opens TCP (trying every address),
// sends the COTP CR and checks the CC.
//
// The whole connect has the context's deadline, or DefaultDialTimeout when it has none; when
// it passes, the error is ErrTimeout (which also matches context.DeadlineExceeded). When the
// context is cancelled first, Dial returns at once with an error wrapping ctx.Err(); the
// library's connect cannot be interrupted, so it finishes (by its deadline at the latest) in
// the background and its handle is then freed.
//
// Errors (*Error): ErrInvalid (bad host or option), ErrResolve, ErrRefused, ErrTimeout,
// ErrClosed (the peer closed TCP after the CR: usually a wrong TSAP, rack or slot),
// ErrRejected (DR or ER; the message names the reason), ErrProtocol (malformed CC), ErrIO.
// A connect error has Phase set: PhaseTCP when no TCP connection came up (OSError then says
// why, e.g. 111 ECONNREFUSED), PhaseCOTP when TCP was up but no CC confirmed the CR.
func Dial(ctx context.Context, host string, port uint16, opts ...Option) (*Conn, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	name := net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(port)))
	op := "dial " + name
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("isotcp: %s: %w", op, err)
	}
	if strings.IndexByte(host, 0) >= 0 {
		return nil, newError(op, CodeInvalid, "host contains a NUL byte")
	}
	cfg := dialConfig{maxMessage: defaultMaxMessage}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}

	chost := C.CString(host)
	defer C.free(unsafe.Pointer(chost))
	var h *C.iso_conn
	if _, err := call(op, func() C.int32_t { return C.iso_create(chost, C.uint16_t(port), &h) }); err != nil {
		return nil, err
	}
	for _, s := range cfg.steps {
		var err error
		if s.err != nil {
			err = &Error{Code: s.err.Code, Msg: op + ": " + s.what + ": " + s.err.Msg}
		} else {
			apply := s.apply
			_, err = call(op+": "+s.what, func() C.int32_t { return apply(h) })
		}
		if err != nil {
			C.iso_destroy(h)
			return nil, err
		}
	}

	timeout := DefaultDialTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			C.iso_destroy(h)
			return nil, newError(op, CodeTimeout, "the context's deadline passed before connecting")
		}
	}
	ms := timeoutMS(timeout)
	connect := func() error {
		return connectCall(op, h, func() C.int32_t { return C.iso_connect(h, ms) })
	}

	if ctx.Done() == nil {
		if err := connect(); err != nil {
			C.iso_destroy(h)
			return nil, err
		}
		return newConn(h, cfg.maxMessage, name), nil
	}
	done := make(chan error, 1)
	go func() { done <- connect() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		if ctx.Err() != context.DeadlineExceeded {
			go func() {
				<-done
				C.iso_destroy(h)
			}()
			return nil, fmt.Errorf("isotcp: %s: %w", op, ctx.Err())
		}
		// The connect has the same deadline and ends with it: report its own result.
		err = <-done
	}
	if err != nil {
		C.iso_destroy(h)
		return nil, err
	}
	return newConn(h, cfg.maxMessage, name), nil
}

// DialTimeout is Dial with a context that has the given timeout.
func DialTimeout(timeout time.Duration, host string, port uint16, opts ...Option) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return Dial(ctx, host, port, opts...)
}

// use runs f with the handle held shared. After Close (or while it runs) it returns the
// closed-connection error instead; an error of a call that Close woke is replaced by it too.
func (c *Conn) use(op string, f func(h *C.iso_conn) (int32, error)) (int32, error) {
	if c.closing.Load() {
		return 0, closedError(op, "connection")
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.h == nil {
		return 0, closedError(op, "connection")
	}
	rc, err := f(c.h)
	if err != nil && c.closing.Load() {
		return rc, closedError(op, "connection")
	}
	return rc, err
}

// Send sends one whole message, segmented into DTs of the negotiated TPDU size, within the
// send timeout (WithSendTimeout). The library copies data before Send returns.
//
// Errors: ErrInvalid (empty message), ErrState (not connected, e.g. after a protocol error),
// ErrTooLarge (above the maximum message), ErrTimeout (nothing sent: the connection is intact;
// part sent: it is closed), ErrClosed, ErrIO; net.ErrClosed after Close.
func (c *Conn) Send(data []byte) error {
	if len(data) == 0 {
		return newError("send", CodeInvalid, "empty message: there is nothing to send")
	}
	_, err := c.use("send", func(h *C.iso_conn) (int32, error) {
		return call("send", func() C.int32_t { return C.iso_send(h, bytesPtr(data), C.size_t(len(data))) })
	})
	return err
}

// QueueSend sends one whole message without blocking: what the socket does not take at once
// is queued, in order, for Flush (or the next Send/QueueSend). ErrWouldBlock when the queue is
// full (nothing of this message was queued).
func (c *Conn) QueueSend(data []byte) error {
	if len(data) == 0 {
		return newError("queue send", CodeInvalid, "empty message: there is nothing to send")
	}
	_, err := c.use("queue send", func(h *C.iso_conn) (int32, error) {
		return call("queue send", func() C.int32_t { return C.iso_queue_send(h, bytesPtr(data), C.size_t(len(data))) })
	})
	return err
}

// Flush writes queued bytes, waiting up to timeout for the socket to take them; nil when
// nothing remains queued. ErrTimeout (or ErrWouldBlock for timeout 0) when bytes remain.
func (c *Conn) Flush(timeout time.Duration) error {
	ms := timeoutMS(timeout)
	_, err := c.use("flush", func(h *C.iso_conn) (int32, error) {
		return call("flush", func() C.int32_t { return C.iso_flush(h, ms) })
	})
	return err
}

// SendPending is the number of queued bytes not yet written (0 when not connected).
func (c *Conn) SendPending() (int, error) {
	var n C.size_t
	_, err := c.use("send pending", func(h *C.iso_conn) (int32, error) {
		return call("send pending", func() C.int32_t { return C.iso_get_send_pending(h, &n) })
	})
	return int(n), err
}

// Poll waits up to timeout for a whole message: true when one is ready (the next Recv returns
// it at once), false when none completed in time (a partial message stays buffered). Timeout 0
// never blocks; a negative one waits Forever.
//
// Errors: ErrState, ErrClosed (the peer closed and no whole message is buffered),
// ErrProtocol, ErrTooLarge, ErrIO; net.ErrClosed after Close.
func (c *Conn) Poll(timeout time.Duration) (bool, error) {
	ms := timeoutMS(timeout)
	rc, err := c.use("poll", func(h *C.iso_conn) (int32, error) {
		return call("poll", func() C.int32_t { return C.iso_poll(h, ms) })
	})
	if err != nil {
		return false, err
	}
	return rc == 1, nil
}

// scratch holds receive buffers of the library's default maximum message size.
var scratch = sync.Pool{New: func() interface{} {
	b := make([]byte, defaultMaxMessage)
	return &b
}}

// Recv receives one whole message, waiting up to timeout (0: do not wait, negative: Forever).
// The returned slice is the caller's.
//
// Errors: ErrTimeout (ErrWouldBlock for timeout 0) when no whole message arrived: nothing is
// lost, the next call continues; ErrClosed (the peer closed, reset, or sent DR/ER, after any
// buffered messages were read); ErrProtocol and ErrTooLarge (the connection is closed);
// ErrState; ErrIO; net.ErrClosed after Close.
func (c *Conn) Recv(timeout time.Duration) ([]byte, error) {
	bp := scratch.Get().(*[]byte)
	defer scratch.Put(bp)
	start := time.Now()
	buf := *bp
	for {
		n, err := c.recv(buf, timeout, "recv")
		if err == nil {
			return append([]byte(nil), buf[:n]...), nil
		}
		if e, ok := err.(*Error); !ok || e.Code != CodeBufferTooSmall {
			return nil, err
		}
		// A message above the pooled buffer (a maximum message above the default) stays
		// queued: receive it into a buffer of its size, with the time left.
		buf = make([]byte, n)
		if timeout > 0 {
			if timeout -= time.Since(start); timeout <= 0 {
				timeout = time.Millisecond
			}
		}
		n2, err := c.recv(buf, timeout, "recv")
		if err == nil {
			return buf[:n2], nil
		}
		if e, ok := err.(*Error); !ok || e.Code != CodeBufferTooSmall {
			return nil, err
		}
		// Another receiver took that message and a larger one is next: try again.
		buf = make([]byte, n2)
	}
}

// RecvInto receives one whole message into buf and returns its length, waiting up to timeout
// (0: do not wait, negative: Forever). When buf is too small the error is ErrBufferTooSmall,
// the returned int is the size needed, and the message stays queued for the next call, so
// RecvInto(nil, 0) asks the size of a message that is ready. Other errors as Recv.
func (c *Conn) RecvInto(buf []byte, timeout time.Duration) (int, error) {
	return c.recv(buf, timeout, "recv")
}

func (c *Conn) recv(buf []byte, timeout time.Duration, op string) (int, error) {
	ms := timeoutMS(timeout)
	var n C.size_t
	var empty [1]byte
	p := bytesPtr(buf)
	if p == nil {
		// The library needs a non-NULL buffer even for capacity 0 (a size query).
		p = (*C.uint8_t)(unsafe.Pointer(&empty[0]))
	}
	rc, err := c.use(op, func(h *C.iso_conn) (int32, error) {
		return call(op, func() C.int32_t { return C.iso_recv(h, p, C.size_t(len(buf)), &n, ms) })
	})
	if err != nil {
		if rc == CodeBufferTooSmall {
			return int(n), err
		}
		return 0, err
	}
	return int(n), nil
}

// Alive reports whether the connection can carry a new request: false when it is closed, not
// connected, or the peer has closed or reset it (messages already buffered stay readable).
// Never blocks, consumes nothing.
func (c *Conn) Alive() bool {
	rc, err := c.use("check connection", func(h *C.iso_conn) (int32, error) {
		return int32(C.iso_check_connection(h)), nil
	})
	return err == nil && rc == 1
}

// TPDUSize is the TPDU size negotiated for this connection (128..8192).
func (c *Conn) TPDUSize() int { return int(c.tpdu.Load()) }

// Reconnect ends the connection and connects again with the options it was dialed with, all
// within the context's deadline (DefaultDialTimeout when it has none): while the COTP
// connection is still up a DR goes out first, so the PLC releases its side at once; when it is
// already gone (ErrClosed from Recv, Alive false) it just connects. The PLC holds one
// connection from this Conn at most, however often it reconnects. Messages still buffered from
// the old connection are dropped.
//
// When the context is cancelled, a wait for the CC ends at once and the error wraps ctx.Err();
// a TCP connect in progress runs on to the deadline first. Errors as Dial (with Phase set),
// ErrState for an accepted connection (it has no address to dial), net.ErrClosed after Close.
// The Conn stays usable after a failed Reconnect: Reconnect may be called again.
func (c *Conn) Reconnect(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	op := "reconnect " + c.name
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("isotcp: %s: %w", op, err)
	}
	timeout := DefaultDialTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return newError(op, CodeTimeout, "the context's deadline passed before reconnecting")
		}
	}
	ms := timeoutMS(timeout)
	return c.cancellable(ctx, op, func(h *C.iso_conn) (int32, error) {
		err := connectCall(op, h, func() C.int32_t { return C.iso_reconnect(h, ms) })
		if err == nil {
			c.readTPDU(h)
			return 0, nil
		}
		return 0, err
	})
}

// cancellable runs fn on the handle like use, and closes the connection (iso_disconnect, which
// ends a blocked connect or handshake) when ctx is cancelled meanwhile; the error then wraps
// ctx.Err(). A passed deadline is left to fn's own timeout.
func (c *Conn) cancellable(ctx context.Context, op string, fn func(h *C.iso_conn) (int32, error)) error {
	var cancelled atomic.Bool
	_, err := c.use(op, func(h *C.iso_conn) (int32, error) {
		var watcher sync.WaitGroup
		stop := make(chan struct{})
		if done := ctx.Done(); done != nil {
			watcher.Add(1)
			go func() {
				defer watcher.Done()
				select {
				case <-done:
					if ctx.Err() != context.DeadlineExceeded {
						cancelled.Store(true)
						C.iso_disconnect(h)
					}
				case <-stop:
				}
			}()
		}
		rc, err := fn(h)
		// The watcher ends before the handle is released, so it never touches a freed one.
		close(stop)
		watcher.Wait()
		return rc, err
	})
	if cancelled.Load() && !c.closing.Load() {
		return fmt.Errorf("isotcp: %s: %w", op, ctx.Err())
	}
	return err
}

// ConnectPhase is where the last Dial or Reconnect of this Conn failed: PhaseNone after a
// successful one (so always PhaseNone until a Reconnect fails).
func (c *Conn) ConnectPhase() (Phase, error) {
	var p C.int32_t
	_, err := c.use("connect phase", func(h *C.iso_conn) (int32, error) {
		return call("connect phase", func() C.int32_t { return C.iso_get_connect_phase(h, &p) })
	})
	return Phase(p), err
}

// LastOSError is the OS error code behind the connection's last failure (see Error.OSError);
// 0 when it had none or before the first.
func (c *Conn) LastOSError() (int32, error) {
	var code C.int32_t
	_, err := c.use("last os error", func(h *C.iso_conn) (int32, error) {
		return call("last os error", func() C.int32_t { return C.iso_last_os_error(h, &code) })
	})
	return int32(code), err
}

// Fd is the connection's socket, for readiness waits (poll, epoll): wait for readability,
// then call Poll(0) or Recv(0). Do not read, write or close it. Valid until Close.
// Errors: ErrState when not connected; net.ErrClosed after Close.
func (c *Conn) Fd() (int, error) {
	var fd C.int64_t
	_, err := c.use("get fd", func(h *C.iso_conn) (int32, error) {
		return call("get fd", func() C.int32_t { return C.iso_get_fd(h, &fd) })
	})
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// RemoteTSAP is the called TSAP (C2) of the connection: the one this connection asked for, or
// for an accepted connection the one the client asked for.
func (c *Conn) RemoteTSAP() ([]byte, error) {
	return c.tsap("remote tsap", func(h *C.iso_conn, p *C.uint8_t, cap C.size_t, n *C.size_t) C.int32_t {
		return C.iso_get_remote_tsap(h, p, cap, n)
	})
}

// LocalTSAP is the calling TSAP (C1) of the connection.
func (c *Conn) LocalTSAP() ([]byte, error) {
	return c.tsap("local tsap", func(h *C.iso_conn, p *C.uint8_t, cap C.size_t, n *C.size_t) C.int32_t {
		return C.iso_get_calling_tsap(h, p, cap, n)
	})
}

func (c *Conn) tsap(op string, get func(*C.iso_conn, *C.uint8_t, C.size_t, *C.size_t) C.int32_t) ([]byte, error) {
	buf := make([]byte, 64)
	for {
		var n C.size_t
		rc, err := c.use(op, func(h *C.iso_conn) (int32, error) {
			return call(op, func() C.int32_t { return get(h, bytesPtr(buf), C.size_t(len(buf)), &n) })
		})
		if err == nil {
			return buf[:n], nil
		}
		if rc != CodeBufferTooSmall || int(n) <= len(buf) {
			return nil, err
		}
		buf = make([]byte, n)
	}
}

// String names the connection: "host:port" for a dialed one.
func (c *Conn) String() string { return "isotcp.Conn(" + c.name + ")" }

// Close closes the connection (class 0 releases by closing TCP) and frees the handle. Calls
// blocked in Recv, Poll, Send or Flush return promptly with an error matching net.ErrClosed,
// as does every later call. Close is idempotent and always returns nil; concurrent calls wait
// until the handle is freed.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		runtime.SetFinalizer(c, nil)
		// Wake blocked calls, then wait for every call to leave the handle before freeing it.
		c.mu.RLock()
		if c.h != nil {
			C.iso_disconnect(c.h)
		}
		c.mu.RUnlock()
		c.mu.Lock()
		h := c.h
		c.h = nil
		c.mu.Unlock()
		if h != nil {
			C.iso_destroy(h)
		}
	})
	return nil
}
