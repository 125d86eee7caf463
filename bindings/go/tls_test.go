package isotcp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The TLS tests run against s7commplus 0.3.0's S7-1500 emulator (tests/peers/s7commplus_server.py:
// protocol V2, TLS inside COTP, Python's ssl module on the other side) under the python of
// ISOTCP_VENV_S7COMMPLUS (default ~/.cache/isotcp-peers/venv-s7commplus/bin/python). Each
// session connects with the HMI TSAPs, exchanges the plaintext InitSSL request and response,
// starts TLS and sends encrypted CreateObject requests, whose answers carry a new session.

const (
	fnInitSSL      = 0x05B3
	fnCreateObject = 0x04CA
)

type securePeer struct {
	port     uint16
	pin      []byte
	certPath string
}

// startSecurePeer runs s7commplus_server.py until the test ends.
func startSecurePeer(t *testing.T) securePeer {
	t.Helper()
	fallback := ""
	if home, err := os.UserHomeDir(); err == nil {
		fallback = filepath.Join(home, ".cache", "isotcp-peers", "venv-s7commplus", "bin", "python")
	}
	py := os.Getenv("ISOTCP_VENV_S7COMMPLUS")
	if py == "" {
		py = fallback
	}
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("ISOTCP_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s: %v (set ISOTCP_VENV_S7COMMPLUS; ISOTCP_REQUIRE_PEERS=1 makes a missing peer a failure)", py, err)
		}
		t.Skipf("SKIP: no s7commplus venv at %s (set ISOTCP_VENV_S7COMMPLUS)", py)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "tests", "peers", "s7commplus_server.py"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, script, "--port", "0")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s %s: %v", py, script, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	fields := strings.Fields(line)
	if err != nil || len(fields) != 4 || fields[0] != "READY" {
		t.Fatalf("s7commplus_server.py: %q, %v; stderr: %s", line, err, stderr.String())
	}
	port, err := strconv.ParseUint(fields[1], 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	pin, err := hex.DecodeString(fields[2])
	if err != nil || len(pin) != 32 {
		t.Fatalf("pin %q: %v", fields[2], err)
	}
	return securePeer{port: uint16(port), pin: pin, certPath: fields[3]}
}

// s7cpRequest is an S7CommPlus request with no data: header 72 01 len, the 14-byte request
// header, 4 bytes of fill, trailer 72 01 00 00.
func s7cpRequest(function, sequence uint16, session uint32, flags byte) []byte {
	return []byte{0x72, 0x01, 0x00, 0x12, 0x31, 0x00, 0x00, byte(function >> 8), byte(function), 0x00, 0x00,
		byte(sequence >> 8), byte(sequence), byte(session >> 24), byte(session >> 16), byte(session >> 8),
		byte(session), flags, 0, 0, 0, 0, 0x72, 0x01, 0x00, 0x00}
}

func checkResponse(t *testing.T, r []byte, function, sequence uint16) {
	t.Helper()
	if len(r) < 14 || r[0] != 0x72 || r[1] != 0x02 || r[4] != 0x32 ||
		uint16(r[7])<<8|uint16(r[8]) != function || uint16(r[11])<<8|uint16(r[12]) != sequence {
		t.Fatalf("not the V2 response to function %#04x, sequence %d: % x", function, sequence, r)
	}
}

// dialHMI connects with the HMI TSAPs and exchanges the plaintext InitSSL request and response.
func dialHMI(t *testing.T, p securePeer) *Conn {
	t.Helper()
	c, err := DialTimeout(long, "127.0.0.1", p.port, WithTSAPBytes([]byte{0x06, 0x00}, []byte("SIMATIC-ROOT-HMI")))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Send(s7cpRequest(fnInitSSL, 0, 0, 0x30)); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv(long)
	if err != nil {
		t.Fatal(err)
	}
	checkResponse(t, r, fnInitSSL, 0)
	if c.TLSActive() {
		t.Fatal("TLS active before StartTLS")
	}
	return c
}

// checkSessionCreated sends an encrypted CreateObject: the answer has return value 0 and one
// (non-zero) object id.
func checkSessionCreated(t *testing.T, c *Conn, sequence uint16) {
	t.Helper()
	if err := c.Send(s7cpRequest(fnCreateObject, sequence, 288, 0x36)); err != nil {
		t.Fatal(err)
	}
	r, err := c.Recv(long)
	if err != nil {
		t.Fatal(err)
	}
	checkResponse(t, r, fnCreateObject, sequence)
	if len(r) < 18 || r[14] != 0x00 || r[15] != 0x01 || r[16] == 0x00 {
		t.Fatalf("no new session in % x", r)
	}
}

func startTLS(c *Conn, cfg *TLSConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), long)
	defer cancel()
	return c.StartTLS(ctx, cfg)
}

func TestTLSPinnedSession(t *testing.T) {
	p := startSecurePeer(t)
	c := dialHMI(t, p)
	// ErrState, or ErrInvalid from older libraries; the message says TLS is not started.
	notStarted := func(err error) bool {
		return (errors.Is(err, ErrState) || errors.Is(err, ErrInvalid)) && strings.Contains(err.Error(), "not started")
	}
	if _, err := c.ExportKeyingMaterial("EXPERIMENTAL_OMS", nil, 32); !notStarted(err) {
		t.Fatalf("exporter before StartTLS: %v", err)
	}
	if _, err := c.PeerCertificateDER(); !notStarted(err) {
		t.Fatalf("certificate before StartTLS: %v", err)
	}
	if err := startTLS(c, &TLSConfig{PinSHA256: p.pin}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if !c.TLSActive() {
		t.Fatal("TLS not active")
	}
	checkSessionCreated(t, c, 1)
	checkSessionCreated(t, c, 2)

	cert, err := c.PeerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile(p.certPath)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil || !bytes.Equal(cert.Raw, block.Bytes) || cert.Subject.CommonName != "plc" {
		t.Fatalf("peer certificate %q is not the emulator's", cert.Subject)
	}
	if sum := sha256.Sum256(cert.Raw); !bytes.Equal(sum[:], p.pin) {
		t.Fatal("certificate digest is not the pin")
	}

	oms, err := c.ExportKeyingMaterial("EXPERIMENTAL_OMS", nil, 32)
	if err != nil || len(oms) != 32 || bytes.Equal(oms, make([]byte, 32)) {
		t.Fatalf("exporter: % x, %v", oms, err)
	}
	export := func(label string, context []byte, n int) []byte {
		t.Helper()
		out, err := c.ExportKeyingMaterial(label, context, n)
		if err != nil {
			t.Fatalf("ExportKeyingMaterial(%q, %v, %d): %v", label, context, n, err)
		}
		return out
	}
	if !bytes.Equal(export("EXPERIMENTAL_OMS", nil, 32), oms) ||
		bytes.Equal(export("EXPERIMENTAL_OMT", nil, 32), oms) ||
		bytes.Equal(export("EXPERIMENTAL_OMS", []byte{1}, 32), oms) ||
		len(export("EXPERIMENTAL_OMS", nil, 255)) != 255 {
		t.Fatal("exporter outputs do not depend on label and context as they must")
	}
	// TLS 1.3 (what the emulator negotiates) defines no context as the empty one.
	if !bytes.Equal(export("EXPERIMENTAL_OMS", []byte{}, 32), oms) {
		t.Fatal("an empty context differs from none in TLS 1.3")
	}
	for _, n := range []int{0, 256} {
		if _, err := c.ExportKeyingMaterial("EXPERIMENTAL_OMS", nil, n); !errors.Is(err, ErrInvalid) {
			t.Fatalf("length %d: %v", n, err)
		}
	}
	if err := startTLS(c, &TLSConfig{PinSHA256: p.pin}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("second StartTLS: %v", err)
	}
	checkSessionCreated(t, c, 3)
}

func TestTLSCAFileAndServerName(t *testing.T) {
	p := startSecurePeer(t)
	// The self-signed certificate is its own CA; no name is checked unless one is set.
	c := dialHMI(t, p)
	if err := startTLS(c, &TLSConfig{CAFile: p.certPath, MinVersion: VersionTLS12, MaxVersion: VersionTLS13}); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	checkSessionCreated(t, c, 1)
	c = dialHMI(t, p)
	err := startTLS(c, &TLSConfig{CAFile: p.certPath, ServerName: "plc.example"})
	if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "plc.example") {
		t.Fatalf("a name the certificate lacks: %v", err)
	}
}

func TestTLSWrongPin(t *testing.T) {
	p := startSecurePeer(t)
	c := dialHMI(t, p)
	wrong := append([]byte(nil), p.pin...)
	wrong[7] ^= 0x10
	err := startTLS(c, &TLSConfig{PinSHA256: wrong})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeTLS || !errors.Is(err, ErrTLS) || !strings.Contains(e.Msg, "pin") {
		t.Fatalf("wrong pin: %v", err)
	}
	if c.TLSActive() {
		t.Fatal("TLS active after a failed handshake")
	}
	if err := c.Send(s7cpRequest(fnCreateObject, 1, 288, 0x36)); !errors.Is(err, ErrState) {
		t.Fatalf("send after the failed handshake: %v", err)
	}
}

func TestTLSUnverified(t *testing.T) {
	p := startSecurePeer(t)
	c := dialHMI(t, p)
	err := startTLS(c, &TLSConfig{})
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "verify") {
		t.Fatalf("a config that verifies nothing: %v", err)
	}
	if c.TLSActive() {
		t.Fatal("TLS active")
	}
	if err := startTLS(c, &TLSConfig{InsecureSkipVerify: true}); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	checkSessionCreated(t, c, 1)
}

func TestTLSConfigErrors(t *testing.T) {
	c := newPair(t, nil).client
	for _, cfg := range []*TLSConfig{
		{PinSHA256: make([]byte, 31)},
		{InsecureSkipVerify: true, MinVersion: VersionTLS13, MaxVersion: VersionTLS12},
		{InsecureSkipVerify: true, MinVersion: 0x0302},
		nil,
	} {
		if err := startTLS(c, cfg); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	c.Close()
	if err := startTLS(c, &TLSConfig{InsecureSkipVerify: true}); !errors.Is(err, ErrState) {
		t.Fatalf("StartTLS after Close: %v", err)
	}
	if c.TLSActive() {
		t.Fatal("TLS active after Close")
	}
}

// TestTLSServerRole: our listener presents the emulator's certificate and key (plc.key beside
// it) to our client, which pins it; messages cross both ways and both ends export the same key.
func TestTLSServerRole(t *testing.T) {
	p := startSecurePeer(t)
	pr := newPair(t, nil)
	serverDone := make(chan error, 1)
	go func() {
		serverDone <- startTLS(pr.server, &TLSConfig{CertFile: p.certPath,
			KeyFile: filepath.Join(filepath.Dir(p.certPath), "plc.key")})
	}()
	if err := startTLS(pr.client, &TLSConfig{PinSHA256: p.pin}); err != nil {
		t.Fatalf("client StartTLS: %v", err)
	}
	if err := <-serverDone; err != nil {
		t.Fatalf("server StartTLS: %v", err)
	}
	big := bytes.Repeat([]byte("isotcp"), 1000)
	if err := pr.client.Send(big); err != nil {
		t.Fatal(err)
	}
	if got, err := pr.server.Recv(long); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("server received %d bytes, %v", len(got), err)
	}
	if err := pr.server.Send([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if got, err := pr.client.Recv(long); err != nil || string(got) != "reply" {
		t.Fatalf("client received %q, %v", got, err)
	}
	a, err1 := pr.client.ExportKeyingMaterial("EXPERIMENTAL_OMS", nil, 32)
	b, err2 := pr.server.ExportKeyingMaterial("EXPERIMENTAL_OMS", nil, 32)
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("exporters differ: % x (%v) / % x (%v)", a, err1, b, err2)
	}
}
