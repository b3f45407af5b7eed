"""What a host has booked (services.booked_kib) and who may queue what on a domain, on the access tests' world
(team A: hosts a1 and a2 of 7,680 MiB usable, domain da on a1 with 1,024 of 4,096 MiB): the rules behind "a host
is never double-booked"."""

import pytest

from balloonweb.access.actors import Actor
from domains import services
from domains.models import Domain, Job
from tests.access.conftest import make_domain

MiB = 1024


def test_a_queued_resize_is_booked_where_its_domain_runs_now(world):
    """A migration that ran before the resize took the domain to a2: the resize will act there."""
    cli = Actor.command_line()
    services.request_resize(cli, world.da, "3G")
    assert services.booked_kib(world.a1) == 3072 * MiB
    Domain.objects.filter(pk=world.da.pk).update(host=world.a2)
    assert (services.booked_kib(world.a1), services.booked_kib(world.a2)) == (0, 3072 * MiB)


def test_a_second_migration_waits_for_the_first_even_while_it_is_queued(world):
    cli = Actor.command_line()
    a3 = type(world.a1).objects.create(name="a3", uri="test:///a3", team=world.team_a, status="online",
                                       total_kib=8192 * MiB, reserved_kib=512 * MiB)
    first = services.request_migrate(cli, world.da, world.a2)
    with pytest.raises(services.Conflict, match=rf"da is busy: job {first.pk} \(migrate\) is queued; wait for it to end, or cancel it"):
        services.request_migrate(cli, world.da, a3)
    assert services.booked_kib(a3) == 0


def test_a_created_domain_may_not_take_a_known_uuid(world):
    make_domain(world.a2, "twin")
    known = Domain.objects.get(name="da")
    with pytest.raises(services.Conflict, match=f"the UUID {known.uuid} is da's, on a1; leave the uuid line out for a new one"):
        services.request_create(Actor.command_line(), world.a2, f'name = "copy"\nmemory = 512\nuuid = "{known.uuid}"\n')
    assert not Job.objects.filter(kind=Job.Kind.CREATE).exists()


def test_a_team_may_not_take_the_uuid_of_another_teams_domain_even_gone(world):
    """Created with da's UUID, the domain would take over da's row when its job ends: team A's jobs, history and
    policy would show in team B. Nor does the refusal name what team B may not see."""
    known = Domain.objects.get(name="da")
    config = f'name = "copy"\nmemory = 512\nuuid = "{known.uuid}"\n'
    outsider = Actor.for_user(world.users["outsider"])  # team B's admin
    for state in (Domain.State.RUNNING, Domain.State.GONE):
        Domain.objects.filter(pk=known.pk).update(state=state)
        with pytest.raises(services.Conflict, match=f"^the UUID {known.uuid} is taken by a domain of another team; leave the uuid line out"):
            services.request_create(outsider, world.b1, config)
    # Nor may someone who sees both teams (here the command line, with every right) move it into team B.
    with pytest.raises(services.Conflict, match=f"^the UUID {known.uuid} is da's, on a1 \\(gone, and its history is its team's\\)"):
        services.request_create(Actor.command_line(), world.b1, config)
    assert not Job.objects.filter(kind=Job.Kind.CREATE).exists()
    # Team A creates its gone domain again: it takes back its row, history and all.
    assert services.request_create(Actor.command_line(), world.a2, config).params["uuid"] == str(known.uuid)


def test_a_domain_being_created_may_not_be_created_again(world):
    """Two `xm create` of one config: the second is refused while the first is queued, not failed by libvirt."""
    cli = Actor.command_line()
    first = services.request_create(cli, world.a2, 'name = "twice"\nmemory = 512\n')
    with pytest.raises(services.Conflict, match=rf"twice is already being created on a2 \(job {first.pk}\)"):
        services.request_create(cli, world.a2, 'name = "twice"\nmemory = 512\n')
    assert services.booked_kib(world.a2) == 512 * MiB
    services.request_create(cli, world.a1, 'name = "twice"\nmemory = 512\n')  # another host may have its own
