"""The WebSocket consumers through the real ASGI application and the real channels-redis layer.

Each test runs as one coroutine (a communicator belongs to one event loop); the ORM and publish() are
synchronous, so they are called through sync_to_async as a consumer would.
"""

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from balloonweb.access.actors import Actor
from balloonweb.access.models import Membership
from balloonweb.asgi import application
from balloonweb.live.publish import publish
from domains.autoscaler.models import EngineState, TeamPolicy
from domains.autoscaler.run import run_autoscaler
from domains.consumers import (
    CLOSE_NOT_ALLOWED,
    CLOSE_RECHECK,
    CLOSE_SIGNED_OUT,
    DomainConsumer,
    FleetConsumer,
    HostConsumer,
    JobsConsumer,
)
from domains import services
from domains.models import Domain
from hosts.models import Host
from tests.conftest import define_domain, wait_for_job
from tests.web.conftest import GIB

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://127.0.0.1")]
send = sync_to_async(publish)


async def connect(consumer, user, **kwargs) -> tuple[WebsocketCommunicator, bool]:
    """Open a socket as `user` (what the session middleware would find is put in the scope directly)."""
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/", headers=ORIGIN)
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": kwargs}
    connected, _ = await communicator.connect(timeout=5)
    return communicator, connected


async def closed_with(communicator: WebsocketCommunicator, connected: bool) -> int | None:
    """The code a refused socket is closed with: accepted, then closed at once, joined to nothing (a refused
    handshake reaches a browser only as 1006, which the page would retry for ever)."""
    assert connected
    output = await communicator.receive_output(timeout=5)
    assert output["type"] == "websocket.close", output
    return output.get("code")


def run(scenario) -> None:
    async_to_sync(scenario)()


def test_the_application_refuses_anonymous_sockets_on_every_route():
    from balloonweb.routing import websocket_urlpatterns

    async def scenario():
        for route in websocket_urlpatterns:
            path = "/" + str(route.pattern).replace("<int:host_id>", "1").replace("<int:domain_id>", "1")
            communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
            connected, _ = await communicator.connect(timeout=5)
            assert await closed_with(communicator, connected) == CLOSE_SIGNED_OUT, path

    run(scenario)


def test_a_foreign_origin_is_refused():
    async def scenario():
        communicator = WebsocketCommunicator(application, "/ws/fleet/", headers=[(b"origin", b"http://evil.example")])
        connected, _ = await communicator.connect(timeout=5)
        assert not connected

    run(scenario)


def test_outsiders_and_missing_objects_are_refused(people, small_fleet):
    foo, hv1 = small_fleet["foo"], small_fleet["hv1"]

    async def scenario():
        assert await closed_with(*await connect(HostConsumer, people["outsider"], host_id=hv1.pk)) == CLOSE_NOT_ALLOWED
        assert await closed_with(*await connect(DomainConsumer, people["outsider"], domain_id=foo.pk)) == CLOSE_NOT_ALLOWED
        assert await closed_with(*await connect(DomainConsumer, people["viewer"], domain_id=999999)) == CLOSE_NOT_ALLOWED
        assert await closed_with(*await connect(HostConsumer, AnonymousUser(), host_id=hv1.pk)) == CLOSE_SIGNED_OUT

    run(scenario)


def test_members_get_their_hosts_hints_and_outsiders_see_nothing(people, small_fleet, team):
    foo, hv1 = small_fleet["foo"], small_fleet["hv1"]

    async def scenario():
        viewer, _ = await connect(HostConsumer, people["viewer"], host_id=hv1.pk)
        fleet_viewer, _ = await connect(FleetConsumer, people["viewer"])
        fleet_outsider, ok = await connect(FleetConsumer, people["outsider"])
        assert ok  # the fleet page is open to everyone logged in; it shows only their teams' hosts
        await send("host", hv1.pk, {"type": "domains", "domains": [foo.pk]})
        await send("fleet", team.pk, {"type": "hosts", "hosts": [hv1.pk]})
        assert await viewer.receive_json_from(timeout=5) == {"type": "domains", "domains": [foo.pk]}
        assert await fleet_viewer.receive_json_from(timeout=5) == {"type": "hosts", "hosts": [hv1.pk]}
        assert await fleet_outsider.receive_nothing(timeout=0.3)
        for communicator in (viewer, fleet_viewer, fleet_outsider):
            await communicator.disconnect()

    run(scenario)


def test_a_frame_that_is_not_json_text_is_ignored_and_the_socket_goes_on(people, small_fleet, team):
    async def scenario():
        socket, _ = await connect(FleetConsumer, people["viewer"])
        await socket.send_to(text_data="{bad json")
        await socket.send_to(bytes_data=b"\x00\x01")
        await socket.send_json_to({"type": "ping", "t": 7})
        assert await socket.receive_json_from(timeout=5) == {"type": "pong", "t": 7}
        await send("fleet", team.pk, {"type": "hosts", "hosts": [small_fleet["hv1"].pk]})
        assert await socket.receive_json_from(timeout=5) == {"type": "hosts", "hosts": [small_fleet["hv1"].pk]}
        await socket.disconnect()

    run(scenario)


def test_the_domain_socket_forwards_only_its_domain_and_follows_a_migration(people, small_fleet):
    foo, hv1, hv2 = small_fleet["foo"], small_fleet["hv1"], small_fleet["hv2"]

    async def scenario():
        socket, ok = await connect(DomainConsumer, people["viewer"], domain_id=foo.pk)
        assert ok
        await send("host", hv1.pk, {"type": "domains", "domains": [foo.pk + 1000]})
        assert await socket.receive_nothing(timeout=0.3)
        await send("host", hv1.pk, {"type": "job", "job": 1, "state": "running", "progress": 10, "domain": foo.pk})
        assert (await socket.receive_json_from(timeout=5))["progress"] == 10
        await sync_to_async(Domain.objects.filter(pk=foo.pk).update)(host=hv2)
        await send("host", hv1.pk, {"type": "job", "job": 1, "state": "succeeded", "progress": 100, "domain": foo.pk})
        assert (await socket.receive_json_from(timeout=5))["state"] == "succeeded"
        await send("host", hv2.pk, {"type": "domain", "domain": foo.pk})
        assert await socket.receive_json_from(timeout=5) == {"type": "domain", "domain": foo.pk}
        await send("host", hv1.pk, {"type": "domains", "domains": [foo.pk]})
        assert await socket.receive_nothing(timeout=0.3)  # no longer listening on the old host
        await socket.disconnect()

    run(scenario)


def test_the_domain_socket_follows_a_move_the_poll_found(people, small_fleet):
    """Moved outside BalloonWeb (virsh migrate): no job ends, the poll finds it on hv2 and tells hv1's group."""
    foo, hv1, hv2 = small_fleet["foo"], small_fleet["hv1"], small_fleet["hv2"]

    async def scenario():
        socket, ok = await connect(DomainConsumer, people["viewer"], domain_id=foo.pk)
        assert ok
        await sync_to_async(Domain.objects.filter(pk=foo.pk).update)(host=hv2)
        await send("host", hv1.pk, {"type": "domains", "domains": [foo.pk], "moved": [foo.pk]})
        assert (await socket.receive_json_from(timeout=5))["moved"] == [foo.pk]
        await send("host", hv2.pk, {"type": "domains", "domains": [foo.pk]})
        assert await socket.receive_json_from(timeout=5) == {"type": "domains", "domains": [foo.pk]}
        await socket.disconnect()

    run(scenario)


def test_the_jobs_socket_hears_its_teams_jobs(people, small_fleet, team, other_team):
    async def scenario():
        socket, ok = await connect(JobsConsumer, people["operator"])
        assert ok
        await send("jobs", other_team.pk, {"type": "job", "job": 2, "state": "queued", "progress": 0, "domain": None})
        await send("jobs", team.pk, {"type": "job", "job": 1, "state": "queued", "progress": 0, "domain": None})
        assert (await socket.receive_json_from(timeout=5))["job"] == 1
        await socket.disconnect()

    run(scenario)


def test_a_new_member_s_fleet_socket_joins_the_team_without_a_reload(people, small_fleet, team):
    hv1 = small_fleet["hv1"]

    async def scenario():
        socket, ok = await connect(FleetConsumer, people["outsider"])
        assert ok
        await send("fleet", team.pk, {"type": "hosts", "hosts": [hv1.pk]})
        assert await socket.receive_nothing(timeout=0.3)  # not theirs yet
        await sync_to_async(Membership.objects.create)(team=team, user=people["outsider"], role="viewer")
        assert (await socket.receive_json_from(timeout=5))["type"] == "resync"  # the page refetches: hv1 appears
        await send("fleet", team.pk, {"type": "hosts", "hosts": [hv1.pk]})
        assert await socket.receive_json_from(timeout=5) == {"type": "hosts", "hosts": [hv1.pk]}
        await socket.disconnect()

    run(scenario)


def test_the_fleet_hears_of_a_finished_resize_before_any_poll(people, team, sim_hosts, celery_worker):
    hv1 = sim_hosts["hv1"]
    Host.objects.filter(pk=hv1.pk).update(team=team)
    foo = define_domain(hv1, "foo", 1024, 4096)

    async def scenario():
        socket, ok = await connect(FleetConsumer, people["viewer"])
        assert ok
        job = await sync_to_async(services.request_resize)(Actor.command_line(), foo, "512")
        await sync_to_async(wait_for_job)(job)
        assert await socket.receive_json_from(timeout=5) == {"type": "hosts", "hosts": [hv1.pk]}
        await socket.disconnect()

    run(scenario)


def test_a_close_hint_closes_the_users_sockets(people, small_fleet):
    async def scenario():
        socket, _ = await connect(FleetConsumer, people["viewer"])
        await send("user", people["viewer"].pk, {"type": "close", "reason": "logged out"})
        # The page reconnects at once on this code, and its connect checks afresh what the user may see.
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}

    run(scenario)


def test_a_recommendation_of_the_autoscaler_reaches_the_host_page_and_the_domain_page(people, small_fleet, team):
    """In recommend mode a person watches the host page for steps to approve: a run that changes the plan tells
    the host's page and its domains' pages; a run that changes nothing tells nobody."""
    foo, hv1 = small_fleet["foo"], small_fleet["hv1"]
    available = GIB * 97 // 100
    Domain.objects.filter(pk=foo.pk).update(actual_kib=GIB, available_kib=available, unused_kib=available - 200 * 1024,
                                            usable_kib=available - 200 * 1024)
    TeamPolicy.objects.create(team=team, mode="recommend")
    now = EngineState.get().last_run_at + 1000.0
    autoscale = sync_to_async(run_autoscaler)

    async def scenario():
        host_page, _ = await connect(HostConsumer, people["viewer"], host_id=hv1.pk)
        domain_page, _ = await connect(DomainConsumer, people["viewer"], domain_id=foo.pk)
        assert (await autoscale(now)).recommended == 1
        hint = {"type": "autoscaler", "host": hv1.pk, "domains": [foo.pk]}
        assert await host_page.receive_json_from(timeout=5) == hint
        assert await domain_page.receive_json_from(timeout=5) == hint
        assert (await autoscale(now + 10)).recommended == 0  # the same step is still on the page
        assert await host_page.receive_nothing(timeout=0.3)
        assert await domain_page.receive_nothing(timeout=0.3)

    run(scenario)


def test_a_host_given_to_another_team_leaves_the_old_team_s_sockets_and_joins_the_new_one_s(people, small_fleet, team, other_team):
    """Team blue's viewer watches host0000; the fleet's owner gives it to team green: the viewer's socket closes
    (its page reconnects through the permission check, and is refused), green's admin's fleet socket joins."""
    from domains import host_registry

    hv1 = small_fleet["hv1"]

    async def scenario():
        watching, ok = await connect(HostConsumer, people["viewer"], host_id=hv1.pk)
        assert ok
        fleet, ok = await connect(FleetConsumer, people["outsider"])  # green's admin: green has no host yet
        assert ok
        await sync_to_async(host_registry.change_host)(Actor.command_line(), hv1, team=other_team.name)
        assert (await watching.receive_output(timeout=5))["type"] == "websocket.close"
        assert (await fleet.receive_json_from(timeout=5))["type"] == "resync"
        await send("fleet", other_team.pk, {"type": "hosts", "hosts": [hv1.pk]})
        assert await fleet.receive_json_from(timeout=5) == {"type": "hosts", "hosts": [hv1.pk]}
        assert await closed_with(*await connect(HostConsumer, people["viewer"], host_id=hv1.pk)) == CLOSE_NOT_ALLOWED
        await fleet.disconnect()

    run(scenario)


def test_a_resync_closes_for_a_recheck_since_the_hints_lost_may_include_a_close(people, small_fleet, team):
    """Redis was away (balloonweb/live/layer.py resyncs every socket): a removal's "close" sent meanwhile was lost,
    and the socket kept its team's hints. Now the page reconnects through the permission check."""
    hv1 = small_fleet["hv1"]

    async def scenario():
        socket, ok = await connect(HostConsumer, people["viewer"], host_id=hv1.pk)
        assert ok
        await sync_to_async(Membership.objects.filter(user=people["viewer"]).delete)()
        await send("user", people["viewer"].pk, {"type": "resync"})
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}
        assert await closed_with(*await connect(HostConsumer, people["viewer"], host_id=hv1.pk)) == CLOSE_NOT_ALLOWED

    run(scenario)


def test_a_domain_socket_closed_when_its_domain_moves_out_of_sight_sends_nothing_more(people, small_fleet, other_team):
    foo, hv2 = small_fleet["foo"], small_fleet["hv2"]

    async def scenario():
        socket, ok = await connect(DomainConsumer, people["viewer"], domain_id=foo.pk)
        assert ok
        await sync_to_async(Host.objects.filter(pk=hv2.pk).update)(team=other_team)
        await sync_to_async(Domain.objects.filter(pk=foo.pk).update)(host=hv2)
        await send("host", foo.host_id, {"type": "job", "job": 1, "state": "succeeded", "progress": 100, "domain": foo.pk})
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_NOT_ALLOWED}
        assert await socket.receive_nothing(timeout=0.3)  # not the hint itself, on a socket it had just closed

    run(scenario)


def test_a_new_password_closes_the_users_sockets_for_a_recheck(people, small_fleet):
    async def scenario():
        socket, ok = await connect(FleetConsumer, people["viewer"])
        assert ok
        viewer = people["viewer"]

        def change_password():
            viewer.set_password("a new and longer passphrase")
            viewer.save()

        await sync_to_async(change_password)()
        assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}

    run(scenario)


def test_after_a_move_across_teams_both_teams_fleets_hear_of_it(people, team, other_team, sim_hosts, celery_worker):
    """Team blue's fleet kept hv1's bar with the domain that had left for team green's hv2."""
    hv1, hv2 = sim_hosts["hv1"], sim_hosts["hv2"]
    Host.objects.filter(pk=hv1.pk).update(team=team)
    Host.objects.filter(pk=hv2.pk).update(team=other_team)
    foo = define_domain(hv1, "foo", 1024, 4096)

    async def scenario():
        blue, ok = await connect(FleetConsumer, people["viewer"])
        assert ok
        job = await sync_to_async(services.request_migrate)(Actor.command_line(), foo, hv2)
        await sync_to_async(wait_for_job)(job)
        heard = []
        while not await blue.receive_nothing(timeout=1):
            heard.append(await blue.receive_json_from())
        assert {"type": "hosts", "hosts": [hv1.pk]} in heard, heard
        await blue.disconnect()

    run(scenario)


def test_maintenance_ended_on_an_empty_host_reaches_its_page(people, small_fleet):
    """No poll changes anything on an empty host: its page said "In maintenance" until reloaded."""
    from domains import maintenance

    hv2 = small_fleet["hv2"]
    Host.objects.filter(pk=hv2.pk).update(maintenance=True)

    async def scenario():
        page, ok = await connect(HostConsumer, people["viewer"], host_id=hv2.pk)
        assert ok
        await sync_to_async(maintenance.end)(Actor.command_line(), hv2)
        assert await page.receive_json_from(timeout=5) == {"type": "host", "host": hv2.pk}

    run(scenario)


def test_a_removed_host_closes_the_sockets_of_its_pages(people, small_fleet):
    from domains import host_registry

    hv2 = small_fleet["hv2"]

    async def scenario():
        page, ok = await connect(HostConsumer, people["viewer"], host_id=hv2.pk)
        assert ok
        await sync_to_async(host_registry.remove_host)(Actor.command_line(), hv2)
        assert await page.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}
        assert await closed_with(*await connect(HostConsumer, people["viewer"], host_id=hv2.pk)) == CLOSE_NOT_ALLOWED

    run(scenario)


def test_a_membership_edited_to_another_person_closes_the_first_ones_sockets(people, small_fleet, other_team):
    from balloonweb.audit.models import AuditEntry

    hv1 = small_fleet["hv1"]

    async def scenario():
        page, ok = await connect(HostConsumer, people["viewer"], host_id=hv1.pk)
        assert ok

        def hand_the_membership_over():
            membership = Membership.objects.get(user=people["viewer"])
            membership.user = people["outsider"]  # as Django admin's inline does
            membership.save()

        await sync_to_async(hand_the_membership_over)()
        assert await page.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}
        removed = await sync_to_async(AuditEntry.objects.get)(action="membership.remove")
        assert removed.before["user"] == "blue-viewer"

    run(scenario)


def test_a_user_made_superuser_has_their_fleet_page_reconnect_to_join_every_team(people, small_fleet, other_team):
    """A socket's user is read once, at connect: a regroup there still saw the rights from before."""
    from django.contrib.auth.models import User

    async def scenario():
        fleet, ok = await connect(FleetConsumer, people["outsider"])
        assert ok

        def make_superuser():
            user = User.objects.get(pk=people["outsider"].pk)  # another copy, as another request would change it
            user.is_superuser = True
            user.save()

        await sync_to_async(make_superuser)()
        assert await fleet.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_RECHECK}

    run(scenario)
