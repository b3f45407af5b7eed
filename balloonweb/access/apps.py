from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "balloonweb.access"
    label = "access"
