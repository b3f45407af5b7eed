"""What is recorded outside the services: hosts added, changed and removed; teams, members and roles changed
from any path (our pages, Django's admin), with the acting user, the request id and the client address."""

from django.urls import reverse

from balloonweb.access.actors import Actor, acting_as
from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry
from hosts.models import Host
from tests.access.conftest import MiB, World, build_world


def actions() -> list[tuple[str, str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("action", "actor_label", "result"))


def test_hosts_added_changed_and_removed(db):
    team = Team.objects.create(name="T")
    with acting_as(Actor.command_line()):
        host = Host.objects.create(name="hvx", uri="test:///default", capacity_kib=4096 * MiB)
        host.status = Host.Status.ONLINE
        host.save()  # status is the poller's, not an admin's: not recorded
        host.team = team
        host.reserved_kib = 256 * MiB
        host.save()
        host.delete()
    entries = AuditEntry.objects.filter(action__startswith="host.").order_by("id")
    assert [(e.action, e.actor_kind) for e in entries] == [("host.add", "cli"), ("host.update", "cli"), ("host.remove", "cli")]
    update = entries[1]
    assert update.before == {"team_id": None, "reserved_kib": 0} and update.after == {"team_id": team.pk, "reserved_kib": 262144}
    assert update.team_id == team.pk and update.host_id == entries[0].host_id == entries[2].host_id


def test_team_changes_on_our_pages_and_in_djangos_admin(db):
    world: World = build_world()
    start = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first()  # after the world's own entries
    admin = world.client("admin")
    admin.post(reverse("team-add-member", args=[world.team_a.pk]), {"username": "root", "role": "viewer"})
    root_membership = Membership.objects.get(user=world.users["superuser"], team=world.team_a)
    admin.post(reverse("team-member-role", args=[world.team_a.pk, root_membership.pk]), {"role": "operator"})
    admin.post(reverse("team-member-remove", args=[world.team_a.pk, root_membership.pk]))
    # The last admin stays.
    response = admin.post(reverse("team-member-remove", args=[world.team_a.pk, world.memberships["admin"].pk]), follow=True)
    assert "last admin" in response.content.decode() and Membership.objects.filter(pk=world.memberships["admin"].pk).exists()
    root = world.client("superuser")
    root.post(reverse("admin:access_team_change", args=[world.team_b.pk]), {
        "name": "B2", "operator_max_kib": "", "quota_kib": "1048576",
        "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0",
    })
    recent = AuditEntry.objects.filter(id__gt=start, action__in=["membership.add", "membership.role", "membership.remove", "team.update"]).order_by("id")
    got = [(e.action, e.actor_label, e.team_id) for e in recent]
    assert got[:3] == [("membership.add", "admin", world.team_a.pk), ("membership.role", "admin", world.team_a.pk), ("membership.remove", "admin", world.team_a.pk)]
    assert recent[1].before["role"] == "viewer" and recent[1].after["role"] == "operator"
    assert all(e.request_id and e.client_ip == "127.0.0.1" for e in recent[:3])
    assert got[3] == ("team.update", "root", world.team_b.pk) and recent[3].after == {"name": "B2", "quota_kib": 1048576}


def test_user_accounts_superuser_grants_and_password_changes(db):
    from django.contrib.auth import get_user_model

    with acting_as(Actor.command_line()):
        user = get_user_model().objects.create_user("eve", password="first password 1")
        user.last_login = None
        user.save()  # nothing an admin set: not recorded
        user.is_superuser = True
        user.save()
        user.set_password("second password 2")
        user.save()
        user.delete()
    got = [(e.action, e.before, e.after) for e in AuditEntry.objects.filter(action__in=["user.create", "user.update", "auth.password_change", "user.delete"]).order_by("id")]
    assert got == [
        ("user.create", None, {"user": "eve", "is_superuser": False, "is_staff": False, "is_active": True}),
        ("user.update", {"user": "eve", "is_superuser": False}, {"user": "eve", "is_superuser": True}),
        ("auth.password_change", None, {"user": "eve"}),
        ("user.delete", {"user": "eve"}, None),
    ]
    assert "pbkdf2" not in str(AuditEntry.objects.values_list("before", "after", "message")) and "md5" not in str(AuditEntry.objects.values_list("after", flat=True))


def test_xm_acting_as_a_user_is_recorded_as_the_command_line_with_the_account_that_ran_it(db):
    import getpass

    from django.core.management import call_command

    world: World = build_world()
    call_command("xm", "--user", "operator", "mem-set", "da", "512", "--no-wait", stdout=open("/dev/null", "w"))
    entry = AuditEntry.objects.get(action="domain.resize")
    assert (entry.actor_kind, entry.actor_label, entry.actor_user_id) == ("cli", "operator", world.users["operator"].pk)
    assert entry.request_id.startswith(f"cli:{getpass.getuser()}@")


def test_a_member_removed_is_named_in_the_entry(db):
    world: World = build_world()
    with acting_as(Actor.command_line()):
        world.memberships["viewer"].delete()
    entry = AuditEntry.objects.get(action="membership.remove")
    assert entry.before["user"] == "viewer" and entry.message == f"viewer left team {world.team_a.pk}"
