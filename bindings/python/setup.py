"""Builds the isotcp wheel: the crate at the repository's top compiled as a C library and
shipped inside the package, where isotcp/_lib.py loads it with ctypes.

- setuptools-rust with Binding.NoBinding runs `cargo rustc --lib --crate-type cdylib --release
  --locked` on ../../Cargo.toml (honouring CARGO_TARGET_DIR, so a CI run can reuse one build
  directory) and copies the result into the package under the library's own file name
  (libisotcp.so, libisotcp.dylib, isotcp.dll), not a CPython extension name: it is not one.
- The wheel is tagged py3-none-<platform>: it holds native code for one platform but no
  CPython extension, so any Python 3 of that platform can load it.
- The version is the crate's, read from Cargo.toml, so the package and the library it carries
  cannot disagree.
- sdists are refused: the crate lives two directories above this one and setuptools cannot put
  files from outside the project into one. Wheels are built from a checkout of the repository.
"""

import os
import re
import sys

from setuptools import setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.sdist import sdist
from setuptools_rust import Binding, RustExtension, Strip
from setuptools_rust.build import build_rust

HERE = os.path.dirname(os.path.abspath(__file__))
CARGO_TOML = os.path.normpath(os.path.join(HERE, "..", "..", "Cargo.toml"))

# The file name cargo gives the cdylib, which is the name isotcp/_lib.py looks for.
if sys.platform == "win32":
    LIBRARY_NAME = "isotcp.dll"
elif sys.platform == "darwin":
    LIBRARY_NAME = "libisotcp.dylib"
else:
    LIBRARY_NAME = "libisotcp.so"


def crate_version():
    """The `version` of the [package] table of the crate's Cargo.toml."""
    if not os.path.exists(CARGO_TOML):
        raise SystemExit(
            f"isotcp: no crate at {CARGO_TOML}. The Python package is built from a checkout of "
            "the isotcp repository: pip install ./bindings/python"
        )
    section = None
    with open(CARGO_TOML, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[package]":
                m = re.match(r'version\s*=\s*"([^"]+)"', line)
                if m:
                    return m.group(1)
    raise SystemExit(f"isotcp: no [package] version in {CARGO_TOML}")


class build_library(build_rust):
    """Installs the cdylib as isotcp/<LIBRARY_NAME> instead of an extension-module name."""

    def get_dylib_ext_path(self, ext, target_fname):
        extension_path = super().get_dylib_ext_path(ext, target_fname)
        return os.path.join(os.path.dirname(extension_path), LIBRARY_NAME)


class bdist_wheel_any_python(bdist_wheel):
    """py3-none-<platform>: native code, but no CPython ABI."""

    def get_tag(self):
        _, _, platform = super().get_tag()
        return "py3", "none", platform


class no_sdist(sdist):
    def run(self):
        raise SystemExit(
            "isotcp: source distributions are not supported (the crate is outside this "
            "directory). Build a wheel from the repository: pip wheel ./bindings/python"
        )


setup(
    version=crate_version(),
    rust_extensions=[
        RustExtension(
            "isotcp.libisotcp",
            path=CARGO_TOML,
            binding=Binding.NoBinding,
            args=["--locked"],
            # The release profile keeps line tables (debug = 1) for the project's own
            # backtraces; the copy in the wheel is stripped of them (strip -S), 18 MB -> 3 MB.
            strip=Strip.Debug,
            py_limited_api=False,
        )
    ],
    cmdclass={
        "build_rust": build_library,
        "bdist_wheel": bdist_wheel_any_python,
        "sdist": no_sdist,
    },
    zip_safe=False,
)
