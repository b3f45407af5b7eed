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
    publish_many([(topic, key, payload)])


def publish_many(messages: list[tuple[str, object, dict]]) -> None:
    if messages:
        transaction.on_commit(lambda: _send([(group_name(t, k), p) for t, k, p in messages]))


def _send(messages: list[tuple[str, dict]]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        # One event loop (and so one Redis connection) for the whole batch: each async_to_sync call opens its own.
        async_to_sync(_send_all)(layer, messages)
    except Exception:  # noqa: BLE001 - a live update is a hint; the database already holds the truth
        log.warning("%d live updates not sent", len(messages), exc_info=True)


async def _send_all(layer, messages: list[tuple[str, dict]]) -> None:
    for group, payload in messages:
        await layer.group_send(group, {"type": "live.update", "payload": payload})
