//! The cable: pulled and plugged back with a request in flight, pulled for good while idle, and
//! pulled for good with a request in flight (busy).

use std::thread;
use std::time::{Duration, Instant};

use super::common::conn::*;
use super::common::peer::{assert_elapsed, timed};
use super::net::{Link, Net, PLC_V4};
use super::plc::{Flavor, Plc, S7_PORT};
use super::s7::*;
use super::{LIMIT, SLACK};

/// A connected handle to the PLC with keep-alive 1 s idle, 1 s interval, 2 probes, after setup
/// communication.
fn connected_fast_keepalive() -> Conn {
    let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
    c.ok(c.set_keepalive(1, 1, 1, 2));
    c.ok(c.connect(3000));
    negotiate(&c, 1);
    c
}

/// Cable pulled with a read request in flight, plugged back 1.5 s later: the receive deadline
/// holds while it is out (ISO_E_TIMEOUT after 1 s, the connection still reported alive), and
/// once it is back TCP's retransmission delivers the request, the answer to that very request
/// arrives, and the next request gets its own answer (the stream stays in step).
fn pulled_and_plugged_back(flavor: Flavor, test: &'static str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = connected_fast_keepalive();
        link.pull();
        c.ok(c.send(&read_db1(2, 0, 4)));
        let (r, t) = timed(|| c.recv(65536, 1000));
        assert_eq!(
            r.map(|_| ()).map_err(code_name),
            Err(code_name(ISO_E_TIMEOUT)),
            "receive with the cable out"
        );
        assert_elapsed(
            "receive with the cable out",
            t,
            Duration::from_millis(1000),
            Duration::from_millis(1000) + SLACK,
        );
        assert_eq!(c.check(), 1, "a short pull leaves the connection up");
        thread::sleep(Duration::from_millis(500));
        link.plug();
        let (r, t) = timed(|| c.recv(65536, 8000));
        let a = r.unwrap_or_else(|rc| panic!("after plugging back: {}", code_name(rc)));
        assert_read(&a, 2, &db1(0, 4));
        // Retransmission backoff after 1.5 s out: the next try is about 1.5 s later.
        assert!(t <= Duration::from_secs(5), "answer took {t:?} after plug");
        crate::net::note(&format!(
            "field::{test}: answer {t:?} after the cable came back"
        ));
        let a = exchange(&c, &read_db1(3, 100, 8), 3000);
        assert_read(&a, 3, &db1(100, 8));
        assert_eq!(c.check(), 1);
        c.ok(c.disconnect());
        drop(plc);
    });
}

#[test]
fn pulled_and_plugged_back_py3() {
    pulled_and_plugged_back(Flavor::Py3, "pulled_and_plugged_back_py3");
}

#[test]
fn pulled_and_plugged_back_native() {
    pulled_and_plugged_back(Flavor::Native, "pulled_and_plugged_back_native");
}

/// The loss of an idle connection, as keep-alive 1 s / 1 s / 2 probes reports it: the kernel
/// gives up about 3 s after the last packet (first probe at 1 s, second at 2 s, abort at 3 s).
const IDLE_LOSS_MIN: Duration = Duration::from_millis(2500);
const IDLE_LOSS_MAX: Duration = Duration::from_millis(5000);

/// Cable pulled for good while idle, a receive waiting: keep-alive ends the receive with
/// ISO_E_IO ("Connection timed out") within 3-5 s; iso_check_connection then says 0.
fn idle_pull_recv(flavor: Flavor, test: &'static str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = connected_fast_keepalive();
        link.pull();
        let (r, t) = timed(|| c.recv(65536, 10_000));
        let rc = r.map(|_| ISO_OK).unwrap_or_else(|rc| rc);
        c.expect(rc, ISO_E_IO, &["timed out"]);
        assert_elapsed("loss while idle", t, IDLE_LOSS_MIN, IDLE_LOSS_MAX);
        crate::net::note(&format!(
            "field::{test}: idle loss reported by iso_recv after {t:?}: {}",
            c.last_error()
        ));
        assert_eq!(c.check(), 0);
        drop(plc);
    });
}

#[test]
fn idle_pull_detected_by_recv_py3() {
    idle_pull_recv(Flavor::Py3, "idle_pull_detected_by_recv_py3");
}

#[test]
fn idle_pull_detected_by_recv_native() {
    idle_pull_recv(Flavor::Native, "idle_pull_detected_by_recv_native");
}

/// Cable pulled for good while idle, nobody receiving: iso_check_connection, asked every 50 ms,
/// turns 0 within 3-5 s; the receive after it fails at once with ISO_E_IO.
fn idle_pull_check(flavor: Flavor, test: &'static str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = connected_fast_keepalive();
        link.pull();
        let end = Instant::now() + IDLE_LOSS_MAX + SLACK;
        let (_, t) = timed(|| {
            while c.check() == 1 && Instant::now() < end {
                thread::sleep(Duration::from_millis(50));
            }
        });
        assert_elapsed(
            "check_connection after an idle pull",
            t,
            IDLE_LOSS_MIN,
            IDLE_LOSS_MAX,
        );
        crate::net::note(&format!(
            "field::{test}: idle loss seen by iso_check_connection after {t:?}"
        ));
        let (r, t) = timed(|| c.recv(65536, 1000));
        let rc = r.map(|_| ISO_OK).unwrap_or_else(|rc| rc);
        c.expect(rc, ISO_E_IO, &["timed out"]);
        assert!(
            t < Duration::from_millis(100),
            "receive after the loss took {t:?}"
        );
        drop(plc);
    });
}

#[test]
fn idle_pull_detected_by_check_py3() {
    idle_pull_check(Flavor::Py3, "idle_pull_detected_by_check_py3");
}

#[test]
fn idle_pull_detected_by_check_native() {
    idle_pull_check(Flavor::Native, "idle_pull_detected_by_check_native");
}

/// Cable pulled for good with a request in flight, keep-alive off and `iso_set_user_timeout`
/// 3000: the kernel gives up on the unacknowledged request after 3 s and the waiting receive
/// ends with ISO_E_IO naming the cause and ETIMEDOUT, where without the option it would
/// retransmit for about 15 minutes (keep-alive does not probe while data is unacknowledged).
#[test]
fn busy_pull_detected_with_user_timeout_on_the_socket() {
    let test = "busy_pull_detected_with_user_timeout_on_the_socket";
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, Flavor::Py3, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = Conn::create(&PLC_V4.to_string(), S7_PORT);
        c.ok(c.set_keepalive(0, 0, 0, 0));
        c.ok(c.set_user_timeout(3000));
        c.ok(c.connect(3000));
        negotiate(&c, 1);
        link.pull();
        c.ok(c.send(&read_db1(2, 0, 4)));
        let (r, t) = timed(|| c.recv(65536, 10_000));
        let rc = r.map(|_| ISO_OK).unwrap_or_else(|rc| rc);
        c.expect(
            rc,
            ISO_E_IO,
            &["no acknowledgement from the peer for 3 s", "timed out"],
        );
        assert_eq!(c.last_os_error(), libc::ETIMEDOUT);
        assert_elapsed(
            "loss with a request in flight",
            t,
            Duration::from_millis(2800),
            Duration::from_millis(5000),
        );
        crate::net::note(&format!(
            "field::{test}: busy loss reported after {t:?}: {}",
            c.last_error()
        ));
        assert_eq!(c.check(), 0);
        drop(plc);
    });
}

/// Busy pull, and only keep-alive 1 s / 1 s / 2 probes set: the library derives
/// TCP_USER_TIMEOUT from it (idle + interval x count = 3 s), so the receive waiting for the
/// answer ends with ISO_E_IO after 3-5 s, naming the cause in words, and iso_check_connection
/// says 0 (without the bound the kernel would retransmit for about 15 minutes).
#[test]
fn busy_pull_detected_by_default_py3() {
    busy_pull_default(Flavor::Py3, "busy_pull_detected_by_default_py3");
}

#[test]
fn busy_pull_detected_by_default_native() {
    busy_pull_default(Flavor::Native, "busy_pull_detected_by_default_native");
}

fn busy_pull_default(flavor: Flavor, test: &'static str) {
    let Some(net) = Net::new(test) else { return };
    let Some(plc) = Plc::start(&net.link, flavor, test) else {
        return;
    };
    net.hmi(LIMIT, move |link: Link| {
        let c = connected_fast_keepalive();
        link.pull();
        c.ok(c.send(&read_db1(2, 0, 4)));
        let (r, t) = timed(|| c.recv(65536, 10_000));
        let rc = r.map(|_| ISO_OK).unwrap_or_else(|rc| rc);
        c.expect(rc, ISO_E_IO, &["no acknowledgement from the peer"]);
        assert_elapsed(
            "loss with a request in flight",
            t,
            IDLE_LOSS_MIN,
            IDLE_LOSS_MAX,
        );
        crate::net::note(&format!(
            "field::{test}: busy loss with the derived user timeout reported after {t:?}"
        ));
        assert_eq!(c.check(), 0);
        drop(plc);
    });
}
