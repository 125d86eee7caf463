//! The PLC rebooting (its server process killed and started again) and reconnect cycles that
//! must leave exactly one connection at the PLC.

use std::thread;
use std::time::Duration;

use super::common::conn::*;
use super::common::peer::{assert_elapsed, timed};
use super::net::{Link, Net, PLC_V4};
use super::plc::{Flavor, Plc, S7_PORT};
use super::s7::*;
use super::LIMIT;

/// The server is killed while a receive waits for an answer: the kernel closes its connection,
/// so the receive ends promptly with ISO_E_CLOSED; iso_check_connection says 0. The server
/// starts again on the same address and port, and after iso_disconnect a new iso_connect on the
/// same handle succeeds and serves requests, with one connection at the PLC.
fn killed_and_restarted(flavor: Flavor, test: &str) {
    let Some(net) = Net::new(test) else { return };
    let Some(mut plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    let name = test.to_string();
    net.hmi(LIMIT, move |link: Link| {
        let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
        c.ok(c.connect(3000));
        negotiate(&c, 1);
        let (plc, (r, t)) = thread::scope(|s| {
            let killer = s.spawn(move || {
                thread::sleep(Duration::from_millis(300));
                plc.kill();
                plc
            });
            let r = timed(|| c.recv(65536, 5000));
            (killer.join().unwrap(), r)
        });
        let mut plc = plc;
        let rc = r.map(|_| ISO_OK).unwrap_or_else(|rc| rc);
        c.expect(rc, ISO_E_CLOSED, &[]);
        // 300 ms until the kill, then the kill itself and the FIN: prompt, not a timeout.
        assert_elapsed(
            "receive when the PLC process dies",
            t,
            Duration::from_millis(300),
            Duration::from_millis(1000),
        );
        crate::net::note(&format!(
            "field::{name}: ISO_E_CLOSED {t:?} after the receive started (kill at 300 ms): {}",
            c.last_error()
        ));
        assert_eq!(c.check(), 0);
        // A connection the peer ended is replaced by the next iso_connect: with the PLC still
        // down, that connect is refused (not "already connected").
        c.expect(c.connect(3000), ISO_E_REFUSED, &["refused"]);
        c.ok(c.disconnect());
        plc.restart();
        let (rc, t) = timed(|| c.connect(3000));
        c.ok(rc);
        assert!(t < Duration::from_millis(500), "reconnect took {t:?}");
        negotiate(&c, 2);
        let a = exchange(&c, &read_db1(3, 0, 16), 3000);
        assert_read(&a, 3, &db1(0, 16));
        assert_eq!(link.plc_established(S7_PORT), 1);
        c.ok(c.disconnect());
        drop(plc);
    });
}

#[test]
fn plc_killed_and_restarted_py3() {
    killed_and_restarted(Flavor::Py3, "plc_killed_and_restarted_py3");
}

#[test]
fn plc_killed_and_restarted_native() {
    killed_and_restarted(Flavor::Native, "plc_killed_and_restarted_native");
}

const CYCLES: u16 = 100;

/// 100 cycles of iso_disconnect + iso_connect on one handle, each followed by one request: after
/// every connect the PLC holds exactly one established connection from us (the one just made;
/// the earlier ones are closed, not leaked).
fn disconnect_connect_cycles(flavor: Flavor, test: &str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    let name = test.to_string();
    net.hmi(LIMIT, move |link: Link| {
        let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
        let (_, t) = timed(|| {
            for i in 0..CYCLES {
                c.ok(c.connect(3000));
                negotiate(&c, i);
                assert_eq!(link.plc_established(S7_PORT), 1, "cycle {i}");
                c.ok(c.disconnect());
            }
        });
        crate::net::note(&format!("field::{name}: {CYCLES} cycles in {t:?}"));
        drop(plc);
    });
}

#[test]
fn disconnect_connect_cycles_leave_one_connection_py3() {
    disconnect_connect_cycles(Flavor::Py3, "disconnect_connect_cycles_py3");
}

#[test]
fn disconnect_connect_cycles_leave_one_connection_native() {
    disconnect_connect_cycles(Flavor::Native, "disconnect_connect_cycles_native");
}

/// `iso_reconnect(conn, timeout_ms)`.
fn reconnect(c: &Conn, timeout_ms: u32) -> i32 {
    c.reconnect(timeout_ms)
}

/// 100 iso_reconnect cycles with the COTP connection up (each sends a DR, closes, connects
/// again with the same settings), each followed by one request: after every cycle the PLC holds
/// exactly one established connection from us.
fn reconnect_cycles(flavor: Flavor, test: &str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
        c.ok(c.connect(3000));
        for i in 0..CYCLES {
            c.ok(reconnect(&c, 3000));
            negotiate(&c, i);
            assert_eq!(link.plc_established(S7_PORT), 1, "cycle {i}");
        }
        // And after a loss (the PLC rebooted): reconnect is the way back.
        let mut plc = plc;
        plc.kill();
        plc.restart();
        c.ok(reconnect(&c, 3000));
        negotiate(&c, 1000);
        assert_eq!(link.plc_established(S7_PORT), 1);
    });
}

#[test]
fn reconnect_cycles_leave_one_connection_py3() {
    reconnect_cycles(Flavor::Py3, "reconnect_cycles_py3");
}

#[test]
fn reconnect_cycles_leave_one_connection_native() {
    reconnect_cycles(Flavor::Native, "reconnect_cycles_native");
}
