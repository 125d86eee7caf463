"""isotcp.snap7, the one-line swap of python-snap7's transport, and the installed package.

- Snap7InstallTests: ``install()`` points ``snap7.client.ISOTCPConnection`` and
  ``snap7.connection.ISOTCPConnection`` at isotcp's class (or a subclass), so a
  ``snap7.client.Client`` reads and writes python-snap7's S7 server over libisotcp;
  ``uninstall()`` and ``swapped()`` put python-snap7's own class back; the documented one-liner
  works in a fresh interpreter.
- InstalledPackageTests (only with ISOTCP_TEST_INSTALLED=1, as tests/python_wheel.rs runs this
  directory against a wheel): the package imported is the installed one, it loaded the library
  shipped inside it with no environment variable, and versions and wheel tag agree.
"""

import importlib.metadata
import os
import subprocess
import sys
import sysconfig
import unittest

from test_swap import DB1, HAVE_SNAP7, INSTALLED, TREE, S7Server, need_snap7

import isotcp  # noqa: E402 (test_swap put the source package on sys.path unless INSTALLED)
import isotcp.snap7  # noqa: E402
from isotcp import _lib  # noqa: E402

if HAVE_SNAP7:
    import snap7
    import snap7.client
    import snap7.connection

    # python-snap7's own class, taken before any test installs ours.
    OWN_CLASS = snap7.connection.ISOTCPConnection
    assert snap7.client.ISOTCPConnection is OWN_CLASS

_server = None


def server():
    global _server
    if _server is None:
        _server = S7Server()
    return _server


def tearDownModule():
    if _server is not None:
        _server.close()


class Snap7InstallTests(unittest.TestCase):
    def setUp(self):
        need_snap7(self)
        self.addCleanup(isotcp.snap7.uninstall)

    def classes(self):
        return snap7.client.ISOTCPConnection, snap7.connection.ISOTCPConnection

    def round_trip(self):
        """Connects a python-snap7 Client to the server, reads DB1, writes DB2 and reads it back;
        returns the class of the connection the client used."""
        client = snap7.client.Client()
        try:
            client.connect("127.0.0.1", 0, 2, server().port)
            self.assertEqual(client.get_pdu_length(), 480)
            self.assertEqual(bytes(client.db_read(1, 0, 200)), DB1[:200])
            client.db_write(2, 40, bytearray(b"\x01\x02\x03\x04"))
            self.assertEqual(bytes(client.db_read(2, 40, 4)), b"\x01\x02\x03\x04")
            return type(client.connection)
        finally:
            client.disconnect()

    def test_install_swaps_the_client_onto_isotcp(self):
        self.assertFalse(isotcp.snap7.installed())
        isotcp.snap7.install()
        self.assertTrue(isotcp.snap7.installed())
        self.assertEqual(self.classes(), (isotcp.ISOTCPConnection, isotcp.ISOTCPConnection))
        self.assertIs(self.round_trip(), isotcp.ISOTCPConnection)

    def test_uninstall_restores_python_snap7s_class(self):
        isotcp.snap7.install()
        isotcp.snap7.install()  # twice: the original saved the first time is kept
        isotcp.snap7.uninstall()
        self.assertFalse(isotcp.snap7.installed())
        self.assertEqual(self.classes(), (OWN_CLASS, OWN_CLASS))
        self.assertIs(self.round_trip(), OWN_CLASS)
        isotcp.snap7.uninstall()  # not installed: nothing happens
        self.assertEqual(self.classes(), (OWN_CLASS, OWN_CLASS))

    def test_install_takes_a_subclass(self):
        class Logged(isotcp.ISOTCPConnection):
            pass

        isotcp.snap7.install(Logged)
        self.assertTrue(isotcp.snap7.installed())
        self.assertIs(self.round_trip(), Logged)

    def test_install_refuses_other_classes(self):
        for bad in (OWN_CLASS, object, isotcp.ISOTCPConnection("127.0.0.1")):
            with self.assertRaises(TypeError):
                isotcp.snap7.install(bad)
        self.assertEqual(self.classes(), (OWN_CLASS, OWN_CLASS))

    def test_swapped_restores_what_was_there(self):
        with isotcp.snap7.swapped():
            self.assertIs(self.round_trip(), isotcp.ISOTCPConnection)
        self.assertEqual(self.classes(), (OWN_CLASS, OWN_CLASS))
        isotcp.snap7.install()
        with isotcp.snap7.swapped():
            pass
        self.assertEqual(self.classes(), (isotcp.ISOTCPConnection, isotcp.ISOTCPConnection))

    def test_documented_one_liner_in_a_fresh_interpreter(self):
        script = (
            "import isotcp.snap7; isotcp.snap7.install()\n"
            "import snap7\n"
            "client = snap7.client.Client()\n"
            f"client.connect('127.0.0.1', 0, 2, {server().port})\n"
            "print(type(client.connection).__module__, client.db_read(1, 0, 16).hex())\n"
            "client.disconnect()\n"
        )
        env = dict(os.environ)
        if not INSTALLED:
            env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        self.assertEqual(done.stdout.split(), ["isotcp.connection", DB1[:16].hex()])


if INSTALLED:

    class InstalledPackageTests(unittest.TestCase):
        def test_package_is_the_installed_one(self):
            package_dir = os.path.dirname(os.path.abspath(isotcp.__file__))
            source_dir = os.path.join(TREE, "bindings", "python", "isotcp")
            self.assertNotEqual(os.path.realpath(package_dir), os.path.realpath(source_dir))
            site = os.path.basename(os.path.dirname(package_dir))
            self.assertIn(site, ("site-packages", "dist-packages"), package_dir)

        def test_library_is_the_one_shipped_in_the_package(self):
            self.assertNotIn("ISOTCP_LIBRARY", os.environ)
            package_dir = os.path.dirname(os.path.abspath(isotcp.__file__))
            self.assertEqual(isotcp.library_path, os.path.join(package_dir, _lib.LIBRARY_NAME))
            files = {str(f) for f in importlib.metadata.files("isotcp")}
            self.assertIn(f"isotcp/{_lib.LIBRARY_NAME}", files)

        def test_versions_agree(self):
            self.assertEqual(importlib.metadata.version("isotcp"), isotcp.__version__)
            self.assertEqual(isotcp.library_version, isotcp.__version__)

        def test_wheel_tag_is_any_python3_for_this_platform(self):
            wheel = importlib.metadata.distribution("isotcp").read_text("WHEEL")
            platform = sysconfig.get_platform().replace("-", "_").replace(".", "_")
            self.assertIn(f"Tag: py3-none-{platform}\n", wheel)
            self.assertIn("Root-Is-Purelib: false\n", wheel)


if __name__ == "__main__":
    unittest.main()
