#!/usr/bin/env bash
# Builds libsnap7.so (snap7 1.4.2) with isotcp as the client's ISO transport.
#
#   bash snap7/build.sh [OUTDIR]        # default OUTDIR: target/snap7-kit
#
# snap7's source (LGPL-3.0) is fetched here, at build time, from the npm registry (node-snap7
# 1.0.9 carries it under deps/snap7/src) and checked against a pinned SHA-256; none of it is
# part of this repository. Our snap7/s7_isotcp.{h,cpp} take the place of core/s7_isotcp.* for
# the client; the server and the partner are compiled against snap7's own transport, renamed
# TNativeIsoTcpSocket by the preprocessor, so they work exactly as in a stock build.
#
# Environment:
#   ISOTCP_STATIC_LIB  libisotcp.a to link (default: target/release/libisotcp.a, built with
#                      `cargo build --release` when missing)
#   CXX                the C++ compiler (default g++); JOBS parallel compilations (default 2)
#   SNAP7_TARBALL      a local copy of node-snap7-1.0.9.tgz instead of the download
# Output: OUTDIR/libsnap7.so, OUTDIR/include/snap7.h (snap7's C header, from the fetched
# source). Nothing is rebuilt when the inputs are unchanged (OUTDIR/stamp).
set -euo pipefail

ROOT="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/target/snap7-kit}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CXX="${CXX:-g++}"
JOBS="${JOBS:-2}"

TARBALL_URL="https://registry.npmjs.org/node-snap7/-/node-snap7-1.0.9.tgz"
TARBALL_SHA256="9f57bac2cf593e102e9a6fdb7eb7c42962413faeaf910259a891f420c46a62dd"

log() { printf 'snap7/build.sh: %s\n' "$*"; }
die() {
    log "$*" >&2
    exit 1
}

command -v "$CXX" >/dev/null || die "no C++ compiler ($CXX); .ci/setup-snap7 installs g++"

LIB="${ISOTCP_STATIC_LIB:-$ROOT/target/release/libisotcp.a}"
if [ ! -f "$LIB" ]; then
    [ -z "${ISOTCP_STATIC_LIB:-}" ] || die "ISOTCP_STATIC_LIB=$LIB does not exist"
    log "building libisotcp.a (cargo build --release --lib)"
    (cd "$ROOT" && cargo build --release --locked --lib)
fi

# --- the source, verified ---------------------------------------------------------------
TGZ="$OUT/node-snap7-1.0.9.tgz"
if [ -n "${SNAP7_TARBALL:-}" ]; then
    cp "$SNAP7_TARBALL" "$TGZ.part"
    mv "$TGZ.part" "$TGZ"
elif [ ! -f "$TGZ" ] || ! echo "$TARBALL_SHA256  $TGZ" | sha256sum -c --status; then
    command -v curl >/dev/null || die "curl is needed to fetch snap7's source"
    log "fetching $TARBALL_URL"
    curl -fsSL --retry 3 -o "$TGZ.part" "$TARBALL_URL"
    mv "$TGZ.part" "$TGZ"
fi
echo "$TARBALL_SHA256  $TGZ" | sha256sum -c --status ||
    die "$TGZ: SHA-256 is not the pinned $TARBALL_SHA256"

STAMP="$(cat "$TGZ" "$ROOT/snap7/s7_isotcp.h" "$ROOT/snap7/s7_isotcp.cpp" "$ROOT/snap7/build.sh" \
    "$ROOT/include/isotcp.h" "$LIB" | sha256sum | cut -d' ' -f1) $CXX"
if [ -f "$OUT/libsnap7.so" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ]; then
    log "up to date: $OUT/libsnap7.so"
    exit 0
fi
rm -f "$OUT/stamp" "$OUT/libsnap7.so"

# Two trees: "native" exactly as published, "kit" with our transport in place of snap7's.
rm -rf "$OUT/unpack" "$OUT/native" "$OUT/kit" "$OUT/obj" "$OUT/include"
mkdir -p "$OUT/unpack" "$OUT/obj" "$OUT/include"
tar -xzf "$TGZ" -C "$OUT/unpack" package/deps/snap7/src package/deps/snap7/lgpl-3.0.txt
cp -R "$OUT/unpack/package/deps/snap7/src" "$OUT/native"
cp -R "$OUT/unpack/package/deps/snap7/src" "$OUT/kit"
cp "$OUT/unpack/package/deps/snap7/lgpl-3.0.txt" "$OUT/LICENSE.snap7-LGPL-3.0.txt"
cp "$ROOT/snap7/s7_isotcp.h" "$ROOT/snap7/s7_isotcp.cpp" "$OUT/kit/core/"

# snap7's C header for programs (Cli_*, Srv_*, Par_*): shipped with its examples and wrappers,
# not under src/; node-snap7 keeps it as src/snap7.h.
if tar -tzf "$TGZ" package/src/snap7.h >/dev/null 2>&1; then
    tar -xzf "$TGZ" -C "$OUT/unpack" package/src/snap7.h
    cp "$OUT/unpack/package/src/snap7.h" "$OUT/include/snap7.h"
fi

# --- compile ----------------------------------------------------------------------------
# Flags of snap7's own Unix makefile: -O2, PIC, exceptions, pthreads.
BASE=(-O2 -fPIC -pthread -fexceptions -std=gnu++11)
NATIVE_NAMES=(-DTIsoTcpSocket=TNativeIsoTcpSocket -DTSnap7Peer=TNativeSnap7Peer
    -DErrIsoText=NativeErrIsoText -DTIsoTcpWorker=TNativeIsoTcpWorker -DTS7Worker=TNativeS7Worker)

# unit: TREE SOURCE OBJECT EXTRA-FLAGS... ; one per line for xargs
units() {
    local f
    for f in sys/snap_msgsock sys/snap_sysutils sys/snap_tcpsrvr sys/snap_threads \
        core/s7_client core/s7_micro_client core/s7_peer core/s7_text lib/snap7_libmain; do
        echo "kit $f.cpp ${f##*/}.o -w"
    done
    echo "kit core/s7_isotcp.cpp isotcp_transport.o -Wall -Wextra -Werror -DISOTCP_STATIC"
    for f in core/s7_isotcp core/s7_peer core/s7_server core/s7_partner; do
        echo "native $f.cpp native_${f##*/}.o -w ${NATIVE_NAMES[*]}"
    done
}
compile_one() {
    local tree="$1" src="$2" obj="$3"
    shift 3
    "$CXX" "${BASE[@]}" -I"$OUT/$tree/sys" -I"$OUT/$tree/core" -I"$OUT/$tree/lib" \
        -I"$ROOT/include" "$@" -c "$OUT/$tree/$src" -o "$OUT/obj/$obj"
}
export -f compile_one
export OUT ROOT CXX
BASE_STR="${BASE[*]}"
export BASE_STR
log "compiling snap7 with isotcp's transport ($JOBS jobs)"
units | xargs -P "$JOBS" -L 1 bash -c 'BASE=($BASE_STR); compile_one "$@"' _

# --- the layout rule: snap7_libmain.cpp sees TSnap7Partner through our header, the partner's
# code through snap7's; both must place every field at the same offset. -----------------------
cat >"$OUT/obj/layout_probe.cpp" <<'EOF'
#include <cstddef>
#include <cstdio>
#include "s7_client.h"
#include "s7_partner.h"
#define OFF(T, f) printf(#T "." #f " %zu\n", offsetof(T, f))
int main()
{
    printf("TIsoTcpSocket %zu TSnap7Peer %zu TSnap7Partner %zu TSnap7Client %zu\n",
           sizeof(TIsoTcpSocket), sizeof(TSnap7Peer), sizeof(TSnap7Partner), sizeof(TSnap7Client));
    OFF(TIsoTcpSocket, SrcTSap); OFF(TIsoTcpSocket, LastIsoError); OFF(TIsoTcpSocket, IsoPDUSize);
    OFF(TSnap7Peer, LastError); OFF(TSnap7Peer, PDULength); OFF(TSnap7Peer, PDURequest);
    OFF(TSnap7Partner, SendTime); OFF(TSnap7Partner, RecvTime); OFF(TSnap7Partner, BytesSent);
    OFF(TSnap7Partner, BytesRecv); OFF(TSnap7Partner, SendErrors); OFF(TSnap7Partner, RecvErrors);
    OFF(TSnap7Partner, LastError); OFF(TSnap7Partner, Running); OFF(TSnap7Partner, PeerAddress);
    return 0;
}
EOF
probe() {
    local tree="$1"
    shift
    "$CXX" "${BASE[@]}" -w -Wno-invalid-offsetof -I"$OUT/$tree/sys" -I"$OUT/$tree/core" \
        -I"$OUT/$tree/lib" -I"$ROOT/include" "$@" "$OUT/obj/layout_probe.cpp" \
        -o "$OUT/obj/layout_$tree"
    "$OUT/obj/layout_$tree" | sed 's/TNative/T/g; s/TNativeSnap7Peer/TSnap7Peer/g'
}
probe kit >"$OUT/obj/layout_kit.txt"
probe native "${NATIVE_NAMES[@]}" >"$OUT/obj/layout_native.txt"
if ! diff -u "$OUT/obj/layout_native.txt" "$OUT/obj/layout_kit.txt"; then
    die "TIsoTcpSocket's layout differs from snap7's (see the diff above)"
fi
# The client object differs from a stock one only inside TIsoTcpSocket's private part.

# --- link ---------------------------------------------------------------------------------
# isotcp's symbols stay inside (--exclude-libs): the library exports snap7's API only, so a
# program may load libisotcp.so beside it without clashes.
"$CXX" -shared -o "$OUT/libsnap7.so.part" "$OUT"/obj/*.o "$LIB" \
    -Wl,--exclude-libs,ALL -Wl,--gc-sections -Wl,--strip-debug -Wl,--no-undefined -pthread -ldl -lm -lrt
mv "$OUT/libsnap7.so.part" "$OUT/libsnap7.so"
echo "$STAMP" >"$OUT/stamp"
log "built $OUT/libsnap7.so"
