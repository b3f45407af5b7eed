"""The autoscaler's routes: page actions (forms on the host, domain and fleet pages) and the API under
/api/autoscaler/. Included by one line in balloonweb/urls.py, before the API's catch-all 404 under /api/."""

from django.urls import path

from . import api, views

urlpatterns = [
    path("autoscaler/steps/<int:decision_id>/approve/", views.decide, {"verdict": "approve"}, name="autoscaler-approve"),
    path("autoscaler/steps/<int:decision_id>/dismiss/", views.decide, {"verdict": "dismiss"}, name="autoscaler-dismiss"),
    path("autoscaler/hosts/<int:host_id>/approve-all/", views.approve_plan, name="autoscaler-approve-plan"),
    path("autoscaler/hosts/<int:object_id>/policy/", views.edit_policy, {"kind": "host"}, name="autoscaler-host-policy"),
    path("autoscaler/domains/<int:object_id>/policy/", views.edit_policy, {"kind": "domain"}, name="autoscaler-domain-policy"),
    path("autoscaler/teams/<int:object_id>/policy/", views.edit_policy, {"kind": "team"}, name="autoscaler-team-policy"),
    path("autoscaler/domains/<int:domain_id>/chart/", views.domain_chart, name="autoscaler-domain-chart"),
    path("autoscaler/what-if/apply/", views.apply_what_if, name="autoscaler-what-if-apply"),
    # -- the API ------------------------------------------------------------------------------------------------
    path("api/autoscaler/decisions/", api.DecisionList.as_view(), name="autoscaler-api-decisions"),
    path("api/autoscaler/decisions/<int:pk>/approve/", api.Decide.as_view(verdict="approve"), name="autoscaler-api-approve"),
    path("api/autoscaler/decisions/<int:pk>/dismiss/", api.Decide.as_view(verdict="dismiss"), name="autoscaler-api-dismiss"),
    path("api/autoscaler/hosts/<int:pk>/approve-all/", api.ApprovePlan.as_view(), name="autoscaler-api-approve-plan"),
    path("api/autoscaler/policies/<str:kind>/<int:pk>/", api.Policy.as_view(), name="autoscaler-api-policy"),
    path("api/autoscaler/what-if/", api.WhatIfView.as_view(), name="autoscaler-api-what-if"),
]
