#!/usr/bin/env python3
"""A TLS-inside-COTP echo server on 127.0.0.1 built on Python's `ssl` module (OpenSSL): TPKT and
COTP in clear, TLS records as the payload of DTs, the way secure S7 communication frames them;
and, with --connect, a client of such a server.

    tls_echo.py --cert server.pem --key server.key [--port 0]
    tls_echo.py --connect PORT --ca ca.pem [--server-name plc.example] [--tpdu 1024]

Standard library only. One connection after the other:
  - the CR is answered by a CC (DST-REF = the CR's SRC-REF, class 0, the TPDU size asked for,
    both TSAPs echoed);
  - every TSDU (the DTs up to EOT) is fed to OpenSSL through a MemoryBIO; what OpenSSL has to
    send goes back as one TSDU, cut into DTs of at most the TPDU size (EOT on the last);
  - after the handshake every TSDU is one message: its plaintext is echoed as one TLS write,
    except a message "exporter <label>", answered with the 32 bytes of the TLS 1.3 exporter
    (RFC 8446 section 7.5, no context) computed here from OpenSSL's EXPORTER_SECRET (key log
    callback), so a client can compare its own exporter with OpenSSL's secret; for TLS 1.2 the
    answer is "n/a".
A connection whose handshake fails (a client rejecting the certificate) is logged to stderr and
closed; the next one is served.

Prints "READY <port>" once listening, then runs until stdin reaches EOF.

With --connect the roles turn: it sends a CR (TSAPs 0x0100 / 0x0102), then runs the TLS client,
verifying the server's chain against --ca and its name against --server-name, sends messages of
several sizes and checks their echoes, asks "exporter EXPERIMENTAL_OMS" and compares the 32-byte
answer with the exporter it derives from OpenSSL's secret (TLS 1.3), and closes. One line per
check ("PASS ..." or "FAIL ..."); exit status 0 only when every check passed.
"""
import argparse
import hashlib
import hmac
import os
import select
import socket
import ssl
import struct
import sys
import tempfile

HOST = "127.0.0.1"


def read_exact(sock, n):
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("peer closed")
        data += chunk
    return bytes(data)


def read_tpdu(sock):
    """One TPKT's body (the COTP TPDU)."""
    head = read_exact(sock, 4)
    if head[0] != 3:
        raise ValueError(f"not a TPKT: {head.hex()}")
    length = struct.unpack(">H", head[2:4])[0]
    if length < 7:
        raise ValueError(f"TPKT length {length}")
    return read_exact(sock, length - 4)


def answer_cr(sock, tpdu):
    """Sends the CC for a CR; returns the TPDU size agreed (the one asked for, 1024 if none)."""
    if len(tpdu) < 7 or tpdu[1] & 0xF0 != 0xE0:
        raise ValueError(f"expected a CR, got {tpdu[:8].hex()}")
    size_code, params, i = 0x0A, b"", 7
    while i + 2 <= len(tpdu):
        code, plen = tpdu[i], tpdu[i + 1]
        value = tpdu[i + 2:i + 2 + plen]
        if code == 0xC0 and plen == 1:
            size_code = value[0]
        elif code in (0xC1, 0xC2):
            params += bytes([code, plen]) + value
        i += 2 + plen
    body = bytes([0xD0]) + tpdu[4:6] + b"\x00\x01\x00" + bytes([0xC0, 1, size_code]) + params
    cc = bytes([len(body)]) + body
    sock.sendall(struct.pack(">BBH", 3, 0, len(cc) + 4) + cc)
    return 1 << size_code


def read_tsdu(sock):
    """The payload of the DTs up to the one with EOT."""
    data = bytearray()
    while True:
        tpdu = read_tpdu(sock)
        if tpdu[1] == 0x80:  # DR
            raise EOFError("DR")
        if tpdu[1] != 0xF0 or tpdu[0] != 2:
            raise ValueError(f"expected a DT, got {tpdu[:8].hex()}")
        data += tpdu[3:]
        if tpdu[2] & 0x80:
            return bytes(data)


def send_tsdu(sock, data, tpdu_size):
    """data as DTs of at most tpdu_size bytes, EOT on the last, in one write."""
    per, out, off = tpdu_size - 3, bytearray(), 0
    while off < len(data):
        chunk = data[off:off + per]
        off += len(chunk)
        out += struct.pack(">BBHBBB", 3, 0, len(chunk) + 7, 2, 0xF0, 0x80 if off >= len(data) else 0)
        out += chunk
    sock.sendall(out)


def hkdf_expand_label(hash_name, secret, label, context, length):
    """HKDF-Expand-Label of RFC 8446 section 7.1."""
    full = b"tls13 " + label
    info = struct.pack(">H", length) + bytes([len(full)]) + full + bytes([len(context)]) + context
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([counter]), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


def tls13_exporter(hash_name, exporter_secret, label, length=32):
    """TLS-Exporter(label, no context, length) of RFC 8446 section 7.5."""
    empty = hashlib.new(hash_name, b"").digest()
    derived = hkdf_expand_label(hash_name, exporter_secret, label, empty, len(empty))
    return hkdf_expand_label(hash_name, derived, b"exporter", empty, length)


class Session:
    def __init__(self, sock, ctx, tpdu_size, server_hostname=None):
        self.sock, self.tpdu_size = sock, tpdu_size
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_side=server_hostname is None,
                                server_hostname=server_hostname)

    def flush(self):
        data = self.outgoing.read()
        if data:
            send_tsdu(self.sock, data, self.tpdu_size)

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                self.flush()
                self.incoming.write(read_tsdu(self.sock))

    def read_message(self):
        """The plaintext of the next TSDU that carries any (TSDUs with only records that carry
        no data are read past)."""
        while True:
            self.incoming.write(read_tsdu(self.sock))
            plain = bytearray()
            while True:
                try:
                    chunk = self.tls.read(1 << 20)
                except ssl.SSLWantReadError:
                    break
                except ssl.SSLZeroReturnError:
                    raise EOFError("close_notify")
                if not chunk:
                    # SSLObject.read returns b"" once the peer's close_notify is in.
                    raise EOFError("close_notify")
                plain += chunk
            self.flush()
            if plain:
                return bytes(plain)

    def write_message(self, data):
        self.tls.write(data)
        self.flush()


def exporter_secret(keylog):
    secret = None
    with open(keylog) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] == "EXPORTER_SECRET":
                secret = bytes.fromhex(parts[2])
    return secret


def serve(conn, args, keylog):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if os.path.exists(keylog):
        os.unlink(keylog)
    ctx.keylog_filename = keylog
    tpdu_size = answer_cr(conn, read_tpdu(conn))
    s = Session(conn, ctx, tpdu_size)
    s.handshake()
    version, cipher = s.tls.version(), s.tls.cipher()[0]
    print(f"tls_echo: handshake done: {version} {cipher}, TPDU {tpdu_size}", file=sys.stderr, flush=True)
    while True:
        msg = s.read_message()
        if msg.startswith(b"exporter "):
            secret = exporter_secret(keylog) if version == "TLSv1.3" else None
            if secret is None:
                s.write_message(b"n/a")
            else:
                hash_name = "sha384" if cipher.endswith("SHA384") else "sha256"
                s.write_message(tls13_exporter(hash_name, secret, msg[len("exporter "):]))
        else:
            s.write_message(msg)


def connect(args):
    """The client role: returns the process's exit status."""
    keylog_dir = tempfile.mkdtemp(prefix="tls-echo-")
    keylog = os.path.join(keylog_dir, "keys.log")
    failures = 0

    def check(ok, what):
        nonlocal failures
        print(("PASS " if ok else "FAIL ") + what, flush=True)
        failures += 0 if ok else 1

    try:
        sock = socket.create_connection((HOST, args.connect), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        code = args.tpdu.bit_length() - 1
        cr = bytes([0xE0, 0, 0, 0, 1, 0, 0xC1, 2, 1, 0, 0xC2, 2, 1, 2, 0xC0, 1, code])
        sock.sendall(struct.pack(">BBH", 3, 0, len(cr) + 5) + bytes([len(cr)]) + cr)
        cc = read_tpdu(sock)
        check(cc[1] == 0xD0, f"CC received (TPDU {args.tpdu})")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(args.ca)
        ctx.keylog_filename = keylog
        s = Session(sock, ctx, args.tpdu, server_hostname=args.server_name)
        s.handshake()
        version, cipher = s.tls.version(), s.tls.cipher()[0]
        check(True, f"handshake: {version} {cipher}, the server's chain and name verified by OpenSSL")
        sizes = (1, 100, 1000, 5000, 30000)
        ok = True
        for size in sizes:
            msg = bytes((i * 7 + size) & 0xFF for i in range(size))
            s.write_message(msg)
            back = s.read_message()
            ok = ok and back == msg
        check(ok, f"{len(sizes)} messages of 1 to {sizes[-1]} bytes echoed byte for byte")
        s.write_message(b"exporter EXPERIMENTAL_OMS")
        theirs = s.read_message()
        secret = exporter_secret(keylog)
        if version == "TLSv1.3" and secret is not None:
            hash_name = "sha384" if cipher.endswith("SHA384") else "sha256"
            ours = tls13_exporter(hash_name, secret, b"EXPERIMENTAL_OMS")
            check(theirs == ours, f"the server's exporter equals OpenSSL's ({theirs.hex()[:16]}...)")
        else:
            check(False, f"no TLS 1.3 exporter secret ({version})")
        sock.close()
    except (OSError, ValueError, EOFError, ssl.SSLError) as e:
        check(False, f"client: {e}")
    finally:
        if os.path.exists(keylog):
            os.unlink(keylog)
        os.rmdir(keylog_dir)
    return 1 if failures else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--connect", type=int)
    ap.add_argument("--ca")
    ap.add_argument("--server-name", default="plc.example")
    ap.add_argument("--tpdu", type=int, default=1024)
    args = ap.parse_args()
    if args.connect:
        if not args.ca:
            ap.error("--connect needs --ca")
        return connect(args)
    if not args.cert or not args.key:
        ap.error("the server needs --cert and --key")
    keylog_dir = tempfile.mkdtemp(prefix="tls-echo-")
    keylog = os.path.join(keylog_dir, "keys.log")
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((HOST, args.port))
    lsock.listen(8)
    print("READY", lsock.getsockname()[1], flush=True)
    try:
        while True:
            ready, _, _ = select.select([lsock, sys.stdin], [], [])
            if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
                return 0
            if lsock not in ready:
                continue
            conn, _ = lsock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.settimeout(30)
            try:
                serve(conn, args, keylog)
            except EOFError:
                pass
            except (OSError, ValueError, ssl.SSLError) as e:
                print(f"tls_echo: connection ended: {e}", file=sys.stderr, flush=True)
            finally:
                conn.close()
    finally:
        if os.path.exists(keylog):
            os.unlink(keylog)
        os.rmdir(keylog_dir)


if __name__ == "__main__":
    sys.exit(main())
