from django.apps import AppConfig


class AutoscalerConfig(AppConfig):
    name = "domains.autoscaler"
    label = "autoscaler"
    verbose_name = "Autoscaler"
