//go:build isotcp_debug && !isotcp_release && !isotcp_external

package isotcp

// With -tags isotcp_debug: the static library of `cargo build` (debug profile) in this
// repository, for working on the binding without installing the library.

// #cgo LDFLAGS: ${SRCDIR}/../../target/debug/libisotcp.a -lpthread -ldl -lm
import "C"
