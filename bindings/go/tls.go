package isotcp

// #include <stdlib.h>
// #include "isotcp.h"
import "C"

import (
	"context"
	"crypto/x509"
	"fmt"
	"time"
	"unsafe"
)

// TLS versions for TLSConfig.MinVersion and MaxVersion; the same values as crypto/tls's
// VersionTLS12 and VersionTLS13.
const (
	VersionTLS12 uint16 = 0x0303
	VersionTLS13 uint16 = 0x0304
)

// DefaultTLSTimeout bounds the handshake of a StartTLS whose context has no deadline.
const DefaultTLSTimeout = 30 * time.Second

// TLSConfig is what Conn.StartTLS verifies and presents (secure S7 communication: TLS inside
// COTP). The zero value verifies nothing and is refused: set CAFile or PinSHA256, or, for
// labs only, InsecureSkipVerify. Files are read by StartTLS; the config is not retained.
type TLSConfig struct {
	// CAFile is a PEM file of CA certificates the peer's chain must verify against.
	CAFile string
	// PinSHA256 is the SHA-256 (32 bytes) of the peer's certificate (DER) it must match.
	PinSHA256 []byte
	// InsecureSkipVerify accepts any peer certificate: anyone on the path can then read and
	// change the traffic. Labs only.
	InsecureSkipVerify bool
	// ServerName is the name the peer's certificate must carry, also sent as SNI. Empty (the
	// default): no name check, as PLC certificates rarely name their address.
	ServerName string
	// CertFile and KeyFile are our certificate chain and private key (PEM files): needed by
	// the server role (a Conn from Listener.Accept), optional for a client.
	CertFile, KeyFile string
	// MinVersion and MaxVersion bound the protocol version (VersionTLS12, VersionTLS13); 0
	// leaves the library's default (both).
	MinVersion, MaxVersion uint16
	// KeyLogFile is a file each session appends its secrets to in the NSS key log format
	// (Wireshark decrypts a capture with it); anyone who can read it can read the traffic.
	KeyLogFile string
	// MaxRecordSize is the largest TLS record in bytes; 0 (the default) sizes each record to
	// fill one DT of the negotiated TPDU, larger records are split over several DTs.
	MaxRecordSize uint32
}

// tlsSetting is one iso_tls_config_set_* call: applied when the field is set.
type tlsSetting struct {
	what  string
	set   bool
	apply func(cfg *C.iso_tls_config) C.int32_t
}

// settings lists the library calls t needs; a new setter of the C API is one entry here.
func (t *TLSConfig) settings() []tlsSetting {
	minVersion, maxVersion := t.MinVersion, t.MaxVersion
	if minVersion == 0 {
		minVersion = VersionTLS12
	}
	if maxVersion == 0 {
		maxVersion = VersionTLS13
	}
	return []tlsSetting{
		{"CA file", t.CAFile != "", func(c *C.iso_tls_config) C.int32_t {
			return withCString(t.CAFile, func(s *C.char) C.int32_t { return C.iso_tls_config_set_ca_file(c, s) })
		}},
		{"pin", t.PinSHA256 != nil, func(c *C.iso_tls_config) C.int32_t {
			return C.iso_tls_config_set_pin_sha256(c, bytesPtr(t.PinSHA256), C.size_t(len(t.PinSHA256)))
		}},
		{"insecure", t.InsecureSkipVerify, func(c *C.iso_tls_config) C.int32_t { return C.iso_tls_config_set_insecure(c, 1) }},
		{"server name", t.ServerName != "", func(c *C.iso_tls_config) C.int32_t {
			return withCString(t.ServerName, func(s *C.char) C.int32_t { return C.iso_tls_config_set_server_name(c, s) })
		}},
		{"identity files", t.CertFile != "" || t.KeyFile != "", func(c *C.iso_tls_config) C.int32_t {
			return withCString(t.CertFile, func(cert *C.char) C.int32_t {
				return withCString(t.KeyFile, func(key *C.char) C.int32_t { return C.iso_tls_config_set_identity_files(c, cert, key) })
			})
		}},
		{"versions", t.MinVersion != 0 || t.MaxVersion != 0, func(c *C.iso_tls_config) C.int32_t {
			return C.iso_tls_config_set_versions(c, C.uint16_t(minVersion), C.uint16_t(maxVersion))
		}},
		{"key log file", t.KeyLogFile != "", func(c *C.iso_tls_config) C.int32_t {
			return withCString(t.KeyLogFile, func(s *C.char) C.int32_t { return C.iso_tls_config_set_keylog_file(c, s) })
		}},
		{"max record size", t.MaxRecordSize != 0, func(c *C.iso_tls_config) C.int32_t {
			return C.iso_tls_config_set_max_record_size(c, C.uint32_t(t.MaxRecordSize))
		}},
	}
}

// native builds the library's config from t; the caller destroys it.
func (t *TLSConfig) native(op string) (*C.iso_tls_config, error) {
	var cfg *C.iso_tls_config
	if _, err := call(op, func() C.int32_t { return C.iso_tls_config_create(&cfg) }); err != nil {
		return nil, err
	}
	for _, s := range t.settings() {
		if !s.set {
			continue
		}
		apply := s.apply
		if _, err := call(op+": "+s.what, func() C.int32_t { return apply(cfg) }); err != nil {
			C.iso_tls_config_destroy(cfg)
			return nil, err
		}
	}
	return cfg, nil
}

// withCString runs f with s as a C string, freed afterwards.
func withCString(s string, f func(*C.char) C.int32_t) C.int32_t {
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return f(cs)
}

// StartTLS runs the TLS handshake inside COTP: the client role on a dialed Conn (for
// S7CommPlus: after the plaintext InitSSL request and response), the server role on one from
// Listener.Accept (which needs CertFile and KeyFile). From then on Send and Recv carry TLS, each
// message's records in DTs of the negotiated TPDU size.
//
// The handshake has the context's deadline, or DefaultTLSTimeout when it has none; when the
// context is cancelled the connection is closed and the error wraps ctx.Err(). Unlike the other
// methods, StartTLS must not run while another goroutine sends or receives on the Conn.
//
// Errors (*Error): ErrTLS (handshake failed, certificate rejected: the message says why; the
// connection is then closed), ErrInvalid (cfg verifies nothing, a bad setting or file, TLS
// already started), ErrState (not connected), ErrTimeout, ErrClosed, ErrIO; net.ErrClosed
// after Close.
func (c *Conn) StartTLS(ctx context.Context, cfg *TLSConfig) error {
	if ctx == nil {
		ctx = context.Background()
	}
	op := "start TLS " + c.name
	if cfg == nil {
		return newError(op, CodeInvalid, "no TLSConfig")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("isotcp: %s: %w", op, err)
	}
	timeout := DefaultTLSTimeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
		if timeout <= 0 {
			return newError(op, CodeTimeout, "the context's deadline passed before the handshake")
		}
	}
	native, err := cfg.native(op)
	if err != nil {
		return err
	}
	defer C.iso_tls_config_destroy(native)
	ms := timeoutMS(timeout)
	return c.cancellable(ctx, op, func(h *C.iso_conn) (int32, error) {
		return call(op, func() C.int32_t { return C.iso_start_tls(h, native, ms) })
	})
}

// TLSActive reports whether TLS is started on the current connection (false after Close).
func (c *Conn) TLSActive() bool {
	rc, err := c.use("TLS active", func(h *C.iso_conn) (int32, error) {
		return call("TLS active", func() C.int32_t { return C.iso_tls_active(h) })
	})
	return err == nil && rc == 1
}

// ExportKeyingMaterial returns length (1..255) bytes from the TLS exporter (RFC 5705, RFC 8446
// section 7.5) for label, as crypto/tls's ConnectionState.ExportKeyingMaterial: a nil context
// means no context, an empty non-nil one an empty context (different in TLS 1.2). S7CommPlus's
// password login uses label "EXPERIMENTAL_OMS", 32 bytes, no context.
//
// Errors: ErrInvalid (a length outside 1..255), an error saying TLS is not started (ErrState,
// or ErrInvalid from a library that reports it so), ErrTLS; net.ErrClosed after Close.
func (c *Conn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	const op = "export keying material"
	if length < 1 || length > 255 {
		return nil, newError(op, CodeInvalid, fmt.Sprintf("length %d is outside 1..255", length))
	}
	labelBytes := []byte(label)
	if len(labelBytes) == 0 {
		labelBytes = []byte{0} // a non-NULL pointer with length 0: the empty label
	}
	var contextPtr *C.uint8_t
	if context != nil {
		// A non-nil empty context must reach the library as a non-NULL pointer.
		ctx := context
		if len(ctx) == 0 {
			ctx = []byte{0}
		}
		contextPtr = (*C.uint8_t)(unsafe.Pointer(&ctx[0]))
	}
	out := make([]byte, length)
	_, err := c.use(op, func(h *C.iso_conn) (int32, error) {
		return call(op, func() C.int32_t {
			return C.iso_tls_export_keying_material(h, (*C.uint8_t)(unsafe.Pointer(&labelBytes[0])),
				C.size_t(len(label)), contextPtr, C.size_t(len(context)), bytesPtr(out), C.size_t(length))
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PeerCertificateDER returns the certificate (DER) the peer presented in the TLS handshake.
// Errors: an error saying TLS is not started (ErrState, or ErrInvalid from a library that
// reports it so); net.ErrClosed after Close.
func (c *Conn) PeerCertificateDER() ([]byte, error) {
	const op = "peer certificate"
	var der []byte
	_, err := c.use(op, func(h *C.iso_conn) (int32, error) {
		var needed C.size_t
		rc, err := call(op, func() C.int32_t { return C.iso_tls_peer_certificate(h, nil, 0, &needed) })
		for rc == CodeBufferTooSmall {
			der = make([]byte, int(needed))
			rc, err = call(op, func() C.int32_t {
				return C.iso_tls_peer_certificate(h, bytesPtr(der), C.size_t(len(der)), &needed)
			})
		}
		return rc, err
	})
	if err != nil {
		return nil, err
	}
	return der, nil
}

// PeerCertificate returns the peer's certificate parsed by crypto/x509.
func (c *Conn) PeerCertificate() (*x509.Certificate, error) {
	der, err := c.PeerCertificateDER()
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}
