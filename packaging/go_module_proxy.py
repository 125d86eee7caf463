#!/usr/bin/env python3
"""Writes the Go binding (bindings/go) as a module version into a file-based module proxy, so
that `go get` fetches it the way it fetches a published module:

    python3 packaging/go_module_proxy.py DIR [--version vX.Y.Z]
    GOPROXY=file://DIR GONOSUMDB=isotcp.example go get isotcp.example/isotcp@vX.Y.Z

DIR gets the layout of Go's module proxy protocol (`go help goproxy`):

    DIR/<module>/@v/list            the versions, one a line
    DIR/<module>/@v/<version>.info  {"Version": ..., "Time": ...}
    DIR/<module>/@v/<version>.mod   the module's go.mod
    DIR/<module>/@v/<version>.zip   the module zip: every file as <module>@<version>/<name>

The module path comes from bindings/go/go.mod, the version from Cargo.toml (0.1.0 -> v0.1.0)
unless --version is given. The zip holds the files of bindings/go (recursively, as Go would
pack them) and the licence files of the repository (LICENSE-MIT, LICENSE-APACHE) at its top. The module is not in Go's checksum
database (it is not published), hence GONOSUMDB for its path; go.sum still records its hashes.
Entries are written in name order with a fixed date, so the same files give the same zip. Other
versions already in DIR stay listed. Prints the GOPROXY value to use.
"""
import argparse
import datetime
import json
import os
import pathlib
import re
import sys
import zipfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODULE_DIR = ROOT / "bindings" / "go"
LICENCES = ("LICENSE-MIT", "LICENSE-APACHE")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


def module_path():
    for line in (MODULE_DIR / "go.mod").read_text().splitlines():
        m = re.match(r"^module\s+(\S+)\s*$", line)
        if m:
            return m.group(1)
    sys.exit(f"{MODULE_DIR / 'go.mod'}: no module line")


def crate_version():
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    if not m:
        sys.exit("Cargo.toml: no version")
    return "v" + m.group(1)


def escape(path):
    """The proxy protocol's case encoding: an upper-case letter becomes '!' and its lower case."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


VCS_DIRS = {".git", ".hg", ".svn", ".bzr"}


def module_files():
    """(name in the module, file on disk), sorted by name: the module directory's regular files,
    recursively, as Go's module zips hold them: without directories of version control, vendor
    directories, and subdirectories that are modules of their own (they have a go.mod). Other
    kinds of file (symbolic links, devices) stop the script, as they would stop Go."""
    files = []
    for dirpath, dirnames, filenames in os.walk(MODULE_DIR):
        here = pathlib.Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames
            if d not in VCS_DIRS and d != "vendor" and not (here / d / "go.mod").exists()
        )
        for name in filenames:
            path = here / name
            if path.is_symlink() or not path.is_file():
                sys.exit(f"{path}: not a regular file")
            files.append((path.relative_to(MODULE_DIR).as_posix(), path))
    for name in LICENCES:
        if (MODULE_DIR / name).exists():
            sys.exit(f"{MODULE_DIR / name} would shadow the repository's {name}")
        files.append((name, ROOT / name))
    lower = [n.lower() for n, _ in files]
    if len(set(lower)) != len(lower):
        sys.exit("two files whose names differ only in case")
    return sorted(files)


def write_zip(dest, prefix, files):
    tmp = dest.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, src in files:
            info = zipfile.ZipInfo(f"{prefix}/{name}", date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, src.read_bytes())
    os.replace(tmp, dest)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=pathlib.Path, help="the proxy's top directory")
    ap.add_argument("--version", help="the module version (default: v + Cargo.toml's)")
    args = ap.parse_args()

    module = module_path()
    version = args.version or crate_version()
    if not re.fullmatch(r"v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version):
        sys.exit(f"{version}: not a semantic version with a leading v")
    major = int(version[1:].split(".")[0])
    if major >= 2 and not module.endswith(f"/v{major}"):
        sys.exit(f"{module} {version}: a v{major} module path must end in /v{major}")

    top = args.dir.resolve()
    vdir = top / escape(module) / "@v"
    vdir.mkdir(parents=True, exist_ok=True)

    write_zip(vdir / f"{version}.zip", f"{module}@{version}", module_files())
    (vdir / f"{version}.mod").write_bytes((MODULE_DIR / "go.mod").read_bytes())
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or int(
        (ROOT / "Cargo.toml").stat().st_mtime
    )
    when = datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)
    info = {"Version": version, "Time": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (vdir / f"{version}.info").write_text(json.dumps(info) + "\n")

    listed = vdir / "list"
    versions = set(listed.read_text().split()) if listed.exists() else set()
    versions.add(version)
    listed.write_text("".join(v + "\n" for v in sorted(versions)))

    print(f"{module} {version}: GOPROXY=file://{top}")


if __name__ == "__main__":
    main()
