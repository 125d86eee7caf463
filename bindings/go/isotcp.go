// Package isotcp is a Go binding of libisotcp: ISO on TCP (RFC 1006 TPKT + ISO 8073 class 0
// COTP), the transport of Siemens S7 communication.
//
// A client dials a PLC (or any ISO-on-TCP peer) with Dial and exchanges whole messages with
// Send and Recv; the library segments and reassembles them as the negotiated TPDU size
// requires. Listen gives the passive side: a Listener whose Accept returns connections that
// work like dialed ones.
//
// Every method of Conn and Listener may be called from any goroutine. One goroutine may be in
// Send while another is in Recv or Poll; two senders (or two receivers) are serialised.
// Close wakes blocked calls, which then return an error matching net.ErrClosed; every call
// after Close returns such an error. A Conn or Listener that becomes unreachable without Close
// is closed by a finalizer, but call Close: the finalizer runs only when the garbage collector
// gets to it.
//
// Errors are *Error values carrying the library's ISO_E_* code and message; compare them with
// errors.Is against ErrTimeout, ErrRefused, ErrClosed and the other sentinels.
package isotcp

// #cgo CFLAGS: -I${SRCDIR}/../../include
// #include <stdlib.h>
// #include "isotcp.h"
import "C"

import (
	"math"
	"runtime"
	"time"
	"unsafe"
)

// Version is the version of the linked C library, e.g. "0.1.0".
func Version() string { return C.GoString(C.iso_version()) }

// VersionNumber is the linked library's version as major<<16 | minor<<8 | patch.
func VersionNumber() uint32 { return uint32(C.iso_version_number()) }

// HeaderVersionNumber is ISO_VERSION_NUMBER of the header this package was compiled with; it
// equals VersionNumber() unless the library and header come from different builds.
const HeaderVersionNumber uint32 = C.ISO_VERSION_NUMBER

// S7TSAP computes an S7 remote TSAP: (connType << 8) | rack << 5 | slot, with connType 1 (PG),
// 2 (OP) or 3..0x10 (S7 basic), rack 0..7 and slot 0..31.
func S7TSAP(connType, rack, slot uint8) (uint16, error) {
	var out C.uint16_t
	if _, err := call("s7 tsap", func() C.int32_t {
		return C.iso_s7_tsap(C.uint8_t(connType), C.uint8_t(rack), C.uint8_t(slot), &out)
	}); err != nil {
		return 0, err
	}
	return uint16(out), nil
}

// call runs one library call f and, when it returns a negative code, reads the library's
// message and OS error code for it. The goroutine stays on one OS thread for all three, since
// the C library keeps both per thread (iso_thread_last_error, iso_thread_last_os_error); what
// is read on another thread could belong to another call.
func call(op string, f func() C.int32_t) (int32, error) {
	runtime.LockOSThread()
	rc := int32(f())
	if rc >= 0 {
		runtime.UnlockOSThread()
		return rc, nil
	}
	msg := threadLastError()
	var osErr C.int32_t
	C.iso_thread_last_os_error(&osErr)
	runtime.UnlockOSThread()
	if msg == "" || msg == "no error" {
		msg = Strerror(rc)
	}
	e := newError(op, rc, msg)
	e.OSError = int32(osErr)
	return rc, e
}

// connectCall is call for iso_connect / iso_reconnect on h: an error also has the phase the
// connect stopped in.
func connectCall(op string, h *C.iso_conn, f func() C.int32_t) error {
	_, err := call(op, f)
	if err != nil {
		err.(*Error).Phase = connectPhase(h)
	}
	return err
}

// connectPhase is the phase in which h's last connect failed.
func connectPhase(h *C.iso_conn) Phase {
	var p C.int32_t
	if C.iso_get_connect_phase(h, &p) != C.ISO_OK {
		return PhaseNone
	}
	return Phase(p)
}

// threadLastError copies the calling thread's last library error message.
func threadLastError() string {
	var needed C.size_t
	C.iso_thread_last_error(nil, 0, &needed)
	if needed <= 1 {
		return ""
	}
	buf := C.malloc(needed)
	defer C.free(buf)
	C.iso_thread_last_error((*C.char)(buf), needed, nil)
	return C.GoString((*C.char)(buf))
}

// Forever, as a timeout, waits as long as the library can: math.MaxUint32 milliseconds (about
// 49.7 days). Every negative timeout means the same.
const Forever time.Duration = -1

// timeoutMS converts a Go timeout to the library's milliseconds: 0 is 0 (do not wait), a
// fraction of a millisecond rounds up (so a positive timeout always waits), a negative one or
// anything above math.MaxUint32 ms is math.MaxUint32.
func timeoutMS(d time.Duration) C.uint32_t {
	if d == 0 {
		return 0
	}
	if d < 0 {
		return C.uint32_t(math.MaxUint32)
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms > math.MaxUint32 {
		return C.uint32_t(math.MaxUint32)
	}
	return C.uint32_t(ms)
}

// bytesPtr is a pointer to b's first byte for the duration of one C call, or nil for an empty
// slice. The C library copies what it needs before returning and keeps no pointer, as the cgo
// rules for Go memory require.
func bytesPtr(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}
