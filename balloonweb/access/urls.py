"""Team management, people's accounts, sign-out everywhere and the audit review page (one include in balloonweb/urls.py)."""

from django.urls import path, re_path

from balloonweb.audit import views as audit_views

from . import views

urlpatterns = [
    path("teams/", views.teams, name="teams"),
    path("teams/<int:team_id>/", views.team, name="team"),
    path("teams/<int:team_id>/delete/", views.delete_team, name="team-delete"),
    path("teams/<int:team_id>/members/", views.add_member, name="team-add-member"),
    path("teams/<int:team_id>/members/<int:membership_id>/role/", views.member_role, name="team-member-role"),
    path("teams/<int:team_id>/members/<int:membership_id>/remove/", views.remove_member, name="team-member-remove"),
    path("people/", views.people, name="people"),
    re_path(r"^people/(?P<user_id>[0-9]+)/(?P<action>active|password|sign-out)/$", views.person_change, name="person-change"),
    path("account/sign-out-everywhere/", views.sign_out_everywhere, name="sign-out-everywhere"),
    path("audit/", audit_views.review, name="audit"),
    path("audit/export.csv", audit_views.export_csv, name="audit-export"),
]
