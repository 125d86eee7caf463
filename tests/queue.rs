//! Non-blocking sends through the C ABI: `iso_queue_send`, `iso_flush`, `iso_get_send_pending`.
//! The receiving side is a raw TCP socket that parses TPKT/COTP itself, so what is checked is the
//! byte stream on the wire: every message whole, in order, DTs never interleaved.

use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::ptr::null_mut;
use std::time::Duration;

use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::queue::*;

struct C(*mut iso_conn);
impl Drop for C {
    fn drop(&mut self) {
        unsafe { iso_destroy(self.0) }
    }
}

/// Accepts our client's TCP connection and answers its CR with a minimal CC (TPDU 1024).
fn connected_pair(max_queued: u32) -> (C, TcpStream) {
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let mut c = null_mut();
    assert_eq!(
        unsafe { iso_create(c"127.0.0.1".as_ptr(), port, &mut c) },
        ISO_OK
    );
    let c = C(c);
    assert_eq!(unsafe { iso_set_max_queued(c.0, max_queued) }, ISO_OK);
    let peer = std::thread::spawn(move || {
        let (mut s, _) = server.accept().unwrap();
        let mut cr = [0u8; 22];
        s.read_exact(&mut cr).unwrap();
        assert_eq!(cr[5], 0xE0, "a CR");
        use std::io::Write;
        s.write_all(&[3, 0, 0, 11, 6, 0xD0, cr[8], cr[9], 0, 1, 0])
            .unwrap();
        s
    });
    assert_eq!(unsafe { iso_connect(c.0, 3000) }, ISO_OK);
    let s = peer.join().unwrap();
    (c, s)
}

/// The peer's side of the stream, read through a buffer. Under Wine every read of a socket is a
/// round trip to the Wine server, so reading each 7-byte DT header and each payload with its own
/// read drained the 4 MiB that the socket buffers there hold at about 1 MiB/s and made the
/// flush tests take seconds; one read now takes up to 64 KiB.
fn buffered(s: TcpStream) -> BufReader<TcpStream> {
    BufReader::with_capacity(64 << 10, s)
}

/// Reads one whole message (DTs up to EOT) from the raw stream.
fn read_message(s: &mut impl Read) -> Vec<u8> {
    let mut msg = Vec::new();
    loop {
        let mut h = [0u8; 7];
        s.read_exact(&mut h).unwrap();
        assert_eq!((h[0], h[4], h[5]), (3, 2, 0xF0), "a TPKT with a DT");
        let len = u16::from_be_bytes([h[2], h[3]]) as usize;
        let mut payload = vec![0u8; len - 7];
        s.read_exact(&mut payload).unwrap();
        msg.extend_from_slice(&payload);
        if h[6] & 0x80 != 0 {
            return msg;
        }
    }
}

fn message(i: u32, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len)
        .map(|k| (k as u32).wrapping_mul(31).wrapping_add(i) as u8)
        .collect();
    m[..4].copy_from_slice(&i.to_be_bytes());
    m
}

fn pending(c: &C) -> usize {
    let mut n = usize::MAX;
    assert_eq!(unsafe { iso_get_send_pending(c.0, &mut n) }, ISO_OK);
    n
}

#[test]
fn queued_sends_fill_up_then_flush_in_order() {
    let (c, peer) = connected_pair(64 << 10);
    // Nobody reads yet: the socket buffers fill, then the queue, then its limit is reached.
    let mut sent = 0u32;
    let full = loop {
        let m = message(sent, 5000);
        let rc = unsafe { iso_queue_send(c.0, m.as_ptr(), m.len()) };
        if rc == ISO_E_WOULD_BLOCK {
            break m;
        }
        assert_eq!(rc, ISO_OK);
        sent += 1;
        assert!(sent < 100_000, "the queue limit never applied");
    };
    let queued = pending(&c);
    assert!(
        queued > 0 && queued <= (64 << 10) + 5000 + 35,
        "queued {queued}"
    );
    let mut msg = [0u8; 512];
    let mut len = 0;
    unsafe { iso_last_error(c.0, msg.as_mut_ptr().cast(), msg.len(), &mut len) };
    let text = String::from_utf8_lossy(&msg[..len - 1]);
    assert!(
        text.contains("send queue holds") && text.contains("flush the queue"),
        "{text}"
    );
    // The refused message was not queued: the queue did not grow.
    assert_eq!(pending(&c), queued);
    assert_eq!(unsafe { iso_flush(c.0, 0) }, ISO_E_WOULD_BLOCK);

    let reader = std::thread::spawn(move || {
        let mut peer = buffered(peer);
        (0..=sent)
            .map(|_| read_message(&mut peer))
            .collect::<Vec<_>>()
    });
    assert_eq!(unsafe { iso_flush(c.0, 5000) }, ISO_OK);
    assert_eq!(pending(&c), 0);
    // A blocking send after the queued ones goes out after them.
    assert_eq!(unsafe { iso_send(c.0, full.as_ptr(), full.len()) }, ISO_OK);
    let got = reader.join().unwrap();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m, &message(i as u32, 5000), "message {i}");
    }
}

#[test]
fn a_message_is_accepted_whole_when_the_queue_is_empty_even_with_limit_zero() {
    let (c, peer) = connected_pair(0);
    let big = message(7, 60_000);
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut sent = Vec::new();
    // With limit 0 a second message is refused while any byte of the first is queued.
    loop {
        let rc = unsafe { iso_queue_send(c.0, big.as_ptr(), big.len()) };
        if rc == ISO_E_WOULD_BLOCK {
            break;
        }
        assert_eq!(rc, ISO_OK);
        sent.push(());
        assert!(sent.len() < 1000);
    }
    assert!(pending(&c) > 0);
    let n = sent.len();
    let reader = std::thread::spawn(move || {
        let mut peer = buffered(peer);
        (0..n).map(|_| read_message(&mut peer)).collect::<Vec<_>>()
    });
    assert_eq!(unsafe { iso_flush(c.0, 5000) }, ISO_OK);
    for m in reader.join().unwrap() {
        assert_eq!(m, big);
    }
}

#[test]
fn queue_calls_before_connect_and_with_bad_arguments() {
    let mut c = null_mut();
    assert_eq!(
        unsafe { iso_create(c"127.0.0.1".as_ptr(), 102, &mut c) },
        ISO_OK
    );
    let c = C(c);
    assert_eq!(
        unsafe { iso_queue_send(c.0, b"x".as_ptr(), 1) },
        ISO_E_STATE
    );
    assert_eq!(unsafe { iso_flush(c.0, 0) }, ISO_E_STATE);
    assert_eq!(pending(&c), 0);
    assert_eq!(
        unsafe { iso_queue_send(c.0, std::ptr::null(), 1) },
        ISO_E_INVALID
    );
    assert_eq!(
        unsafe { iso_queue_send(null_mut(), b"x".as_ptr(), 1) },
        ISO_E_INVALID
    );
    assert_eq!(
        unsafe { iso_get_send_pending(c.0, null_mut()) },
        ISO_E_INVALID
    );
    assert_eq!(
        unsafe { iso_set_max_queued(c.0, (256 << 20) + 1) },
        ISO_E_INVALID
    );
    assert_eq!(unsafe { iso_flush(null_mut(), 0) }, ISO_E_INVALID);
}
