//! The installed C library, used the way C and C++ projects use it:
//!
//! - `make install` (GNUmakefile) into a temporary prefix, and with DESTDIR into a staging
//!   tree: the files, the symlinks, the SONAME, the pkg-config and CMake files;
//! - pkg-config: `examples-c/` programs built with `pkg-config --cflags --libs isotcp` (shared),
//!   `pkg-config --static ... -static` (fully static) and `--variable=static_libs` (libisotcp.a
//!   with the shared C library), checked with `readelf -d` and run;
//! - CMake: `tests/install/CMakeLists.txt` (find_package(isotcp CONFIG REQUIRED), imported targets
//!   isotcp::isotcp and isotcp::isotcp_static) built against the DESTDIR staging tree (so the
//!   package must be relocatable) and run, including the C++ wrapper test;
//! - `make uninstall` removes every installed file.
//!
//! `make install` runs `cargo build --release --locked` with this test's target directory (the
//! outer `cargo test` does not hold the build lock while tests run). Everything else goes to
//! `<target>/install-test/`. Needs make, gcc, g++, readelf, pkg-config and cmake (.ci/setup-packaging
//! installs the last three); a missing one is a SKIP unless ISOTCP_REQUIRE_PEERS=1.

mod common;

use common::process::{output_within as run_limited, run_ok, target_dir, text};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAJOR: &str = env!("CARGO_PKG_VERSION_MAJOR");

const TOOLS: &[&str] = &["make", "gcc", "g++", "readelf", "pkg-config", "cmake"];

const C_FLAGS: &[&str] = &[
    "-std=c11",
    "-D_POSIX_C_SOURCE=200809L",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O1",
    "-g",
];

/// The prefix the staging install is made for (never written to: DESTDIR is prepended).
const STAGED_PREFIX: &str = "/opt/isotcp";

// ---------------------------------------------------------------------------------------------
// Tools, processes
// ---------------------------------------------------------------------------------------------

/// True when every tool runs; otherwise a SKIP message, or a panic when ISOTCP_REQUIRE_PEERS=1.
fn tools_present() -> bool {
    let missing: Vec<&str> = TOOLS
        .iter()
        .copied()
        .filter(|tool| {
            !Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "{} not found (bash .ci/setup-packaging installs them)",
        missing.join(", ")
    );
    if std::env::var("ISOTCP_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("{msg}; ISOTCP_REQUIRE_PEERS=1 makes this a failure");
    }
    eprintln!("SKIP: {msg}");
    false
}

fn stdout_of(cmd: &mut Command) -> String {
    String::from_utf8(run_ok(cmd, Duration::from_secs(60)).stdout).expect("UTF-8 output")
}

/// A make command for the top-level GNUmakefile, with this test's target directory.
fn make(target: &str) -> Command {
    let mut cmd = Command::new("make");
    cmd.arg("--no-print-directory")
        .arg("-C")
        .arg(ROOT)
        .arg(target)
        .env("CARGO_TARGET_DIR", target_dir())
        .env(
            "CARGO",
            std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into()),
        )
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    cmd
}

// ---------------------------------------------------------------------------------------------
// The installation (once per test run)
// ---------------------------------------------------------------------------------------------

struct Installed {
    work: PathBuf,
    /// `make install PREFIX=<work>/prefix`.
    prefix: PathBuf,
    /// `make install PREFIX=/opt/isotcp DESTDIR=<work>/stage`: the tree is `<work>/stage/opt/isotcp`.
    stage: PathBuf,
}

impl Installed {
    fn staged_prefix(&self) -> PathBuf {
        self.stage.join(STAGED_PREFIX.trim_start_matches('/'))
    }
}

/// The version in file names (without a pre-release or build suffix), as the GNUmakefile does.
fn version_core() -> &'static str {
    VERSION.split(['-', '+']).next().unwrap()
}

/// Installs once; None when tools are missing (SKIP).
fn installed() -> Option<&'static Installed> {
    static INSTALLED: OnceLock<Option<Installed>> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    INSTALLED
        .get_or_init(|| {
            if !tools_present() {
                return None;
            }
            let work = target_dir().join("install-test");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work).unwrap();
            let prefix = work.join("prefix");
            let stage = work.join("stage");
            let limit = Duration::from_secs(1200);
            let out = run_ok(
                make("install").arg(format!("PREFIX={}", prefix.display())),
                limit,
            );
            eprintln!("make install:\n{}", text(&out));
            run_ok(
                make("install")
                    .arg(format!("PREFIX={STAGED_PREFIX}"))
                    .arg(format!("DESTDIR={}", stage.display())),
                limit,
            );
            Some(Installed {
                work,
                prefix,
                stage,
            })
        })
        .as_ref()
}

// ---------------------------------------------------------------------------------------------
// Checks on binaries
// ---------------------------------------------------------------------------------------------

fn readelf_dynamic(file: &Path) -> String {
    let out = run_limited(
        Command::new("readelf").arg("-d").arg(file),
        Duration::from_secs(60),
    );
    text(&out)
}

/// The NEEDED entries and the SONAME of an ELF file.
fn needed_and_soname(file: &Path) -> (Vec<String>, Option<String>) {
    let dynamic = readelf_dynamic(file);
    let value = |line: &str| {
        let start = line.find('[')? + 1;
        let end = line[start..].find(']')? + start;
        Some(line[start..end].to_string())
    };
    let needed = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(value)
        .collect();
    let soname = dynamic
        .lines()
        .find(|l| l.contains("(SONAME)"))
        .and_then(value);
    (needed, soname)
}

fn soname() -> String {
    format!("libisotcp.so.{MAJOR}")
}

/// A program linked against the shared library: NEEDS libisotcp.so.<major>, never the
/// unversioned name, and finds it through its RUNPATH in `libdir`.
fn assert_links_shared(program: &Path, libdir: &Path) {
    let (needed, _) = needed_and_soname(program);
    assert!(
        needed.contains(&soname()),
        "{} does not NEED {}: {needed:?}",
        program.display(),
        soname()
    );
    assert!(
        !needed.iter().any(|n| n == "libisotcp.so"),
        "{} NEEDs the unversioned libisotcp.so: {needed:?}",
        program.display()
    );
    let dynamic = readelf_dynamic(program);
    assert!(
        dynamic.contains(&format!("[{}]", libdir.display())),
        "{} has no RUNPATH {}:\n{dynamic}",
        program.display(),
        libdir.display()
    );
}

/// A program with isotcp linked in: no libisotcp among its NEEDED entries.
fn assert_links_static(program: &Path) {
    let (needed, _) = needed_and_soname(program);
    assert!(
        !needed.iter().any(|n| n.starts_with("libisotcp")),
        "{} NEEDs a shared isotcp: {needed:?}",
        program.display()
    );
}

// ---------------------------------------------------------------------------------------------
// Running the examples
// ---------------------------------------------------------------------------------------------

/// A program run without the test harness's LD_LIBRARY_PATH, so the RUNPATH decides which
/// libisotcp is loaded.
fn program(path: &Path) -> Command {
    let mut cmd = Command::new(path);
    cmd.env_remove("LD_LIBRARY_PATH");
    cmd
}

/// Runs the demo (both sides in one process): it must end with "demo finished". When
/// `shared_from` is given, the dynamic loader must have loaded libisotcp from that directory.
fn run_demo(demo: &Path, shared_from: Option<&Path>) {
    let mut cmd = program(demo);
    if shared_from.is_some() && cfg!(target_env = "gnu") {
        cmd.env("LD_DEBUG", "libs");
    }
    let out = run_limited(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("demo finished"),
        "{} failed ({}):\n{}",
        demo.display(),
        out.status,
        text(&out)
    );
    if let (Some(dir), true) = (shared_from, cfg!(target_env = "gnu")) {
        let loaded = format!("init: {}", dir.join(soname()).display());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&loaded),
            "{} did not load {}:\n{}",
            demo.display(),
            dir.join(soname()).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `s7_server` running until dropped (it stops when its stdin closes).
struct Server {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
}

impl Server {
    fn start(bin: &Path) -> Server {
        let mut child = program(bin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = line.strip_prefix("READY ") {
                        return Server {
                            child,
                            stdin,
                            port: port.trim().parse().expect("READY <port>"),
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} printed no READY line", bin.display());
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads DB1.DBB0..15 from `server` with `s7_read`: 00 01 02 ... 0F.
fn run_s7_read(s7_read: &Path, server: &Server) {
    let out = run_limited(
        program(s7_read)
            .arg("127.0.0.1")
            .arg("--port")
            .arg(server.port.to_string())
            .arg("--size")
            .arg("16"),
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.contains("DB1.DBB0, 16 bytes:")
            && stdout.contains("00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F"),
        "{} failed ({}):\n{}",
        s7_read.display(),
        out.status,
        text(&out)
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The files of one installed tree.
fn check_tree(prefix: &Path, prefix_in_files: &str) {
    let lib = prefix.join("lib");
    let real = format!("libisotcp.so.{}", version_core());

    let real_path = lib.join(&real);
    let meta = std::fs::symlink_metadata(&real_path)
        .unwrap_or_else(|e| panic!("{}: {e}", real_path.display()));
    assert!(
        meta.file_type().is_file(),
        "{} is not a file",
        real_path.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o755,
            "{}",
            real_path.display()
        );
    }
    for link in [soname(), "libisotcp.so".to_string()] {
        let target = std::fs::read_link(lib.join(&link))
            .unwrap_or_else(|e| panic!("{}: not a symlink: {e}", lib.join(&link).display()));
        assert_eq!(target, Path::new(&real), "{link} points elsewhere");
    }
    let (_, so) = needed_and_soname(&real_path);
    assert_eq!(
        so.as_deref(),
        Some(soname().as_str()),
        "SONAME of {}",
        real_path.display()
    );

    let archive = std::fs::read(lib.join("libisotcp.a")).unwrap();
    assert!(
        archive.starts_with(b"!<arch>\n"),
        "libisotcp.a is not an archive"
    );

    for header in ["isotcp.h", "isotcp.hpp"] {
        assert_eq!(
            read(&prefix.join("include").join(header)),
            read(&Path::new(ROOT).join("include").join(header)),
            "installed {header} differs from include/{header}"
        );
    }

    let pc = read(&lib.join("pkgconfig/isotcp.pc"));
    for line in [
        format!("prefix={prefix_in_files}"),
        "libdir=${prefix}/lib".to_string(),
        "includedir=${prefix}/include".to_string(),
        format!("Version: {VERSION}"),
        "Libs: -L${libdir} -lisotcp".to_string(),
        "Libs.private: -lpthread -ldl -lm".to_string(),
        "Cflags: -I${includedir}".to_string(),
    ] {
        assert!(
            pc.lines().any(|l| l == line),
            "isotcp.pc lacks `{line}`:\n{pc}"
        );
    }

    let cmake = lib.join("cmake/isotcp");
    let config = read(&cmake.join("isotcpConfig.cmake"));
    let version = read(&cmake.join("isotcpConfigVersion.cmake"));
    for (name, body) in [("isotcpConfig", &config), ("isotcpConfigVersion", &version)] {
        assert!(!body.contains('@'), "{name}.cmake has an unreplaced @VAR@");
        assert!(
            !body.contains(prefix_in_files),
            "{name}.cmake holds an absolute path; it must find the tree relative to itself"
        );
    }
    assert!(config.contains("add_library(isotcp::isotcp SHARED IMPORTED)"));
    assert!(config.contains("add_library(isotcp::isotcp_static STATIC IMPORTED)"));
    assert!(config.contains(&format!("IMPORTED_SONAME \"{}\"", soname())));
    assert!(version.contains(&format!("set(PACKAGE_VERSION \"{}\")", version_core())));
}

#[test]
fn installed_files() {
    let Some(inst) = installed() else { return };
    // The library cargo built has the SONAME too.
    let built = target_dir().join("release/libisotcp.so");
    assert_eq!(
        needed_and_soname(&built).1.as_deref(),
        Some(soname().as_str()),
        "SONAME of {}",
        built.display()
    );

    check_tree(&inst.prefix, &inst.prefix.display().to_string());
    // DESTDIR: the same tree under the staging root, with the final prefix in the files and
    // the staging root nowhere.
    check_tree(&inst.staged_prefix(), STAGED_PREFIX);
    let stage = inst.stage.display().to_string();
    for file in [
        "lib/pkgconfig/isotcp.pc",
        "lib/cmake/isotcp/isotcpConfig.cmake",
        "lib/cmake/isotcp/isotcpConfigVersion.cmake",
    ] {
        assert!(
            !read(&inst.staged_prefix().join(file)).contains(&stage),
            "{file} mentions DESTDIR"
        );
    }
}

#[test]
fn uninstall_removes_every_file() {
    let Some(inst) = installed() else { return };
    let prefix = inst.work.join("uninstall");
    let arg = format!("PREFIX={}", prefix.display());
    run_ok(make("install").arg(&arg), Duration::from_secs(1200));
    assert!(prefix.join("lib/libisotcp.a").exists());
    run_ok(make("uninstall").arg(&arg), Duration::from_secs(60));
    let mut left = Vec::new();
    let mut dirs = vec![prefix.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                dirs.push(entry.path());
            } else {
                left.push(entry.path());
            }
        }
    }
    assert!(left.is_empty(), "left after make uninstall: {left:?}");
}

#[test]
fn pkg_config_builds_and_runs() {
    let Some(inst) = installed() else { return };
    let libdir = inst.prefix.join("lib");
    let out = inst.work.join("pkg-config");
    std::fs::create_dir_all(&out).unwrap();
    let pkg = |args: &[&str]| -> Vec<String> {
        stdout_of(
            Command::new("pkg-config")
                .args(args)
                .env("PKG_CONFIG_PATH", libdir.join("pkgconfig")),
        )
        .split_whitespace()
        .map(str::to_string)
        .collect()
    };
    assert_eq!(pkg(&["--modversion", "isotcp"]), [VERSION]);

    let shared = pkg(&["--cflags", "--libs", "isotcp"]);
    assert!(shared.contains(&"-lisotcp".to_string()), "{shared:?}");
    let fully_static = pkg(&["--static", "--cflags", "--libs", "isotcp"]);
    for lib in ["-lisotcp", "-lpthread", "-ldl", "-lm"] {
        assert!(fully_static.contains(&lib.to_string()), "{fully_static:?}");
    }
    let cflags = pkg(&["--cflags", "isotcp"]);
    let static_libs = pkg(&["--variable=static_libs", "isotcp"]);
    assert_eq!(
        static_libs.first().map(PathBuf::from),
        Some(libdir.join("libisotcp.a")),
        "{static_libs:?}"
    );

    let build = |name: &str, sources: &[&str], pre: &[String], link: &[String]| -> PathBuf {
        let bin = out.join(name);
        run_ok(
            Command::new("gcc")
                .args(C_FLAGS)
                .args(pre)
                .arg("-o")
                .arg(&bin)
                .args(sources.iter().map(|s| Path::new(ROOT).join(s)))
                .args(link),
            Duration::from_secs(300),
        );
        bin
    };
    let demo_src = ["examples-c/demo.c", "examples-c/s7_responder.c"];
    let server_src = ["examples-c/s7_server.c", "examples-c/s7_responder.c"];
    let read_src = ["examples-c/s7_read.c"];

    // Shared: -lisotcp, found at run time through the RUNPATH.
    let mut shared_link = shared.clone();
    shared_link.push(format!("-Wl,-rpath,{}", libdir.display()));
    shared_link.push("-pthread".into());
    let demo_shared = build("demo-shared", &demo_src, &[], &shared_link);
    let read_shared = build("s7_read-shared", &read_src, &[], &shared_link);
    assert_links_shared(&demo_shared, &libdir);
    assert_links_shared(&read_shared, &libdir);

    // Fully static: pkg-config --static adds Libs.private.
    let static_pre = vec!["-static".to_string()];
    let demo_static = build("demo-static", &demo_src, &static_pre, &fully_static);
    let read_static = build("s7_read-static", &read_src, &static_pre, &fully_static);
    let server_static = build("s7_server-static", &server_src, &static_pre, &fully_static);
    for bin in [&demo_static, &read_static, &server_static] {
        assert_links_static(bin);
        let dynamic = readelf_dynamic(bin);
        assert!(
            !dynamic.contains("(NEEDED)"),
            "{} is not fully static:\n{dynamic}",
            bin.display()
        );
    }

    // libisotcp.a with the shared C library.
    let demo_archive = build("demo-archive", &demo_src, &cflags, &static_libs);
    assert_links_static(&demo_archive);

    run_demo(&demo_shared, Some(&libdir));
    run_demo(&demo_static, None);
    run_demo(&demo_archive, None);
    let server = Server::start(&server_static);
    run_s7_read(&read_shared, &server);
    run_s7_read(&read_static, &server);
}

#[test]
fn cmake_package_builds_and_runs() {
    let Some(inst) = installed() else { return };
    // The staging tree: the package must find everything relative to itself.
    let prefix = inst.staged_prefix();
    let libdir = prefix.join("lib");
    let build = inst.work.join("cmake-build");
    let configure = run_ok(
        Command::new("cmake")
            .arg("-S")
            .arg(Path::new(ROOT).join("tests/install"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!("-DISOTCP_EXPECT_VERSION={}", version_core()))
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL"),
        Duration::from_secs(300),
    );
    let configure = text(&configure);
    assert!(
        configure.contains(&format!(
            "isotcp {} from {}",
            version_core(),
            libdir.join("cmake/isotcp").display()
        )),
        "cmake found another isotcp:\n{configure}"
    );
    assert!(
        !configure.contains("CMake Warning"),
        "cmake warned:\n{configure}"
    );
    run_ok(
        Command::new("cmake")
            .arg("--build")
            .arg(&build)
            .arg("--parallel")
            .arg("2")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS")
            .env_remove("MAKELEVEL"),
        Duration::from_secs(600),
    );

    let bin = |name: &str| build.join(name);
    assert_links_shared(&bin("demo_shared"), &libdir);
    assert_links_shared(&bin("s7_read_shared"), &libdir);
    assert_links_shared(&bin("s7_server_shared"), &libdir);
    for name in [
        "demo_static",
        "s7_read_static",
        "s7_server_static",
        "wrapper_static",
    ] {
        assert_links_static(&bin(name));
    }

    run_demo(&bin("demo_shared"), Some(&libdir));
    run_demo(&bin("demo_static"), None);
    let server = Server::start(&bin("s7_server_shared"));
    run_s7_read(&bin("s7_read_shared"), &server);
    run_s7_read(&bin("s7_read_static"), &server);
    drop(server);
    let server = Server::start(&bin("s7_server_static"));
    run_s7_read(&bin("s7_read_shared"), &server);
    drop(server);

    let out = run_limited(
        &mut program(&bin("wrapper_static")),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("checks passed"),
        "wrapper_static failed ({}):\n{}",
        out.status,
        text(&out)
    );
}
