//go:build !isotcp_release && !isotcp_external

package isotcp

// The default link: the static library of `cargo build` (debug profile) in this repository.

// #cgo LDFLAGS: ${SRCDIR}/../../target/debug/libisotcp.a -lpthread -ldl -lm
import "C"
