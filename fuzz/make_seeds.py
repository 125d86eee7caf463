#!/usr/bin/env python3
"""Writes the seed corpora fuzz/seeds/<target>/ from the byte vectors of docs/PROTOCOL.md
(§9), each wrapped in its target's input layout (see the
comment at the top of each fuzz_targets/*.rs). Run it from anywhere; it rewrites every seed."""

import os
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))


def h(s):
    return bytes.fromhex(s.replace(" ", "").replace("\n", ""))


def tpkt(tpdu):
    n = len(tpdu) + 4
    return bytes([3, 0, n >> 8, n & 0xFF]) + tpdu


def dt(payload, eot=True):
    return tpkt(bytes([2, 0xF0, 0x80 if eot else 0x00]) + payload)


# docs/PROTOCOL.md §9.5: S7 payloads carried in DTs.
S7_SETUP = h("32 01 00 00 00 00 00 08 00 00 F0 00 00 01 00 01 01 E0")
S7_READ = h("32 01 00 00 00 01 00 0E 00 00 04 01 12 0A 10 02 00 04 00 01 84 00 00 00")

# TPDUs (without the TPKT header).
CR_DEFAULT = h("11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A")
CR_STRING_TSAP = h(
    "1F E0 00 00 00 01 00 C1 02 06 00 C2 10 53 49 4D 41 54 49 43 2D 52 4F 4F 54 2D 48 4D 49 C0 01 0A"
)
CR_SNAP7_ROUTING = h(
    "19 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A C6 02 00 01 C7 02 01 03"
)
CR_S7_ROUTING = h(
    "45 E0 00 00 00 01 00"
    "C1 1C 01 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00"
    "C2 1C 01 06 01 02 01 52 00 00 00 13 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 02"
    "C0 01 0A"
)
CC_PLC4X = h("11 D0 00 0F 00 0B 00 C0 01 0A C1 02 03 11 C2 02 01 00")
CC_PYSNAP7 = h("11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02")
CC_SNAP7_ECHO = h("11 D0 00 01 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A")
CC_NO_SIZE = h("06 D0 00 01 00 01 00")
CC_F0 = h("0A D0 00 01 00 01 00 F0 02 00 04")
CC_BOTH_SIZES = h("0C D0 00 01 00 01 00 C0 01 0A F0 01 08")
CC_BAD_CODE = h("09 D0 00 01 00 01 00 C0 01 20")
CC_OVER_OFFER = h("09 D0 00 01 00 01 00 C0 01 0D")
CC_CLASS_1 = h("06 D0 00 01 00 01 10")
DR_CONGESTION = h("06 80 00 01 00 00 81")
ER_BAD_VALUE = h("04 70 00 01 03")
ER_QUOTING = h("08 70 00 01 02 C1 02 02 F0")
DT_EOT = h("02 F0 80 32 01 00")
DT_MORE = h("02 F0 00 32 01 00")
DT_BAD_LI = h("03 F0 80 32")
DT_BAD_TYPE = h("02 E0 80 32")
DT_BAD_NR = h("02 F0 81 32")

# TPKT streams of docs/PROTOCOL.md §9.1.
TPKT_OK = h("03 00 00 07 02 F0 80")
TPKT_RESERVED = h("03 FF 00 07 02 F0 80")
TPKT_VERSION = h("04 00 00 07 02 F0 80")
TPKT_SHORT = h("03 00 00 06 02 F0")
TPKT_TRUNCATED = h("03 00 00 08 02 F0 80")


def framer_seed(stream, max_packet=0xFFFF, read_chunk=64, sizes=b""):
    return (
        bytes([max_packet >> 8, max_packet & 0xFF, read_chunk >> 8, read_chunk & 0xFF, len(sizes)])
        + sizes
        + stream
    )


def reasm_seed(stream, max_message=1024, max_fragments=16):
    return bytes([max_message >> 8, max_message & 0xFF, max_fragments]) + stream


def seeds():
    session = tpkt(CR_DEFAULT) + tpkt(CC_PYSNAP7) + dt(S7_SETUP) + dt(S7_READ)
    fragmented = dt(S7_READ[:10], eot=False) + dt(S7_READ[10:20], eot=False) + dt(S7_READ[20:])
    yield "tpkt_framer", "accept", framer_seed(TPKT_OK)
    yield "tpkt_framer", "accept_reserved", framer_seed(TPKT_RESERVED)
    yield "tpkt_framer", "reject_version", framer_seed(TPKT_VERSION)
    yield "tpkt_framer", "reject_short", framer_seed(TPKT_SHORT)
    yield "tpkt_framer", "truncated", framer_seed(TPKT_TRUNCATED)
    yield "tpkt_framer", "session_bytewise", framer_seed(session, sizes=b"\x00")
    yield "tpkt_framer", "session_chunks", framer_seed(session, read_chunk=0, sizes=b"\x02\x10\x00\x40")
    yield "tpkt_framer", "small_max", framer_seed(dt(S7_SETUP) + dt(S7_READ), max_packet=28, sizes=b"\x05")
    yield "tpkt_framer", "then_bad", framer_seed(TPKT_OK + TPKT_RESERVED + TPKT_VERSION, sizes=b"\x03")

    for name, tpdu in [
        ("cr_default", CR_DEFAULT),
        ("cr_string_tsap", CR_STRING_TSAP),
        ("cr_snap7_routing", CR_SNAP7_ROUTING),
        ("cr_s7_routing", CR_S7_ROUTING),
        ("cc_plc4x", CC_PLC4X),
        ("cc_python_snap7", CC_PYSNAP7),
        ("dr", DR_CONGESTION),
        ("er", ER_QUOTING),
        ("dt_eot", DT_EOT),
        ("dt_more", DT_MORE),
        ("dt_bad_li", DT_BAD_LI),
        ("dt_bad_type", DT_BAD_TYPE),
        ("dt_bad_nr", DT_BAD_NR),
        ("dt_s7_setup", bytes([2, 0xF0, 0x80]) + S7_SETUP),
    ]:
        yield "cotp_decode", name, tpdu

    for name, tpdu in [
        ("cc_plc4x", CC_PLC4X),
        ("cc_python_snap7", CC_PYSNAP7),
        ("cc_snap7_echo", CC_SNAP7_ECHO),
        ("cc_no_size", CC_NO_SIZE),
        ("cc_f0", CC_F0),
        ("cc_both_sizes", CC_BOTH_SIZES),
        ("cc_bad_code", CC_BAD_CODE),
        ("cc_over_offer", CC_OVER_OFFER),
        ("cc_class_1", CC_CLASS_1),
        ("dr", DR_CONGESTION),
        ("er", ER_BAD_VALUE),
        ("dt", DT_EOT),
        ("cr", CR_DEFAULT),
    ]:
        yield "cc_check", name, tpdu

    yield "dt_reassembly", "s7_setup", reasm_seed(dt(S7_SETUP))
    yield "dt_reassembly", "s7_read_fragments", reasm_seed(fragmented)
    yield "dt_reassembly", "funny_packet_then_read", reasm_seed(dt(b"") + dt(S7_READ))
    yield "dt_reassembly", "empty_eot_completes", reasm_seed(dt(S7_SETUP, eot=False) + dt(b""))
    yield "dt_reassembly", "over_message_limit", reasm_seed(fragmented + dt(S7_SETUP), max_message=20)
    yield "dt_reassembly", "over_fragment_limit", reasm_seed(fragmented + dt(S7_SETUP), max_fragments=2)
    # Two fragments of 9 and 7 bytes under a 16-byte limit: the reassembler's Vec grows to 18.
    yield "dt_reassembly", "capacity_over_limit", reasm_seed(
        dt(S7_SETUP[:9], eot=False) + dt(S7_SETUP[9:16]), max_message=16, max_fragments=4
    )
    yield "dt_reassembly", "mixed", reasm_seed(
        tpkt(CC_PYSNAP7) + dt(S7_SETUP, eot=False) + tpkt(DT_BAD_NR) + dt(S7_READ) + tpkt(DR_CONGESTION)
    )

    def transfer_seed(stream, max_message=4095, max_fragments=64, cap=64, chunk=7):
        return bytes([max_message >> 8, max_message & 0xFF, max_fragments, cap, chunk - 1]) + stream

    fragmented = dt(S7_SETUP[:9], eot=False) + dt(S7_SETUP[9:18], eot=False) + dt(S7_SETUP[18:])
    yield "transfer", "s7_setup_whole", transfer_seed(dt(S7_SETUP) + dt(S7_READ))
    yield "transfer", "s7_setup_fragments", transfer_seed(fragmented + dt(S7_READ), cap=255, chunk=1)
    yield "transfer", "outgrows_buffer", transfer_seed(fragmented, cap=10, chunk=3)
    yield "transfer", "funny_packet_then_dr", transfer_seed(dt(b"") + dt(S7_READ) + tpkt(DR_CONGESTION))
    yield "transfer", "er_mid_message", transfer_seed(dt(S7_SETUP, eot=False) + tpkt(ER_QUOTING))
    yield "transfer", "cc_mid_session", transfer_seed(dt(S7_READ) + tpkt(CC_PYSNAP7))
    yield "transfer", "over_limits", transfer_seed(fragmented, max_message=20, max_fragments=2)


    # tls_receive: flags, TPDU selector, record size, messages, corruption, 8 sizes, cuts.
    def tls_seed(flags, tpdu_shift, record, count, sizes, cuts, corrupt_at=0, mask=0):
        sizes = (list(sizes) + [1] * 8)[:8]
        head = bytes([flags, tpdu_shift, record, count - 1, corrupt_at >> 8, corrupt_at & 0xFF, mask])
        return head + b"".join(n.to_bytes(2, "big") for n in sizes) + bytes(cuts)

    # A TLS 1.3 request and answer at TPDU 1024 (shift 3), whole TSDUs.
    yield "tls_receive", "tls13_whole", tls_seed(0, 3, 0, 2, [221, 1000], [])
    # Cut after every byte, records across TSDUs, TPDU 128.
    yield "tls_receive", "tls13_every_byte", tls_seed(2, 0, 0, 3, [20, 300, 5000], [0])
    # TLS 1.2 with close_notify, cuts of varying length.
    yield "tls_receive", "tls12_close", tls_seed(3, 1, 0, 2, [64, 4096], [7, 0, 200, 33, 1])
    # Records of 4096 bytes spanning DTs of 256.
    yield "tls_receive", "records_span_dts", tls_seed(0, 1, 64, 1, [5999], [255, 17])
    # One byte of a record changed.
    yield "tls_receive", "corrupted", tls_seed(8, 3, 0, 1, [500], [40], corrupt_at=300, mask=0x20)
    # Raw bytes after the handshake: text, then an alert record.
    yield "tls_receive", "raw", tls_seed(12, 3, 0, 1, [1], list(b"GET / HTTP/1.0") + [0x15, 3, 3, 0, 2, 2, 40])

def main():
    root = os.path.join(HERE, "seeds")
    if os.path.isdir(root):
        shutil.rmtree(root)
    count = 0
    for target, name, data in seeds():
        d = os.path.join(root, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        count += 1
    print(f"wrote {count} seeds under {root}")


if __name__ == "__main__":
    main()
