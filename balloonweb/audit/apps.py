from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "balloonweb.audit"
    label = "audit"
