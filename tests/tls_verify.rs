//! TLS verification: mutual TLS (a server with a CA file or a pin requires the client's
//! certificate), and every rejection in words: the certificate problem with its dates, the
//! alert by its name, bytes that are not TLS. Certificates are made with the `openssl` command.
#![cfg(feature = "tls")]

use std::thread;

use isotcp::net::tls::{TlsConfig, TlsSession, TLS1_2, TLS1_3};
use isotcp::Error;

mod tls_support;
use tls_support::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tls_text(r: isotcp::Result<TlsSession>) -> String {
    match r {
        Err(e @ Error::Tls(_)) => {
            // Shown with --nocapture: the words a user reads.
            println!("{e}");
            let Error::Tls(text) = e else { unreachable!() };
            text
        }
        Err(other) => panic!("expected a TLS error, got: {other}"),
        Ok(_) => panic!("expected a TLS error, the handshake succeeded"),
    }
}

fn client_identity(mut cfg: TlsConfig) -> TlsConfig {
    let p = pki();
    more_pki();
    cfg.set_identity_files(p.path("client.pem"), p.path("client.key"));
    cfg
}

fn server_requiring_ca() -> TlsConfig {
    let mut cfg = server_config();
    cfg.set_ca_file(pki().path("ca.pem"));
    cfg
}

#[test]
fn mutual_tls_with_a_ca_file_verifies_the_client() {
    let (client, c, server, s) = start(1024, client_identity(pinned()), server_requiring_ca());
    let (c, s) = (c.unwrap(), s.unwrap());
    let der = std::fs::read(pki().path("client.der")).unwrap();
    assert_eq!(
        s.peer_certificate().unwrap(),
        der,
        "the server saw our certificate"
    );
    c.send(&client, b"read DB1").unwrap();
    let mut buf = [0u8; 64];
    let n = s.recv(&server, &mut buf, T).unwrap();
    assert_eq!(&buf[..n], b"read DB1");
}

#[test]
fn mutual_tls_with_a_pin_verifies_the_client() {
    let mut server_cfg = server_config();
    server_cfg.set_pin_sha256(&more_pki().client_pin).unwrap();
    let (_client, c, _server, s) = start(1024, client_identity(pinned()), server_cfg);
    c.unwrap();
    s.unwrap();

    let mut wrong = server_config();
    wrong.set_pin_sha256(&[0x5a; 32]).unwrap();
    let (_client, c, server, s) = start(1024, client_identity(pinned()), wrong);
    let text = tls_text(s);
    assert!(text.contains(&"5a".repeat(32)), "{text}");
    assert!(text.contains(&hex(&more_pki().client_pin)), "{text}");
    assert!(
        !server.is_alive(),
        "a failed handshake closes the connection"
    );
    let text = tls_text(c);
    assert!(text.contains("the peer sent the alert"), "{text}");
}

#[test]
fn a_client_without_a_certificate_is_refused_in_words() {
    for tls12 in [false, true] {
        let mut client_cfg = pinned();
        if tls12 {
            client_cfg.set_versions(TLS1_2, TLS1_2).unwrap();
        }
        let (client, c, _server, s) = start(1024, client_cfg, server_requiring_ca());
        let text = tls_text(s);
        assert!(
            text.contains("the client presented no certificate"),
            "TLS 1.2 {tls12}: {text}"
        );
        let text = tls_text(c);
        assert!(
            text.contains("the peer sent the alert"),
            "TLS 1.2 {tls12}: {text}"
        );
        assert!(
            text.contains("set the identity files"),
            "TLS 1.2 {tls12}: {text}"
        );
        if !tls12 {
            assert!(text.contains("certificate_required"), "{text}");
        }
        assert!(!client.is_alive());
    }
}

#[test]
fn a_client_certificate_from_another_ca_is_refused() {
    let mut server_cfg = server_config();
    server_cfg.set_ca_file(pki().path("other-ca.pem"));
    more_pki();
    let (_client, c, _server, s) = start(1024, client_identity(pinned()), server_cfg);
    let text = tls_text(s);
    assert!(text.contains("unknown issuer"), "{text}");
    assert!(text.contains("not signed by a CA in the CA file"), "{text}");
    let text = tls_text(c);
    assert!(
        text.contains("the peer sent the alert unknown_ca"),
        "{text}"
    );
}

fn ca_client() -> TlsConfig {
    let mut cfg = TlsConfig::new();
    cfg.set_ca_file(pki().path("ca.pem"));
    cfg
}

#[test]
fn an_expired_certificate_names_its_date() {
    more_pki();
    let (_client, c, _server, _s) = start(1024, ca_client(), server_config_with("expired"));
    let text = tls_text(c);
    assert!(
        text.contains("expired on 2020-02-01 00:00:00 UTC"),
        "{text}"
    );
    assert!(text.contains("notAfter"), "{text}");
}

#[test]
fn a_certificate_not_valid_yet_names_its_date() {
    more_pki();
    let (_client, c, _server, _s) = start(1024, ca_client(), server_config_with("future"));
    let text = tls_text(c);
    assert!(
        text.contains("not valid before 2040-01-01 00:00:00 UTC"),
        "{text}"
    );
}

#[test]
fn an_unknown_issuer_is_named() {
    let mut cfg = TlsConfig::new();
    more_pki();
    cfg.set_ca_file(pki().path("other-ca.pem"));
    let (_client, c, _server, _s) = start(1024, cfg, server_config());
    let text = tls_text(c);
    assert!(text.contains("unknown issuer"), "{text}");
}

#[test]
fn a_bad_signature_is_named() {
    more_pki();
    let (_client, c, _server, _s) = start(1024, ca_client(), server_config_with("badsig"));
    let text = tls_text(c);
    assert!(text.contains("bad signature"), "{text}");
}

#[test]
fn a_wrong_name_is_named_with_what_the_certificate_names() {
    let mut cfg = ca_client();
    cfg.set_server_name(Some("other.example")).unwrap();
    let (_client, c, _server, _s) = start(1024, cfg, server_config());
    let text = tls_text(c);
    assert!(text.contains("wrong name"), "{text}");
    assert!(text.contains("other.example"), "{text}");
    assert!(text.contains("it names plc.example"), "{text}");
}

#[test]
fn an_alert_is_named_as_the_rfc_names_it() {
    // A server that allows TLS 1.3 only answers a TLS 1.2 client with protocol_version.
    let mut client_cfg = pinned();
    client_cfg.set_versions(TLS1_2, TLS1_2).unwrap();
    let mut server_cfg = server_config();
    server_cfg.set_versions(TLS1_3, TLS1_3).unwrap();
    let (_client, c, _server, _s) = start(1024, client_cfg, server_cfg);
    let text = tls_text(c);
    assert!(
        text.contains("the peer sent the alert protocol_version"),
        "{text}"
    );
}

#[test]
fn a_handshake_failure_alert_in_clear_is_named() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        server.recv(&mut buf, T).unwrap(); // the ClientHello
                                           // An alert record: fatal (2), handshake_failure (40).
        server
            .send(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])
            .unwrap();
        server
    });
    let text = tls_text(TlsSession::client(&client, &pinned(), T));
    assert!(
        text.contains("the peer sent the alert handshake_failure"),
        "{text}"
    );
    assert!(!client.is_alive());
    srv.join().unwrap();
}

#[test]
fn garbage_is_not_a_tls_record_in_words() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        server.recv(&mut buf, T).unwrap();
        server.send(b"HTTP/1.1 400 Bad Request\r\n").unwrap();
        server
    });
    let err = TlsSession::client(&client, &pinned(), T).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("not a TLS record"), "{text}");
    assert!(text.contains("48 54 54 50"), "{text}");
    assert!(text.contains("content type 72"), "{text}");
    // Later calls name why the connection was closed.
    let later = client.send(b"x").unwrap_err().to_string();
    assert!(later.contains("not a TLS record"), "{later}");
    srv.join().unwrap();
}

mod c_api {
    use super::*;
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::listener::*;
    use isotcp::ffi::tls::*;
    use std::ptr::{null, null_mut};

    fn last_error(c: *mut iso_conn) -> String {
        let mut buf = [0u8; 1024];
        let mut needed = 0;
        unsafe { iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), &mut needed) };
        String::from_utf8_lossy(&buf[..needed.saturating_sub(1).min(1023)]).into_owned()
    }

    #[test]
    fn tls_queries_before_start_tls_are_state_errors() {
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
        let listener = l as usize;
        let accept = thread::spawn(move || {
            let mut s = null_mut();
            let rc = unsafe { iso_accept(listener as *mut iso_listener, 10_000, &mut s) };
            assert_eq!(rc, ISO_OK);
            s as usize
        });
        unsafe {
            // Not even connected: still "TLS not started", a state error.
            let mut out = [0u8; 32];
            let label = b"EXPERIMENTAL_OMS";
            let rc = iso_tls_export_keying_material(
                c,
                label.as_ptr(),
                label.len(),
                null(),
                0,
                out.as_mut_ptr(),
                32,
            );
            assert_eq!(rc, ISO_E_STATE);
            assert!(last_error(c).contains("iso_start_tls"), "{}", last_error(c));
            assert_eq!(iso_connect(c, 10_000), ISO_OK);
            let s = accept.join().unwrap() as *mut iso_conn;
            let rc = iso_tls_export_keying_material(
                c,
                label.as_ptr(),
                label.len(),
                null(),
                0,
                out.as_mut_ptr(),
                32,
            );
            assert_eq!(rc, ISO_E_STATE);
            let mut needed = 0;
            assert_eq!(
                iso_tls_peer_certificate(c, null_mut(), 0, &mut needed),
                ISO_E_STATE
            );
            assert!(
                last_error(c).contains("TLS is not started"),
                "{}",
                last_error(c)
            );
            // Bad arguments are still invalid, whatever the state.
            assert_eq!(
                iso_tls_peer_certificate(c, null_mut(), 0, null_mut()),
                ISO_E_INVALID
            );
            let mut cfg = null_mut();
            assert_eq!(iso_tls_config_create(&mut cfg), ISO_OK);
            assert_eq!(iso_tls_config_set_max_record_size(cfg, 31), ISO_E_INVALID);
            assert_eq!(
                iso_tls_config_set_max_record_size(cfg, 16385),
                ISO_E_INVALID
            );
            assert_eq!(iso_tls_config_set_max_record_size(cfg, 0), ISO_OK);
            assert_eq!(iso_tls_config_set_max_record_size(cfg, 4096), ISO_OK);
            iso_tls_config_destroy(cfg);
            iso_destroy(c);
            iso_destroy(s);
            iso_listener_destroy(l);
        }
    }
}

#[test]
fn the_client_hello_offers_classic_key_exchange_only() {
    let (client, server) = pair(1024);
    let srv = thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        let n = server.recv(&mut buf, T).unwrap();
        let mut acceptor = rustls::server::Acceptor::default();
        acceptor.read_tls(&mut &buf[..n]).unwrap();
        let accepted = acceptor
            .accept()
            .unwrap()
            .expect("a whole ClientHello in one TSDU");
        let groups = accepted.client_hello().named_groups().unwrap().to_vec();
        drop(server);
        groups
    });
    let _ = TlsSession::client(&client, &pinned(), T);
    let groups = srv.join().unwrap();
    assert_eq!(
        groups,
        [rustls::NamedGroup::X25519, rustls::NamedGroup::secp256r1]
    );
}

mod c_api_words {
    use super::*;
    use isotcp::ffi::codes::*;
    use isotcp::ffi::conn::*;
    use isotcp::ffi::listener::*;
    use isotcp::ffi::tls::*;
    use std::ptr::null_mut;

    #[test]
    fn the_words_reach_iso_last_error() {
        unsafe {
            let mut l = null_mut();
            assert_eq!(iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l), ISO_OK);
            let mut port = 0;
            assert_eq!(iso_listener_port(l, &mut port), ISO_OK);
            let listener = l as usize;
            let srv = thread::spawn(move || {
                let mut s = null_mut();
                assert_eq!(
                    iso_accept(listener as *mut iso_listener, 10_000, &mut s),
                    ISO_OK
                );
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                assert_eq!(
                    iso_recv(s, buf.as_mut_ptr(), buf.len(), &mut n, 10_000),
                    ISO_OK
                );
                // The ClientHello, answered by a fatal handshake_failure alert in clear.
                let alert = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
                assert_eq!(iso_send(s, alert.as_ptr(), alert.len()), ISO_OK);
                s as usize
            });
            let mut c = null_mut();
            assert_eq!(iso_create(c"127.0.0.1".as_ptr(), port, &mut c), ISO_OK);
            assert_eq!(iso_connect(c, 10_000), ISO_OK);
            let mut cfg = null_mut();
            assert_eq!(iso_tls_config_create(&mut cfg), ISO_OK);
            let pin = &pki().pin;
            assert_eq!(iso_tls_config_set_pin_sha256(cfg, pin.as_ptr(), 32), ISO_OK);
            assert_eq!(iso_start_tls(c, cfg, 10_000), ISO_E_TLS);
            let mut buf = [0u8; 512];
            let mut needed = 0;
            iso_last_error(c, buf.as_mut_ptr().cast(), buf.len(), &mut needed);
            let text = String::from_utf8_lossy(&buf[..needed - 1]).into_owned();
            assert_eq!(
                text,
                "TLS: handshake failed: the peer sent the alert handshake_failure"
            );
            assert_eq!(iso_check_connection(c), 0, "a failed handshake closes");
            assert_eq!(iso_tls_active(c), 0);
            let s = srv.join().unwrap() as *mut iso_conn;
            iso_tls_config_destroy(cfg);
            iso_destroy(c);
            iso_destroy(s);
            iso_listener_destroy(l);
        }
    }
}
