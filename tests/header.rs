//! The committed include/isotcp.h must be exactly what cbindgen makes from the source.
//! Regenerate with `ISOTCP_BLESS=1 cargo test --test header`.

use std::path::Path;

fn generate() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config =
        cbindgen::Config::from_file(Path::new(dir).join("cbindgen.toml")).expect("cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn committed_header_matches_the_source() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/isotcp.h");
    let fresh = generate();
    if std::env::var_os("ISOTCP_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/isotcp.h is stale: run ISOTCP_BLESS=1 cargo test --test header"
    );
}

#[test]
fn version_macros_match_cargo_toml() {
    let h = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("include/isotcp.h"))
        .unwrap();
    let v: Vec<u32> = env!("CARGO_PKG_VERSION")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(h.contains(&format!("#define ISO_VERSION_MAJOR {}\n", v[0])));
    assert!(h.contains(&format!("#define ISO_VERSION_MINOR {}\n", v[1])));
    assert!(h.contains(&format!("#define ISO_VERSION_PATCH {}\n", v[2])));
    let packed = v[0] << 16 | v[1] << 8 | v[2];
    assert!(
        h.contains(&format!("#define ISO_VERSION_NUMBER {packed}")),
        "packed version {packed:#x}"
    );
    assert!(h.contains(&format!(
        "#define ISO_VERSION \"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    assert_eq!(isotcp::ffi::conn::iso_version_number(), packed);
    let runtime = unsafe { std::ffi::CStr::from_ptr(isotcp::ffi::conn::iso_version()) };
    assert_eq!(runtime.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}
