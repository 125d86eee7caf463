"""pytest plugin: python-snap7's own test suite with its Client on isotcp.

    cd <python-snap7 source tree>
    PYTHONPATH=<this directory> python -m pytest -p pytest_isotcp_swap tests/test_client.py

When loaded it calls ``isotcp.snap7.install()`` (with a subclass of ``isotcp.ISOTCPConnection``
that counts its connects), so every ``snap7.client.Client`` the suite creates talks through
libisotcp to python-snap7's own server. The session fails when no connect went through isotcp,
so a swap that silently did nothing cannot pass.

python-snap7's client tests start their servers on fixed ports (module variables such as
``tcpport = 1102``); the plugin moves each to a free port, so runs on one machine do not collide.
Nothing else in the suite is changed. Not collected by unittest (no ``test`` prefix).
"""

import socket

import isotcp
import isotcp.snap7

connects = 0
moved = []  # "module.name old->new" for every fixed port moved


class CountingConnection(isotcp.ISOTCPConnection):
    """isotcp's class, counting connects (plain and through reconnection)."""

    def connect(self, timeout=5.0):
        global connects
        connects += 1
        return super().connect(timeout)


isotcp.snap7.install(CountingConnection)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(session, config, items):
    modules = {item.module for item in items if getattr(item, "module", None) is not None}
    for module in modules:
        for name, value in list(vars(module).items()):
            fixed = type(value) is int and 1024 <= value <= 65535
            if fixed and name.lower().endswith("port"):
                setattr(module, name, _free_port())
                moved.append(f"{module.__name__}.{name} {value}->{getattr(module, name)}")


def pytest_report_header(config):
    import snap7.client

    return [
        f"isotcp {isotcp.__version__}: library {isotcp.library_path}",
        f"snap7.client.ISOTCPConnection = {snap7.client.ISOTCPConnection.__module__}."
        f"{snap7.client.ISOTCPConnection.__qualname__}",
    ]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    terminalreporter.write_line(f"isotcp swap: fixed ports moved: {', '.join(moved) or 'none'}")
    terminalreporter.write_line(f"isotcp swap: {connects} connects through isotcp.ISOTCPConnection")


def pytest_sessionfinish(session, exitstatus):
    if connects == 0 and session.testscollected:
        session.exitstatus = 1
