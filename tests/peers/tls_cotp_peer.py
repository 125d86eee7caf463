#!/usr/bin/env python3
"""A TLS-inside-COTP peer built on Python's ssl module (OpenSSL) with memory BIOs.

TPKT and COTP (class 0) are spoken by hand here; TLS records travel as DT payload, as on an
S7-1200/1500 after InitSSL. Subcommands (tests/peers/README.md):

  pki DIR             make a test CA and certificates (server, client, expired) in DIR
  serve DIR           server role: listen on 127.0.0.1, print "READY <port>", serve every
                      connection on its own thread until stdin reaches EOF. The called TSAP (C2)
                      of each CR names the scenario (SCENARIOS below).
  connect DIR ...     client role against a COTP/TLS server (see `connect --help`)

Every connection of `serve` runs the TLS handshake, then echoes each TSDU's plaintext back as one
TSDU, except the plaintext "REPORT", answered with one line of key=value pairs that says what the
peer saw: the ClientHello's fields, the DT sizes, the negotiated version and cipher.
"""

import argparse
import datetime
import hashlib
import os
import socket
import ssl
import struct
import sys
import tempfile
import threading
import time

# --- TPKT / COTP ------------------------------------------------------------------------------


class Cotp:
    """One COTP class 0 connection over a TCP socket, with the DT sizes it received."""

    def __init__(self, sock):
        self.sock = sock
        self.tpdu = 128
        self.dts = 0  # DTs received
        self.max_dt = 0  # largest DT TPDU received (TPKT length - 4)
        self.over_tpdu = 0  # DTs received above the negotiated TPDU size
        self.tsdu_dts = []  # DT count of each TSDU received
        self.check_records = False  # count DTs that are not whole TLS records (application data)
        self.misaligned = 0

    def _exact(self, n):
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError("peer closed")
            data += chunk
        return bytes(data)

    def recv_tpdu(self):
        version, _, length = struct.unpack(">BBH", self._exact(4))
        if version != 3 or length < 7:
            raise ValueError(f"bad TPKT header: version {version}, length {length}")
        return self._exact(length - 4)

    def send_tpdu(self, tpdu):
        self.sock.sendall(struct.pack(">BBH", 3, 0, len(tpdu) + 4) + tpdu)

    def accept(self):
        """Reads the CR, answers a CC echoing its TSAPs and TPDU size; returns the called TSAP."""
        cr = self.recv_tpdu()
        if cr[1] & 0xF0 != 0xE0:
            raise ValueError(f"expected a CR, got code {cr[1]:#x}")
        src_ref = cr[4:6]
        params = parse_params(cr[7 : cr[0] + 1])
        size_code = params.get(0xC0, b"\x07")[0]
        self.tpdu = 1 << size_code
        cc = bytes([0xD0]) + src_ref + b"\x00\x01\x00"
        cc += bytes([0xC0, 1, size_code])
        for code in (0xC1, 0xC2):
            if code in params:
                cc += bytes([code, len(params[code])]) + params[code]
        self.send_tpdu(bytes([len(cc)]) + cc)
        return params.get(0xC2, b"")

    def connect(self, calling, called, size_code):
        params = bytes([0xC1, len(calling)]) + calling + bytes([0xC2, len(called)]) + called
        params += bytes([0xC0, 1, size_code])
        cr = bytes([0xE0, 0, 0, 0, 0x2A, 0]) + params
        self.send_tpdu(bytes([len(cr)]) + cr)
        cc = self.recv_tpdu()
        if cc[1] & 0xF0 != 0xD0:
            raise ValueError(f"expected a CC, got code {cc[1]:#x}")
        self.tpdu = 1 << parse_params(cc[7 : cc[0] + 1]).get(0xC0, b"\x07")[0]

    def recv_dt(self):
        """One DT: (payload, eot). Counts it and checks it against the TPDU size."""
        tpdu = self.recv_tpdu()
        if tpdu[0] != 2 or tpdu[1] != 0xF0:
            raise ValueError(f"expected a DT, got {tpdu[:3].hex()}")
        self.dts += 1
        self.max_dt = max(self.max_dt, len(tpdu))
        if len(tpdu) > self.tpdu:
            self.over_tpdu += 1
        if self.check_records and sum(map(len, records(tpdu[3:]))) != len(tpdu) - 3:
            self.misaligned += 1
        return tpdu[3:], bool(tpdu[2] & 0x80)

    def recv_tsdu(self):
        data, count = bytearray(), 0
        while True:
            payload, eot = self.recv_dt()
            data += payload
            count += 1
            if eot:
                self.tsdu_dts.append(count)
                return bytes(data)

    def send_dt(self, payload, eot):
        self.send_tpdu(bytes([2, 0xF0, 0x80 if eot else 0]) + payload)

    def send_tsdu(self, data):
        """Sends `data` as DTs of the negotiated TPDU size, EOT on the last."""
        room = self.tpdu - 3
        pieces = [data[i : i + room] for i in range(0, len(data), room)] or [b""]
        for i, piece in enumerate(pieces):
            self.send_dt(piece, i == len(pieces) - 1)


def parse_params(data):
    params, i = {}, 0
    while i + 2 <= len(data):
        code, length = data[i], data[i + 1]
        params[code] = data[i + 2 : i + 2 + length]
        i += 2 + length
    return params


# --- TLS over memory BIOs ---------------------------------------------------------------------


class Tls:
    """An ssl.SSLObject whose records go through a Cotp connection."""

    def __init__(self, cotp, ctx, server_side, server_hostname=None):
        self.cotp = cotp
        self.inb, self.outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inb, self.outb, server_side=server_side, server_hostname=server_hostname)
        self.hellos = 0  # ClientHellos received (2 after a HelloRetryRequest)

    def pending_out(self):
        return self.outb.read()

    def flush(self):
        out = self.outb.read()
        if out:
            self.cotp.send_tsdu(out)

    def handshake(self, first=None, send=None):
        """Runs the handshake; `first` is input already read, `send` sends each flight."""
        send = send or self.cotp.send_tsdu
        if first is not None:
            self.hellos += client_hellos(first)
            self.inb.write(first)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                out = self.outb.read()
                if out:
                    send(out)
                data = self.cotp.recv_tsdu()
                self.hellos += client_hellos(data)
                self.inb.write(data)
            except ssl.SSLError:
                # OpenSSL queued an alert for the peer: deliver it, then give up.
                out = self.outb.read()
                if out:
                    send(out)
                raise
        out = self.outb.read()
        if out:
            send(out)

    def read_tsdu(self):
        """The plaintext of the next TSDU that carries any (b"" at close_notify)."""
        while True:
            self.inb.write(self.cotp.recv_tsdu())
            plain = bytearray()
            try:
                while True:
                    chunk = self.obj.read(1 << 17)
                    if not chunk:
                        # SSLObject.read returns b"" once the peer's close_notify is in.
                        return bytes(plain)
                    plain += chunk
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError:
                return bytes(plain)
            if plain:
                return bytes(plain)

    def seal(self, data):
        self.obj.write(data)
        return self.outb.read()


# --- the ClientHello, from its raw bytes ------------------------------------------------------


def parse_client_hello(data):
    """The fields of a ClientHello record (or records) the tests check, as report pairs."""
    hs = bytearray()
    i = 0
    while i + 5 <= len(data):
        ctype, length = data[i], struct.unpack(">H", data[i + 3 : i + 5])[0]
        if ctype != 0x16:
            raise ValueError(f"record of type {ctype} before the ClientHello")
        hs += data[i + 5 : i + 5 + length]
        i += 5 + length
    if hs[0] != 1:
        raise ValueError(f"handshake type {hs[0]}, not a ClientHello")
    p = 4 + 2 + 32
    p += 1 + hs[p]
    suites_len = struct.unpack(">H", hs[p : p + 2])[0]
    suites = [hs[p + 2 + k : p + 4 + k].hex() for k in range(0, suites_len, 2)]
    p += 2 + suites_len
    p += 1 + hs[p]
    end = p + 2 + struct.unpack(">H", hs[p : p + 2])[0]
    p += 2
    exts, groups, shares, versions = [], [], [], []
    while p + 4 <= end:
        etype, elen = struct.unpack(">HH", hs[p : p + 4])
        body = hs[p + 4 : p + 4 + elen]
        exts.append(f"{etype:04x}")
        if etype == 10:
            groups = [body[2 + k : 4 + k].hex() for k in range(0, struct.unpack(">H", body[:2])[0], 2)]
        elif etype == 51:
            q = 2
            while q + 4 <= len(body):
                group, klen = struct.unpack(">HH", body[q : q + 4])
                shares.append(f"{group:04x}")
                q += 4 + klen
        elif etype == 43:
            versions = [body[1 + k : 3 + k].hex() for k in range(0, body[0], 2)]
        p += 4 + elen
    return {
        "hello_bytes": str(len(data)),
        "suites": ",".join(suites),
        "extensions": ",".join(exts),
        "groups": ",".join(groups),
        "key_shares": ",".join(shares),
        "versions": ",".join(versions),
    }


# --- server role: scenarios -------------------------------------------------------------------

# The called TSAP of the CR (ASCII) picks one:
#   echo     TLS 1.2 or 1.3, the server certificate
#   tls12    TLS 1.2 at most
#   mtls     a client certificate signed by the test CA is required
#   expired  the server presents a certificate that expired (signed by the test CA)
#   garbage  answers the ClientHello with bytes that are no TLS record
#   split    its first flight cut into two DTs inside a record, each echo cut into two TSDUs
#            inside a record
#   stall    sends the ServerHello record only, then nothing more
#   p256     as echo, with secp256r1 as its only key exchange group (a ClientHello whose key
#            share is X25519 gets a HelloRetryRequest)
#   oms      as echo, and the report carries "oms": the TLS exporter value S7CommPlus
#            legitimation uses (label EXPERIMENTAL_OMS, no context, 32 bytes), derived by the
#            s7commplus package from OpenSSL's key log of this session
SCENARIOS = ("echo", "tls12", "mtls", "expired", "garbage", "split", "stall", "p256", "oms")


def server_context(pki, scenario):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    name = "expired" if scenario == "expired" else "server"
    ctx.load_cert_chain(os.path.join(pki, f"{name}.pem"), os.path.join(pki, f"{name}.key"))
    if scenario == "tls12":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if scenario == "p256":
        ctx.set_ecdh_curve("prime256v1")
    if scenario == "mtls":
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(os.path.join(pki, "ca.pem"))
    return ctx


def client_hellos(data):
    """How many TLS records in `data` start a ClientHello (handshake type 1)."""
    return sum(1 for r in records(data) if r[0] == 0x16 and len(r) > 5 and r[5] == 1)


def records(data):
    """Splits a byte string of whole TLS records into the records."""
    out, i = [], 0
    while i + 5 <= len(data):
        n = 5 + struct.unpack(">H", data[i + 3 : i + 5])[0]
        out.append(data[i : i + n])
        i += n
    return out


def serve_one(sock, pki):
    cotp = Cotp(sock)
    scenario = cotp.accept().decode("ascii", "replace")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    hello = cotp.recv_tsdu()
    report = parse_client_hello(hello)
    report["hello_dts"] = str(cotp.tsdu_dts[0])
    report["hello_max_dt"] = str(cotp.max_dt)
    if scenario == "garbage":
        cotp.send_tsdu(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        drain(cotp)
        return
    ctx = server_context(pki, scenario)
    keylog = None
    if scenario == "oms":
        fd, keylog = tempfile.mkstemp(prefix="tls-cotp-peer-keys-")
        os.close(fd)
        ctx.keylog_filename = keylog
    tls = Tls(cotp, ctx, server_side=True)
    if scenario == "stall":
        tls.inb.write(hello)
        try:
            tls.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        cotp.send_tsdu(records(tls.pending_out())[0])  # the ServerHello alone
        drain(cotp)
        return
    send = None
    if scenario == "split":

        def send(flight):
            # Cut inside the first record: two DTs, EOT on the second only.
            cotp.send_dt(flight[:20], False)
            cotp.send_dt(flight[20:], True)

    try:
        tls.handshake(first=hello, send=send)
    except ssl.SSLError as e:
        sys.stderr.write(f"tls_cotp_peer: {scenario}: handshake failed: {e}\n")
        drain(cotp)
        return
    cotp.check_records = True
    if keylog:
        from s7commplus.connection import _derive_oms_secret

        oms = _derive_oms_secret(tls.obj, keylog)
        report["oms"] = oms.hex() if oms else "none"
        ctx.keylog_filename = None
        os.unlink(keylog)
    report["hellos"] = str(tls.hellos)
    report["version"] = tls.obj.version()
    report["cipher"] = tls.obj.cipher()[0]
    peer = tls.obj.getpeercert()
    if peer:
        report["client_cn"] = dict(x[0] for x in peer["subject"])["commonName"]
    while True:
        try:
            plain = tls.read_tsdu()
        except (EOFError, ConnectionError):
            return
        if not plain:
            return
        if plain == b"REPORT":
            report.update(
                tpdu=str(cotp.tpdu),
                dts=str(cotp.dts),
                max_dt=str(cotp.max_dt),
                over_tpdu=str(cotp.over_tpdu),
                misaligned=str(cotp.misaligned),
            )
            line = " ".join(f"{k}={v}" for k, v in report.items())
            cotp.send_tsdu(tls.seal(line.encode()))
            continue
        sealed = tls.seal(plain)
        if scenario == "split":
            cut = len(sealed) // 2
            cotp.send_tsdu(sealed[:cut])
            time.sleep(0.1)
            cotp.send_tsdu(sealed[cut:])
        else:
            cotp.send_tsdu(sealed)


def drain(cotp):
    """Reads until the peer closes (so the peer, not we, decides when the connection ends)."""
    try:
        while True:
            cotp.recv_tpdu()
    except (EOFError, ConnectionError, ValueError):
        pass


def serve(pki):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(f"READY {listener.getsockname()[1]}", flush=True)

    def handle(sock):
        try:
            serve_one(sock, pki)
        except Exception as e:  # one bad connection must not end the others
            sys.stderr.write(f"tls_cotp_peer: {type(e).__name__}: {e}\n")
        finally:
            sock.close()

    def accept_loop():
        while True:
            sock, _ = listener.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(sock,), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()
    sys.stdin.read()  # until EOF: the test process ended or dropped our stdin


# --- client role ------------------------------------------------------------------------------


def connect(args):
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cotp = Cotp(sock)
    cotp.connect(bytes([6, 0]), b"SIMATIC-ROOT-HMI", args.tpdu.bit_length() - 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(args.pki, "ca.pem"))
    ctx.minimum_version = ssl.TLSVersion[args.min]
    ctx.maximum_version = ssl.TLSVersion[args.max]
    tls = Tls(cotp, ctx, server_side=False, server_hostname="plc.example")
    tls.handshake()
    cotp.check_records = True
    for size in [int(s) for s in args.sizes.split(",")]:
        message = bytes((i * 7 + size) & 0xFF for i in range(size))
        cotp.send_tsdu(tls.seal(message))
        echo = bytearray()
        while len(echo) < size:
            tls.inb.write(cotp.recv_tsdu())
            try:
                while True:
                    chunk = tls.obj.read(1 << 17)
                    if not chunk:
                        print(f"CLOSED size={size} got={len(echo)}", flush=True)
                        return 1
                    echo += chunk
            except ssl.SSLWantReadError:
                pass
        if bytes(echo) != message:
            print(f"MISMATCH size={size} got={len(echo)}", flush=True)
            return 1
    print(
        " ".join(
            [
                f"version={tls.obj.version()}",
                f"cipher={tls.obj.cipher()[0]}",
                f"tpdu={cotp.tpdu}",
                f"dts={cotp.dts}",
                f"max_dt={cotp.max_dt}",
                f"over_tpdu={cotp.over_tpdu}",
                f"has_ticket={tls.obj.session is not None and tls.obj.session.has_ticket}",
                f"misaligned={cotp.misaligned}",
            ]
        ),
        flush=True,
    )
    sock.close()
    return 0


# --- test certificates ------------------------------------------------------------------------


def make_pki(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(stem, key, cert):
        with open(os.path.join(directory, f"{stem}.key"), "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        with open(os.path.join(directory, f"{stem}.pem"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        der = cert.public_bytes(serialization.Encoding.DER)
        with open(os.path.join(directory, f"{stem}.der"), "wb") as f:
            f.write(der)
        # The pin: SHA-256 of the certificate (DER), in hex.
        with open(os.path.join(directory, f"{stem}.sha256"), "w") as f:
            f.write(hashlib.sha256(der).hexdigest() + "\n")

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("isotcp interop CA"))
        .issuer_name(name("isotcp interop CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write("ca", ca_key, ca)

    def leaf(stem, cn, usage, key, start, end):
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("plc.example")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        write(stem, key, cert)

    day = datetime.timedelta(days=1)
    server = ExtendedKeyUsageOID.SERVER_AUTH
    leaf("server", "plc", server, ec.generate_private_key(ec.SECP256R1()), now - day, now + 2 * day)
    leaf("expired", "plc", server, ec.generate_private_key(ec.SECP256R1()), now - 30 * day, now - 2 * day)
    leaf(
        "client",
        "isotcp-client",
        ExtendedKeyUsageOID.CLIENT_AUTH,
        ec.generate_private_key(ec.SECP256R1()),
        now - day,
        now + 2 * day,
    )
    # An RSA certificate for the s7commplus emulator: its TLS 1.2 ciphers are ECDHE-RSA only.
    leaf("rsa-server", "plc", server, rsa.generate_private_key(65537, 2048), now - day, now + 2 * day)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("pki").add_argument("dir")
    sub.add_parser("serve").add_argument("dir")
    c = sub.add_parser("connect", help="client role: echo messages through a COTP/TLS server")
    c.add_argument("pki")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--tpdu", type=int, default=1024)
    c.add_argument("--min", default="TLSv1_2", choices=["TLSv1_2", "TLSv1_3"])
    c.add_argument("--max", default="TLSv1_3", choices=["TLSv1_2", "TLSv1_3"])
    c.add_argument("--sizes", default="1,100,5000")
    args = parser.parse_args()
    if args.cmd == "pki":
        make_pki(args.dir)
        print("PKI ok", flush=True)
        return 0
    if args.cmd == "serve":
        serve(args.dir)
        return 0
    return connect(args)


if __name__ == "__main__":
    sys.exit(main())
