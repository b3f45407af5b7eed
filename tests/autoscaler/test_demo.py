"""The run command's demo is autoscalable: a team "ops" with `admin` as its admin, in recommend mode."""

import pytest
from django.contrib.auth import get_user_model

from balloonweb.access.models import Membership
from domains.autoscaler.models import TeamPolicy
from hosts.simulation import setup

pytestmark = pytest.mark.django_db


def test_demo_team_has_the_admin_and_recommends_and_keeps_a_persons_change():
    admin = get_user_model().objects.create_superuser("admin", "", "x")
    team = setup.demo_team()
    assert Membership.objects.get(team=team, user=admin).role == "admin"
    assert TeamPolicy.objects.get(team=team).mode == "recommend"
    TeamPolicy.objects.filter(team=team).update(mode="automatic")
    assert setup.demo_team() == team and TeamPolicy.objects.get(team=team).mode == "automatic"
