//go:build !isotcp_debug && !isotcp_release && !isotcp_external

package isotcp

// The default link, what a module that requires this one gets: the installed library, found
// through pkg-config (`make install` writes isotcp.pc; PKG_CONFIG_PATH names a prefix that is
// not searched by default). It gives the header's directory and `-L<libdir> -lisotcp`, so
// programs load libisotcp.so.<major> at run time.

// #cgo pkg-config: isotcp
import "C"
