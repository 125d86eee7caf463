//! [`Net`]: two hosts joined by a cable, made of two network namespaces and a veth pair, and the
//! faults a plant network has (pulled cable, slow link, small MTU, a dead host).
//!
//! Names: the namespaces are `isotcp-field-<pid>-<n>-hmi` and `...-plc`, `<n>` counting the
//! fixtures of this process, so tests of one run and of parallel runs never share one. The veth
//! pair is created directly inside the two namespaces (`ip link add h0 netns A type veth peer
//! name p0 netns B`), so its ends are called `h0` (HMI) and `p0` (PLC) in every fixture and never
//! appear in the machine's own namespace. For the same reason every fixture uses the same
//! addresses ([`HMI_V4`], [`PLC_V4`], [`HMI_V6`], [`PLC_V6`] and the unused [`DEAD_V4`],
//! [`DEAD_V6`]): they exist only inside the fixture's namespaces, and nothing is ever sent to an
//! address outside them. Dropping a [`Net`] kills whatever still runs in its namespaces and deletes
//! them, also when the test panicked; a fixture left behind by a killed test process (its pid is
//! gone) is deleted by the next run.
//!
//! The client side runs on a thread of the test process: [`Net::hmi`] starts a thread, moves it
//! into the HMI namespace with `setns(CLONE_NEWNET)` and runs the test body there. The network
//! namespace is a property of a thread on Linux, so only that thread moves; the sockets it
//! creates belong to the HMI namespace for their whole life, and threads it starts (the library's
//! resolver thread) start in it too. This keeps the library, the `Conn` wrapper and the
//! assertions in one process, with exact codes and timings, instead of a child process that would
//! have to report them back. The PLC side runs as programs under `ip netns exec` (the S7
//! servers), or as a scripted peer on a listener bound inside the PLC namespace
//! ([`Net::in_plc`]). The faults are `ip` and `tc` commands, which can be run from any thread.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

pub const HMI_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 1);
pub const PLC_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 2);
/// In the subnet, assigned to nobody: ARP gets no answer.
pub const DEAD_V4: Ipv4Addr = Ipv4Addr::new(10, 213, 9, 3);
pub const HMI_V6: Ipv6Addr = Ipv6Addr::new(0xfd21, 9, 0, 0, 0, 0, 0, 1);
pub const PLC_V6: Ipv6Addr = Ipv6Addr::new(0xfd21, 9, 0, 0, 0, 0, 0, 2);
/// In the subnet, assigned to nobody: neighbour discovery gets no answer.
pub const DEAD_V6: Ipv6Addr = Ipv6Addr::new(0xfd21, 9, 0, 0, 0, 0, 0, 3);

const PREFIX: &str = "isotcp-field-";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
pub fn note(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// ISOTCP_REQUIRE_FIELD=1: a missing prerequisite fails the test instead of skipping it.
pub fn required() -> bool {
    std::env::var("ISOTCP_REQUIRE_FIELD").is_ok_and(|v| v == "1")
}

/// Skips (prints why, returns None) or, when the suite is required, fails.
pub fn skip<T>(test: &str, why: &str) -> Option<T> {
    if required() {
        panic!("ISOTCP_REQUIRE_FIELD=1 and {why}");
    }
    note(&format!("SKIP field::{test}: {why}"));
    None
}

/// Runs a command to completion; Err(its output) when it fails.
pub fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {args:?}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{args:?} failed ({}): {}", out.status, text.trim()))
    }
}

/// Runs a command that must succeed.
#[track_caller]
pub fn must(args: &[&str]) -> String {
    run(args).unwrap_or_else(|e| panic!("{e}"))
}

/// The names of one fixture: cheap to clone into the test body's thread.
#[derive(Clone, Debug)]
pub struct Link {
    pub hmi: String,
    pub plc: String,
}

impl Link {
    /// Pulls the cable at the PLC's socket: the PLC's end goes down, the HMI's end loses its
    /// carrier. Nothing tells the HMI's TCP: frames it sends are dropped without an error, as on
    /// a real pulled cable.
    pub fn pull(&self) {
        must(&["ip", "-n", &self.plc, "link", "set", "p0", "down"]);
    }

    /// Plugs the cable back in.
    pub fn plug(&self) {
        must(&["ip", "-n", &self.plc, "link", "set", "p0", "up"]);
    }

    /// Shapes what the PLC sends to `rate` (tc syntax, e.g. "384kbit") with a 4 KiB bucket.
    pub fn slow_plc_egress(&self, rate: &str) {
        must(&[
            "ip", "netns", "exec", &self.plc, "tc", "qdisc", "replace", "dev", "p0", "root", "tbf",
            "rate", rate, "burst", "4kb", "latency", "2s",
        ]);
    }

    /// Sets the MTU of both ends of the cable.
    pub fn mtu(&self, mtu: u32) {
        let m = mtu.to_string();
        must(&["ip", "-n", &self.hmi, "link", "set", "h0", "mtu", &m]);
        must(&["ip", "-n", &self.plc, "link", "set", "p0", "mtu", &m]);
    }

    /// Removes an address from the PLC's end (the PLC host is gone, the cable is still in).
    pub fn remove_plc_addr(&self, addr: IpAddr) {
        let a = match addr {
            IpAddr::V4(a) => format!("{a}/24"),
            IpAddr::V6(a) => format!("{a}/64"),
        };
        must(&["ip", "-n", &self.plc, "addr", "del", &a, "dev", "p0"]);
    }

    /// `ip netns exec <plc> args...`, as a command to spawn.
    pub fn plc_command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.plc, program]);
        c
    }

    /// The established TCP connections in the PLC namespace whose local port is `port`.
    pub fn plc_established(&self, port: u16) -> usize {
        let out = must(&[
            "ip",
            "netns",
            "exec",
            &self.plc,
            "ss",
            "-Htn",
            "state",
            "established",
        ]);
        // Without a state column: Recv-Q Send-Q Local:Port Peer:Port.
        out.lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(2)
                    .is_some_and(|local| local.ends_with(&format!(":{port}")))
            })
            .count()
    }

    /// `ss -tni` of the PLC namespace's established connections (MSS, retransmits, ...).
    pub fn plc_tcp_info(&self) -> String {
        must(&[
            "ip",
            "netns",
            "exec",
            &self.plc,
            "ss",
            "-Htni",
            "state",
            "established",
        ])
    }
}

/// Two network namespaces joined by a veth pair; deleted on drop.
pub struct Net {
    pub link: Link,
}

impl Net {
    /// The fixture for `test`, or None (after a SKIP line) when this machine cannot make one and
    /// ISOTCP_REQUIRE_FIELD is not 1.
    pub fn new(test: &str) -> Option<Net> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip(test, "not root (network namespaces need CAP_SYS_ADMIN)");
        }
        if let Err(e) = run(&["ip", "netns", "list"]) {
            return skip(test, &format!("`ip netns` is not available: {e}"));
        }
        remove_orphans();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("{PREFIX}{}-{n}", std::process::id());
        let net = Net {
            link: Link {
                hmi: format!("{base}-hmi"),
                plc: format!("{base}-plc"),
            },
        };
        match net.build() {
            Ok(()) => Some(net),
            Err(e) => skip(test, &format!("cannot build the test network: {e}")),
        }
    }

    fn build(&self) -> Result<(), String> {
        let (h, p) = (&self.link.hmi, &self.link.plc);
        let v4 = |a: Ipv4Addr| format!("{a}/24");
        let v6 = |a: Ipv6Addr| format!("{a}/64");
        let steps: Vec<Vec<String>> = vec![
            vec!["ip".into(), "netns".into(), "add".into(), h.clone()],
            vec!["ip".into(), "netns".into(), "add".into(), p.clone()],
            str_args(&[
                "ip", "link", "add", "h0", "netns", h, "type", "veth", "peer", "name", "p0",
                "netns", p,
            ]),
            str_args(&["ip", "-n", h, "addr", "add", &v4(HMI_V4), "dev", "h0"]),
            str_args(&["ip", "-n", p, "addr", "add", &v4(PLC_V4), "dev", "p0"]),
            str_args(&[
                "ip",
                "-n",
                h,
                "addr",
                "add",
                &v6(HMI_V6),
                "dev",
                "h0",
                "nodad",
            ]),
            str_args(&[
                "ip",
                "-n",
                p,
                "addr",
                "add",
                &v6(PLC_V6),
                "dev",
                "p0",
                "nodad",
            ]),
            str_args(&["ip", "-n", h, "link", "set", "lo", "up"]),
            str_args(&["ip", "-n", p, "link", "set", "lo", "up"]),
            str_args(&["ip", "-n", h, "link", "set", "h0", "up"]),
            str_args(&["ip", "-n", p, "link", "set", "p0", "up"]),
        ];
        for s in steps {
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            run(&refs)?;
        }
        // Linux drops the IPv6 addresses of an interface set down; a pulled and plugged cable
        // must leave them, as a real NIC's carrier loss does.
        for ns in [h, p] {
            in_namespace(ns, Duration::from_secs(5), self.link(), |_| {
                fs::write("/proc/sys/net/ipv6/conf/all/keep_addr_on_down", "1")
                    .map_err(|e| format!("keep_addr_on_down: {e}"))
            })?;
        }
        Ok(())
    }

    /// A clone of the names, for the test body's thread.
    pub fn link(&self) -> Link {
        self.link.clone()
    }

    /// Runs `body` on a thread inside the HMI namespace and returns its result; its panic fails
    /// the test with its own message, and running past `limit` fails it too (a hung call then
    /// fails its test instead of the whole run).
    #[track_caller]
    pub fn hmi<R: Send + 'static>(
        &self,
        limit: Duration,
        body: impl FnOnce(Link) -> R + Send + 'static,
    ) -> R {
        in_namespace(&self.link.hmi, limit, self.link(), body)
    }

    /// Runs `f` on a thread inside the PLC namespace (to bind a listener there: the socket stays
    /// in that namespace whichever thread uses it later).
    #[track_caller]
    pub fn in_plc<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        in_namespace(&self.link.plc, Duration::from_secs(10), self.link(), |_| {
            f()
        })
    }
}

fn str_args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[track_caller]
fn in_namespace<R: Send + 'static>(
    ns: &str,
    limit: Duration,
    link: Link,
    body: impl FnOnce(Link) -> R + Send + 'static,
) -> R {
    let path = PathBuf::from("/var/run/netns").join(ns);
    let file = fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let (tx, rx) = mpsc::channel();
    let handle = thread::Builder::new()
        .name(format!("in-{ns}"))
        .spawn(move || {
            // SAFETY: a valid descriptor of a network namespace; affects this thread only.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns into {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
            drop(file);
            let _ = tx.send(body(link));
        })
        .expect("spawn a thread");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("the body ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("test body in {ns} did not finish within {limit:?}")
        }
    }
}

/// Kills the processes left in namespace `ns`, then deletes it.
fn delete_namespace(ns: &str) {
    if let Ok(pids) = run(&["ip", "netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: plain kill(2); these processes run in the fixture's own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = run(&["ip", "netns", "del", ns]);
}

/// Deletes fixtures whose process is gone (a test run that was killed had no chance to).
fn remove_orphans() {
    let Ok(list) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            delete_namespace(name);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        delete_namespace(&self.link.plc);
        delete_namespace(&self.link.hmi);
    }
}
