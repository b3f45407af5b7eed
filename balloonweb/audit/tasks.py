from celery import shared_task
from django.conf import settings

from . import anchors


@shared_task(ignore_result=True, expires=settings.AUDIT_ANCHOR_INTERVAL)
def anchor_head() -> int | None:
    anchor = anchors.write_anchor()
    return anchor.entry_id if anchor else None
