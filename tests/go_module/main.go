// A program of another module that uses the Go binding as `go get` brought it: reads DB1.DBB0
// (16 bytes) from an S7 server and prints them in hex.
//
//	s7read PORT   -> "isotcp <version>", "tpdu <size>", "DB1 00 01 02 ..."
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"isotcp.example/isotcp"
)

var (
	// S7 setup communication, PDU 480.
	setup = []byte{0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00,
		0xF0, 0x00, 0x00, 0x01, 0x00, 0x01, 0x01, 0xE0}
	// S7 read variable: 16 bytes (transport size 02, length 0x10) of DB1 from offset 0.
	readDB1 = []byte{0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00,
		0x04, 0x01, 0x12, 0x0A, 0x10, 0x02, 0x00, 0x10, 0x00, 0x01, 0x84, 0x00, 0x00, 0x00}
)

// exchange sends one S7 request and returns the answer if it is a successful ack data.
func exchange(c *isotcp.Conn, req []byte) ([]byte, error) {
	if err := c.Send(req); err != nil {
		return nil, err
	}
	ans, err := c.Recv(5 * time.Second)
	if err != nil {
		return nil, err
	}
	if len(ans) < 12 || ans[0] != 0x32 || ans[1] != 0x03 || ans[10] != 0 || ans[11] != 0 {
		return nil, fmt.Errorf("not a successful S7 ack data: % X", ans)
	}
	return ans, nil
}

func run(port uint16) error {
	fmt.Println("isotcp", isotcp.Version())
	c, err := isotcp.DialTimeout(5*time.Second, "127.0.0.1", port, isotcp.WithRackSlot(0, 2))
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Println("tpdu", c.TPDUSize())
	if _, err := exchange(c, setup); err != nil {
		return fmt.Errorf("setup communication: %w", err)
	}
	ans, err := exchange(c, readDB1)
	if err != nil {
		return fmt.Errorf("read DB1: %w", err)
	}
	// Parameter 04 01, then the item: return code FF, transport size 04, length in bits.
	if len(ans) != 14+4+16 || ans[14] != 0xFF {
		return fmt.Errorf("read DB1 answer: % X", ans)
	}
	fmt.Printf("DB1 % X\n", ans[18:])
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: s7read PORT")
		os.Exit(2)
	}
	port, err := strconv.ParseUint(os.Args[1], 10, 16)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad port:", err)
		os.Exit(2)
	}
	if err := run(uint16(port)); err != nil {
		fmt.Fprintln(os.Stderr, "s7read:", err)
		os.Exit(1)
	}
}
