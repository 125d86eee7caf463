//! TLS inside COTP during data transfer: poll looks through TLS, zero timeouts lose nothing,
//! queued sends encrypt, records spanning DTs when allowed (never a DT above the TPDU), the
//! peer's close_notify after its last data, ours on disconnect, and the thread rules.
#![cfg(feature = "tls")]

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use isotcp::error::PeerClose;
use isotcp::net::tls::TlsSession;
use isotcp::net::Connection;
use isotcp::Error;

mod tls_support;
use tls_support::*;

/// The records rustls has for `data` (and a close_notify after it when `close`).
fn sealed(tls: &mut rustls::ServerConnection, data: &[u8], close: bool) -> Vec<u8> {
    let mut out = Vec::new();
    // A record at a time: rustls' buffer for unsent data has a limit.
    for chunk in data.chunks(16 << 10) {
        tls.writer().write_all(chunk).unwrap();
        while tls.wants_write() {
            tls.write_tls(&mut out).unwrap();
        }
    }
    if close {
        tls.send_close_notify();
    }
    while tls.wants_write() {
        tls.write_tls(&mut out).unwrap();
    }
    out
}

/// Every frame the connection sends, as on the wire.
fn sent_frames(conn: &Connection) -> Arc<Mutex<Vec<Vec<u8>>>> {
    frames(conn, true)
}

/// Every frame the connection sends (`sent`) or receives, as on the wire.
fn frames(conn: &Connection, sent: bool) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let frames = Arc::new(Mutex::new(Vec::new()));
    let sink = frames.clone();
    conn.set_trace_callback(Some(Box::new(move |out, frame| {
        if out == sent {
            sink.lock().unwrap().push(frame.to_vec());
        }
    })));
    frames
}

#[test]
fn poll_reports_only_plaintext_messages() {
    let (client, server) = pair(1024);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let srv = thread::spawn(move || {
        // rustls' session tickets went out at the end of the handshake: a TSDU of
        // post-handshake records only.
        let mut tls = raw_server(&server);
        go_rx.recv().unwrap();
        // A record cut inside: its first part alone is not a message either.
        let record = sealed(&mut tls, &message(300), false);
        let cut = 100;
        server.send(&record[..cut]).unwrap();
        go_rx.recv().unwrap();
        server.send(&record[cut..]).unwrap();
        (server, tls)
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    let received = frames(&client, false);
    assert!(
        !c.poll(&client, Duration::from_millis(300)).unwrap(),
        "tickets are no message"
    );
    let tickets = received.lock().unwrap().clone();
    assert!(!tickets.is_empty(), "the tickets' TSDU was read");
    assert_eq!(tickets[0][7], 0x17, "records (TLS 1.3 hides their type)");
    assert!(!c.poll(&client, Duration::ZERO).unwrap());
    go_tx.send(()).unwrap();
    assert!(
        !c.poll(&client, Duration::from_millis(300)).unwrap(),
        "part of a record is no message"
    );
    let mut buf = vec![0u8; 1000];
    let err = c.recv(&client, &mut buf, Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::WouldBlock(_)), "{err}");
    go_tx.send(()).unwrap();
    let started = Instant::now();
    while !c.poll(&client, Duration::ZERO).unwrap() {
        assert!(started.elapsed() < T, "the rest of the record never showed");
        thread::sleep(Duration::from_millis(1));
    }
    let n = c.recv(&client, &mut buf, Duration::ZERO).unwrap();
    assert_eq!(&buf[..n], &message(300)[..], "nothing was lost on the way");
    srv.join().unwrap();
}

#[test]
fn poll_and_recv_with_zero_timeout_through_the_c_api() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    let (c, s) = c::tls_pair(256, |_| {});
    unsafe {
        assert_eq!(iso_poll(c.0, 0), 0);
        let mut buf = vec![0u8; 4096];
        let mut n = 0;
        assert_eq!(
            iso_recv(c.0, buf.as_mut_ptr(), buf.len(), &mut n, 0),
            ISO_E_WOULD_BLOCK
        );
        let mut fd = 0;
        assert_eq!(iso_get_fd(c.0, &mut fd), ISO_OK);
        // Five records' worth over DTs of 256 bytes.
        let m = message(1000);
        c::send(s, &m);
        // Wait for readability as an event loop does, then poll(0) until a message is whole.
        let started = Instant::now();
        loop {
            #[cfg(unix)]
            {
                let mut pfd = libc::pollfd {
                    fd: fd as i32,
                    events: libc::POLLIN,
                    revents: 0,
                };
                libc::poll(&mut pfd, 1, 100);
            }
            #[cfg(not(unix))]
            thread::sleep(Duration::from_millis(1));
            match iso_poll(c.0, 0) {
                1 => break,
                0 => {}
                rc => panic!("iso_poll: {rc}: {}", c::last_error(c.0)),
            }
            assert!(started.elapsed() < T);
        }
        // The size query leaves the message queued.
        assert_eq!(
            iso_recv(c.0, std::ptr::null_mut(), 0, &mut n, 0),
            ISO_E_BUFFER_TOO_SMALL
        );
        assert_eq!(n, m.len());
        assert_eq!(iso_poll(c.0, 0), 1);
        assert_eq!(
            iso_recv(c.0, buf.as_mut_ptr(), buf.len(), &mut n, 0),
            ISO_OK
        );
        assert_eq!(&buf[..n], &m[..]);
        assert_eq!(iso_poll(c.0, 0), 0, "one message, read once");
        iso_destroy(c.0);
        iso_destroy(s.0);
    }
}

#[test]
fn queued_sends_encrypt_in_order_with_sends() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::queue::*;
    let (c, s) = c::tls_pair(512, |_| {});
    unsafe {
        assert_eq!(
            iso_set_max_queued(c.0, 0),
            ISO_E_STATE,
            "set before connect"
        );
        let numbered = |i: u32, len: usize| {
            let mut m = message(len);
            m[..4].copy_from_slice(&i.to_be_bytes());
            m
        };
        let reader = thread::spawn(move || {
            // Read slowly at first, so the client's socket fills and its queue is used.
            thread::sleep(Duration::from_millis(300));
            let mut seen = Vec::new();
            loop {
                let m = c::recv(s);
                if m == b"end" {
                    break;
                }
                seen.push(u32::from_be_bytes(m[..4].try_into().unwrap()));
            }
            (s, seen)
        });
        let mut sent = 0u32;
        let mut would_block = 0;
        let started = Instant::now();
        while sent < 400 {
            let m = numbered(sent, 60_000);
            // Queued sends only until the queue has filled, then every third a blocking send.
            let rc = if sent >= 300 && sent % 3 == 2 {
                iso_send(c.0, m.as_ptr(), m.len())
            } else {
                iso_queue_send(c.0, m.as_ptr(), m.len())
            };
            match rc {
                ISO_OK => sent += 1,
                ISO_E_WOULD_BLOCK => {
                    would_block += 1;
                    let rc = iso_flush(c.0, 10_000);
                    assert_eq!(rc, ISO_OK, "{}", c::last_error(c.0));
                }
                rc => panic!("{rc}: {}", c::last_error(c.0)),
            }
            assert!(started.elapsed() < Duration::from_secs(60));
        }
        assert_eq!(iso_flush(c.0, 10_000), ISO_OK);
        c::send(c, b"end");
        let (s, seen) = reader.join().unwrap();
        assert_eq!(
            seen,
            (0..400).collect::<Vec<u32>>(),
            "every message, in order"
        );
        assert!(would_block > 0, "the queue filled at least once");
        iso_destroy(c.0);
        iso_destroy(s.0);
    }
}

#[test]
fn queued_records_fill_one_dt_each() {
    let (client, c, server, s) = start(256, pinned(), server_config());
    let (c, s) = (c.unwrap(), s.unwrap());
    let frames = sent_frames(&client);
    let m = message(3000);
    c.queue_send(&client, &m).unwrap();
    client.flush(T).unwrap();
    let mut buf = vec![0u8; 4000];
    let n = s.recv(&server, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], &m[..]);
    let frames = frames.lock().unwrap();
    assert!(frames.len() > 10);
    for (i, f) in frames.iter().enumerate() {
        assert!(f.len() - 4 <= 256, "DT {i} above the TPDU");
        let payload = &f[7..];
        let len = u16::from_be_bytes([payload[3], payload[4]]) as usize;
        assert_eq!(len + 5, payload.len(), "DT {i} holds one whole record");
    }
}

#[test]
fn larger_records_span_dts_that_never_exceed_the_tpdu() {
    for (tpdu, record) in [(1024u32, 4000usize), (128, 16384), (256, 32)] {
        let mut client_cfg = pinned();
        client_cfg.set_max_record_size(record).unwrap();
        let mut server_cfg = server_config();
        server_cfg.set_max_record_size(record).unwrap();
        let (client, c, server, s) = start(tpdu, client_cfg, server_cfg);
        let (c, s) = (c.unwrap(), s.unwrap());
        assert_eq!(c.record_plaintext(), record);
        let client_frames = sent_frames(&client);
        let server_frames = sent_frames(&server);
        let m = message(20_000);
        c.send(&client, &m).unwrap();
        let mut buf = vec![0u8; 30_000];
        let n = s.recv(&server, &mut buf, T).unwrap();
        assert_eq!(&buf[..n], &m[..]);
        s.send(&server, &m).unwrap();
        let n = c.recv(&client, &mut buf, T).unwrap();
        assert_eq!(&buf[..n], &m[..], "TPDU {tpdu}, records of {record}");
        for frames in [client_frames, server_frames] {
            let frames = frames.lock().unwrap();
            let mut records_starting = 0;
            for f in frames.iter() {
                assert!(f.len() - 4 <= tpdu as usize, "a DT above TPDU {tpdu}");
                if f[7] == 0x17 && f[8] == 0x03 {
                    records_starting += 1;
                }
            }
            let records = m.len().div_ceil(record);
            if record + 22 > tpdu as usize - 3 {
                assert!(
                    frames.len() > records,
                    "{records} records over {} DTs",
                    frames.len()
                );
                assert!(
                    records_starting < frames.len(),
                    "some DTs continue a record"
                );
            }
        }
    }
}

#[test]
fn data_before_close_notify_is_delivered_then_closed() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut tls = raw_server(&server);
        let mut both = sealed(&mut tls, b"last words", false);
        both.extend(sealed(&mut tls, b"", true));
        let tickets_and_data = both;
        server.send(&tickets_and_data).unwrap();
        (server, tls)
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    let (_server, _tls) = srv.join().unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&client, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"last words");
    for _ in 0..2 {
        match c.recv(&client, &mut buf, T) {
            Err(Error::Closed {
                by: PeerClose::CloseNotify,
                message,
            }) => assert_eq!(message, "the peer ended the TLS session (close_notify)"),
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(
        c.poll(&client, Duration::ZERO),
        Err(Error::Closed {
            by: PeerClose::CloseNotify,
            ..
        })
    ));
}

#[test]
fn our_close_sends_close_notify() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut tls = raw_server(&server);
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf, T).unwrap();
        tls.read_tls(&mut &buf[..n]).unwrap();
        let state = tls.process_new_packets().unwrap();
        assert!(state.peer_has_closed(), "a close_notify came");
        let mut rest = Vec::new();
        assert_eq!(tls.reader().read_to_end(&mut rest).unwrap(), 0);
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    let started = Instant::now();
    c.close(&client);
    assert!(started.elapsed() < Duration::from_millis(500));
    srv.join().unwrap();
}

#[test]
fn disconnect_and_destroy_send_close_notify_through_the_c_api() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    for destroy in [false, true] {
        let (c, s) = c::tls_pair(1024, |_| {});
        unsafe {
            if destroy {
                iso_destroy(c.0);
            } else {
                assert_eq!(iso_disconnect(c.0), ISO_OK);
            }
            let mut buf = [0u8; 64];
            let mut n = 0;
            let rc = iso_recv(s.0, buf.as_mut_ptr(), buf.len(), &mut n, 10_000);
            assert_eq!(rc, ISO_E_CLOSED);
            let text = c::last_error(s.0);
            assert!(text.contains("close_notify"), "{text}");
            if !destroy {
                iso_destroy(c.0);
            }
            iso_destroy(s.0);
        }
    }
}

#[test]
fn one_thread_receives_while_another_sends() {
    let (client, c, server, s) = start(512, pinned(), server_config());
    let (client, c) = (Arc::new(client), Arc::new(c.unwrap()));
    let s = s.unwrap();
    const N: usize = 200;
    let echo = thread::spawn(move || {
        let mut buf = vec![0u8; 10_000];
        for _ in 0..N {
            let n = s.recv(&server, &mut buf, T).unwrap();
            s.send(&server, &buf[..n]).unwrap();
        }
        (server, s)
    });
    let (rc, rconn) = (c.clone(), client.clone());
    let receiver = thread::spawn(move || {
        let mut buf = vec![0u8; 10_000];
        for i in 0..N {
            let n = rc.recv(&rconn, &mut buf, T).unwrap();
            assert_eq!(&buf[..n], &message(i * 37 % 5000 + 1)[..], "message {i}");
        }
    });
    for i in 0..N {
        c.send(&client, &message(i * 37 % 5000 + 1)).unwrap();
    }
    receiver.join().unwrap();
    echo.join().unwrap();
}

#[test]
fn c_api_recv_on_one_thread_send_on_another_and_disconnect_wakes_recv() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    let (c, s) = c::tls_pair(1024, |_| {});
    const N: usize = 100;
    let echo = thread::spawn(move || {
        for _ in 0..N {
            let m = c::recv(s);
            c::send(s, &m);
        }
        s
    });
    let receiver = thread::spawn(move || {
        for i in 0..N {
            assert_eq!(c::recv(c), message(i + 1), "message {i}");
        }
        // Then block until another thread disconnects.
        let mut buf = [0u8; 64];
        let mut n = 0;
        let started = Instant::now();
        let rc = unsafe { iso_recv(c.0, buf.as_mut_ptr(), buf.len(), &mut n, 10_000) };
        (rc, started.elapsed())
    });
    for i in 0..N {
        c::send(c, &message(i + 1));
    }
    let s = echo.join().unwrap();
    thread::sleep(Duration::from_millis(300));
    assert_eq!(unsafe { iso_disconnect(c.0) }, ISO_OK);
    let (rc, waited) = receiver.join().unwrap();
    assert_eq!(rc, ISO_E_STATE, "{}", c::last_error(c.0));
    assert!(
        waited < Duration::from_secs(3),
        "woken promptly: {waited:?}"
    );
    unsafe {
        iso_destroy(c.0);
        iso_destroy(s.0);
    }
}

#[test]
fn connect_on_a_tls_connection_is_refused_and_tls_stays() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::tls::*;
    let (c, s) = c::tls_pair(1024, |_| {});
    unsafe {
        assert_eq!(iso_connect(c.0, 1000), ISO_E_STATE);
        assert_eq!(iso_tls_active(c.0), 1, "TLS still runs on the connection");
        c::send(c, b"still secret");
        assert_eq!(c::recv(s), b"still secret");
        iso_destroy(c.0);
        iso_destroy(s.0);
    }
}

#[test]
fn disconnect_during_a_blocked_tls_send_is_prompt() {
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    let (c, s) = c::tls_pair(1024, |_| {});
    // The server reads nothing: the client's socket fills and a send blocks in it.
    let sender = thread::spawn(move || {
        let c = c;
        let m = message(900_000);
        loop {
            let rc = unsafe { iso_send(c.0, m.as_ptr(), m.len()) };
            if rc != ISO_OK {
                return rc;
            }
        }
    });
    thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert_eq!(unsafe { iso_disconnect(c.0) }, ISO_OK);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(400),
        "close_notify waited {took:?} for the blocked sender"
    );
    let rc = sender.join().unwrap();
    assert_eq!(
        rc, ISO_E_STATE,
        "the blocked send was woken by the disconnect"
    );
    unsafe {
        iso_destroy(c.0);
        iso_destroy(s.0);
    }
}

#[test]
fn tsdus_that_never_end_with_a_record_are_bounded() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut tls = raw_server(&server);
        // 300 KB in records of 16 KiB, cut into TSDUs of 1000 bytes: no TSDU ends with a
        // record, so no message ever completes.
        let stream = sealed(&mut tls, &message(300_000), false);
        for tsdu in stream.chunks(1000) {
            if server.send(tsdu).is_err() {
                break;
            }
        }
        server
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    let mut buf = vec![0u8; 400_000];
    match c.recv(&client, &mut buf, T) {
        Err(Error::Tls(text)) => {
            assert!(text.contains("still end inside a record"), "{text}");
            assert!(text.contains("262144"), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!client.is_alive(), "the connection is closed");
    srv.join().unwrap();
}

#[test]
fn a_key_update_from_the_peer_is_followed_both_ways() {
    let (client, server) = pair(1024);
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let srv = thread::spawn(move || {
        let mut tls = raw_server(&server);
        // A KeyUpdate asking for ours, alone in its TSDU, then data under the new key.
        tls.refresh_traffic_keys().unwrap();
        let update = sealed(&mut tls, b"", false);
        server.send(&update).unwrap();
        go_rx.recv().unwrap();
        server
            .send(&sealed(&mut tls, b"after the update", false))
            .unwrap();
        // Our answer comes under our new key, after our KeyUpdate.
        let mut buf = vec![0u8; 4096];
        let mut plain = Vec::new();
        while plain.is_empty() {
            let n = server.recv(&mut buf, T).unwrap();
            tls.read_tls(&mut &buf[..n]).unwrap();
            tls.process_new_packets().unwrap();
            let _ = tls.reader().read_to_end(&mut plain);
        }
        plain
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    assert!(
        !c.poll(&client, Duration::from_millis(200)).unwrap(),
        "a KeyUpdate is no message"
    );
    go_tx.send(()).unwrap();
    let mut buf = [0u8; 64];
    let n = c.recv(&client, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"after the update");
    c.send(&client, b"answer").unwrap();
    assert_eq!(srv.join().unwrap(), b"answer");
}

/// A message whose records exceed the maximum message is refused before anything is sealed:
/// the session goes on, and the next message arrives intact (a refusal after sealing would
/// spend record sequence numbers and desynchronise the peer).
#[test]
fn a_message_above_the_limit_is_refused_and_the_session_goes_on() {
    let (client, c, server, s) = start(1024, pinned(), server_config());
    let (c, s) = (c.unwrap(), s.unwrap());
    // The pair allows 256 KiB; 256 KiB of plaintext takes 263 records, more on the wire.
    match c.send(&client, &message(256 << 10)) {
        Err(Error::TooLarge(_)) => {}
        other => panic!("a 256 KiB message under a 256 KiB limit: {other:?}"),
    }
    let next = message(60_000);
    c.send(&client, &next).unwrap();
    let mut buf = vec![0u8; 70_000];
    let n = s.recv(&server, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], &next[..], "the message after the refused one");
}
