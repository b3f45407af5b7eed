from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "balloonweb.api"
    label = "api"
    verbose_name = "REST API"

    def ready(self) -> None:
        # The poll task runs in the Celery worker; its report reaches /metrics (in the web process) through Redis.
        from . import metrics

        metrics.connect_poll_signal()
