#!/usr/bin/env python3
"""Builds the NuGet package of the C# binding with Mono's compiler, where no .NET SDK exists
(Debian has Mono, not `dotnet`):

    python3 packaging/nuget_pack.py [--out DIR] [--linux-x64 FILE] [--win-x64 FILE]
                                    [--allow-missing-win-x64]

gives DIR/Isotcp.<version>.nupkg (DIR defaults to target/nuget) holding

    Isotcp.nuspec                                  the manifest
    lib/netstandard2.0/Isotcp.dll, Isotcp.xml      the assembly and its XML documentation
    runtimes/linux-x64/native/libisotcp.so         --linux-x64 (target/release/libisotcp.so)
    runtimes/win-x64/native/isotcp.dll             --win-x64 (target/windows/x86_64-pc-windows-gnu/
                                                   release/isotcp.dll, which .ci/windows builds)
    README.md, LICENSE-MIT, LICENSE-APACHE         bindings/csharp/README.md, the licence texts
    [Content_Types].xml, _rels/.rels,              the Open Packaging Conventions parts every
    package/services/metadata/core-properties/     .nupkg has
      <id>.psmdcp

The package metadata (id, version, authors, description, tags, licence expression, readme) is
read from bindings/csharp/Isotcp.csproj, the project `dotnet pack` builds the same package from;
its version must equal Cargo.toml's. Isotcp.dll is compiled by `mcs -target:library -optimize`
from bindings/csharp/src/*.cs with an assembly version attribute added. Mono's compiler builds
against the .NET Framework 4.x profile, so the assembly references mscorlib 4.0.0.0 rather than
netstandard 2.0.0.0; every .NET Standard 2.0 platform (.NET Framework 4.6.1+, .NET Core 2.0+,
.NET 5+, Mono) resolves mscorlib through its compatibility facade, and the binding uses only
APIs that .NET Standard 2.0 has.

Debug information is stripped from the native libraries (`strip --strip-debug`, and
x86_64-w64-mingw32-strip for the DLL). Without the Windows DLL the script stops, unless --allow-missing-win-x64 (for a package that
only tests need). The zip is written with fixed dates in a fixed order; only Isotcp.dll differs
between two runs (mcs gives every assembly a new module id). Prints the package's path.
"""
import argparse
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from xml.sax.saxutils import escape

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSHARP = ROOT / "bindings" / "csharp"
PROJECT = CSHARP / "Isotcp.csproj"
TFM_FOLDER = "netstandard2.0"
TFM_NUSPEC = ".NETStandard2.0"
NUSPEC_NS = "http://schemas.microsoft.com/packaging/2013/05/nuspec.xsd"
ZIP_DATE = (2026, 1, 1, 0, 0, 0)


def die(msg):
    sys.exit(f"nuget_pack: {msg}")


def project_metadata():
    """The PropertyGroup values of Isotcp.csproj that describe the package."""
    props = {}
    for group in ET.parse(PROJECT).getroot().iter("PropertyGroup"):
        for el in group:
            if el.get("Condition") is None and el.text is not None:
                props[el.tag] = el.text.strip()
    wanted = ["TargetFramework", "AssemblyName", "PackageId", "Version", "Authors",
              "Description", "PackageTags", "PackageLicenseExpression", "PackageReadmeFile"]
    missing = [k for k in wanted if not props.get(k)]
    if missing:
        die(f"{PROJECT}: no {', '.join(missing)}")
    if props["TargetFramework"] != TFM_FOLDER:
        die(f"{PROJECT}: TargetFramework {props['TargetFramework']}, this script packs {TFM_FOLDER}")
    return props


def crate_version():
    m = re.search(r'^version\s*=\s*"([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M)
    if not m:
        die("Cargo.toml: no version")
    return m.group(1)


def compile_assembly(meta, work):
    """Isotcp.dll and Isotcp.xml in work/, from src/*.cs and a generated AssemblyInfo.cs."""
    version = meta["Version"]
    numeric = re.match(r"\d+\.\d+\.\d+", version).group(0) + ".0"
    info = work / "AssemblyInfo.cs"
    info.write_text(
        "using System.Reflection;\n"
        f'[assembly: AssemblyTitle("{meta["AssemblyName"]}")]\n'
        f'[assembly: AssemblyProduct("{meta["PackageId"]}")]\n'
        f'[assembly: AssemblyCompany("{meta["Authors"]}")]\n'
        f'[assembly: AssemblyVersion("{numeric}")]\n'
        f'[assembly: AssemblyFileVersion("{numeric}")]\n'
        f'[assembly: AssemblyInformationalVersion("{version}")]\n'
    )
    sources = sorted(str(p) for p in (CSHARP / "src").glob("*.cs"))
    if not sources:
        die(f"no sources in {CSHARP / 'src'}")
    name = meta["AssemblyName"]
    cmd = ["mcs", "-target:library", "-optimize+", "-nowarn:1591",
           f"-out:{work / (name + '.dll')}", f"-doc:{work / (name + '.xml')}",
           str(info)] + sources
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        die("mcs failed:\n" + done.stdout + done.stderr)
    return work / (name + ".dll"), work / (name + ".xml")


def stripped(src, tool, work):
    """src without its debug information (the release profile keeps line tables, which make the
    library several times larger), by `tool --strip-debug`; src itself when the tool is missing."""
    if shutil.which(tool) is None:
        print(f"nuget_pack: {tool} not found: {src.name} packed with its debug information",
              file=sys.stderr)
        return src.read_bytes()
    out = work / ("stripped-" + src.name)
    done = subprocess.run([tool, "--strip-debug", "-o", str(out), str(src)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        die(f"{tool} --strip-debug {src} failed:\n{done.stdout}{done.stderr}")
    return out.read_bytes()


def nuspec(meta):
    m = {k: escape(v) for k, v in meta.items()}
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<package xmlns="{NUSPEC_NS}">\n'
        "  <metadata>\n"
        f"    <id>{m['PackageId']}</id>\n"
        f"    <version>{m['Version']}</version>\n"
        f"    <authors>{m['Authors']}</authors>\n"
        f'    <license type="expression">{m["PackageLicenseExpression"]}</license>\n'
        f"    <readme>{m['PackageReadmeFile']}</readme>\n"
        f"    <description>{m['Description']}</description>\n"
        f"    <tags>{m['PackageTags']}</tags>\n"
        "    <dependencies>\n"
        f'      <group targetFramework="{TFM_NUSPEC}" />\n'
        "    </dependencies>\n"
        "  </metadata>\n"
        "</package>\n"
    )


def core_properties(meta):
    m = {k: escape(v) for k, v in meta.items()}
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<coreProperties xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:dcterms="http://purl.org/dc/terms/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns="http://schemas.openxmlformats.org/package/2006/metadata/core-properties">\n'
        f"  <dc:creator>{m['Authors']}</dc:creator>\n"
        f"  <dc:description>{m['Description']}</dc:description>\n"
        f"  <dc:identifier>{m['PackageId']}</dc:identifier>\n"
        f"  <version>{m['Version']}</version>\n"
        f"  <keywords>{m['PackageTags']}</keywords>\n"
        "  <lastModifiedBy>isotcp packaging/nuget_pack.py</lastModifiedBy>\n"
        "</coreProperties>\n"
    )


def content_types(names):
    """A Default per file extension, an Override for each file without one."""
    defaults = {
        "rels": "application/vnd.openxmlformats-package.relationships+xml",
        "psmdcp": "application/vnd.openxmlformats-package.core-properties+xml",
    }
    lines = []
    overrides = []
    for name in sorted(names):
        base = name.rsplit("/", 1)[-1]
        if "." in base:
            ext = base.rsplit(".", 1)[1].lower()
            defaults.setdefault(ext, "application/octet")
        else:
            overrides.append(name)
    for ext in sorted(defaults):
        lines.append(f'  <Default Extension="{ext}" ContentType="{defaults[ext]}" />\n')
    for name in overrides:
        lines.append(f'  <Override PartName="/{name}" ContentType="application/octet" />\n')
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">\n'
        + "".join(lines)
        + "</Types>\n"
    )


def relationships(nuspec_name, psmdcp_name):
    def rid(target):
        return "R" + hashlib.sha256(target.encode()).hexdigest()[:16].upper()

    manifest = f"/{nuspec_name}"
    props = f"/{psmdcp_name}"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">\n'
        '  <Relationship Type="http://schemas.microsoft.com/packaging/2010/07/manifest" '
        f'Target="{manifest}" Id="{rid(manifest)}" />\n'
        '  <Relationship Type="http://schemas.openxmlformats.org/package/2006/relationships/'
        f'metadata/core-properties" Target="{props}" Id="{rid(props)}" />\n'
        "</Relationships>\n"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=ROOT / "target" / "nuget")
    ap.add_argument("--linux-x64", type=pathlib.Path,
                    default=ROOT / "target" / "release" / "libisotcp.so")
    ap.add_argument("--win-x64", type=pathlib.Path,
                    default=ROOT / "target" / "windows" / "x86_64-pc-windows-gnu" / "release"
                    / "isotcp.dll")
    ap.add_argument("--allow-missing-win-x64", action="store_true",
                    help="pack without the Windows DLL when it is missing (a test package)")
    args = ap.parse_args()

    meta = project_metadata()
    if meta["Version"] != crate_version():
        die(f"{PROJECT} has Version {meta['Version']}, Cargo.toml {crate_version()}")
    if not args.linux_x64.is_file():
        die(f"{args.linux_x64} is missing: cargo build --release")
    if not args.linux_x64.read_bytes()[:4] == b"\x7fELF":
        die(f"{args.linux_x64} is not an ELF file")
    win = args.win_x64 if args.win_x64.is_file() else None
    if win is None and not args.allow_missing_win_x64:
        die(f"{args.win_x64} is missing: bash .ci/windows builds it")
    if win is not None and win.read_bytes()[:2] != b"MZ":
        die(f"{win} is not a Windows DLL")

    pkg_id = meta["PackageId"]
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        dll, xml = compile_assembly(meta, work)
        payload = {
            f"lib/{TFM_FOLDER}/{dll.name}": dll.read_bytes(),
            f"lib/{TFM_FOLDER}/{xml.name}": xml.read_bytes(),
            "runtimes/linux-x64/native/libisotcp.so": stripped(args.linux_x64, "strip", work),
            meta["PackageReadmeFile"]: (CSHARP / "README.md").read_bytes(),
            "LICENSE-MIT": (ROOT / "LICENSE-MIT").read_bytes(),
            "LICENSE-APACHE": (ROOT / "LICENSE-APACHE").read_bytes(),
        }
        if win is not None:
            payload["runtimes/win-x64/native/isotcp.dll"] = stripped(
                win, "x86_64-w64-mingw32-strip", work)

    nuspec_name = f"{pkg_id}.nuspec"
    digest = hashlib.sha256(f"{pkg_id} {meta['Version']}".encode()).hexdigest()[:32]
    psmdcp_name = f"package/services/metadata/core-properties/{digest}.psmdcp"
    parts = {nuspec_name: nuspec(meta).encode()}
    parts.update(payload)
    parts[psmdcp_name] = core_properties(meta).encode()
    parts["_rels/.rels"] = relationships(nuspec_name, psmdcp_name).encode()
    entries = [("[Content_Types].xml", content_types(list(parts) + ["[Content_Types].xml"]).encode())]
    entries += [(name, parts[name]) for name in [nuspec_name] + sorted(n for n in parts if n != nuspec_name)]

    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / f"{pkg_id}.{meta['Version']}.nupkg"
    tmp_dest = dest.with_suffix(".tmp")
    with zipfile.ZipFile(tmp_dest, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    os.replace(tmp_dest, dest)
    if win is None:
        print(f"nuget_pack: without runtimes/win-x64 ({args.win_x64} is missing)", file=sys.stderr)
    print(dest)


if __name__ == "__main__":
    main()
