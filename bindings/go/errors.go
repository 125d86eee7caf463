package isotcp

// #include "isotcp.h"
import "C"

import (
	"context"
	"fmt"
	"net"
	"os"
)

// Result codes of the C library (ISO_E_* in isotcp.h). They are stable: never renumbered.
const (
	CodeInvalid        int32 = C.ISO_E_INVALID
	CodeState          int32 = C.ISO_E_STATE
	CodeResolve        int32 = C.ISO_E_RESOLVE
	CodeRefused        int32 = C.ISO_E_REFUSED
	CodeTimeout        int32 = C.ISO_E_TIMEOUT
	CodeWouldBlock     int32 = C.ISO_E_WOULD_BLOCK
	CodeClosed         int32 = C.ISO_E_CLOSED
	CodeRejected       int32 = C.ISO_E_REJECTED
	CodeProtocol       int32 = C.ISO_E_PROTOCOL
	CodeTooLarge       int32 = C.ISO_E_TOO_LARGE
	CodeBufferTooSmall int32 = C.ISO_E_BUFFER_TOO_SMALL
	CodeIO             int32 = C.ISO_E_IO
	CodePanic          int32 = C.ISO_E_PANIC
	CodePoisoned       int32 = C.ISO_E_POISONED
	CodeTLS            int32 = C.ISO_E_TLS
)

// Error is every error the library reports: the ISO_E_* code and a message saying what went
// wrong (the C library's last error for the call, prefixed with the operation), the operating
// system's error code behind it, and for a failed Dial or Reconnect the phase it stopped in.
//
// errors.Is(err, ErrTimeout) (or any other sentinel below) compares codes, so it holds for
// every *Error with that code whatever its message. Timeouts also match
// os.ErrDeadlineExceeded and context.DeadlineExceeded, and an operation on a Conn or Listener
// after its Close matches net.ErrClosed (its code is CodeState).
type Error struct {
	Code int32
	Msg  string
	// OSError is the OS error code behind the failure: errno on Linux and macOS (e.g. 111,
	// ECONNREFUSED, for a refused connect; 104 ECONNRESET; 110 ETIMEDOUT), the WSA code on
	// Windows; 0 when it had none (a deadline of the library's own, a protocol error, a DR).
	// Read with iso_thread_last_os_error on the OS thread that made the failing call.
	OSError int32
	// Phase is, for a failed Dial or Reconnect, where the connect stopped: PhaseResolve,
	// PhaseTCP (the PLC is unreachable) or PhaseCOTP (reachable, but no CC confirmed the CR).
	// PhaseNone for every other error.
	Phase Phase
	cause error
}

// Phase says where a connect failed (iso_get_connect_phase).
type Phase int32

// The connect phases.
const (
	PhaseNone    Phase = C.ISO_PHASE_NONE    // the connect succeeded, or the error is not a connect's
	PhaseResolve Phase = C.ISO_PHASE_RESOLVE // resolving the host name failed
	PhaseTCP     Phase = C.ISO_PHASE_TCP     // no address completed the TCP connect: the PLC is unreachable
	PhaseCOTP    Phase = C.ISO_PHASE_COTP    // TCP was up and the CR sent, but no CC confirmed it
)

// String names the phase: "none", "resolve", "tcp", "cotp".
func (p Phase) String() string {
	switch p {
	case PhaseNone:
		return "none"
	case PhaseResolve:
		return "resolve"
	case PhaseTCP:
		return "tcp"
	case PhaseCOTP:
		return "cotp"
	}
	return fmt.Sprintf("phase %d", int32(p))
}

// Sentinel errors, one per ISO_E_* code, for errors.Is.
var (
	ErrInvalid        = sentinel(CodeInvalid)        // invalid argument
	ErrState          = sentinel(CodeState)          // not allowed now (not connected, closed handle, ...)
	ErrResolve        = sentinel(CodeResolve)        // host name could not be resolved
	ErrRefused        = sentinel(CodeRefused)        // TCP connection refused
	ErrTimeout        = sentinel(CodeTimeout)        // deadline passed; nothing received is lost
	ErrWouldBlock     = sentinel(CodeWouldBlock)     // timeout 0 and the operation cannot complete now
	ErrClosed         = sentinel(CodeClosed)         // the peer closed or reset the connection, or sent DR/ER
	ErrRejected       = sentinel(CodeRejected)       // the peer refused the COTP connection (DR/ER)
	ErrProtocol       = sentinel(CodeProtocol)       // malformed TPKT/COTP data from the peer
	ErrTooLarge       = sentinel(CodeTooLarge)       // message above a limit
	ErrBufferTooSmall = sentinel(CodeBufferTooSmall) // the caller's buffer is too small
	ErrIO             = sentinel(CodeIO)             // other operating-system error
	ErrPanic          = sentinel(CodePanic)          // internal error in the library; the handle is poisoned
	ErrPoisoned       = sentinel(CodePoisoned)       // the handle is unusable after an internal error
	ErrTLS            = sentinel(CodeTLS)            // TLS failed: handshake, certificate rejected, a bad record or an alert
)

var codeNames = map[int32]string{
	CodeInvalid:        "ISO_E_INVALID",
	CodeState:          "ISO_E_STATE",
	CodeResolve:        "ISO_E_RESOLVE",
	CodeRefused:        "ISO_E_REFUSED",
	CodeTimeout:        "ISO_E_TIMEOUT",
	CodeWouldBlock:     "ISO_E_WOULD_BLOCK",
	CodeClosed:         "ISO_E_CLOSED",
	CodeRejected:       "ISO_E_REJECTED",
	CodeProtocol:       "ISO_E_PROTOCOL",
	CodeTooLarge:       "ISO_E_TOO_LARGE",
	CodeBufferTooSmall: "ISO_E_BUFFER_TOO_SMALL",
	CodeIO:             "ISO_E_IO",
	CodePanic:          "ISO_E_PANIC",
	CodePoisoned:       "ISO_E_POISONED",
	CodeTLS:            "ISO_E_TLS",
}

func sentinel(code int32) *Error {
	return &Error{Code: code, Msg: Strerror(code)}
}

// Strerror is the C library's static text for a result code (iso_strerror).
func Strerror(code int32) string {
	return C.GoString(C.iso_strerror(C.int32_t(code)))
}

// CodeName is the symbolic name of a result code, e.g. "ISO_E_TIMEOUT", or the number for an
// unknown code.
func CodeName(code int32) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	if code == 0 {
		return "ISO_OK"
	}
	return fmt.Sprintf("code %d", code)
}

// Error formats as "isotcp: <message> [<code name>]".
func (e *Error) Error() string {
	msg := e.Msg
	if msg == "" {
		msg = Strerror(e.Code)
	}
	return "isotcp: " + msg + " [" + CodeName(e.Code) + "]"
}

// Unwrap gives the standard error the code corresponds to, if any: os.ErrDeadlineExceeded for
// a timeout, net.ErrClosed for use of a closed Conn or Listener; nil otherwise.
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is an *Error with the same code (the sentinels are such errors),
// or context.DeadlineExceeded for a timeout.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t != nil && t.Code == e.Code
	}
	return e.Code == CodeTimeout && target == context.DeadlineExceeded
}

// Timeout reports whether the operation failed because its time ran out: ISO_E_TIMEOUT, or
// ISO_E_WOULD_BLOCK from a call given no time to wait. It makes *Error satisfy
// interface{ Timeout() bool }, as net.Error does.
func (e *Error) Timeout() bool {
	return e.Code == CodeTimeout || e.Code == CodeWouldBlock
}

// newError builds the error of operation op failing with code and the library's message.
func newError(op string, code int32, msg string) *Error {
	e := &Error{Code: code, Msg: op + ": " + msg}
	if code == CodeTimeout {
		e.cause = os.ErrDeadlineExceeded
	}
	return e
}

// closedError is the error of an operation on a Conn or Listener after its Close.
func closedError(op, what string) *Error {
	return &Error{Code: CodeState, Msg: op + ": use of closed " + what, cause: net.ErrClosed}
}
