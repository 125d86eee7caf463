//! Running a program from a test: both outputs captured (drained on their own threads, so a
//! chatty program never blocks on a full pipe), stdin closed, and a time limit after which the
//! program is killed, so a hang fails the test instead of stalling the suite.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a program did. `status` is None when it was killed at the time limit.
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// stdout then stderr, and a line saying so when the program was killed.
    pub fn text(&self) -> String {
        let mut t = format!("{}{}", self.stdout, self.stderr);
        if self.status.is_none() {
            t.push_str(&format!("\n(killed after {:?})", self.elapsed));
        }
        t
    }
}

/// Runs `cmd` to completion, or kills it after `limit`.
pub fn run_limited(cmd: &mut Command, limit: Duration) -> Finished {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut v = Vec::new();
            let _ = pipe.read_to_end(&mut v);
            String::from_utf8_lossy(&v).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    Finished {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// As [`run_limited`], for tests that want a plain `Output`; running past `limit` fails the
/// test with whatever the program printed.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let shown = format!("{cmd:?}");
    let done = run_limited(cmd, limit);
    let Some(status) = done.status else {
        panic!(
            "{shown} did not finish within {limit:?}; output:\n{}",
            done.text()
        );
    };
    std::process::Output {
        status,
        stdout: done.stdout.into_bytes(),
        stderr: done.stderr.into_bytes(),
    }
}

/// stdout then stderr of an `Output`, as text.
pub fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `cmd`, which must succeed within `limit`; returns its output. A failure shows the
/// command, its exit status and everything it printed.
pub fn run_ok(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let shown = format!("{cmd:?}");
    let out = output_within(cmd, limit);
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}",
        out.status,
        text(&out)
    );
    out
}

/// Cargo's target directory, from the running test binary (`<target>/<profile>/deps/<name>`).
pub fn target_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}
