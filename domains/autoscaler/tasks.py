"""Celery tasks of the autoscaler: thin wrappers over run.py."""

from celery import shared_task
from django.conf import settings

from domains.models import Job

from . import run

# Steps that wait for shrinks look again this often, this many times (the shrinks' jobs take about a second).
WAITING_RETRY_S = 0.5
WAITING_RETRIES = 20


@shared_task(ignore_result=True, expires=settings.POLL_INTERVAL)
def autoscale() -> dict:
    """One autoscaler cycle; chain it after each poll."""
    return run.run_autoscaler().as_dict()


@shared_task(bind=True, ignore_result=True, max_retries=WAITING_RETRIES)
def apply_waiting(self, decision_ids: list[int]) -> tuple[int, int]:
    """Send again the steps that waited for shrinks, once the shrink jobs on their hosts have ended."""
    from .models import Decision

    hosts = set()
    for host_id, to_host_id, kind in Decision.objects.filter(pk__in=decision_ids).values_list("host_id", "to_host_id", "step_kind"):
        hosts.add(to_host_id if kind == "migrate" else host_id)
    pending = Job.objects.filter(kind=Job.Kind.RESIZE, host_id__in=hosts, state__in=Job.UNFINISHED).exists()
    if pending and self.request.retries < WAITING_RETRIES:
        raise self.retry(countdown=WAITING_RETRY_S)
    return run.apply_waiting(decision_ids)
