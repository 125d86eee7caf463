package isotcp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

const long = 5 * time.Second

// pair is a client dialed to an in-process listener and the connection the listener accepted.
type pair struct {
	l      *Listener
	client *Conn
	server *Conn
}

func newPair(t *testing.T, lopts []ListenOption, opts ...Option) pair {
	t.Helper()
	l, err := Listen("127.0.0.1", 0, lopts...)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	type accepted struct {
		c   *Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := l.Accept(long)
		ch <- accepted{c, err}
	}()
	client, err := DialTimeout(long, "127.0.0.1", l.Port(), opts...)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	a := <-ch
	if a.err != nil {
		t.Fatalf("Accept: %v", a.err)
	}
	t.Cleanup(func() { a.c.Close() })
	return pair{l, client, a.c}
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

func mustRecv(t *testing.T, c *Conn, want []byte) {
	t.Helper()
	got, err := c.Recv(long)
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Recv: got %d bytes %x..., want %d bytes %x...", len(got), head(got), len(want), head(want))
	}
}

func head(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}

func wantCode(t *testing.T, err error, sentinel *Error) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", sentinel)
	}
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v (%T) is not an *Error", err, err)
	}
	if e.Code != sentinel.Code {
		t.Fatalf("code %d, want %d", e.Code, sentinel.Code)
	}
	return e
}

func wantClosedHandle(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s after Close: no error", what)
	}
	if !errors.Is(err, net.ErrClosed) || !errors.Is(err, ErrState) {
		t.Fatalf("%s after Close: %v, want net.ErrClosed and ErrState", what, err)
	}
}

func TestVersion(t *testing.T) {
	if Version() == "" {
		t.Fatal("empty version")
	}
	if VersionNumber() != HeaderVersionNumber {
		t.Fatalf("library version %#x, header %#x", VersionNumber(), HeaderVersionNumber)
	}
}

func TestSentinels(t *testing.T) {
	all := []*Error{ErrInvalid, ErrState, ErrResolve, ErrRefused, ErrTimeout, ErrWouldBlock,
		ErrClosed, ErrRejected, ErrProtocol, ErrTooLarge, ErrBufferTooSmall, ErrIO, ErrPanic, ErrPoisoned, ErrTLS}
	seen := map[int32]bool{}
	for i, e := range all {
		if e.Code != int32(-1-i) {
			t.Errorf("%v: code %d, want %d", e, e.Code, -1-i)
		}
		if seen[e.Code] || e.Msg == "" {
			t.Errorf("%v: duplicate code or no text", e)
		}
		seen[e.Code] = true
		for _, other := range all {
			if errors.Is(e, other) != (e == other) {
				t.Errorf("errors.Is(%v, %v) = %v", e, other, !(e == other))
			}
		}
	}
	wrapped := fmt.Errorf("context: %w", newError("recv", CodeTimeout, "no message within 1 ms"))
	if !errors.Is(wrapped, ErrTimeout) || errors.Is(wrapped, ErrClosed) {
		t.Fatal("errors.Is through a wrapping error")
	}
	if !errors.Is(wrapped, os.ErrDeadlineExceeded) || !errors.Is(wrapped, context.DeadlineExceeded) {
		t.Fatal("a timeout matches os.ErrDeadlineExceeded and context.DeadlineExceeded")
	}
	var te interface{ Timeout() bool }
	if !errors.As(wrapped, &te) || !te.Timeout() {
		t.Fatal("a timeout satisfies interface{ Timeout() bool }")
	}
	if ErrRefused.Timeout() || !ErrWouldBlock.Timeout() {
		t.Fatal("Timeout() of refused / would block")
	}
	if s := ErrTimeout.Error(); s == "" || !bytes.Contains([]byte(s), []byte("ISO_E_TIMEOUT")) {
		t.Fatalf("ErrTimeout.Error() = %q", s)
	}
}

func TestS7TSAP(t *testing.T) {
	cases := []struct {
		typ, rack, slot uint8
		want            uint16
	}{
		{1, 0, 2, 0x0102}, {2, 0, 2, 0x0202}, {1, 1, 3, 0x0123}, {3, 7, 31, 0x03FF},
	}
	for _, c := range cases {
		got, err := S7TSAP(c.typ, c.rack, c.slot)
		if err != nil || got != c.want {
			t.Errorf("S7TSAP(%d, %d, %d) = %#04x, %v; want %#04x", c.typ, c.rack, c.slot, got, err, c.want)
		}
	}
	_, err := S7TSAP(1, 8, 0)
	wantCode(t, err, ErrInvalid)
}

func TestMessages(t *testing.T) {
	p := newPair(t, nil)
	if p.client.TPDUSize() != 1024 || p.server.TPDUSize() != 1024 {
		t.Fatalf("TPDU sizes %d / %d, want the default 1024", p.client.TPDUSize(), p.server.TPDUSize())
	}
	msgs := [][]byte{{0x32}, []byte("hello"), pattern(1021, 1), pattern(1022, 2), pattern(3000, 3)}
	for _, m := range msgs {
		if err := p.client.Send(m); err != nil {
			t.Fatalf("client Send: %v", err)
		}
	}
	for _, m := range msgs {
		mustRecv(t, p.server, m)
	}
	for _, m := range msgs {
		if err := p.server.Send(m); err != nil {
			t.Fatalf("server Send: %v", err)
		}
		mustRecv(t, p.client, m)
	}
	if !p.client.Alive() || !p.server.Alive() {
		t.Fatal("both ends alive")
	}
	if fd, err := p.client.Fd(); err != nil || fd < 0 {
		t.Fatalf("Fd: %d, %v", fd, err)
	}
	wantCode(t, p.client.Send(nil), ErrInvalid)
	// Connections a listener accepted outlive it.
	p.l.Close()
	if err := p.client.Send([]byte("after the listener closed")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, p.server, []byte("after the listener closed"))
}

func TestSegmented10KB(t *testing.T) {
	p := newPair(t, nil, WithTPDUSize(1024))
	if p.client.TPDUSize() != 1024 {
		t.Fatalf("TPDU %d", p.client.TPDUSize())
	}
	big := pattern(10*1024, 9)
	if err := p.client.Send(big); err != nil {
		t.Fatalf("Send: %v", err)
	}
	// RecvInto with a buffer too small: the size needed, and the message stays queued.
	small := make([]byte, 100)
	n, err := p.server.RecvInto(small, long)
	wantCode(t, err, ErrBufferTooSmall)
	if n != len(big) {
		t.Fatalf("size needed %d, want %d", n, len(big))
	}
	if n, err = p.server.RecvInto(nil, 0); n != len(big) || !errors.Is(err, ErrBufferTooSmall) {
		t.Fatalf("size query: %d, %v", n, err)
	}
	buf := make([]byte, 16*1024)
	n, err = p.server.RecvInto(buf, 0)
	if err != nil || !bytes.Equal(buf[:n], big) {
		t.Fatalf("RecvInto: %d bytes, %v", n, err)
	}
	// And back, through Recv.
	if err := p.server.Send(big); err != nil {
		t.Fatalf("server Send: %v", err)
	}
	mustRecv(t, p.client, big)
}

// rawPeer is a TCP server that answers one CR with a CC granting TPDU 1024 and hands the raw
// stream to the test.
func rawPeer(t *testing.T, script func(c net.Conn)) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		script(c)
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func readTPKT(c net.Conn) ([]byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return nil, err
	}
	if h[0] != 3 {
		return nil, fmt.Errorf("TPKT version %d", h[0])
	}
	body := make([]byte, int(binary.BigEndian.Uint16(h[2:]))-4)
	_, err := io.ReadFull(c, body)
	return body, err
}

func answerCR(c net.Conn) error {
	cr, err := readTPKT(c)
	if err != nil {
		return err
	}
	if len(cr) < 7 || cr[1] != 0xE0 {
		return fmt.Errorf("not a CR: %x", cr)
	}
	cc := []byte{3, 0, 0, 14, 9, 0xD0, cr[4], cr[5], 0x00, 0x01, 0x00, 0xC0, 0x01, 0x0A}
	_, err = c.Write(cc)
	return err
}

func TestSegmentationOnTheWire(t *testing.T) {
	type dt struct {
		size int
		eot  bool
	}
	got := make(chan []dt, 1)
	var payload []byte
	port := rawPeer(t, func(c net.Conn) {
		if answerCR(c) != nil {
			got <- nil
			return
		}
		var dts []dt
		for {
			tpdu, err := readTPKT(c)
			if err != nil || len(tpdu) < 3 || tpdu[1] != 0xF0 {
				got <- nil
				return
			}
			dts = append(dts, dt{len(tpdu), tpdu[2] == 0x80})
			payload = append(payload, tpdu[3:]...)
			if tpdu[2] == 0x80 {
				got <- dts
				return
			}
		}
	})
	c, err := DialTimeout(long, "127.0.0.1", port, WithTPDUSize(1024))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := pattern(10*1024, 5)
	if err := c.Send(big); err != nil {
		t.Fatal(err)
	}
	dts := <-got
	if len(dts) != 11 { // ceil(10240 / (1024 - 3))
		t.Fatalf("%d DTs, want 11: %v", len(dts), dts)
	}
	for i, d := range dts {
		if d.size > 1024 || d.eot != (i == len(dts)-1) {
			t.Fatalf("DT %d: %d bytes, EOT %v", i, d.size, d.eot)
		}
	}
	if !bytes.Equal(payload, big) {
		t.Fatal("reassembled payload differs")
	}
}

func TestPoll(t *testing.T) {
	p := newPair(t, nil)
	start := time.Now()
	ready, err := p.client.Poll(50 * time.Millisecond)
	if ready || err != nil {
		t.Fatalf("Poll on an idle connection: %v, %v", ready, err)
	}
	if time.Since(start) < 40*time.Millisecond {
		t.Fatalf("Poll(50ms) returned after %v", time.Since(start))
	}
	if ready, err = p.client.Poll(0); ready || err != nil {
		t.Fatalf("Poll(0) on an idle connection: %v, %v", ready, err)
	}
	msg := pattern(2500, 4)
	if err := p.server.Send(msg); err != nil {
		t.Fatal(err)
	}
	if ready, err = p.client.Poll(long); !ready || err != nil {
		t.Fatalf("Poll after a message: %v, %v", ready, err)
	}
	// Poll consumes nothing: it stays ready, and Recv(0) returns the message at once.
	if ready, err = p.client.Poll(0); !ready || err != nil {
		t.Fatalf("second Poll: %v, %v", ready, err)
	}
	got, err := p.client.Recv(0)
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Recv(0) after Poll: %d bytes, %v", len(got), err)
	}
	if ready, err = p.client.Poll(0); ready || err != nil {
		t.Fatalf("Poll after Recv: %v, %v", ready, err)
	}
	// The peer closes: Poll reports it as ErrClosed, Alive turns false.
	p.server.Close()
	deadline := time.Now().Add(long)
	for {
		ready, err = p.client.Poll(100 * time.Millisecond)
		if err != nil {
			wantCode(t, err, ErrClosed)
			if errors.Is(err, net.ErrClosed) {
				t.Fatal("the peer's close is not the closed-handle error")
			}
			break
		}
		if ready || time.Now().After(deadline) {
			t.Fatalf("Poll after the peer closed: %v, %v", ready, err)
		}
	}
	if p.client.Alive() {
		t.Fatal("Alive after the peer closed")
	}
	_, err = p.client.Recv(long)
	wantCode(t, err, ErrClosed)
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	_, err = DialTimeout(long, "127.0.0.1", port)
	e := wantCode(t, err, ErrRefused)
	if errors.Is(err, ErrTimeout) || e.Timeout() {
		t.Fatalf("refused is no timeout: %v", err)
	}
	if e.Msg == "" {
		t.Fatal("no message")
	}
	// The TCP phase failed, with the system's ECONNREFUSED (111 on Linux).
	if e.OSError != int32(syscall.ECONNREFUSED) || e.Phase != PhaseTCP {
		t.Fatalf("refused: OSError %d, Phase %v; want %d, tcp", e.OSError, e.Phase, int32(syscall.ECONNREFUSED))
	}
}

func TestDialTimeout(t *testing.T) {
	silent := make(chan struct{})
	t.Cleanup(func() { close(silent) })
	port := rawPeer(t, func(c net.Conn) { <-silent }) // TCP accepted, CR never answered
	start := time.Now()
	_, err := DialTimeout(200*time.Millisecond, "127.0.0.1", port)
	elapsed := time.Since(start)
	wantCode(t, err, ErrTimeout)
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatalf("%v does not report Timeout()", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%v does not match the standard deadline errors", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 3*time.Second {
		t.Fatalf("timed out after %v, want about 200 ms", elapsed)
	}
	// TCP was up, the CR unanswered: the COTP phase, and no OS error behind our own deadline.
	var e *Error
	if !errors.As(err, &e) || e.Phase != PhaseCOTP || e.OSError != 0 {
		t.Fatalf("%v: Phase %v, OSError %d; want cotp, 0", err, e.Phase, e.OSError)
	}
}

func TestDialCancel(t *testing.T) {
	silent := make(chan struct{})
	t.Cleanup(func() { close(silent) })
	port := rawPeer(t, func(c net.Conn) { <-silent })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := Dial(ctx, "127.0.0.1", port)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial cancelled: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("Dial returned %v after the cancel", time.Since(start))
	}
	if _, err := Dial(ctx, "127.0.0.1", port); !errors.Is(err, context.Canceled) {
		t.Fatalf("Dial with a cancelled context: %v", err)
	}
}

func TestRecvTimeout(t *testing.T) {
	p := newPair(t, nil)
	start := time.Now()
	_, err := p.client.Recv(100 * time.Millisecond)
	wantCode(t, err, ErrTimeout)
	if d := time.Since(start); d < 90*time.Millisecond || d > 3*time.Second {
		t.Fatalf("Recv(100ms) took %v", d)
	}
	var te interface{ Timeout() bool }
	if !errors.As(err, &te) || !te.Timeout() {
		t.Fatal("Timeout()")
	}
	_, err = p.client.Recv(0)
	e := wantCode(t, err, ErrWouldBlock)
	if !e.Timeout() {
		t.Fatal("would block is a timeout")
	}
	// Nothing is lost: the connection goes on.
	if err := p.server.Send([]byte("after the timeout")); err != nil {
		t.Fatal(err)
	}
	mustRecv(t, p.client, []byte("after the timeout"))
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	p := newPair(t, nil)
	if err := p.client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.client.Close(); err != nil {
		t.Fatal(err)
	}
	c := p.client
	wantClosedHandle(t, c.Send([]byte{1}), "Send")
	wantClosedHandle(t, c.QueueSend([]byte{1}), "QueueSend")
	wantClosedHandle(t, c.Flush(0), "Flush")
	_, err := c.Recv(time.Second)
	wantClosedHandle(t, err, "Recv")
	_, err = c.RecvInto(make([]byte, 10), 0)
	wantClosedHandle(t, err, "RecvInto")
	_, err = c.Poll(time.Second)
	wantClosedHandle(t, err, "Poll")
	_, err = c.Fd()
	wantClosedHandle(t, err, "Fd")
	_, err = c.SendPending()
	wantClosedHandle(t, err, "SendPending")
	_, err = c.RemoteTSAP()
	wantClosedHandle(t, err, "RemoteTSAP")
	if c.Alive() {
		t.Fatal("Alive after Close")
	}
	if c.TPDUSize() != 1024 {
		t.Fatal("TPDUSize stays readable")
	}
	// The peer sees the close.
	_, err = p.server.Recv(long)
	wantCode(t, err, ErrClosed)

	if err := p.l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.l.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = p.l.Accept(0)
	wantClosedHandle(t, err, "Accept")
	_, err = p.l.Fd()
	wantClosedHandle(t, err, "listener Fd")
	if p.l.Port() == 0 {
		t.Fatal("Port stays readable")
	}
}

func TestCloseWakesBlockedCalls(t *testing.T) {
	p := newPair(t, nil)
	errs := make(chan error, 2)
	go func() {
		_, err := p.client.Recv(Forever)
		errs <- err
	}()
	go func() {
		_, err := p.client.Poll(Forever)
		errs <- err
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	p.client.Close()
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			wantClosedHandle(t, err, "blocked call")
		case <-time.After(long):
			t.Fatal("Close did not wake a blocked call")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("woken after %v", d)
	}

	acc := make(chan error, 1)
	go func() {
		_, err := p.l.Accept(Forever)
		acc <- err
	}()
	time.Sleep(50 * time.Millisecond)
	p.l.Close()
	select {
	case err := <-acc:
		wantClosedHandle(t, err, "blocked Accept")
	case <-time.After(long):
		t.Fatal("Close did not end a blocked Accept")
	}
}

func TestConcurrentSendRecv(t *testing.T) {
	p := newPair(t, nil, WithTPDUSize(512))
	const n = 300
	// The server echoes every message.
	go func() {
		for i := 0; i < n; i++ {
			m, err := p.server.Recv(long)
			if err != nil {
				return
			}
			if p.server.Send(m) != nil {
				return
			}
		}
	}()
	msg := func(i int) []byte { return pattern(1+(i*37)%3000, byte(i)) }
	var wg sync.WaitGroup
	var sendErr, recvErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			if err := p.client.Send(msg(i)); err != nil {
				sendErr = fmt.Errorf("send %d: %w", i, err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			got, err := p.client.Recv(long)
			if err != nil {
				recvErr = fmt.Errorf("recv %d: %w", i, err)
				return
			}
			if !bytes.Equal(got, msg(i)) {
				recvErr = fmt.Errorf("recv %d: %d bytes, want %d", i, len(got), len(msg(i)))
				return
			}
		}
	}()
	wg.Wait()
	if sendErr != nil || recvErr != nil {
		t.Fatalf("%v / %v", sendErr, recvErr)
	}
}

func TestCloseWhileInUse(t *testing.T) {
	p := newPair(t, nil)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch g {
				case 0:
					err = p.client.Send([]byte("x"))
				case 1:
					_, err = p.client.Recv(time.Millisecond)
				case 2:
					_, err = p.client.Poll(time.Millisecond)
				case 3:
					p.client.Alive()
					_, err = p.client.Fd()
				}
				if errors.Is(err, net.ErrClosed) {
					return
				}
			}
		}(g)
	}
	time.Sleep(50 * time.Millisecond)
	p.client.Close()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(long):
		close(stop)
		t.Fatal("goroutines did not see the Close")
	}
}

func TestPeerCloseIsErrClosed(t *testing.T) {
	p := newPair(t, nil)
	if err := p.server.Send([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	p.server.Close()
	// What was sent before the close is still delivered, then ErrClosed.
	mustRecv(t, p.client, []byte("last words"))
	_, err := p.client.Recv(long)
	wantCode(t, err, ErrClosed)
	if errors.Is(err, net.ErrClosed) {
		t.Fatal("peer close matched net.ErrClosed")
	}
}

func TestTSAPOptions(t *testing.T) {
	p := newPair(t, nil, WithRackSlot(1, 3))
	remote, err := p.server.RemoteTSAP()
	if err != nil || !bytes.Equal(remote, []byte{0x01, 0x23}) {
		t.Fatalf("called TSAP seen by the listener: %x, %v", remote, err)
	}
	local, err := p.server.LocalTSAP()
	if err != nil || !bytes.Equal(local, []byte{0x01, 0x00}) {
		t.Fatalf("calling TSAP seen by the listener: %x, %v", local, err)
	}

	p = newPair(t, nil, WithTSAPBytes([]byte{0x06, 0x00}, []byte("SIMATIC-ROOT-HMI")))
	if remote, err = p.server.RemoteTSAP(); err != nil || string(remote) != "SIMATIC-ROOT-HMI" {
		t.Fatalf("string TSAP: %q, %v", remote, err)
	}
	if remote, err = p.client.RemoteTSAP(); err != nil || string(remote) != "SIMATIC-ROOT-HMI" {
		t.Fatalf("client's called TSAP: %q, %v", remote, err)
	}

	p = newPair(t, nil, WithTSAP(0x1000, 0x1001), WithTPDUSize(256), WithKeepAlive(30*time.Second, 5*time.Second, 4),
		WithSendTimeout(time.Second), WithMaxFragments(100), WithMaxQueued(1<<20))
	if remote, _ = p.server.RemoteTSAP(); !bytes.Equal(remote, []byte{0x10, 0x01}) || p.client.TPDUSize() != 256 {
		t.Fatalf("TSAP %x, TPDU %d", remote, p.client.TPDUSize())
	}
	_ = newPair(t, nil, WithoutKeepAlive(), WithRouting(1, 0, 2))
}

func TestInvalidOptions(t *testing.T) {
	cases := map[string]Option{
		"tpdu 1000":      WithTPDUSize(1000),
		"tpdu -1":        WithTPDUSize(-1),
		"max message 10": WithMaxMessage(10),
		"empty tsap":     WithTSAPBytes(nil, []byte{1, 2}),
		"rack 9":         WithRackSlot(9, 0),
		"keepalive 0":    WithKeepAlive(0, time.Second, 3),
		// The library's ranges: user timeout 0..2073600000 ms, attempt delay 0..10000 ms.
		"user timeout -1ms":         WithUserTimeout(-time.Millisecond),
		"user timeout 2073600001ms": WithUserTimeout(2073600001 * time.Millisecond),
		"user timeout 100 days":     WithUserTimeout(100 * 24 * time.Hour),
		"attempt delay -1ms":        WithConnectAttemptDelay(-time.Millisecond),
		"attempt delay 10001ms":     WithConnectAttemptDelay(10001 * time.Millisecond),
	}
	for name, o := range cases {
		_, err := DialTimeout(time.Second, "127.0.0.1", 1, o)
		e := wantCode(t, err, ErrInvalid)
		if e.Phase != PhaseNone || e.OSError != 0 {
			t.Fatalf("%s: Phase %v, OSError %d for an invalid option", name, e.Phase, e.OSError)
		}
		t.Logf("%s: %v", name, err)
	}
	_, err := DialTimeout(time.Second, "bad\x00host", 102)
	wantCode(t, err, ErrInvalid)
	_, err = Listen("127.0.0.1", 0, ListenMaxTPDU(100))
	wantCode(t, err, ErrInvalid)
}

func TestUserTimeoutAndAttemptDelay(t *testing.T) {
	for name, opts := range map[string][]Option{
		"system defaults":   {WithUserTimeout(0), WithConnectAttemptDelay(0)},
		"smallest":          {WithUserTimeout(time.Microsecond), WithConnectAttemptDelay(time.Microsecond)},
		"20 s and 100 ms":   {WithUserTimeout(20 * time.Second), WithConnectAttemptDelay(100 * time.Millisecond)},
		"largest":           {WithUserTimeout(2073600 * time.Second), WithConnectAttemptDelay(10 * time.Second)},
		"from keep-alive":   {WithUserTimeout(time.Second), WithUserTimeoutFromKeepAlive()},
		"without keepalive": {WithoutKeepAlive(), WithUserTimeout(5 * time.Second)},
	} {
		p := newPair(t, nil, opts...)
		if err := p.client.Send([]byte(name)); err != nil {
			t.Fatalf("%s: Send: %v", name, err)
		}
		mustRecv(t, p.server, []byte(name))
	}
}

// reconnectServer accepts n connections from l in turn and echoes on each until it closes; it
// also checks that an accepted Conn refuses Reconnect. It reports on the returned channel.
func reconnectServer(l *Listener, n int) <-chan error {
	done := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			c, err := l.Accept(long)
			if err != nil {
				done <- fmt.Errorf("accept %d: %w", i, err)
				return
			}
			if err := c.Reconnect(context.Background()); !errors.Is(err, ErrState) {
				done <- fmt.Errorf("Reconnect of an accepted Conn: %v, want ErrState", err)
				c.Close()
				return
			}
			for {
				m, err := c.Recv(long)
				if errors.Is(err, ErrClosed) {
					break
				}
				if err != nil {
					done <- fmt.Errorf("conn %d: Recv: %w", i, err)
					c.Close()
					return
				}
				if err := c.Send(m); err != nil {
					done <- fmt.Errorf("conn %d: Send: %w", i, err)
					c.Close()
					return
				}
			}
			c.Close()
		}
		done <- nil
	}()
	return done
}

func TestReconnect(t *testing.T) {
	l, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	done := reconnectServer(l, 6)
	c, err := DialTimeout(long, "127.0.0.1", l.Port(), WithTPDUSize(512), WithUserTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < 6; i++ {
		if i > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), long)
			err := c.Reconnect(ctx)
			cancel()
			if err != nil {
				t.Fatalf("Reconnect %d: %v", i, err)
			}
		}
		if phase, err := c.ConnectPhase(); phase != PhaseNone || err != nil {
			t.Fatalf("ConnectPhase after connect %d: %v, %v", i, phase, err)
		}
		if !c.Alive() || c.TPDUSize() != 512 {
			t.Fatalf("connect %d: Alive %v, TPDU %d", i, c.Alive(), c.TPDUSize())
		}
		msg := pattern(700+i, byte(i)) // two DTs at TPDU 512
		if err := c.Send(msg); err != nil {
			t.Fatalf("Send after connect %d: %v", i, err)
		}
		mustRecv(t, c, msg)
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantClosedHandle(t, c.Reconnect(context.Background()), "Reconnect")
	_, err = c.ConnectPhase()
	wantClosedHandle(t, err, "ConnectPhase")
	_, err = c.LastOSError()
	wantClosedHandle(t, err, "LastOSError")
}

func TestReconnectRefused(t *testing.T) {
	p := newPair(t, nil)
	if code, err := p.client.LastOSError(); code != 0 || err != nil {
		t.Fatalf("LastOSError before a failure: %d, %v", code, err)
	}
	// Nobody listens on the port any more: the reconnect fails in the TCP phase.
	p.l.Close()
	p.server.Close()
	err := p.client.Reconnect(context.Background())
	e := wantCode(t, err, ErrRefused)
	if e.OSError != int32(syscall.ECONNREFUSED) || e.Phase != PhaseTCP {
		t.Fatalf("refused reconnect: OSError %d, Phase %v; want %d, tcp", e.OSError, e.Phase, int32(syscall.ECONNREFUSED))
	}
	if phase, err := p.client.ConnectPhase(); phase != PhaseTCP || err != nil {
		t.Fatalf("ConnectPhase: %v, %v; want tcp", phase, err)
	}
	if code, err := p.client.LastOSError(); code != int32(syscall.ECONNREFUSED) || err != nil {
		t.Fatalf("LastOSError: %d, %v", code, err)
	}
	if p.client.Alive() {
		t.Fatal("Alive after a failed reconnect")
	}
	if PhaseTCP.String() != "tcp" || PhaseCOTP.String() != "cotp" || PhaseNone.String() != "none" {
		t.Fatal("Phase.String")
	}
}

func TestReconnectCancel(t *testing.T) {
	// The listener accepts once; the reconnect's TCP connect completes in the backlog but its
	// CR is never answered, so the reconnect waits for the CC until the cancel ends it.
	p := newPair(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := p.client.Reconnect(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect cancelled: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Reconnect returned %v after the cancel", d)
	}
	if err := p.client.Reconnect(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reconnect with a cancelled context: %v", err)
	}
}

func TestListenerTSAPFilter(t *testing.T) {
	l, err := Listen("127.0.0.1", 0, ListenAllowTSAP16(0x0102), ListenMaxTPDU(512), ListenCRTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept(Forever)
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	_, err = DialTimeout(long, "127.0.0.1", l.Port(), WithTSAP(0x0100, 0x0103))
	e := wantCode(t, err, ErrRejected)
	t.Logf("refused: %v", e)
	c, err := DialTimeout(long, "127.0.0.1", l.Port(), WithTSAP(0x0100, 0x0102), WithTPDUSize(2048))
	if err != nil {
		t.Fatalf("allowed TSAP: %v", err)
	}
	defer c.Close()
	if c.TPDUSize() != 512 {
		t.Fatalf("TPDU %d, want the listener's maximum 512", c.TPDUSize())
	}
	if n, err := l.RefusedCount(); err != nil || n != 1 {
		t.Fatalf("RefusedCount %d, %v", n, err)
	}
	if msg := l.LastError(); msg == "" || msg == "no error" {
		t.Fatalf("listener LastError %q", msg)
	}
	if fd, err := l.Fd(); err != nil || fd < 0 {
		t.Fatalf("listener Fd %d, %v", fd, err)
	}
}

func TestMessageLimits(t *testing.T) {
	p := newPair(t, []ListenOption{ListenMaxMessage(300000)}, WithMaxMessage(300000))
	big := pattern(200000, 3) // above the pooled receive buffer
	go func() { p.server.Send(big) }()
	mustRecv(t, p.client, big)
	wantCode(t, p.client.Send(pattern(300001, 0)), ErrTooLarge)

	p = newPair(t, nil, WithMaxMessage(128))
	if err := p.server.Send(pattern(200, 0)); err != nil {
		t.Fatal(err)
	}
	_, err := p.client.Recv(long)
	wantCode(t, err, ErrTooLarge)
	// The connection is closed after that; later calls say so.
	_, err = p.client.Recv(0)
	wantCode(t, err, ErrState)
}

func TestQueueSend(t *testing.T) {
	p := newPair(t, nil)
	for i := 0; i < 10; i++ {
		if err := p.client.QueueSend(pattern(500, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.client.Flush(long); err != nil {
		t.Fatal(err)
	}
	if n, err := p.client.SendPending(); n != 0 || err != nil {
		t.Fatalf("SendPending %d, %v", n, err)
	}
	for i := 0; i < 10; i++ {
		mustRecv(t, p.server, pattern(500, byte(i)))
	}
}

// dialAndDrop dials and forgets the connection, so only the finalizer can close it.
func dialAndDrop(t *testing.T, port uint16) {
	c, err := DialTimeout(long, "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.TPDUSize()
}

func TestFinalizerClosesForgottenConn(t *testing.T) {
	l, err := Listen("127.0.0.1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan *Conn, 1)
	go func() {
		c, _ := l.Accept(long)
		acc <- c
	}()
	dialAndDrop(t, l.Port())
	server := <-acc
	if server == nil {
		t.Fatal("no connection accepted")
	}
	defer server.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		_, err := server.Poll(50 * time.Millisecond)
		if err != nil {
			wantCode(t, err, ErrClosed)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the finalizer did not close the forgotten connection")
		}
	}
}

// BenchmarkRoundTrip measures one request and its answer (an echo of 22 bytes, the size of an
// S7 read answer) through the binding on loopback.
func BenchmarkRoundTrip(b *testing.B) {
	l, err := Listen("127.0.0.1", 0)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	go func() {
		s, err := l.Accept(long)
		if err != nil {
			return
		}
		defer s.Close()
		buf := make([]byte, 64)
		for {
			n, err := s.RecvInto(buf, Forever)
			if err != nil || s.Send(buf[:n]) != nil {
				return
			}
		}
	}()
	c, err := DialTimeout(long, "127.0.0.1", l.Port())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := pattern(22, 1)
	buf := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Send(req); err != nil {
			b.Fatal(err)
		}
		if _, err := c.RecvInto(buf, long); err != nil {
			b.Fatal(err)
		}
	}
}
