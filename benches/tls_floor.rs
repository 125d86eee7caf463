//! The TLS benchmark's floor and its peer: rustls (ring) directly over a plain `TcpStream`, with
//! the parameters isotcp uses inside COTP, and one echo server for both contenders.
//!
//! ```text
//! tls_floor peer --cert C --key K --mode tcp --size S   rustls over TCP: echoes every S bytes
//! tls_floor peer --cert C --key K --mode cotp           TLS inside COTP: echoes every TSDU
//! tls_floor rtt --port P --pin HEX --size S --iters N [--warmup W]
//! tls_floor handshake --port P --pin HEX --iters N [--warmup W]
//! ```
//!
//! Both peers use one rustls server configuration: ring, TLS 1.2 and 1.3, no session tickets,
//! records of at most one DT payload of TPDU 1024 (`max_fragment_size`, as isotcp sizes its
//! records). The client ([`rtt`], [`handshake`]) offers what isotcp offers (X25519 and secp256r1,
//! ring's suites, no resumption, no SNI) and checks the server's certificate against a SHA-256
//! pin, as isotcp does with `iso_tls_config_set_pin_sha256`; it writes each message's records
//! with one `write` and reads the echo into one buffer. The COTP peer answers the CR with a CC
//! and frames its records as DTs (EOT on a message's last). A peer prints "READY <port>" and
//! runs until its stdin reaches EOF.
//!
//! The client prints one line like benches/client.c: "RESULT workload=... contender=floor ...
//! us_per_op=... cpu_s=... allocs=... frees=...", the heap calls counted inside the measured
//! loop by a counting global allocator. `floor_send_recv` is kept apart for callgrind.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring as provider, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, ServerConfig, SignatureScheme,
};

/// The TPDU size of the benchmark, and the DT payload (TPDU - 3) a record must fit.
const TPDU: usize = 1024;
const DT_PAYLOAD: usize = TPDU - 3;
/// rustls' record limit (plaintext + 5-byte header) so a sealed TLS 1.3 record (+17) fills one
/// DT payload: what isotcp sets for TPDU 1024.
const MAX_FRAGMENT: usize = DT_PAYLOAD - 17;
const MAX_MESSAGE: usize = 65536;

// ------------------------------------------------------------------------------------------
// heap calls inside the measured loop

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if COUNTING.load(Ordering::Relaxed) {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// User + system CPU time of this process, in seconds.
fn cpu_now() -> f64 {
    // SAFETY: getrusage writes one rusage into the zeroed struct.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// Times the measured loop and counts its heap calls.
struct Measure {
    start: Instant,
    cpu: f64,
}

impl Measure {
    fn begin() -> Measure {
        ALLOCS.store(0, Ordering::Relaxed);
        FREES.store(0, Ordering::Relaxed);
        let m = Measure {
            start: Instant::now(),
            cpu: cpu_now(),
        };
        COUNTING.store(true, Ordering::Relaxed);
        m
    }

    /// Ends the loop and returns the RESULT fields it measured.
    fn end(self, ops: u64) -> String {
        COUNTING.store(false, Ordering::Relaxed);
        let seconds = self.start.elapsed().as_secs_f64();
        let cpu = cpu_now() - self.cpu;
        format!(
            "iters={ops} seconds={seconds:.6} us_per_op={:.3} cpu_s={cpu:.6} allocs={} frees={}",
            seconds * 1e6 / ops as f64,
            ALLOCS.load(Ordering::Relaxed),
            FREES.load(Ordering::Relaxed)
        )
    }
}

// ------------------------------------------------------------------------------------------
// configuration: what isotcp uses

fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        kx_groups: vec![provider::kx_group::X25519, provider::kx_group::SECP256R1],
        ..provider::default_provider()
    })
}

fn server_config(cert: &str, key: &str) -> Arc<ServerConfig> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| die(&format!("{cert}: {e}")));
    let key = PrivateKeyDer::from_pem_file(key).unwrap_or_else(|e| die(&format!("{key}: {e}")));
    let mut config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .unwrap_or_else(|e| die(&format!("server config: {e}")));
    config.max_fragment_size = Some(MAX_FRAGMENT);
    config.send_tls13_tickets = 0;
    Arc::new(config)
}

/// Accepts the server whose certificate (DER) has this SHA-256, as isotcp's pin does.
#[derive(Debug)]
struct Pin {
    digest: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Pin {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let sha256 = provider::cipher_suite::TLS13_AES_128_GCM_SHA256
            .tls13()
            .expect("a TLS 1.3 suite")
            .common
            .hash_provider;
        if sha256.hash(end_entity.as_ref()).as_ref() == self.digest.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate pin mismatch".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn client_config(pin_hex: &str) -> Arc<ClientConfig> {
    let digest: Vec<u8> = (0..pin_hex.len() / 2)
        .map(|i| u8::from_str_radix(&pin_hex[2 * i..2 * i + 2], 16))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| die(&format!("--pin: {e}")));
    if digest.len() != 32 {
        die("--pin: 64 hex digits");
    }
    let provider = crypto_provider();
    let pin = Pin {
        digest,
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
        .unwrap_or_else(|e| die(&format!("client config: {e}")))
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(pin))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_sni = false;
    config.max_fragment_size = Some(MAX_FRAGMENT);
    Arc::new(config)
}

fn die(msg: &str) -> ! {
    eprintln!("tls_floor: {msg}");
    std::process::exit(1)
}

fn tls_err(e: rustls::Error) -> io::Error {
    io::Error::other(e)
}

/// Feeds `input` to rustls and appends the plaintext it yields to `plain[*have..]`.
fn feed(
    tls: &mut rustls::Connection,
    mut input: &[u8],
    plain: &mut [u8],
    have: &mut usize,
) -> io::Result<()> {
    while !input.is_empty() {
        tls.read_tls(&mut input)?;
        tls.process_new_packets().map_err(tls_err)?;
        loop {
            match tls.reader().read(&mut plain[*have..]) {
                Ok(0) if *have < plain.len() => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(0) => return Err(io::Error::other("more plaintext than the buffer holds")),
                Ok(n) => *have += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// What rustls has to send, appended to `out`.
fn sealed(tls: &mut rustls::Connection, out: &mut Vec<u8>) -> io::Result<()> {
    while tls.wants_write() {
        tls.write_tls(out)?;
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------
// the client: the floor

/// TCP connect and the handshake (the plaintext that arrived with it is discarded); also the
/// seconds the handshake took after the connect.
fn connect(
    port: u16,
    config: &Arc<ClientConfig>,
    rbuf: &mut [u8],
) -> io::Result<(TcpStream, rustls::Connection, f64)> {
    let mut sock = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    sock.set_nodelay(true)?;
    let start = Instant::now();
    let name = ServerName::IpAddress(Ipv4Addr::UNSPECIFIED.into());
    let mut tls: rustls::Connection = ClientConnection::new(config.clone(), name)
        .map_err(tls_err)?
        .into();
    let mut out = Vec::new();
    let (mut plain, mut have) = ([0u8; 4096], 0);
    loop {
        out.clear();
        sealed(&mut tls, &mut out)?;
        if !out.is_empty() {
            sock.write_all(&out)?;
        }
        if !tls.is_handshaking() {
            return Ok((sock, tls, start.elapsed().as_secs_f64()));
        }
        let n = sock.read(rbuf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        feed(&mut tls, &rbuf[..n], &mut plain, &mut have)?;
        have = 0;
    }
}

/// One round trip: the message's records out with one write, the echo read whole.
#[inline(never)]
#[no_mangle]
pub fn floor_send_recv(
    sock: &mut TcpStream,
    tls: &mut rustls::Connection,
    msg: &[u8],
    out: &mut Vec<u8>,
    rbuf: &mut [u8],
    answer: &mut [u8],
) -> io::Result<()> {
    tls.writer().write_all(msg)?;
    out.clear();
    sealed(tls, out)?;
    sock.write_all(out)?;
    let mut got = 0;
    while got < msg.len() {
        let n = sock.read(rbuf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        feed(tls, &rbuf[..n], answer, &mut got)?;
    }
    if got != msg.len() {
        return Err(io::Error::other("echo of another length"));
    }
    Ok(())
}

fn rtt(port: u16, pin: &str, size: usize, iters: u64, warmup: u64) -> io::Result<String> {
    let config = client_config(pin);
    let mut rbuf = vec![0u8; 2 * MAX_MESSAGE + 4096];
    let (mut sock, mut tls, _) = connect(port, &config, &mut rbuf)?;
    // A 64 KiB message is sealed whole before it is written.
    tls.set_buffer_limit(None);
    let msg: Vec<u8> = (0..size).map(|i| (i * 131 + 7) as u8).collect();
    let mut out = Vec::with_capacity(2 * MAX_MESSAGE);
    let mut answer = vec![0u8; 2 * MAX_MESSAGE];
    for _ in 0..warmup {
        floor_send_recv(&mut sock, &mut tls, &msg, &mut out, &mut rbuf, &mut answer)?;
    }
    let m = Measure::begin();
    for _ in 0..iters {
        floor_send_recv(&mut sock, &mut tls, &msg, &mut out, &mut rbuf, &mut answer)?;
    }
    let fields = m.end(iters);
    if answer[..size] != msg[..] {
        die("echo differs");
    }
    let suite = tls
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()));
    Ok(format!(
        "size={size} tpdu={TPDU} suite={} {fields}",
        suite.unwrap_or_default()
    ))
}

fn handshake(port: u16, pin: &str, iters: u64, warmup: u64) -> io::Result<String> {
    let config = client_config(pin);
    let mut rbuf = vec![0u8; 64 * 1024];
    for _ in 0..warmup {
        drop(connect(port, &config, &mut rbuf)?);
    }
    let mut tls_s = 0.0;
    let m = Measure::begin();
    for _ in 0..iters {
        tls_s += connect(port, &config, &mut rbuf)?.2;
    }
    // tls_us_per_op: the handshake alone, on the open TCP connection.
    Ok(format!(
        "{} tls_us_per_op={:.3}",
        m.end(iters),
        tls_s * 1e6 / iters as f64
    ))
}

// ------------------------------------------------------------------------------------------
// the peer

/// A read buffer that hands out whole TPKTs.
struct Tpkts {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Tpkts {
    /// The next TPKT's body (the COTP TPDU), or None at end of stream.
    fn next(&mut self, sock: &mut TcpStream) -> io::Result<Option<std::ops::Range<usize>>> {
        loop {
            let have = &self.buf[self.start..self.end];
            if have.len() >= 4 {
                let len = u16::from_be_bytes([have[2], have[3]]) as usize;
                if have[0] != 3 || len < 7 {
                    return Err(io::Error::other("not a TPKT"));
                }
                if have.len() >= len {
                    let body = self.start + 4..self.start + len;
                    self.start += len;
                    return Ok(Some(body));
                }
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let n = sock.read(&mut self.buf[self.end..])?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }
}

/// `data` as DTs of at most TPDU bytes, EOT on the last, appended to `framed`.
fn frame(data: &[u8], framed: &mut Vec<u8>) {
    let mut chunks = data.chunks(DT_PAYLOAD).peekable();
    while let Some(chunk) = chunks.next() {
        let len = (chunk.len() + 7) as u16;
        let eot = if chunks.peek().is_none() { 0x80 } else { 0 };
        framed.extend_from_slice(&[3, 0, (len >> 8) as u8, len as u8, 2, 0xF0, eot]);
        framed.extend_from_slice(chunk);
    }
}

/// The CC for a CR: DST-REF = the CR's SRC-REF, class 0, the TPDU size asked for.
fn answer_cr(cr: &[u8], sock: &mut TcpStream) -> io::Result<()> {
    if cr.len() < 7 || cr[1] & 0xF0 != 0xE0 {
        return Err(io::Error::other("expected a CR"));
    }
    let mut size_code = 0x0A;
    let mut i = 7;
    while i + 2 <= cr.len() {
        if cr[i] == 0xC0 && cr[i + 1] == 1 && i + 2 < cr.len() {
            size_code = cr[i + 2];
        }
        i += 2 + cr[i + 1] as usize;
    }
    let cc = [
        3, 0, 0, 14, 9, 0xD0, cr[4], cr[5], 0, 1, 0, 0xC0, 1, size_code,
    ];
    sock.write_all(&cc)
}

fn serve_cotp(mut sock: TcpStream, config: Arc<ServerConfig>) -> io::Result<()> {
    let mut input = Tpkts {
        buf: vec![0u8; 4 * MAX_MESSAGE],
        start: 0,
        end: 0,
    };
    let Some(cr) = input.next(&mut sock)? else {
        return Ok(());
    };
    answer_cr(&input.buf[cr], &mut sock)?;
    let mut tls: rustls::Connection = rustls::ServerConnection::new(config)
        .map_err(tls_err)?
        .into();
    tls.set_buffer_limit(None);
    let (mut tsdu, mut out, mut framed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut plain, mut have) = (vec![0u8; 4 * MAX_MESSAGE], 0);
    while let Some(body) = input.next(&mut sock)? {
        let tpdu = &input.buf[body];
        if tpdu[1] != 0xF0 {
            return Ok(()); // a DR or anything else ends the connection
        }
        tsdu.extend_from_slice(&tpdu[3..]);
        if tpdu[2] & 0x80 == 0 {
            continue;
        }
        feed(&mut tls, &tsdu, &mut plain, &mut have)?;
        tsdu.clear();
        if have > 0 {
            tls.writer().write_all(&plain[..have])?;
            have = 0;
        }
        out.clear();
        sealed(&mut tls, &mut out)?;
        if !out.is_empty() {
            framed.clear();
            frame(&out, &mut framed);
            sock.write_all(&framed)?;
        }
    }
    Ok(())
}

fn serve_tcp(mut sock: TcpStream, config: Arc<ServerConfig>, size: usize) -> io::Result<()> {
    let mut tls: rustls::Connection = rustls::ServerConnection::new(config)
        .map_err(tls_err)?
        .into();
    tls.set_buffer_limit(None);
    let mut rbuf = vec![0u8; 4 * MAX_MESSAGE];
    let mut out = Vec::new();
    let (mut plain, mut have) = (vec![0u8; 4 * MAX_MESSAGE], 0);
    loop {
        let n = sock.read(&mut rbuf)?;
        if n == 0 {
            return Ok(());
        }
        feed(&mut tls, &rbuf[..n], &mut plain, &mut have)?;
        if have >= size {
            // One message is whole: its echo goes out with one write.
            tls.writer().write_all(&plain[..size])?;
            plain.copy_within(size..have, 0);
            have -= size;
        }
        out.clear();
        sealed(&mut tls, &mut out)?;
        if !out.is_empty() {
            sock.write_all(&out)?;
        }
    }
}

fn peer(cert: &str, key: &str, mode: &str, size: usize) -> io::Result<()> {
    let config = server_config(cert, key);
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    println!("READY {}", listener.local_addr()?.port());
    io::stdout().flush()?;
    std::thread::spawn(|| {
        let _ = io::copy(&mut io::stdin(), &mut io::sink());
        std::process::exit(0);
    });
    for sock in listener.incoming() {
        let sock = sock?;
        sock.set_nodelay(true)?;
        let result = match mode {
            "cotp" => serve_cotp(sock, config.clone()),
            _ => serve_tcp(sock, config.clone(), size),
        };
        if let Err(e) = result {
            if e.kind() != io::ErrorKind::ConnectionReset
                && e.kind() != io::ErrorKind::UnexpectedEof
            {
                eprintln!("tls_floor peer: connection ended: {e}");
            }
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: tls_floor peer --cert C --key K --mode tcp|cotp [--size S] | \
                 rtt|handshake --port P --pin HEX [--size S] --iters N [--warmup W]";
    let Some(what) = args.first() else { die(usage) };
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(String::as_str)
    };
    let num = |name: &str, default: u64| {
        opt(name).map_or(default, |v| v.parse().unwrap_or_else(|_| die(usage)))
    };
    let size = num("--size", 20) as usize;
    if size == 0 || size > MAX_MESSAGE {
        die(usage);
    }
    let result = match what.as_str() {
        "peer" => {
            let (Some(cert), Some(key)) = (opt("--cert"), opt("--key")) else {
                die(usage)
            };
            peer(cert, key, opt("--mode").unwrap_or("tcp"), size).map(|()| String::new())
        }
        "rtt" | "handshake" => {
            let port = num("--port", 0) as u16;
            let Some(pin) = opt("--pin") else { die(usage) };
            let (iters, warmup) = (num("--iters", 1000).max(1), num("--warmup", 100));
            if what == "rtt" {
                rtt(port, pin, size, iters, warmup)
            } else {
                handshake(port, pin, iters, warmup)
            }
        }
        _ => die(usage),
    };
    match result {
        Ok(fields) if !fields.is_empty() => {
            println!("RESULT workload=tls{what} contender=floor {fields}");
        }
        Ok(_) => {}
        Err(e) => die(&format!("{what}: {e}")),
    }
}
