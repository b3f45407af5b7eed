"""Mounted at the site root (one include in balloonweb/urls.py): the API under /api/, the metrics at /metrics
(where Prometheus looks by default) and the tokens page."""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from . import docs, metrics, pages, views

router = SimpleRouter()
router.register("hosts", views.HostViewSet, basename="host")
router.register("domains", views.DomainViewSet, basename="domain")
router.register("jobs", views.JobViewSet, basename="job")
router.register("audit", views.AuditEntryViewSet, basename="auditentry")
router.register("teams", views.TeamViewSet, basename="team")
router.register("memberships", views.MembershipViewSet, basename="membership")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("users", views.UserViewSet, basename="user")

api_patterns = [
    *router.urls,
    path("schema/", docs.SchemaView.as_view(), name="schema"),
    path("docs/", docs.DocsView.as_view(), name="docs"),
    # Anything else under /api/ is a JSON 404 too, not the site's HTML page.
    re_path(r"", views.no_such_endpoint, name="no-such-endpoint"),
]
docs.SchemaView.urlconf = docs.api_only([path("api/", include((router.urls, "api")))])

app_name = "api"
urlpatterns = [
    path("api/", include(api_patterns)),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("account/tokens/", pages.tokens_page, name="tokens"),
]
