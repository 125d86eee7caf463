//! s7_read: reads bytes of a data block from an S7 PLC (or an S7 server) over isotcp's Rust API
//! and prints them in hex; the Rust twin of examples-c/s7_read.c, with the same arguments and
//! output.
//!
//! ```text
//! cargo run --example s7_read -- HOST [--port P] [--rack R] [--slot S] [--tpdu N] [--db N]
//!                                     [--start B] [--size N] [--timeout MS]
//! ```
//!
//! Exit status: 0 when the read succeeded, 1 on a transport error (printed with what the error
//! says as values: the DR reason, the OS error), 2 when the PLC answered with an S7 error, 64 on
//! a usage error.

use std::process::ExitCode;
use std::time::Duration;

use isotcp::net::{Config, Connection};
use isotcp::proto::transfer::PeerEnd;
use isotcp::proto::tsap::Tsap;
use isotcp::Error;

/// S7 "setup communication": asks for a PDU of 480 bytes.
const SETUP: [u8; 18] = [
    0x32, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0xF0, 0x00, 0x00, 0x01, 0x00, 0x01,
    0x01, 0xE0,
];

struct Args {
    host: String,
    port: u16,
    rack: u8,
    slot: u8,
    tpdu: u32,
    db: u16,
    start: u32,
    size: u16,
    timeout: Duration,
}

fn parse(args: &[String]) -> Option<Args> {
    let host = args.first().filter(|h| !h.starts_with('-'))?.clone();
    let mut a = Args {
        host,
        port: 102,
        rack: 0,
        slot: 2,
        tpdu: 1024,
        db: 1,
        start: 0,
        size: 4,
        timeout: Duration::from_millis(3000),
    };
    let mut rest = args[1..].chunks(2);
    for pair in &mut rest {
        let [name, value] = pair else { return None };
        let v: u64 = value.parse().ok()?;
        match name.as_str() {
            "--port" => a.port = u16::try_from(v).ok().filter(|&p| p != 0)?,
            "--rack" => a.rack = u8::try_from(v).ok().filter(|&r| r <= 7)?,
            "--slot" => a.slot = u8::try_from(v).ok().filter(|&s| s <= 31)?,
            "--tpdu" => a.tpdu = u32::try_from(v).ok()?,
            "--db" => a.db = u16::try_from(v).ok().filter(|&d| d != 0)?,
            "--start" => a.start = u32::try_from(v).ok().filter(|&s| s <= 0x1F_FFFF)?,
            "--size" => a.size = u16::try_from(v).ok().filter(|&s| s != 0)?,
            "--timeout" => a.timeout = Duration::from_millis(v),
            _ => return None,
        }
    }
    Some(a)
}

/// Prints a transport error with what it carries as values, and gives exit status 1.
fn transport_error(what: &str, e: &Error) -> ExitCode {
    eprintln!("s7_read: {what}: {e}");
    match e {
        Error::Rejected(PeerEnd::Disconnect { reason }) => {
            eprintln!("  the PLC refused the connection with DR reason 0x{reason:02X}: check rack and slot")
        }
        Error::Refused { .. } | Error::Timeout(_) => {
            eprintln!("  nothing answered as a PLC: check the address and port")
        }
        _ => {}
    }
    if let Some(os) = e.os_error() {
        eprintln!("  OS error {os}");
    }
    ExitCode::from(1)
}

/// One S7 job: send it whole, receive its whole answer.
fn exchange(
    conn: &Connection,
    req: &[u8],
    resp: &mut [u8],
    timeout: Duration,
) -> Result<usize, Error> {
    conn.send(req)?;
    conn.recv(resp, timeout)
}

fn run(a: &Args) -> Result<ExitCode, (&'static str, Error)> {
    let mut config = Config::new(&a.host, a.port).map_err(|e| ("configure", e))?;
    let remote =
        Tsap::s7(1, a.rack, a.slot).map_err(|e| ("configure", Error::Invalid(e.to_string())))?;
    config
        .set_tsaps(Tsap::from_u16(0x0100), remote.clone())
        .and_then(|()| config.set_tpdu_size(a.tpdu))
        .map_err(|e| ("configure", e))?;
    let conn = Connection::new(config);
    conn.connect(a.timeout).map_err(|e| ("connect", e))?;
    let tpdu = conn.tpdu_size().map_err(|e| ("connect", e))?;
    println!(
        "connected to {}:{}, remote TSAP {remote}, TPDU {tpdu}",
        a.host, a.port
    );

    let mut resp = vec![0u8; 65536];
    let got =
        exchange(&conn, &SETUP, &mut resp, a.timeout).map_err(|e| ("setup communication", e))?;
    if got < 20 || resp[0] != 0x32 || resp[1] != 0x03 || resp[10] != 0 || resp[11] != 0 {
        eprintln!("s7_read: setup communication refused by the PLC");
        return Ok(ExitCode::from(2));
    }
    println!("S7 PDU size: {}", u16::from_be_bytes([resp[18], resp[19]]));

    // ReadVar of `size` bytes at DB`db`.DBB`start` (address in bits).
    let mut req = [
        0x32, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x0E, 0x00, 0x00, 0x04, 0x01, 0x12, 0x0A, 0x10,
        0x02, 0x00, 0x00, 0x00, 0x00, 0x84, 0x00, 0x00, 0x00,
    ];
    req[16..18].copy_from_slice(&a.size.to_be_bytes());
    req[18..20].copy_from_slice(&a.db.to_be_bytes());
    req[21..24].copy_from_slice(&(a.start * 8).to_be_bytes()[1..]);
    let got = exchange(&conn, &req, &mut resp, a.timeout).map_err(|e| ("read", e))?;
    let size = usize::from(a.size);
    if got < 18
        || resp[1] != 0x03
        || resp[10] != 0
        || resp[11] != 0
        || resp[14] != 0xFF
        || got != 18 + size
    {
        eprintln!(
            "s7_read: the PLC refused the read ({got} bytes back, item code {:02X})",
            if got > 14 { resp[14] } else { 0 }
        );
        return Ok(ExitCode::from(2));
    }
    print!("DB{}.DBB{}, {size} bytes:", a.db, a.start);
    for (i, b) in resp[18..18 + size].iter().enumerate() {
        print!("{}{b:02X}", if i % 16 == 0 { "\n  " } else { " " });
    }
    println!();
    conn.disconnect();
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(a) = parse(&args) else {
        eprintln!("usage: s7_read HOST [--port P] [--rack R] [--slot S] [--tpdu N] [--db N] [--start B] [--size N] [--timeout MS]");
        return ExitCode::from(64);
    };
    match run(&a) {
        Ok(code) => code,
        Err((what, e)) => transport_error(what, &e),
    }
}
