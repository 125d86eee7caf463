"""python-snap7 3.x on isotcp: one call swaps the transport of python-snap7's ``Client``.

    import isotcp.snap7
    isotcp.snap7.install()

    import snap7
    client = snap7.client.Client()
    client.connect("192.168.0.10", 0, 1)    # now over libisotcp

python-snap7 3.x is pure Python; its ``Client`` creates its transport through the name
``ISOTCPConnection`` in the module ``snap7.client`` (in ``connect``, ``connect_routed`` and its
automatic reconnection). ``install()`` points that name, and ``snap7.connection``'s (for code
that imports the class from there afterwards), at ``isotcp.ISOTCPConnection``, which has the
same constructor, methods, attributes and exceptions. Clients connected before the call keep
their connection until they reconnect.

Only the client side is swapped: python-snap7's ``Partner`` assigns sockets to its connection
in passive mode, which isotcp's class does not support, and its ``Server`` and ``AsyncClient``
do not use the class.
"""

import contextlib

from .connection import ISOTCPConnection

# The module attributes install() replaces: (module name, attribute).
_TARGETS = (("snap7.connection", "ISOTCPConnection"), ("snap7.client", "ISOTCPConnection"))

# What was there before the first install(): {(module name, attribute): original}.
_originals = {}


def _modules():
    """The python-snap7 modules, after checking it is a 3.x (the pure-Python one)."""
    try:
        import snap7
        import snap7.client
        import snap7.connection
    except ImportError as e:
        raise ImportError(
            f"isotcp.snap7 needs python-snap7 3.x (pip install 'python-snap7>=3,<4'): {e}"
        ) from e
    version = getattr(snap7, "__version__", "")
    if not version.startswith("3."):
        raise ImportError(
            f"isotcp.snap7 needs python-snap7 3.x, whose client is pure Python; found "
            f"{version or 'an unknown version'} at {snap7.__file__}"
        )
    return {"snap7.client": snap7.client, "snap7.connection": snap7.connection}


def install(connection_class=ISOTCPConnection):
    """Makes python-snap7's ``Client`` connect through ``connection_class`` (isotcp's class,
    or a subclass of it). Calling it again is harmless; ``uninstall()`` restores python-snap7's
    own class. Raises ``ImportError`` when python-snap7 3.x is not importable."""
    if not (isinstance(connection_class, type) and issubclass(connection_class, ISOTCPConnection)):
        raise TypeError(
            f"install() takes isotcp.ISOTCPConnection or a subclass, not {connection_class!r}"
        )
    modules = _modules()
    for name, attribute in _TARGETS:
        key = (name, attribute)
        if key not in _originals:
            _originals[key] = getattr(modules[name], attribute)
        setattr(modules[name], attribute, connection_class)


def uninstall():
    """Puts python-snap7's own connection class back; does nothing when not installed."""
    if not _originals:
        return
    modules = _modules()
    for (name, attribute), original in _originals.items():
        setattr(modules[name], attribute, original)
    _originals.clear()


def installed():
    """True when python-snap7's ``Client`` currently creates isotcp connections."""
    try:
        import snap7.client
    except ImportError:
        return False
    current = getattr(snap7.client, "ISOTCPConnection", None)
    return isinstance(current, type) and issubclass(current, ISOTCPConnection)


@contextlib.contextmanager
def swapped(connection_class=ISOTCPConnection):
    """``install()`` for a ``with`` block; whatever was in place before is put back after."""
    modules = _modules()
    before = [(modules[name], attr, getattr(modules[name], attr)) for name, attr in _TARGETS]
    install(connection_class)
    try:
        yield
    finally:
        for module, attr, value in before:
            setattr(module, attr, value)
