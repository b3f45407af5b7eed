"""Follow libvirt's domain events, so that pages see a balloon move as it happens rather than at the next poll.

One long-lived process (`manage.py events`) subscribes to every host whose driver sends events (the test
driver sends no balloon events, so simulated hosts are left to the poller). libvirt delivers events on its
event-loop thread; they are queued there and written and published from this process's main thread.
"""

import logging
import queue
import threading

from balloonweb.live.publish import publish
from hosts.drivers import is_simulated_uri
from hosts.drivers.events import DomainEvent, keep_subscribed
from hosts.models import Host

from .models import Domain

log = logging.getLogger(__name__)


def event_uris() -> list[str]:
    return [uri for uri in Host.objects.values_list("uri", flat=True) if not is_simulated_uri(uri)]


def apply_event(event: DomainEvent) -> bool:
    """Record a balloon's new size and tell the host's pages; a lifecycle event is only announced (the poller
    reads the new state). Returns whether the domain is known."""
    domain = Domain.objects.filter(uuid=event.uuid).values("pk", "host_id").first()
    if domain is None:
        return False
    if event.kind == "balloon":
        Domain.objects.filter(pk=domain["pk"]).update(actual_kib=event.actual_kib)
        publish("host", domain["host_id"], {"type": "domains", "domains": [domain["pk"]]})
    else:
        publish("host", domain["host_id"], {"type": "lifecycle", "domain": domain["pk"], "event": event.event, "detail": event.detail})
    return True


def follow_events(stop: threading.Event) -> None:
    events: queue.Queue[DomainEvent] = queue.Queue()
    subscriber = threading.Thread(target=keep_subscribed, args=(event_uris, events.put, stop), name="events", daemon=True)
    subscriber.start()
    while not stop.is_set():
        try:
            event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        try:
            apply_event(event)
        except Exception:  # noqa: BLE001 - one bad event must not stop the stream
            log.exception("event %s not applied", event)
    subscriber.join(timeout=10)
