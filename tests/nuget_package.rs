//! The NuGet package of the C# binding (`packaging/nuget_pack.py`, metadata from
//! `bindings/csharp/Isotcp.csproj`):
//!
//! - the package is built from the release library (`<target>/release/libisotcp.so`, built here
//!   when missing) and the Windows DLL of `.ci/windows` (`$ISOTCP_WINDOWS_TARGET_DIR`, default
//!   `<target>/windows`, `x86_64-pc-windows-gnu/release/isotcp.dll`);
//! - its layout is exactly what NuGet and .NET expect: `lib/netstandard2.0/Isotcp.dll` (+ XML
//!   docs), `runtimes/linux-x64/native/libisotcp.so`, `runtimes/win-x64/native/isotcp.dll`, the
//!   README, both licence texts, the .nuspec at the top, and the Open Packaging Conventions
//!   parts (`[Content_Types].xml` covering every file, `_rels/.rels` pointing at the manifest and
//!   the core properties, which exist);
//! - the .nuspec: id, version = the crate's, authors, licence expression = Cargo.toml's,
//!   readme, description, the .NET Standard 2.0 dependency group; the project file agrees;
//! - the native files are what they claim: an x86-64 ELF shared object, a PE32+ x86-64 DLL;
//! - a program compiled with `mcs` against the packaged assembly alone, with the packaged
//!   `libisotcp.so` copied next to it (what a .NET build does with runtimes/<rid>/native), runs
//!   under Mono without LD_LIBRARY_PATH against python-snap7 3.3.0's server and reads DB1;
//!   Mono's log must show the library loaded from the program's directory.
//!
//! The Windows DLL exists only after `.ci/windows` (which runs after `cargo test` in `.ci/run`):
//! without it the package is built without `runtimes/win-x64` and that part is a SKIP, unless
//! ISOTCP_REQUIRE_NUGET_WINDOWS=1 (the NuGet stage of `.ci/run` sets it). Missing mcs, mono,
//! python3 or the python-snap7 venv: a SKIP, or a failure when ISOTCP_REQUIRE_PEERS=1.
//! Outputs go to `<target>/nuget-test/`.

#![cfg(not(miri))] // runs mcs, mono, python and cargo

mod common;

use common::process::{output_within, run_ok, target_dir, text};
use common::py3_server::{self, Py3Server, DB1_FIRST_16_HEX};

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = env!("CARGO_PKG_VERSION");
const LICENSE: &str = env!("CARGO_PKG_LICENSE");
const ID: &str = "Isotcp";

/// Writes past the test harness's output capture, so SKIP lines show in a plain `cargo test`.
fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn require(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1")
}

fn runs(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text of the first `<tag ...>text</tag>` in `xml` (the test's own XML is simple).
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = xml.find(&format!("<{tag}"))?;
    let after = &xml[open + tag.len() + 1..];
    if !after.starts_with(['>', ' ']) {
        return element(after, tag);
    }
    let start = after.find('>')? + 1;
    let end = after[start..].find(&format!("</{tag}>"))?;
    Some(after[start..start + end].trim())
}

/// The exported functions: the `iso_*` names followed by `(` in include/isotcp.h, except
/// function-pointer typedefs (`(*iso_...)(`).
fn header_functions() -> BTreeSet<String> {
    let header = read(&Path::new(ROOT).join("include/isotcp.h"));
    let mut names = BTreeSet::new();
    for (start, _) in header.match_indices("iso_") {
        let before = header[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*') {
            continue;
        }
        let rest = &header[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if rest[end..].trim_start_matches(' ').starts_with('(') {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

/// The path of the Windows DLL of `.ci/windows`, when it exists.
fn windows_dll(target: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("ISOTCP_WINDOWS_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("windows"));
    let dll = dir.join("x86_64-pc-windows-gnu/release/isotcp.dll");
    dll.is_file().then_some(dll)
}

/// The names in a zip file, through Python's zipfile (no zip crate among the dev-dependencies).
fn zip_names(package: &Path) -> Vec<String> {
    let out = run_ok(
        Command::new("python3")
            .arg("-c")
            .arg("import sys, zipfile\nfor n in zipfile.ZipFile(sys.argv[1]).namelist(): print(n)")
            .arg(package),
        Duration::from_secs(60),
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn nuget_package_has_the_layout_and_runs_under_mono() {
    let missing: Vec<&str> = ["mcs", "mono", "python3"]
        .into_iter()
        .filter(|t| !runs(t))
        .collect();
    let python = py3_server::python();
    let why = if !missing.is_empty() {
        Some(format!(
            "{} not found (.ci/setup-bindings installs Mono)",
            missing.join(", ")
        ))
    } else if !python.exists() {
        Some(format!(
            "no python-snap7 venv at {} (set ISOTCP_VENV_PY3)",
            python.display()
        ))
    } else {
        None
    };
    if let Some(why) = why {
        if require("ISOTCP_REQUIRE_PEERS") {
            panic!("{why}; ISOTCP_REQUIRE_PEERS=1 makes this a failure");
        }
        note(&format!("SKIP nuget_package: {why}"));
        return;
    }

    let target = target_dir();
    let work = target.join("nuget-test");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();

    // The release library (.ci/test builds it; a plain `cargo test` may not have).
    let linux_so = target.join("release/libisotcp.so");
    if !linux_so.is_file() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        run_ok(
            Command::new(cargo)
                .current_dir(ROOT)
                .args(["build", "--release", "--locked", "--lib"])
                .env("CARGO_TARGET_DIR", &target),
            Duration::from_secs(1200),
        );
    }
    let win_dll = windows_dll(&target);
    if win_dll.is_none() {
        let why = "no isotcp.dll from .ci/windows: the package is built without runtimes/win-x64";
        assert!(
            !require("ISOTCP_REQUIRE_NUGET_WINDOWS"),
            "{why}; ISOTCP_REQUIRE_NUGET_WINDOWS=1 makes this a failure"
        );
        note(&format!("SKIP nuget_package (win-x64 part): {why}"));
    }

    // Pack.
    let mut pack = Command::new("python3");
    pack.arg(Path::new(ROOT).join("packaging/nuget_pack.py"))
        .arg("--out")
        .arg(work.join("out"))
        .arg("--linux-x64")
        .arg(&linux_so);
    match &win_dll {
        Some(dll) => pack.arg("--win-x64").arg(dll),
        None => pack
            .arg("--win-x64")
            .arg(work.join("absent.dll"))
            .arg("--allow-missing-win-x64"),
    };
    let packed = run_ok(&mut pack, Duration::from_secs(300));
    let package = work.join(format!("out/{ID}.{VERSION}.nupkg"));
    assert_eq!(
        String::from_utf8_lossy(&packed.stdout).trim(),
        package.display().to_string(),
        "{}",
        text(&packed)
    );

    // The layout: exactly these files.
    let names = zip_names(&package);
    let psmdcp: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("package/services/metadata/core-properties/"))
        .collect();
    assert_eq!(psmdcp.len(), 1, "core properties parts: {names:?}");
    assert!(psmdcp[0].ends_with(".psmdcp"), "{}", psmdcp[0]);
    let mut expected: BTreeSet<String> = [
        "[Content_Types].xml",
        "_rels/.rels",
        "Isotcp.nuspec",
        "README.md",
        "LICENSE-MIT",
        "LICENSE-APACHE",
        "lib/netstandard2.0/Isotcp.dll",
        "lib/netstandard2.0/Isotcp.xml",
        "runtimes/linux-x64/native/libisotcp.so",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    expected.insert(psmdcp[0].clone());
    if win_dll.is_some() {
        expected.insert("runtimes/win-x64/native/isotcp.dll".into());
    }
    let listed: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(listed, expected, "the package's files");
    assert_eq!(listed.len(), names.len(), "a name appears twice: {names:?}");

    let x = work.join("x");
    run_ok(
        Command::new("python3")
            .args(["-m", "zipfile", "-e"])
            .arg(&package)
            .arg(&x),
        Duration::from_secs(60),
    );

    // The manifest.
    let nuspec = read(&x.join("Isotcp.nuspec"));
    assert!(
        nuspec.contains(
            "<package xmlns=\"http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd\">"
        ),
        "{nuspec}"
    );
    assert_eq!(element(&nuspec, "id"), Some(ID), "{nuspec}");
    assert_eq!(element(&nuspec, "version"), Some(VERSION), "{nuspec}");
    assert_eq!(
        element(&nuspec, "authors"),
        Some("The isotcp authors"),
        "{nuspec}"
    );
    assert!(
        nuspec.contains(&format!("<license type=\"expression\">{LICENSE}</license>")),
        "the licence expression is not Cargo.toml's {LICENSE}:\n{nuspec}"
    );
    assert_eq!(element(&nuspec, "readme"), Some("README.md"), "{nuspec}");
    assert!(
        element(&nuspec, "description").is_some_and(|d| d.contains("ISO on TCP")),
        "{nuspec}"
    );
    assert!(
        nuspec.contains("<group targetFramework=\".NETStandard2.0\" />"),
        "{nuspec}"
    );

    // The project file the metadata comes from, for `dotnet pack`.
    let csproj = read(&Path::new(ROOT).join("bindings/csharp/Isotcp.csproj"));
    assert!(csproj.starts_with("<Project Sdk=\"Microsoft.NET.Sdk\">"));
    // Well-formed XML (a double hyphen inside a comment is not): nuget_pack.py parsed it above,
    // and so does this, on its own.
    run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])",
            ])
            .arg(Path::new(ROOT).join("bindings/csharp/Isotcp.csproj")),
        Duration::from_secs(60),
    );
    assert_eq!(element(&csproj, "TargetFramework"), Some("netstandard2.0"));
    assert_eq!(element(&csproj, "PackageId"), Some(ID));
    assert_eq!(element(&csproj, "Version"), Some(VERSION));
    assert_eq!(element(&csproj, "PackageLicenseExpression"), Some(LICENSE));
    for path in ["runtimes/linux-x64/native/", "runtimes/win-x64/native/"] {
        assert!(
            csproj.contains(&format!("PackagePath=\"{path}\"")),
            "Isotcp.csproj does not pack {path}"
        );
    }

    // Open Packaging Conventions: content types for every part, relationships to real parts.
    let types = read(&x.join("[Content_Types].xml"));
    for name in &names {
        let base = name.rsplit('/').next().unwrap();
        let covered = match base.rsplit_once('.') {
            Some((_, ext)) if !ext.is_empty() => {
                types.contains(&format!("<Default Extension=\"{}\"", ext.to_lowercase()))
            }
            _ => types.contains(&format!("<Override PartName=\"/{name}\"")),
        };
        assert!(
            covered || name == "[Content_Types].xml",
            "{name} has no content type:\n{types}"
        );
    }
    let rels = read(&x.join("_rels/.rels"));
    assert!(rels.contains(
        "Type=\"http://schemas.microsoft.com/packaging/2010/07/manifest\" Target=\"/Isotcp.nuspec\""
    ));
    assert!(
        rels.contains(&format!("Target=\"/{}\"", psmdcp[0])),
        "{rels}"
    );
    let props = read(&x.join(psmdcp[0]));
    assert_eq!(element(&props, "dc:identifier"), Some(ID), "{props}");
    assert_eq!(element(&props, "version"), Some(VERSION), "{props}");

    // The README and licences are the repository's.
    for (packaged, source) in [
        ("README.md", "bindings/csharp/README.md"),
        ("LICENSE-MIT", "LICENSE-MIT"),
        ("LICENSE-APACHE", "LICENSE-APACHE"),
    ] {
        assert_eq!(
            read(&x.join(packaged)),
            read(&Path::new(ROOT).join(source)),
            "{packaged} differs from {source}"
        );
    }

    // The native files: an x86-64 ELF shared object, a PE32+ x86-64 DLL.
    let so = std::fs::read(x.join("runtimes/linux-x64/native/libisotcp.so")).unwrap();
    assert!(so.starts_with(b"\x7fELF\x02\x01"), "not a 64-bit ELF");
    assert_eq!(
        u16::from_le_bytes([so[16], so[17]]),
        3,
        "ELF type: not ET_DYN"
    );
    assert_eq!(
        u16::from_le_bytes([so[18], so[19]]),
        62,
        "ELF machine: not x86-64"
    );
    if win_dll.is_some() {
        let dll = std::fs::read(x.join("runtimes/win-x64/native/isotcp.dll")).unwrap();
        assert!(dll.starts_with(b"MZ"), "isotcp.dll is not a PE file");
        let pe = u32::from_le_bytes(dll[0x3c..0x40].try_into().unwrap()) as usize;
        assert_eq!(&dll[pe..pe + 4], b"PE\0\0", "no PE signature");
        assert_eq!(
            u16::from_le_bytes([dll[pe + 4], dll[pe + 5]]),
            0x8664,
            "isotcp.dll is not x86-64"
        );
        let characteristics = u16::from_le_bytes([dll[pe + 22], dll[pe + 23]]);
        assert_ne!(characteristics & 0x2000, 0, "isotcp.dll is not a DLL");
    }

    // Stripping kept the exports: every function of the header is named in both libraries.
    let functions = header_functions();
    assert!(functions.len() > 40, "{functions:?}");
    let mut natives = vec![("libisotcp.so", so)];
    if win_dll.is_some() {
        natives.push((
            "isotcp.dll",
            std::fs::read(x.join("runtimes/win-x64/native/isotcp.dll")).unwrap(),
        ));
    }
    for (file, bytes) in &natives {
        let missing: Vec<&String> = functions
            .iter()
            .filter(|f| {
                let name = format!("{f}\0");
                !bytes.windows(name.len()).any(|w| w == name.as_bytes())
            })
            .collect();
        assert!(missing.is_empty(), "{file} does not name {missing:?}");
    }

    // A program built against the packaged assembly, run with the packaged native library.
    let app = work.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let lib = x.join("lib/netstandard2.0/Isotcp.dll");
    run_ok(
        Command::new("mcs")
            .arg("-warnaserror")
            .arg("-r:System.Core.dll")
            .arg(format!("-r:{}", lib.display()))
            .arg(format!("-out:{}", app.join("ReadDb1.exe").display()))
            .arg(Path::new(ROOT).join("tests/nuget/ReadDb1.cs")),
        Duration::from_secs(300),
    );
    std::fs::copy(&lib, app.join("Isotcp.dll")).unwrap();
    std::fs::copy(
        x.join("runtimes/linux-x64/native/libisotcp.so"),
        app.join("libisotcp.so"),
    )
    .unwrap();

    let server = Py3Server::start(&python);
    let out = output_within(
        Command::new("mono")
            .arg(app.join("ReadDb1.exe"))
            .arg(server.port.to_string())
            .current_dir(&work)
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("MONO_PATH")
            .env("MONO_LOG_LEVEL", "debug")
            .env("MONO_LOG_MASK", "dll"),
        Duration::from_secs(120),
    );
    drop(server);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ReadDb1.exe failed ({}):\n{stdout}\n{log}",
        out.status
    );
    let loaded = format!(
        "DllImport loaded library '{}'",
        app.join("libisotcp.so").display()
    );
    assert!(
        stdout.contains(&loaded) || log.contains(&loaded),
        "Mono did not load the packaged library from the program's directory:\n{log}"
    );
    for line in [
        format!("assembly {VERSION}\n"),
        format!("isotcp {VERSION}\n"),
        "tpdu 1024\n".to_string(),
        format!("DB1 {DB1_FIRST_16_HEX}\n"),
    ] {
        assert!(stdout.contains(&line), "no {line:?} in:\n{stdout}");
    }
    // Mono's compiler builds against the .NET Framework profile; what the assembly references
    // must be among the facades every .NET Standard 2.0 platform has.
    let references = stdout
        .lines()
        .find_map(|l| l.strip_prefix("references "))
        .expect("references line");
    for reference in references.split(", ") {
        let name = reference.split(' ').next().unwrap();
        assert!(
            ["mscorlib", "System", "System.Core"].contains(&name),
            "Isotcp.dll references {reference}"
        );
    }
    eprintln!(
        "nuget_package: {} files{}; {}",
        names.len(),
        if win_dll.is_some() {
            ", with win-x64"
        } else {
            ", without win-x64"
        },
        stdout
            .lines()
            .filter(|l| !l.starts_with("Mono:"))
            .collect::<Vec<_>>()
            .join("; ")
    );
}
