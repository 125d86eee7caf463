//! Gives the shared library a SONAME on Linux: `libisotcp.so.<major>` (`libisotcp.so.0` for
//! every 0.x version). Without it (cargo sets none) a program linked with `-lisotcp` records the
//! unversioned `libisotcp.so` and would load any later, incompatible version.
//!
//! Programs linked against `target/<profile>/libisotcp.so` record `libisotcp.so.<major>` as
//! NEEDED, so this script also puts a `libisotcp.so.<major> -> libisotcp.so` symlink next to the
//! library in that directory; such programs then run from the build tree (with an rpath to it)
//! as they do from an installed copy.
//!
//! Other targets (Windows, macOS, ...) get nothing: their linkers name libraries differently.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");

    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os != "linux" {
        return;
    }
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    let soname = format!("libisotcp.so.{major}");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,{soname}");

    if let Some(dir) = artifact_dir() {
        link_soname(&dir, &soname);
    }
}

/// The directory the final artifacts go to (`<target>/[<triple>/]<profile>`), derived from
/// OUT_DIR (`<that directory>/build/<package>-<hash>/out`); None when the layout differs.
fn artifact_dir() -> Option<PathBuf> {
    let out = PathBuf::from(env::var_os("OUT_DIR")?);
    let build = out.parent()?.parent()?;
    if build.file_name()? != "build" {
        return None;
    }
    Some(build.parent()?.to_path_buf())
}

/// Creates `<dir>/<soname> -> libisotcp.so` unless that path already exists as such a link.
/// The link may dangle until the library is linked. Failures are only reported: the library
/// itself builds either way.
#[cfg(unix)]
fn link_soname(dir: &Path, soname: &str) {
    let link = dir.join(soname);
    if let Ok(target) = std::fs::read_link(&link) {
        if target == Path::new("libisotcp.so") {
            return;
        }
    }
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink("libisotcp.so", &link) {
        println!(
            "cargo:warning=could not create {}: {e} (programs linked against this directory \
             will not find {soname} at run time)",
            link.display()
        );
    }
}

/// Building for Linux on a host without symlinks: programs are not run from the build tree.
#[cfg(not(unix))]
fn link_soname(_dir: &Path, _soname: &str) {}
