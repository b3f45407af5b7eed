"""The one way to push a live update to the browser pages. Messages are hints: a page refetches what it shows.

Groups: "host.<id>" (a host page and the pages of its domains), "fleet.<team id or 'none'>" (the fleet page),
"job.<id>" and "jobs.<team>"; callers name the topic, this module names the group.
"""

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

log = logging.getLogger(__name__)


def group_name(topic: str, key: object) -> str:
    return f"{topic}.{key if key is not None else 'none'}"


def publish(topic: str, key: object, payload: dict) -> None:
    """Send after the current transaction commits (at once outside one); a lost message is logged, not raised."""
    transaction.on_commit(lambda: _send(group_name(topic, key), payload))


def publish_many(messages: list[tuple[str, object, dict]]) -> None:
    transaction.on_commit(lambda: [_send(group_name(t, k), p) for t, k, p in messages])


def _send(group: str, payload: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "live.update", "payload": payload})
    except Exception:  # noqa: BLE001 - a live update is a hint; the database already holds the truth
        log.warning("live update to %s not sent", group, exc_info=True)
