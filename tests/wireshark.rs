//! Wire checks by Wireshark's dissectors: a run of our client against our listener is captured on
//! loopback with dumpcap and decoded by tshark (TPKT, COTP, S7comm). The test fails on any
//! malformed frame or error-level expert info, and checks the decoded CR/CC fields and the EOT
//! flags of segmented messages in both directions.
//!
//! Needs dumpcap and tshark (Debian's tshark package) and the right to capture on `lo` (root in
//! CI). Without them it prints SKIP, unless ISOTCP_REQUIRE_TSHARK=1, which makes that a failure.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::ptr::null_mut;
use std::time::{Duration, Instant};

use common::packets::hex;
use isotcp::ffi::codes::*;
use isotcp::ffi::conn::*;
use isotcp::ffi::listener::*;

fn tools_present() -> bool {
    let ok = |t: &str| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let present = ok("dumpcap") && ok("tshark");
    if !present {
        assert!(
            std::env::var("ISOTCP_REQUIRE_TSHARK").as_deref() != Ok("1"),
            "dumpcap/tshark missing but ISOTCP_REQUIRE_TSHARK=1"
        );
        eprintln!("SKIP: dumpcap/tshark not installed");
    }
    present
}

struct Capture {
    child: Child,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(port: u16) -> Capture {
        let file =
            std::env::temp_dir().join(format!("isotcp-{}-{port}.pcapng", std::process::id()));
        let mut child = Command::new("dumpcap")
            .args(["-i", "lo", "-q", "-f", &format!("tcp port {port}"), "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dumpcap starts");
        // dumpcap says "Capturing on ..." once the capture filter is in place.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let started = Instant::now();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("Capturing on") => break,
                Some(Ok(l)) => eprintln!("dumpcap: {l}"),
                _ => panic!(
                    "dumpcap did not start capturing (after {:?})",
                    started.elapsed()
                ),
            }
        }
        std::thread::spawn(move || lines.for_each(drop));
        // The line comes as the capture opens; give the kernel filter a moment to be in place.
        std::thread::sleep(Duration::from_millis(500));
        Capture { child, file }
    }

    fn stop(mut self) -> std::path::PathBuf {
        // Let the last segments reach the capture, then stop dumpcap cleanly so it flushes.
        std::thread::sleep(Duration::from_millis(300));
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait().unwrap();
        self.file.clone()
    }
}

fn tshark(file: &std::path::Path, port: u16, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-d", &format!("tcp.port=={port},tpkt")])
        .args(args)
        .output()
        .expect("tshark runs");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn recv(c: *mut iso_conn) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let mut n = 0;
    assert_eq!(
        unsafe { iso_recv(c, buf.as_mut_ptr(), buf.len(), &mut n, 3000) },
        ISO_OK
    );
    buf.truncate(n);
    buf
}

fn send(c: *mut iso_conn, m: &[u8]) {
    assert_eq!(unsafe { iso_send(c, m.as_ptr(), m.len()) }, ISO_OK);
}

/// Connects a client configured by `setup` to the listener; returns (client, accepted).
fn pair(l: *mut iso_listener, port: u16, setup: impl FnOnce(*mut iso_conn)) -> (usize, usize) {
    let mut c = null_mut();
    assert_eq!(
        unsafe { iso_create(c"127.0.0.1".as_ptr(), port, &mut c) },
        ISO_OK
    );
    setup(c);
    let cp = c as usize;
    let t = std::thread::spawn(move || unsafe { iso_connect(cp as *mut iso_conn, 3000) });
    let mut s = null_mut();
    assert_eq!(unsafe { iso_accept(l, 3000, &mut s) }, ISO_OK);
    assert_eq!(t.join().unwrap(), ISO_OK);
    (cp, s as usize)
}

/// An S7 write of `data` to DB2.DBB0 (job), and the ack our side sends back.
fn s7_write(data: &[u8]) -> Vec<u8> {
    let n = data.len() as u16;
    let mut m = hex("32 01 00 00 00 02 00 0E");
    m.extend_from_slice(&(4 + n).to_be_bytes());
    m.extend_from_slice(&hex("05 01 12 0A 10 02"));
    m.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&hex("00 02 84 00 00 00 00 04"));
    m.extend_from_slice(&(n * 8).to_be_bytes());
    m.extend_from_slice(data);
    m
}

#[test]
fn wireshark_decodes_every_frame_cleanly_and_sees_our_fields() {
    if !tools_present() {
        return;
    }
    let mut l = null_mut();
    assert_eq!(
        unsafe { iso_listen(c"127.0.0.1".as_ptr(), 0, &mut l) },
        ISO_OK
    );
    let mut port = 0;
    unsafe { iso_listener_port(l, &mut port) };
    let capture = Capture::start(port);

    // Connection 1: TPDU 256, numeric TSAPs; S7 setup, a segmented write, a segmented read answer.
    let (c, s) = pair(l, port, |c| {
        assert_eq!(unsafe { iso_set_tpdu_size(c, 256) }, ISO_OK);
        assert_eq!(unsafe { iso_set_tsap(c, 0x0100, 0x0102) }, ISO_OK);
    });
    let (c, s) = (c as *mut iso_conn, s as *mut iso_conn);
    send(
        c,
        &hex("32 01 00 00 00 00 00 08 00 00 F0 00 00 01 00 01 01 E0"),
    );
    assert_eq!(recv(s).len(), 18);
    send(
        s,
        &hex("32 03 00 00 00 00 00 08 00 00 00 00 F0 00 00 01 00 01 01 E0"),
    );
    assert_eq!(recv(c).len(), 20);
    let payload: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
    let write = s7_write(&payload);
    assert_eq!(write.len(), 628); // 3 DTs at TPDU 256: 253 + 253 + 122
    send(c, &write);
    assert_eq!(recv(s), write);
    send(s, &hex("32 03 00 00 00 02 00 02 00 01 00 00 05 01 FF"));
    assert_eq!(recv(c).len(), 15);
    send(
        c,
        &hex("32 01 00 00 00 03 00 0E 00 00 04 01 12 0A 10 02 01 90 00 01 84 00 03 20"),
    );
    assert_eq!(recv(s).len(), 24);
    let mut answer = hex("32 03 00 00 00 03 00 02 01 94 00 00 04 01 FF 04 0C 80");
    answer.extend((100..500u32).map(|i| i as u8));
    assert_eq!(answer.len(), 418); // 2 DTs at TPDU 256: 253 + 165
    send(s, &answer);
    assert_eq!(recv(c), answer);
    unsafe {
        iso_destroy(c);
        iso_destroy(s);
    }

    // Connection 2: an S7CommPlus-style string TSAP and the default TPDU.
    let (c, s) = pair(l, port, |c| unsafe {
        assert_eq!(
            iso_set_tsap_bytes(c, [6u8, 0].as_ptr(), 2, b"SIMATIC-ROOT-HMI".as_ptr(), 16),
            ISO_OK
        );
    });
    unsafe {
        iso_destroy(c as *mut iso_conn);
        iso_destroy(s as *mut iso_conn);
        iso_listener_destroy(l);
    }
    let file = capture.stop();

    // 1. Nothing malformed, no error-level expert info anywhere.
    let verbose = tshark(&file, port, &["-V"]);
    assert!(
        verbose.contains("ISO 8073/X.224 COTP"),
        "COTP not decoded:\n{verbose}"
    );
    assert!(verbose.contains("S7 Communication"), "S7comm not decoded");
    for bad in ["Malformed", "Expert Info (Error"] {
        let hits: Vec<&str> = verbose.lines().filter(|l| l.contains(bad)).collect();
        assert!(hits.is_empty(), "tshark reports {bad}: {hits:?}");
    }

    // 2. The decoded COTP fields, frame by frame.
    let fields = tshark(
        &file,
        port,
        &[
            "-Y",
            "cotp",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "tcp.dstport",
            "-e",
            "cotp.type",
            "-e",
            "cotp.src-tsap",
            "-e",
            "cotp.dst-tsap",
            "-e",
            "cotp.tpdu_size",
            "-e",
            "cotp.eot",
            "-e",
            "tcp.len",
        ],
    );
    let rows: Vec<Vec<&str>> = fields.lines().map(|l| l.split('|').collect()).collect();
    eprintln!("{fields}");
    let of_type = |t: &str| rows.iter().filter(move |r| r[1] == t).collect::<Vec<_>>();
    let crs = of_type("0x0e");
    let ccs = of_type("0x0d");
    assert_eq!((crs.len(), ccs.len()), (2, 2), "two CRs and two CCs");
    assert_eq!(
        (crs[0][2], crs[0][3], crs[0][4]),
        ("0x0100", "0x0102", "256"),
        "CR 1: TSAPs and TPDU size 256"
    );
    assert_eq!(
        (ccs[0][2], ccs[0][3], ccs[0][4]),
        ("0x0100", "0x0102", "256"),
        "CC 1 echoes the TSAPs and grants 256"
    );
    assert_eq!(
        (crs[1][2], crs[1][3], crs[1][4]),
        ("0x0600", "SIMATIC-ROOT-HMI", "1024"),
        "CR 2: string TSAP, TPDU 1024"
    );
    assert_eq!(
        (ccs[1][2], ccs[1][3], ccs[1][4]),
        ("0x0600", "SIMATIC-ROOT-HMI", "1024"),
        "CC 2"
    );

    // DTs of connection 1, in order, to the listener and from it. A TCP segment may carry several
    // TPKTs (our vectored write sends a whole message at once): tshark then lists one row per
    // segment with the EOT flags of its DTs, so the flags are flattened per direction.
    let eot_flags = |to_listener: bool| -> String {
        rows.iter()
            .filter(|r| r[1].starts_with("0x0f") && (r[0] == port.to_string()) == to_listener)
            .flat_map(|r| r[5].split(','))
            .collect::<Vec<_>>()
            .join("")
    };
    // To the listener: setup (1), write in 3 DTs (001), read request (1).
    assert_eq!(
        eot_flags(true),
        "10011",
        "EOT only on the last DT of the segmented write"
    );
    // From it: setup ack (1), write ack (1), read answer in 2 DTs (01).
    assert_eq!(
        eot_flags(false),
        "1101",
        "EOT only on the last DT of the segmented read answer"
    );
    // Wireshark reassembled the segmented messages and decoded them as S7: the write job
    // (function 0x05) and the read answer (function 0x04) carried in DTs.
    let s7 = tshark(
        &file,
        port,
        &[
            "-Y",
            "s7comm",
            "-T",
            "fields",
            "-e",
            "s7comm.header.rosctr",
            "-e",
            "s7comm.param.func",
            "-e",
            "cotp.reassembled.length",
        ],
    );
    eprintln!("{s7}");
    assert!(
        s7.lines().any(|l| l.starts_with("1\t0x05\t628")),
        "reassembled 628-byte write job: {s7}"
    );
    assert!(
        s7.lines().any(|l| l.starts_with("3\t0x04\t418")),
        "reassembled 418-byte read answer: {s7}"
    );
    let _ = std::fs::remove_file(&file);
}
