"""The run command's demo is autoscalable: a team "ops" with `admin` as its admin, in recommend mode."""

import pytest
from django.contrib.auth import get_user_model

from balloonweb.access.models import Membership
from domains.autoscaler.models import TeamPolicy
from domains.models import Domain
from hosts.simulation import setup

pytestmark = pytest.mark.django_db(transaction=True)


def test_demo_team_has_the_admin_and_recommends_and_keeps_a_persons_change():
    admin = get_user_model().objects.create_superuser("admin", "", "x")
    team = setup.demo_team()
    assert Membership.objects.get(team=team, user=admin).role == "admin"
    assert TeamPolicy.objects.get(team=team).mode == "recommend"
    TeamPolicy.objects.filter(team=team).update(mode="automatic")
    assert setup.demo_team() == team and TeamPolicy.objects.get(team=team).mode == "automatic"


def test_the_demo_started_again_brings_back_the_same_domains(sim_hosts):
    """The run command removes the simulated hosts when it stops; started again, the demo's domains are the same
    rows (their history, jobs and decisions with them), not new ones beside five left "gone"."""
    get_user_model().objects.create_superuser("admin", "", "x")
    setup.start_demo()
    first = dict(Domain.objects.values_list("name", "pk"))
    assert set(first) == {"foo", "web1", "batch1", "db1", "idle1"}
    for name in setup.DEMO_HOSTS:
        setup.stop(name)
    setup.start_demo()
    assert dict(Domain.objects.values_list("name", "pk")) == first
    assert set(Domain.objects.values_list("state", flat=True)) == {Domain.State.RUNNING}
    # The hosts were given to the demo's team once, as the audit log says (they were given by an UPDATE, unrecorded).
    from balloonweb.audit.models import AuditEntry

    given = AuditEntry.objects.filter(action="host.update", after__team_id=setup.demo_team().pk)
    assert sorted(given.values_list("object_repr", flat=True)) == sorted(setup.DEMO_HOSTS)
