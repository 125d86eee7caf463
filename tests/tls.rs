//! TLS inside COTP: our client against our listener in both roles, over loopback. The test CA
//! and certificates are made at test time with the `openssl` command.
#![cfg(feature = "tls")]

use std::path::Path;
use std::thread;
use std::time::Duration;

use isotcp::net::tls::{TlsConfig, TlsSession, TLS1_2, TLS1_3};
use isotcp::Error;

mod tls_support;
use tls_support::*;

fn exchange(tpdu: u32, client_cfg: TlsConfig) {
    let (client, c, server, s) = start(tpdu, client_cfg, server_config());
    let (c, s) = (c.unwrap(), s.unwrap());
    let sizes = [1, 2, 100, 1000, 4096, 20_000, 65_536];
    let echo = thread::spawn(move || {
        let mut buf = vec![0u8; 70_000];
        for _ in 0..sizes.len() {
            let n = s.recv(&server, &mut buf, T).unwrap();
            s.send(&server, &buf[..n]).unwrap();
        }
        (server, s)
    });
    let mut buf = vec![0u8; 70_000];
    for len in sizes {
        let m = message(len);
        c.send(&client, &m).unwrap();
        let n = c.recv(&client, &mut buf, T).unwrap();
        assert_eq!(&buf[..n], &m[..], "message of {len} bytes at TPDU {tpdu}");
    }
    echo.join().unwrap();
}

#[test]
fn pinned_round_trips_tpdu_128() {
    exchange(128, pinned());
}

#[test]
fn pinned_round_trips_tpdu_1024() {
    exchange(1024, pinned());
}

#[test]
fn pinned_round_trips_tpdu_2048_4096_8192() {
    for tpdu in [2048, 4096, 8192] {
        exchange(tpdu, pinned());
    }
}

#[test]
fn ca_file_round_trips_tls12() {
    let mut cfg = TlsConfig::new();
    cfg.set_ca_file(pki().path("ca.pem"));
    cfg.set_versions(TLS1_2, TLS1_2).unwrap();
    exchange(1024, cfg);
}

#[test]
fn ca_file_with_server_name() {
    let mut good = TlsConfig::new();
    good.set_ca_file(pki().path("ca.pem"));
    good.set_server_name(Some("plc.example")).unwrap();
    exchange(512, good);

    let mut wrong = TlsConfig::new();
    wrong.set_ca_file(pki().path("ca.pem"));
    wrong.set_server_name(Some("other.example")).unwrap();
    let (client, c, _server, _s) = start(1024, wrong, server_config());
    let err = c.unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    assert!(!client.is_alive());
}

#[test]
fn insecure_accepts_any_certificate() {
    let mut cfg = TlsConfig::new();
    cfg.set_insecure(true);
    exchange(256, cfg);
}

#[test]
fn wrong_pin_names_both_pins() {
    let mut cfg = TlsConfig::new();
    cfg.set_pin_sha256(&[0xab; 32]).unwrap();
    let (client, c, _server, s) = start(1024, cfg, server_config());
    let msg = c.unwrap_err().to_string();
    assert!(msg.contains(&"ab".repeat(32)), "{msg}");
    let seen: String = pki().pin.iter().map(|b| format!("{b:02x}")).collect();
    assert!(msg.contains(&seen), "{msg}");
    assert!(s.is_err());
    assert!(!client.is_alive());
}

#[test]
fn no_verification_set_is_invalid() {
    let (client, _server) = pair(1024);
    let err = TlsSession::client(&client, &TlsConfig::new(), T).unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    assert!(err.to_string().contains("pin"), "{err}");
}

#[test]
fn exporter_agrees_and_peer_certificate_is_the_servers() {
    let (_client, c, _server, s) = start(1024, pinned(), server_config());
    let (c, s) = (c.unwrap(), s.unwrap());
    let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
    c.export_keying_material(&mut a, b"EXPERIMENTAL_OMS", None)
        .unwrap();
    s.export_keying_material(&mut b, b"EXPERIMENTAL_OMS", None)
        .unwrap();
    assert_eq!(a, b);
    assert_ne!(a, [0u8; 32]);
    let der = std::fs::read(pki().path("server.der")).unwrap();
    assert_eq!(c.peer_certificate().unwrap(), der);
}

#[test]
fn zero_timeout_would_block_and_loses_nothing() {
    let (client, c, server, s) = start(1024, pinned(), server_config());
    let (c, s) = (c.unwrap(), s.unwrap());
    let mut buf = [0u8; 64];
    let err = c.recv(&client, &mut buf, Duration::ZERO).unwrap_err();
    assert!(matches!(err, Error::WouldBlock(_)), "{err}");
    let err = c
        .recv(&client, &mut buf, Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    s.send(&server, b"hello").unwrap();
    let n = loop {
        match c.recv(&client, &mut buf, Duration::ZERO) {
            Ok(n) => break n,
            Err(Error::WouldBlock(_)) => thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(&buf[..n], b"hello");
}

#[test]
fn each_record_fills_one_dt_of_the_tpdu() {
    for (tpdu, tls12) in [(128, false), (1024, false), (128, true), (1024, true)] {
        let mut cfg = pinned();
        if tls12 {
            cfg.set_versions(TLS1_2, TLS1_2).unwrap();
        }
        let (client, c, server, s) = start(tpdu, cfg, server_config());
        let (c, s) = (c.unwrap(), s.unwrap());
        assert_eq!(c.protocol_version(), if tls12 { TLS1_2 } else { TLS1_3 });
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = frames.clone();
        client.set_trace_callback(Some(Box::new(move |sent, frame| {
            if sent {
                sink.lock().unwrap().push(frame.to_vec());
            }
        })));
        let m = message(5000);
        c.send(&client, &m).unwrap();
        let mut buf = vec![0u8; 6000];
        assert_eq!(s.recv(&server, &mut buf, T).unwrap(), m.len());
        assert_eq!(&buf[..m.len()], &m[..]);
        let frames = frames.lock().unwrap();
        assert!(frames.len() > 1);
        for (i, f) in frames.iter().enumerate() {
            assert!(f.len() - 4 <= tpdu as usize, "DT {i} above TPDU {tpdu}");
            let payload = &f[7..];
            // An application-data record, exactly the DT's payload.
            assert_eq!(&payload[..3], &[0x17, 0x03, 0x03], "DT {i}");
            let len = u16::from_be_bytes([payload[3], payload[4]]) as usize;
            assert_eq!(
                len + 5,
                payload.len(),
                "DT {i} at TPDU {tpdu}, TLS 1.2: {tls12}"
            );
            let last = i + 1 == frames.len();
            assert_eq!(f[6] & 0x80 != 0, last, "EOT only on the last DT");
            if !last {
                assert_eq!(f.len() - 4, tpdu as usize, "a full DT");
            }
        }
    }
}

#[test]
fn silent_peer_mid_handshake_times_out_within_the_deadline() {
    let (client, _server) = pair(1024);
    let started = std::time::Instant::now();
    let err = TlsSession::client(&client, &pinned(), Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        !client.is_alive(),
        "a failed handshake closes the connection"
    );
}

#[test]
fn garbage_instead_of_a_record_is_a_tls_error() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        server.recv(&mut buf, T).unwrap(); // the ClientHello
        server.send(b"this is not a TLS record at all").unwrap();
        server
    });
    let err = TlsSession::client(&client, &pinned(), T).unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err}");
    assert!(!client.is_alive());
    srv.join().unwrap();
}

#[test]
fn a_record_split_over_two_tsdus_is_one_message() {
    use std::io::Write;
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut tls = raw_server(&server);
        // One record of 300 bytes, sent as two TSDUs cut inside the record.
        tls.writer().write_all(&message(300)).unwrap();
        let mut out = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut out).unwrap();
        }
        let cut = out.len() - 100;
        server.send(&out[..cut]).unwrap();
        thread::sleep(Duration::from_millis(50));
        server.send(&out[cut..]).unwrap();
        (server, tls)
    });
    let c = TlsSession::client(&client, &pinned(), T).unwrap();
    let mut buf = vec![0u8; 1000];
    let n = c.recv(&client, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], &message(300)[..]);
    srv.join().unwrap();
}

mod c_api {
    use super::*;
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::listener::*;
    use isotcp::ffi::queue::iso_queue_send;
    use isotcp::ffi::tls::*;
    use std::ffi::CString;
    use std::ptr::{null, null_mut};

    struct P<T>(*mut T);
    unsafe impl<T> Send for P<T> {}

    fn cstr(p: &Path) -> CString {
        CString::new(p.to_str().unwrap()).unwrap()
    }

    fn last_error(c: *mut iso_conn) -> String {
        let mut buf = [0u8; 512];
        let mut needed = 0;
        unsafe { iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        String::from_utf8_lossy(&buf[..needed.saturating_sub(1).min(511)]).into_owned()
    }

    fn config(f: impl FnOnce(*mut iso_tls_config)) -> *mut iso_tls_config {
        let mut cfg = null_mut();
        assert_eq!(unsafe { iso_tls_config_create(&mut cfg) }, ISO_OK);
        f(cfg);
        cfg
    }

    /// A C-level pair with TLS started on both sides: (client, server).
    fn tls_pair(tpdu: u32, client_cfg: *mut iso_tls_config) -> (P<iso_conn>, P<iso_conn>) {
        let p = pki();
        let server_cfg = config(|cfg| unsafe {
            let (c, k) = (cstr(&p.path("server.pem")), cstr(&p.path("server.key")));
            assert_eq!(
                iso_tls_config_set_identity_files(cfg, c.as_ptr(), k.as_ptr()),
                ISO_OK
            );
        });
        let mut l = null_mut();
        assert_eq!(
            unsafe { iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l) },
            ISO_OK
        );
        let mut port = 0;
        assert_eq!(unsafe { iso_listener_port(l, &mut port) }, ISO_OK);
        let mut c = null_mut();
        assert_eq!(
            unsafe { iso_create(c"127.0.0.1".as_ptr(), port, &mut c) },
            ISO_OK
        );
        assert_eq!(unsafe { iso_set_tpdu_size(c, tpdu) }, ISO_OK);
        let (lp, scfg) = (P(l), P(server_cfg));
        let srv = thread::spawn(move || {
            let (lp, scfg) = (lp, scfg);
            let mut s = null_mut();
            assert_eq!(unsafe { iso_accept(lp.0, 10_000, &mut s) }, ISO_OK);
            let rc = unsafe { iso_start_tls(s, scfg.0, 10_000) };
            assert_eq!(rc, ISO_OK, "server: {}", last_error(s));
            unsafe { iso_tls_config_destroy(scfg.0) };
            unsafe { iso_listener_destroy(lp.0) };
            P(s)
        });
        assert_eq!(unsafe { iso_connect(c, 10_000) }, ISO_OK);
        let rc = unsafe { iso_start_tls(c, client_cfg, 10_000) };
        assert_eq!(rc, ISO_OK, "client: {}", last_error(c));
        (P(c), srv.join().unwrap())
    }

    #[test]
    fn send_recv_exporter_and_certificate_through_the_c_api() {
        let pin = pki().pin.clone();
        let cfg = config(|cfg| unsafe {
            assert_eq!(
                iso_tls_config_set_pin_sha256(cfg, pin.as_ptr(), pin.len()),
                ISO_OK
            );
        });
        let (c, s) = tls_pair(1024, cfg);
        // The config was copied: destroying it leaves the session alone.
        unsafe { iso_tls_config_destroy(cfg) };
        let (c, s) = (c.0, s.0);
        unsafe {
            assert_eq!(iso_tls_active(c), 1);
            assert_eq!(iso_tls_active(s), 1);
            for len in [1usize, 500, 3000, 20_000] {
                let m = message(len);
                assert_eq!(iso_send(c, m.as_ptr(), m.len()), ISO_OK);
                let mut buf = vec![0u8; 30_000];
                let mut n = 0;
                assert_eq!(
                    iso_recv(s, buf.as_mut_ptr(), buf.len(), &mut n, 10_000),
                    ISO_OK,
                    "{}",
                    last_error(s)
                );
                assert_eq!(&buf[..n], &m[..]);
                assert_eq!(iso_send(s, buf.as_ptr(), n), ISO_OK);
                let mut back = vec![0u8; 30_000];
                assert_eq!(
                    iso_recv(c, back.as_mut_ptr(), back.len(), &mut n, 10_000),
                    ISO_OK
                );
                assert_eq!(&back[..n], &m[..]);
            }
            let label = b"EXPERIMENTAL_OMS";
            let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
            let rc = iso_tls_export_keying_material(
                c,
                label.as_ptr(),
                label.len(),
                null(),
                0,
                a.as_mut_ptr(),
                a.len(),
            );
            assert_eq!(rc, ISO_OK);
            let rc = iso_tls_export_keying_material(
                s,
                label.as_ptr(),
                label.len(),
                null(),
                0,
                b.as_mut_ptr(),
                b.len(),
            );
            assert_eq!(rc, ISO_OK);
            assert_eq!(a, b);
            let mut needed = 0;
            assert_eq!(
                iso_tls_peer_certificate(c, null_mut(), 0, &mut needed),
                ISO_E_BUFFER_TOO_SMALL
            );
            let mut der = vec![0u8; needed];
            assert_eq!(
                iso_tls_peer_certificate(c, der.as_mut_ptr(), der.len(), &mut needed),
                ISO_OK
            );
            assert_eq!(der, std::fs::read(pki().path("server.der")).unwrap());
            // Queued sends carry TLS too.
            assert_eq!(iso_queue_send(c, b"x".as_ptr(), 1), ISO_OK);
            let mut one = [0u8; 8];
            let mut n = 0;
            assert_eq!(
                iso_recv(s, one.as_mut_ptr(), one.len(), &mut n, 10_000),
                ISO_OK
            );
            assert_eq!(&one[..n], b"x");
            assert_eq!(iso_disconnect(c), ISO_OK);
            assert_eq!(iso_tls_active(c), 0);
            iso_destroy(c);
            iso_destroy(s);
        }
    }

    #[test]
    fn wrong_pin_is_iso_e_tls_and_insecure_says_so() {
        let cfg = config(|cfg| unsafe {
            let pin = [0x11u8; 32];
            assert_eq!(iso_tls_config_set_pin_sha256(cfg, pin.as_ptr(), 32), ISO_OK);
        });
        let mut l = null_mut();
        assert_eq!(
            unsafe { iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l) },
            ISO_OK
        );
        let mut port = 0;
        assert_eq!(unsafe { iso_listener_port(l, &mut port) }, ISO_OK);
        let mut c = null_mut();
        assert_eq!(
            unsafe { iso_create(c"127.0.0.1".as_ptr(), port, &mut c) },
            ISO_OK
        );
        let lp = P(l);
        let srv = thread::spawn(move || {
            let lp = lp;
            let p = pki();
            let scfg = config(|cfg| unsafe {
                let (c, k) = (cstr(&p.path("server.pem")), cstr(&p.path("server.key")));
                iso_tls_config_set_identity_files(cfg, c.as_ptr(), k.as_ptr());
            });
            let mut s = null_mut();
            assert_eq!(unsafe { iso_accept(lp.0, 10_000, &mut s) }, ISO_OK);
            let rc = unsafe { iso_start_tls(s, scfg, 10_000) };
            unsafe {
                iso_tls_config_destroy(scfg);
                iso_destroy(s);
                iso_listener_destroy(lp.0);
            }
            rc
        });
        assert_eq!(unsafe { iso_connect(c, 10_000) }, ISO_OK);
        assert_eq!(unsafe { iso_start_tls(c, cfg, 10_000) }, ISO_E_TLS);
        let msg = last_error(c);
        assert!(msg.contains(&"11".repeat(32)), "{msg}");
        assert_eq!(unsafe { iso_check_connection(c) }, 0);
        assert_ne!(srv.join().unwrap(), ISO_OK);
        unsafe {
            iso_destroy(c);
            iso_tls_config_destroy(cfg);
        }

        let insecure = config(|cfg| unsafe {
            assert_eq!(iso_tls_config_set_insecure(cfg, 1), ISO_OK);
        });
        let (c, s) = tls_pair(256, insecure);
        let msg = last_error(c.0);
        assert!(msg.contains("insecure"), "{msg}");
        unsafe {
            iso_destroy(c.0);
            iso_destroy(s.0);
            iso_tls_config_destroy(insecure);
        }
    }
}

#[test]
fn key_log_gets_the_session_secrets() {
    for (tls12, label) in [
        (false, "CLIENT_TRAFFIC_SECRET_0 "),
        (true, "CLIENT_RANDOM "),
    ] {
        let log = pki().path(&format!("keys-{tls12}.log"));
        let _ = std::fs::remove_file(&log);
        let mut cfg = pinned();
        cfg.set_keylog_file(Some(log.clone()));
        if tls12 {
            cfg.set_versions(TLS1_2, TLS1_2).unwrap();
        }
        let (_client, c, _server, s) = start(1024, cfg, server_config());
        c.unwrap();
        s.unwrap();
        let text = std::fs::read_to_string(&log).unwrap();
        let line = text.lines().find(|l| l.starts_with(label)).expect(&text);
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 3, "{line}");
        assert_eq!(fields[1].len(), 64, "{line}");
    }
}
