"""WebSocket routes: one per live page. Each consumer checks the same rules as the page before joining groups."""

from django.urls import path

from domains import consumers

websocket_urlpatterns = [
    path("ws/fleet/", consumers.FleetConsumer.as_asgi(), name="ws-fleet"),
    path("ws/hosts/<int:host_id>/", consumers.HostConsumer.as_asgi(), name="ws-host"),
    path("ws/domains/<int:domain_id>/", consumers.DomainConsumer.as_asgi(), name="ws-domain"),
    path("ws/jobs/", consumers.JobsConsumer.as_asgi(), name="ws-jobs"),
]
