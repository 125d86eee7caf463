//! Packets as a peer writes them (`tpkt`, `dt`, `msg`, `fragments`, `cc`, `dr`, `er`), the
//! default CR, test payloads, and hex text both ways ([`hex`] parses it, [`to_hex`] prints it).

/// "03 00 00 16" -> bytes.
pub fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).expect("hex byte"))
        .collect()
}

/// Bytes -> "03 00 00 16", in lower case.
pub fn to_hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A TPKT around `tpdu`.
pub fn tpkt(tpdu: &[u8]) -> Vec<u8> {
    let len = tpdu.len() + 4;
    assert!(len <= 65535);
    let mut p = vec![3, 0, (len >> 8) as u8, len as u8];
    p.extend_from_slice(tpdu);
    p
}

/// A DT packet with `payload`; `eot` marks the last fragment.
pub fn dt(payload: &[u8], eot: bool) -> Vec<u8> {
    let mut t = vec![2, 0xF0, if eot { 0x80 } else { 0x00 }];
    t.extend_from_slice(payload);
    tpkt(&t)
}

/// A whole message as one DT with EOT.
pub fn msg(payload: &[u8]) -> Vec<u8> {
    dt(payload, true)
}

/// A message split into DTs of at most `chunk` payload bytes, EOT on the last.
pub fn fragments(payload: &[u8], chunk: usize) -> Vec<u8> {
    let parts: Vec<&[u8]> = payload.chunks(chunk).collect();
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        out.extend(dt(p, i + 1 == parts.len()));
    }
    out
}

/// A CC packet: DST-REF 0x0001 (our CR's SRC-REF), SRC-REF 0x0001, class 0, `params` in order.
pub fn cc(params: &[(u8, &[u8])]) -> Vec<u8> {
    let mut t = vec![0, 0xD0, 0x00, 0x01, 0x00, 0x01, 0x00];
    for (code, v) in params {
        t.push(*code);
        t.push(v.len() as u8);
        t.extend_from_slice(v);
    }
    t[0] = (t.len() - 1) as u8;
    tpkt(&t)
}

/// python-snap7 3.3's CC to the default CR.
pub fn cc_snap7() -> Vec<u8> {
    hex("03 00 00 16 11 D0 00 01 00 01 00 C0 01 0A C1 02 01 00 C2 02 01 02")
}

/// A DR with `reason`.
pub fn dr(reason: u8) -> Vec<u8> {
    tpkt(&[6, 0x80, 0x00, 0x01, 0x00, 0x01, reason])
}

/// An ER with `cause`, quoting a rejected header.
pub fn er(cause: u8) -> Vec<u8> {
    tpkt(&[8, 0x70, 0x00, 0x01, cause, 0xC1, 0x02, 0x11, 0xE0])
}

/// The default CR (local 0x0100, remote 0x0102, TPDU 1024) of docs/PROTOCOL.md §4.1.
pub fn default_cr() -> Vec<u8> {
    hex("03 00 00 16 11 E0 00 00 00 01 00 C1 02 01 00 C2 02 01 02 C0 01 0A")
}

/// A deterministic test payload of `len` bytes, distinct per `seed`.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(0x9E37_79B9);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
