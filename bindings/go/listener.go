package isotcp

// #include <stdlib.h>
// #include "isotcp.h"
import "C"

import (
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

// acceptSlice is the longest single wait inside Accept (iso_accept takes milliseconds as a
// uint32); Accept with no time limit waits in slices this long. Close does not wait for a slice
// to end: iso_listener_shutdown wakes the Accept at once.
const acceptSlice = time.Hour

// Listener is the passive side: it accepts ISO-on-TCP clients (TCP accept, CR validated, CC
// sent). All methods may be called from any goroutine; concurrent Accepts are serialised.
type Listener struct {
	mu         sync.RWMutex // as Conn.mu
	h          *C.iso_listener
	closing    atomic.Bool
	closeOnce  sync.Once
	port       uint16
	maxMessage int
	name       string
}

// Listen listens on host and port. host "" or "::" listens on every IPv6 and IPv4 address,
// "0.0.0.0" on every IPv4 address, "127.0.0.1", "::1" or a host name on that address. Port 0
// picks a free port (see Port).
//
// Errors (*Error): ErrInvalid (bad host or option), ErrResolve, ErrIO (e.g. port in use).
func Listen(host string, port uint16, opts ...ListenOption) (*Listener, error) {
	name := net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(port)))
	op := "listen " + name
	if strings.IndexByte(host, 0) >= 0 {
		return nil, newError(op, CodeInvalid, "host contains a NUL byte")
	}
	cfg := listenConfig{maxMessage: defaultMaxMessage}
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	var chost *C.char
	if host != "" {
		chost = C.CString(host)
		defer C.free(unsafe.Pointer(chost))
	}
	var h *C.iso_listener
	if _, err := call(op, func() C.int32_t { return C.iso_listen(chost, C.uint16_t(port), &h) }); err != nil {
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
			C.iso_listener_destroy(h)
			return nil, err
		}
	}
	var p C.uint16_t
	C.iso_listener_port(h, &p)
	l := &Listener{h: h, port: uint16(p), maxMessage: cfg.maxMessage}
	l.name = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(int(p)))
	runtime.SetFinalizer(l, (*Listener).Close)
	return l, nil
}

// Port is the TCP port listened on (the one picked when Listen was given 0).
func (l *Listener) Port() uint16 { return l.port }

// String names the listener: "host:port".
func (l *Listener) String() string { return "isotcp.Listener(" + l.name + ")" }

func (l *Listener) use(op string, f func(h *C.iso_listener) (int32, error)) (int32, error) {
	if l.closing.Load() {
		return 0, closedError(op, "listener")
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.h == nil {
		return 0, closedError(op, "listener")
	}
	return f(l.h)
}

// Accept waits up to timeout (0: do not wait, negative: Forever) for a client with a valid,
// accepted CR, answers it with a CC and returns the connection. Clients run their handshakes
// side by side; an invalid or refused CR is answered with DR and counted in RefusedCount, and
// the wait goes on.
//
// Errors: ErrTimeout (ErrWouldBlock for timeout 0) when no client completed its handshake in
// time, ErrIO; net.ErrClosed when the listener is closed, also during the wait.
func (l *Listener) Accept(timeout time.Duration) (*Conn, error) {
	const op = "accept"
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	for {
		wait := time.Duration(0)
		switch {
		case timeout < 0:
			wait = acceptSlice
		case timeout > 0:
			wait = time.Until(deadline)
			if wait > acceptSlice {
				wait = acceptSlice
			}
			if wait < time.Millisecond {
				wait = time.Millisecond
			}
		}
		ms := timeoutMS(wait)
		var out *C.iso_conn
		rc, err := l.use(op, func(h *C.iso_listener) (int32, error) {
			return call(op, func() C.int32_t { return C.iso_accept(h, ms, &out) })
		})
		if err == nil {
			return newConn(out, l.maxMessage, "accepted on "+l.name), nil
		}
		if l.closing.Load() {
			// Close shut the listener down, which woke this call.
			return nil, closedError(op, "listener")
		}
		if rc != CodeTimeout && rc != CodeWouldBlock {
			return nil, err
		}
		if l.closing.Load() {
			return nil, closedError(op, "listener")
		}
		if timeout == 0 {
			return nil, err
		}
		if timeout > 0 && !time.Now().Before(deadline) {
			return nil, newError(op, CodeTimeout, fmt.Sprintf("no client completed its handshake within %v", timeout))
		}
	}
}

// Fd is a descriptor for event loops: it becomes readable when Accept(0) may have work. On
// Linux it is an epoll descriptor covering the listening socket and the pending handshakes.
// Do not read, close or modify it.
func (l *Listener) Fd() (int, error) {
	var fd C.int64_t
	_, err := l.use("listener fd", func(h *C.iso_listener) (int32, error) {
		return call("listener fd", func() C.int32_t { return C.iso_listener_get_fd(h, &fd) })
	})
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

// RefusedCount is the number of handshakes refused or dropped (bad CR, TSAP not allowed, CR
// timeout, too many pending).
func (l *Listener) RefusedCount() (uint64, error) {
	var n C.uint64_t
	_, err := l.use("refused count", func(h *C.iso_listener) (int32, error) {
		return call("refused count", func() C.int32_t { return C.iso_listener_refused_count(h, &n) })
	})
	return uint64(n), err
}

// LastError is the listener's last error or refusal, e.g. why a CR was refused; "no error"
// before the first and "" after Close.
func (l *Listener) LastError() string {
	var msg string
	_, _ = l.use("listener last error", func(h *C.iso_listener) (int32, error) {
		var needed C.size_t
		C.iso_listener_last_error(h, nil, 0, &needed)
		if needed == 0 {
			return 0, nil
		}
		buf := C.malloc(needed)
		defer C.free(buf)
		C.iso_listener_last_error(h, (*C.char)(buf), needed, nil)
		msg = C.GoString((*C.char)(buf))
		return 0, nil
	})
	return msg
}

// Close stops listening and frees the listener; handshakes still pending are closed.
// Connections it accepted stay open. An Accept in progress returns an error matching
// net.ErrClosed at once, as does every later call. Idempotent; always returns nil.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.closing.Store(true)
		runtime.SetFinalizer(l, nil)
		// Wake an Accept in progress at once, so the lock below is not kept waiting.
		l.mu.RLock()
		if l.h != nil {
			C.iso_listener_shutdown(l.h)
		}
		l.mu.RUnlock()
		l.mu.Lock()
		h := l.h
		l.h = nil
		l.mu.Unlock()
		if h != nil {
			C.iso_listener_destroy(h)
		}
	})
	return nil
}
