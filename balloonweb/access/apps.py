from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "balloonweb.access"
    label = "access"

    def ready(self):
        from . import signals  # noqa: F401 - connects the audit and socket-closing receivers
