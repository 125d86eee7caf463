package isotcp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"isotcp.example/isotcp"
)

// Dial an S7-300 CPU in rack 0, slot 2, send an S7 setup communication and read the answer.
func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := isotcp.Dial(ctx, "192.168.0.10", 102, isotcp.WithRackSlot(0, 2))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	setup := []byte{0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
		0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0}
	if err := c.Send(setup); err != nil {
		log.Fatal(err)
	}
	answer, err := c.Recv(time.Second)
	switch {
	case errors.Is(err, isotcp.ErrTimeout):
		log.Fatal("no answer within 1 s")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Printf("% X\n", answer)
}

// Serve clients on the ISO-on-TCP port: accept, then answer each message.
func ExampleListen() {
	l, err := isotcp.Listen("", 102, isotcp.ListenAllowTSAP16(0x0102))
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for {
		c, err := l.Accept(isotcp.Forever)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			for {
				req, err := c.Recv(isotcp.Forever)
				if err != nil {
					return // ErrClosed when the client hangs up
				}
				if c.Send(req) != nil {
					return
				}
			}
		}()
	}
}

// A string TSAP for S7CommPlus, a larger TPDU and a larger message limit.
func ExampleWithTSAPBytes() {
	c, err := isotcp.DialTimeout(3*time.Second, "plc.example", 102,
		isotcp.WithTSAPBytes([]byte{0x06, 0x00}, []byte("SIMATIC-ROOT-HMI")),
		isotcp.WithTPDUSize(2048),
		isotcp.WithMaxMessage(1<<20))
	if err != nil {
		var e *isotcp.Error
		if errors.As(err, &e) {
			log.Fatalf("code %s: %s", isotcp.CodeName(e.Code), e.Msg)
		}
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("TPDU size", c.TPDUSize())
}
