//go:build isotcp_release && !isotcp_external

package isotcp

// With -tags isotcp_release: the static library of `cargo build --release` in this repository.

// #cgo LDFLAGS: ${SRCDIR}/../../target/release/libisotcp.a -lpthread -ldl -lm
import "C"
