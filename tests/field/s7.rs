//! The S7 requests the field tests send, and checks of the answers: each request carries its own
//! PDU reference, which the server echoes, so an answer can be matched to its request (a stream
//! out of step shows as a wrong reference or wrong data).

use super::common::conn::{code_name, Conn};

/// Setup communication asking for PDU 480, with PDU reference `pdu_ref`.
pub fn setup(pdu_ref: u16) -> Vec<u8> {
    let r = pdu_ref.to_be_bytes();
    vec![
        0x32, 0x01, 0x00, 0x00, r[0], r[1], 0x00, 0x08, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x01, 0x00,
        0x01, 0x01, 0xE0,
    ]
}

/// Read `len` bytes of DB1 from byte `start`, with PDU reference `pdu_ref`.
pub fn read_db1(pdu_ref: u16, start: u32, len: u16) -> Vec<u8> {
    let r = pdu_ref.to_be_bytes();
    let n = len.to_be_bytes();
    let bit = (start * 8).to_be_bytes();
    vec![
        0x32, 0x01, 0x00, 0x00, r[0], r[1], 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01, 0x12, 0x0A, 0x10,
        0x02, n[0], n[1], 0x00, 0x01, 0x84, bit[1], bit[2], bit[3],
    ]
}

/// What DB1 holds at `start..start+len` (byte i = i & 0xFF).
pub fn db1(start: u32, len: u16) -> Vec<u8> {
    (start..start + len as u32).map(|i| i as u8).collect()
}

/// Asserts that `answer` is an ack-data (ROSCTR 3) without error for PDU reference `pdu_ref`.
#[track_caller]
pub fn assert_ack(answer: &[u8], pdu_ref: u16) {
    assert!(
        answer.len() >= 12 && answer[0] == 0x32 && answer[1] == 0x03,
        "not an S7 ack-data: {answer:02X?}"
    );
    assert_eq!(
        u16::from_be_bytes([answer[4], answer[5]]),
        pdu_ref,
        "answer to another request (stream out of step): {answer:02X?}"
    );
    assert_eq!(
        &answer[10..12],
        &[0, 0],
        "S7 error class/code: {answer:02X?}"
    );
}

/// Asserts that `answer` answers [`read_db1`] with `pdu_ref` and carries `data`.
#[track_caller]
pub fn assert_read(answer: &[u8], pdu_ref: u16, data: &[u8]) {
    assert_ack(answer, pdu_ref);
    // header 12, parameters 2 (function, item count), item: return code, transport size, bits.
    assert!(answer.len() >= 18, "short read answer: {answer:02X?}");
    assert_eq!(answer[14], 0xFF, "item return code: {answer:02X?}");
    assert_eq!(&answer[18..], data, "read data differ");
}

/// Sends `request` and receives its answer within `timeout_ms`; panics with the last error.
#[track_caller]
pub fn exchange(c: &Conn, request: &[u8], timeout_ms: u32) -> Vec<u8> {
    c.ok(c.send(request));
    match c.recv(65536, timeout_ms) {
        Ok(a) => a,
        Err(rc) => panic!("no answer: {}; {}", code_name(rc), c.last_error()),
    }
}

/// Setup communication, checked.
#[track_caller]
pub fn negotiate(c: &Conn, pdu_ref: u16) {
    let a = exchange(c, &setup(pdu_ref), 3000);
    assert_ack(&a, pdu_ref);
}
