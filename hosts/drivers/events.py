"""Domain events from libvirt, handed to a plain Python callable: balloon changes and lifecycle changes.

QEMU sends BALLOON_CHANGE while a balloon moves (rate-limited to about one a second), so a page can follow a
resize as it happens instead of at the next poll. The libvirt test driver sends lifecycle events only.

Events arrive on the libvirt event-loop thread that `pool` runs (the same thread keeps connections alive), so
the handler must return quickly: put the event on a queue, or publish it, and do nothing slow there.

A subscription belongs to one connection. When the pool replaces a dead connection, the subscription is dead
too (`alive` is False) and must be made again: `keep_subscribed` does that.
"""

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import libvirt

from . import pool
from .errors import DriverError

log = logging.getLogger(__name__)

LIFECYCLE_EVENTS = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}
# The details that matter to BalloonWeb: a domain that left or arrived by migration is not gone or new.
LIFECYCLE_DETAILS = {
    (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED): "booted",
    (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED): "migrated",
    (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN): "shutdown",
    (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED): "destroyed",
    (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED): "crashed",
    (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_MIGRATED): "migrated",
    (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED): "failed",
    (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_PAUSED): "paused",
    (libvirt.VIR_DOMAIN_EVENT_SUSPENDED, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED): "migrating",
    (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_RESUMED_UNPAUSED): "unpaused",
    (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED): "migrated",
}


@dataclass(frozen=True)
class DomainEvent:
    """kind "balloon": `actual_kib` is the guest's new balloon size. kind "lifecycle": `event` and `detail`."""

    uri: str
    uuid: str
    name: str
    kind: str
    actual_kib: int | None = None
    event: str | None = None
    detail: str | None = None


EventHandler = Callable[[DomainEvent], None]


class Subscription:
    def __init__(self, uri: str, conn: libvirt.virConnect, callback_ids: list[int]):
        self.uri = uri
        self._conn = conn
        self._callback_ids = callback_ids

    @property
    def alive(self) -> bool:
        try:
            return bool(self._callback_ids) and self._conn.isAlive() == 1
        except libvirt.libvirtError:
            return False

    def close(self) -> None:
        for callback_id in self._callback_ids:
            try:
                self._conn.domainEventDeregisterAny(callback_id)
            except libvirt.libvirtError:
                pass  # the connection is gone, and its callbacks with it
        self._callback_ids = []


def subscribe(uri: str, handler: EventHandler) -> Subscription:
    """Call `handler` with a DomainEvent for every balloon and lifecycle event of every domain on `uri`.

    Raises HostUnreachable if the host does not answer. A driver without balloon events (the test driver)
    gets lifecycle events only.
    """
    conn = pool.connection(uri)

    def deliver(event: DomainEvent) -> None:
        try:
            handler(event)
        except Exception:  # noqa: BLE001 - an exception here would only be printed by libvirt and lost
            log.exception("handler of %s event for %s failed", event.kind, event.name)

    def on_balloon(_conn, dom, actual_kib, _opaque) -> None:
        deliver(DomainEvent(uri, dom.UUIDString(), dom.name(), "balloon", actual_kib=actual_kib))

    def on_lifecycle(_conn, dom, event, detail, _opaque) -> None:
        deliver(
            DomainEvent(
                uri, dom.UUIDString(), dom.name(), "lifecycle",
                event=LIFECYCLE_EVENTS.get(event, str(event)),
                detail=LIFECYCLE_DETAILS.get((event, detail), str(detail)),
            )
        )

    callback_ids = []
    for event_id, callback in (
        (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, on_lifecycle),
        (libvirt.VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, on_balloon),
    ):
        try:
            callback_ids.append(conn.domainEventRegisterAny(None, event_id, callback, None))
        except libvirt.libvirtError as exc:
            if exc.get_error_code() not in (libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED):
                for registered in callback_ids:
                    conn.domainEventDeregisterAny(registered)
                raise DriverError(f"cannot listen for events on {uri}", detail=str(exc)) from exc
    return Subscription(uri, conn, callback_ids)


def _resubscribe(subscriptions: dict[str, "Subscription"], wanted: set[str], handler: EventHandler) -> None:
    for uri in list(subscriptions):
        if uri not in wanted or not subscriptions[uri].alive:
            subscriptions.pop(uri).close()
    for uri in wanted - subscriptions.keys():
        try:
            subscriptions[uri] = subscribe(uri, handler)
        except DriverError as exc:
            log.info("no events from %s yet: %s", uri, exc)


def keep_subscribed(uris: Callable[[], Iterable[str]], handler: EventHandler, stop: threading.Event, recheck_s: float = 5.0) -> None:
    """Keep one subscription per URI until `stop` is set: new hosts are subscribed, removed hosts released, and a
    subscription whose connection died is made again once the host answers. Blocks; run it in a thread or as
    a process's main loop."""
    subscriptions: dict[str, Subscription] = {}
    try:
        while not stop.is_set():
            try:
                _resubscribe(subscriptions, set(uris()), handler)
            except Exception:  # noqa: BLE001 - the database or a host failing once must not end the events for good
                log.exception("events: subscriptions not brought up to date; trying again in %.0f s", recheck_s)
            stop.wait(recheck_s)
    finally:
        for subscription in subscriptions.values():
            subscription.close()
