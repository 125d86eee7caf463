# shellcheck shell=bash disable=SC2034 # what it sets is read by the scripts that source it
# Shared by the scripts in .ci/ and by benches/run; sourced, never run:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Sourcing it changes no shell option (the scripts set -euo pipefail themselves) and no
# directory. It sets:
#   ROOT          the repository's top directory (absolute)
#   HOME          when unset (CI runners may start without one): from the password database,
#                 exported
#   PEERS_DIR     where .ci/setup keeps the python-snap7 venvs: $ISOTCP_PEERS_DIR, by default
#                 $HOME/.cache/isotcp-peers
#   PEERS_PY3     the python of the python-snap7 3.3.0 venv in PEERS_DIR
#   PEERS_NATIVE  the python of the python-snap7 2.0.2 venv (native snap7) in PEERS_DIR
#   PEERS_S7COMMPLUS  the python of the s7commplus 0.3.0 venv (TLS inside COTP) in PEERS_DIR
#   LOG_PREFIX    what log and die put before each line: the script's file name
# PEERS_PY3 and PEERS_NATIVE are where .ci/setup puts the venvs; a script that lets the caller
# choose others reads ISOTCP_VENV_PY3 / ISOTCP_VENV_NATIVE first.
# It defines log, die, as_root, can_be_root and apt_install (below).

# CDPATH cleared: with it, cd could pick another directory and would print its name.
ROOT="$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"

if [ -z "${HOME:-}" ]; then
    HOME="$(getent passwd "$(id -u)" | cut -d: -f6)"
    export HOME
fi

PEERS_DIR="${ISOTCP_PEERS_DIR:-$HOME/.cache/isotcp-peers}"
PEERS_PY3="$PEERS_DIR/venv-snap7-3/bin/python"
PEERS_NATIVE="$PEERS_DIR/venv-snap7-2/bin/python"
PEERS_S7COMMPLUS="$PEERS_DIR/venv-s7commplus/bin/python"

LOG_PREFIX="${0##*/}"

# log MESSAGE...: one line on stdout, "<prefix>: MESSAGE".
log() { printf '%s: %s\n' "$LOG_PREFIX" "$*"; }

# die MESSAGE...: the line of log on stderr, then exit status 1.
die() {
    log "$@" >&2
    exit 1
}

# True when as_root has a way to work: this is root, or sudo is installed (whether sudo needs
# a password is only known when it runs).
can_be_root() {
    [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1
}

# as_root COMMAND...: runs COMMAND as root; through `sudo -n` when this is not root, so that
# a sudo asking for a password fails instead of waiting for an answer nobody can type.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo -n "$@"
    fi
}

# apt_install PACKAGE...: installs those of the Debian packages that dpkg does not list as
# installed, with one apt-get update first; does no network I/O when all are there. Exits
# (status 1) when something is missing and there is neither root nor sudo.
apt_install() {
    local pkg missing=()
    for pkg in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "apt: already installed: $*"
        return 0
    fi
    can_be_root || die "apt: need root or sudo to install: ${missing[*]}"
    log "apt: installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    log "apt: installed ${missing[*]}"
}
