import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "balloonweb.settings")

app = Celery("balloonweb")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def schedule_periodic_tasks(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    sender.add_periodic_task(settings.POLL_INTERVAL, sender.signature("domains.tasks.poll_fleet"), name="poll")
    sender.add_periodic_task(settings.SWEEP_INTERVAL, sender.signature("domains.tasks.sweep_jobs"), name="sweep")
    sender.add_periodic_task(60.0, sender.signature("domains.tasks.compact_samples"), name="samples")
    sender.add_periodic_task(settings.AUDIT_ANCHOR_INTERVAL, sender.signature("balloonweb.audit.tasks.anchor_head"), name="audit-anchor")
