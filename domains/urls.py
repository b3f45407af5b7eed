"""The console's pages. Routes ending in a region name are the live regions that htmx refetches."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("hosts/add/", views.host_add, name="host-add"),
    path("hosts/<int:host_id>/", views.host, name="host"),
    path("hosts/<int:host_id>/settings/", views.host_change, {"action": "settings"}, name="host-settings"),
    path("hosts/<int:host_id>/remove/", views.host_change, {"action": "remove"}, name="host-remove"),
    path("hosts/<int:host_id>/part/<slug:part>/", views.host_part, name="host-part"),
    path("hosts/<int:host_id>/maintenance/start/", views.host_maintenance, {"action": "start"}, name="host-maintenance-start"),
    path("hosts/<int:host_id>/maintenance/end/", views.host_maintenance, {"action": "end"}, name="host-maintenance-end"),
    path("domains/", views.domains, name="domains"),
    path("domains/export.csv", views.domains_csv, name="domains-csv"),
    path("domains/<int:domain_id>/", views.domain, name="domain"),
    path("domains/<int:domain_id>/part/<slug:part>/", views.domain_part, name="domain-part"),
    path("domains/<int:domain_id>/samples/", views.domain_samples, name="domain-samples"),
    path("domains/<int:domain_id>/resize/", views.domain_control, {"control": "resize"}, name="domain-resize"),
    path("domains/<int:domain_id>/maxmem/", views.domain_control, {"control": "maxmem"}, name="domain-maxmem"),
    path("domains/<int:domain_id>/floor/", views.domain_control, {"control": "floor"}, name="domain-floor"),
    path("domains/<int:domain_id>/migrate/", views.domain_control, {"control": "migrate"}, name="domain-migrate"),
    path("domains/<int:domain_id>/power/", views.domain_control, {"control": "power"}, name="domain-power"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
]
