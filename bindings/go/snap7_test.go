package isotcp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// S7 payloads carried as DT payloads.
var (
	// Setup communication, PDU 480.
	s7Setup = []byte{0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
		0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0}
	// Read 4 bytes of DB1 from offset 0.
	s7ReadDB1 = []byte{0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00,
		0x04, 0x01, 0x12, 0x0A, 0x10, 0x02, 0x00, 0x04, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00}
)

// peerPython finds the python of a venv with python-snap7: the environment variable, else the
// default path. Missing: a skip, or a failure when ISOTCP_REQUIRE_PEERS=1.
func peerPython(t *testing.T, env, fallback string) string {
	t.Helper()
	py := os.Getenv(env)
	if py == "" {
		py = fallback
	}
	if _, err := os.Stat(py); err != nil {
		if os.Getenv("ISOTCP_REQUIRE_PEERS") == "1" {
			t.Fatalf("%s: %v (set %s; ISOTCP_REQUIRE_PEERS=1 makes a missing peer a failure)", py, err, env)
		}
		t.Skipf("SKIP: no python-snap7 venv at %s (set %s)", py, env)
	}
	return py
}

// startServer runs tests/peers/server.py with py and returns its port and flavor. The server
// runs until its stdin closes, which the test's cleanup does.
func startServer(t *testing.T, py string) (uint16, string) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "..", "tests", "peers", "server.py"))
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
	type ready struct {
		line string
		err  error
	}
	ch := make(chan ready, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		ch <- ready{line, err}
	}()
	var r ready
	select {
	case r = <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("server.py printed no READY line within 30 s; stderr: %s", stderr.String())
	}
	fields := strings.Fields(r.line)
	if r.err != nil || len(fields) != 3 || fields[0] != "READY" {
		t.Fatalf("server.py: %q, %v; stderr: %s", r.line, r.err, stderr.String())
	}
	port, err := strconv.ParseUint(fields[1], 10, 16)
	if err != nil {
		t.Fatalf("server.py port %q: %v", fields[1], err)
	}
	return uint16(port), fields[2]
}

// s7Exchange sends one S7 request and returns the answer, checking the S7 header: protocol
// 0x32, ROSCTR 3 (ack data), error class and code 0.
func s7Exchange(c *Conn, req []byte) ([]byte, error) {
	if err := c.Send(req); err != nil {
		return nil, err
	}
	ans, err := c.Recv(5 * time.Second)
	if err != nil {
		return nil, err
	}
	if len(ans) < 12 || ans[0] != 0x32 || ans[1] != 0x03 || ans[10] != 0 || ans[11] != 0 {
		return nil, fmt.Errorf("S7 answer is not a successful ack data: % X", ans)
	}
	return ans, nil
}

func testSnap7Server(t *testing.T, env, fallback, flavor string) {
	py := peerPython(t, env, fallback)
	port, got := startServer(t, py)
	if got != flavor {
		t.Fatalf("%s runs the %q server, want %q", py, got, flavor)
	}
	c, err := DialTimeout(5*time.Second, "127.0.0.1", port, WithRackSlot(0, 2), WithTPDUSize(1024),
		WithUserTimeout(20*time.Second), WithConnectAttemptDelay(100*time.Millisecond))
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	if c.TPDUSize() != 1024 {
		t.Fatalf("TPDU size %d, want 1024", c.TPDUSize())
	}

	setup, err := s7Exchange(c, s7Setup)
	if err != nil {
		t.Fatalf("setup communication: %v", err)
	}
	if len(setup) < 20 || setup[12] != 0xF0 {
		t.Fatalf("setup communication answer: % X", setup)
	}
	pdu := int(setup[18])<<8 | int(setup[19])
	if pdu < 240 || pdu > 480 {
		t.Fatalf("negotiated S7 PDU %d", pdu)
	}

	read, err := s7Exchange(c, s7ReadDB1)
	if err != nil {
		t.Fatalf("read DB1: %v", err)
	}
	// Parameter: function 04, 1 item; data item: return code FF, transport size 04, 32 bits.
	if len(read) != 22 || read[12] != 0x04 || read[14] != 0xFF {
		t.Fatalf("read DB1 answer: % X", read)
	}
	if data := read[len(read)-4:]; !bytes.Equal(data, []byte{0x00, 0x01, 0x02, 0x03}) {
		t.Fatalf("DB1[0..4] = % X, want 00 01 02 03", data)
	}
	if !c.Alive() {
		t.Fatal("connection not alive after the exchange")
	}
	ready, err := c.Poll(0)
	if ready || err != nil {
		t.Fatalf("Poll after the exchange: %v, %v", ready, err)
	}
	// Five reconnects: each gives a working connection with the options of the Dial.
	for i := 1; i <= 5; i++ {
		if err := c.Reconnect(context.Background()); err != nil {
			t.Fatalf("Reconnect %d: %v", i, err)
		}
		if phase, err := c.ConnectPhase(); phase != PhaseNone || err != nil || c.TPDUSize() != 1024 {
			t.Fatalf("after Reconnect %d: phase %v, %v, TPDU %d", i, phase, err, c.TPDUSize())
		}
		if _, err := s7Exchange(c, s7Setup); err != nil {
			t.Fatalf("setup communication after Reconnect %d: %v", i, err)
		}
		again, err := s7Exchange(c, s7ReadDB1)
		if err != nil {
			t.Fatalf("read DB1 after Reconnect %d: %v", i, err)
		}
		if !bytes.Equal(again, read) {
			t.Fatalf("read DB1 after Reconnect %d: % X, want % X", i, again, read)
		}
	}
	t.Logf("%s server on port %d: PDU %d, DB1[0..4] = % X", flavor, port, pdu, read[len(read)-4:])
}

func TestPythonSnap7Server(t *testing.T) {
	testSnap7Server(t, "ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python", "py3")
}

func TestNativeSnap7Server(t *testing.T) {
	testSnap7Server(t, "ISOTCP_VENV_NATIVE", "/opt/venv-snap7-2/bin/python", "native")
}

func TestPythonSnap7ServerRoutingAndStringTSAP(t *testing.T) {
	py := peerPython(t, "ISOTCP_VENV_PY3", "/opt/venv-snap7-3/bin/python")
	port, _ := startServer(t, py)
	for name, opts := range map[string][]Option{
		"routing":     {WithRackSlot(0, 2), WithRouting(0x0001, 0, 2)},
		"string tsap": {WithTSAPBytes([]byte{0x06, 0x00}, []byte("SIMATIC-ROOT-HMI"))},
	} {
		c, err := DialTimeout(5*time.Second, "127.0.0.1", port, opts...)
		if err != nil {
			t.Fatalf("%s: Dial: %v", name, err)
		}
		if _, err := s7Exchange(c, s7Setup); err != nil {
			t.Fatalf("%s: setup communication: %v", name, err)
		}
		c.Close()
	}
}
