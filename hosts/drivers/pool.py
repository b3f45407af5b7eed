"""One long-lived libvirt connection per URI per process, with keepalive and reconnect.

libvirt's keepalive needs an event loop: one daemon thread per process runs it (it also delivers domain
events). After a fork (Celery prefork) the child opens its own connections.
"""

import logging
import os
import threading

import libvirt

from .errors import HostUnreachable

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 5
KEEPALIVE_COUNT = 3

_lock = threading.Lock()  # the dicts below; never held while talking to a host
_connections: dict[str, libvirt.virConnect] = {}
# One open at a time per URI: a host that does not answer holds up only those who want that host, not a poll's
# threads reading the others (an open can wait minutes for a TCP or ssh timeout).
_opening: dict[str, threading.Lock] = {}
_owner_pid: int | None = None
_event_loop_started = False


def _ignore_libvirt_stderr(_ctx, _err) -> None:
    """libvirt prints every error to stderr by default; ours are raised as exceptions instead."""


libvirt.registerErrorHandler(_ignore_libvirt_stderr, None)


def _run_event_loop() -> None:
    while True:
        try:
            libvirt.virEventRunDefaultImpl()
        except libvirt.libvirtError:
            log.exception("libvirt event loop iteration failed")


def _ensure_event_loop() -> None:
    global _event_loop_started
    if _event_loop_started:
        return
    libvirt.virEventRegisterDefaultImpl()
    threading.Thread(target=_run_event_loop, name="libvirt-events", daemon=True).start()
    _event_loop_started = True


def _forget_parent_connections() -> None:
    global _owner_pid, _event_loop_started
    if _owner_pid != os.getpid():
        _connections.clear()
        _opening.clear()  # a lock held by a thread of the parent would never be released here
        _event_loop_started = False  # threads do not survive a fork
        _owner_pid = os.getpid()


def connection(uri: str) -> libvirt.virConnect:
    """The process's connection to `uri`, reopened if it died. Raises HostUnreachable."""
    with _lock:
        _forget_parent_connections()
        conn = _alive(uri)
        if conn is not None:
            return conn
        _ensure_event_loop()
        opening = _opening.setdefault(uri, threading.Lock())
    with opening:
        with _lock:
            conn = _alive(uri)  # opened by another thread while this one waited
        if conn is not None:
            return conn
        try:
            conn = libvirt.open(uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(f"host unreachable: cannot connect to {uri}", detail=str(exc), uri=uri) from exc
        try:
            conn.setKeepAlive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT)
        except libvirt.libvirtError:
            pass  # a connection inside this process (test:///...) has no peer to keep alive
        with _lock:
            _connections[uri] = conn
        return conn


def _alive(uri: str) -> libvirt.virConnect | None:
    """The open connection to `uri` if it still works (a local check); a dead one is dropped. Under _lock."""
    conn = _connections.get(uri)
    if conn is None:
        return None
    try:
        if conn.isAlive():
            return conn
    except libvirt.libvirtError:
        pass
    _close_quietly(conn)
    del _connections[uri]
    return None


def discard(uri: str) -> None:
    """Drop a connection that failed mid-call, so that the next call reconnects."""
    with _lock:
        conn = _connections.pop(uri, None)
    if conn is not None:
        _close_quietly(conn)


def close_except(uris: set[str]) -> list[str]:
    """Close this process's connections to URIs not in `uris`; returns those closed."""
    with _lock:
        _forget_parent_connections()
        gone = [uri for uri in _connections if uri not in uris]
        conns = [_connections.pop(uri) for uri in gone]
    for conn in conns:
        _close_quietly(conn)
    return gone


def close_all() -> None:
    with _lock:
        conns = list(_connections.values())
        _connections.clear()
    for conn in conns:
        _close_quietly(conn)


def _close_quietly(conn: libvirt.virConnect) -> None:
    try:
        conn.close()
    except libvirt.libvirtError:
        pass
