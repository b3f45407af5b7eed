"""The seed's walkthrough through the API, with a real Celery worker and simulated hosts on libvirtd, checked
with virsh; and a host whose libvirtd dies answers 503."""

import pytest
from django.contrib.auth import get_user_model

from balloonweb.access.models import Membership, Team
from domains import poller
from hosts.models import Host
from hosts.simulation import fleet
from tests.conftest import virsh_dominfo

from .conftest import client_with, make_token

pytestmark = pytest.mark.usefixtures("celery_worker")

FOO = 'name   = "foo"\nmemory = 1024\nmaxmem = 4096\nvcpus  = 1\n'


@pytest.fixture
def blue(sim_hosts) -> dict:
    """hv1 and hv2 in team blue, with an admin and an operator who call the API with read-write tokens."""
    team = Team.objects.create(name="blue")
    Host.objects.filter(pk__in=[h.pk for h in sim_hosts.values()]).update(team=team)
    users = get_user_model().objects
    clients = {}
    for role in ("admin", "operator"):
        user = users.create_user(f"{role}1", password="x")
        Membership.objects.create(user=user, team=team, role=role)
        clients[role] = client_with(make_token(user))
    return clients


def follow(client, response) -> dict:
    assert response.status_code == 202, response.json()
    job = client.get(response["Location"], {"wait": 30}).json()
    assert job["state"] == "succeeded", job
    return job


def test_the_walkthrough(sim_hosts, blue):
    admin, operator = blue["admin"], blue["operator"]
    follow(admin, admin.post("/api/domains/", {"host": "hv1", "config": FOO}, format="json"))

    foo = operator.get("/api/domains/", {"name": "foo"}).json()["results"][0]
    assert (foo["host"], foo["memory_mib"], foo["maxmem_mib"], foo["vcpus"], foo["xen_state"]) == ("hv1", 1024, 4096, 1, "r-----")
    resize = f"/api/domains/{foo['id']}/resize/"

    follow(operator, operator.post(resize, {"size": "512"}, format="json"))
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == "524288 KiB"
    assert operator.get(foo["url"]).json()["memory_mib"] == 512

    follow(operator, operator.post(resize, {"size": "4G"}, format="json"))
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == "4194304 KiB"

    refused = operator.post(resize, {"size": "5000"}, format="json")
    assert refused.status_code == 400 and refused.json() == {
        "code": "above_maxmem",
        "message": "5,000 MiB is above the maxmem of foo (4,096 MiB); raise maxmem first (xm mem-max foo 5000), "
        "which a running domain takes at its next boot",
    }
    assert virsh_dominfo(sim_hosts["hv1"].uri, "foo")["Used memory"] == "4194304 KiB"

    moved = follow(operator, operator.post(f"/api/domains/{foo['id']}/migrate/", {"host": "hv2"}, format="json"))
    assert "simulated move" in moved["log"]
    assert virsh_dominfo(sim_hosts["hv2"].uri, "foo")["State"] == "running"
    assert operator.get(foo["url"]).json()["host"] == "hv2"


def test_a_config_without_maxmem_cannot_grow_until_maxmem_is_raised(sim_hosts, blue):
    admin = blue["admin"]
    follow(admin, admin.post("/api/domains/", {"host": "hv1", "config": 'name = "bar"\nmemory = 1024\n'}, format="json"))
    bar = admin.get("/api/domains/", {"name": "bar"}).json()["results"][0]
    assert admin.post(f"/api/domains/{bar['id']}/resize/", {"size": "1100"}, format="json").json()["code"] == "above_maxmem"
    raised = follow(admin, admin.post(f"/api/domains/{bar['id']}/maxmem/", {"size": "2048"}, format="json"))
    assert "next boot" in raised["log"]
    bar = admin.get(bar["url"]).json()
    assert (bar["maxmem_mib"], bar["config_maxmem_mib"]) == (1024, 2048)


def test_an_unreachable_host_answers_503(sim_hosts, blue):
    admin = blue["admin"]
    follow(admin, admin.post("/api/domains/", {"host": "hv2", "config": FOO}, format="json"))
    foo = admin.get("/api/domains/", {"name": "foo"}).json()["results"][0]
    fleet.stop_processes(fleet.simhost("hv2"))
    poller.poll_fleet()
    response = admin.post(f"/api/domains/{foo['id']}/resize/", {"size": "512"}, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "host_unreachable" and response.json()["message"].startswith("host unreachable: hv2 is offline")
    assert admin.post(f"/api/domains/{foo['id']}/migrate/", {"host": "hv1"}, format="json").status_code == 503
    host = admin.get(f"/api/hosts/{sim_hosts['hv2'].pk}/").json()
    assert host["status"] == "offline" and host["last_error"]


def test_the_workers_poll_report_reaches_metrics(sim_hosts, client):
    """The poll runs in the worker; its report crosses to /metrics through the shared cache."""
    import time

    from celery import current_app
    from django.core.cache import cache

    from balloonweb.api import metrics

    cache.delete(metrics.POLL_KEY.format(""))
    current_app.send_task(metrics.POLL_TASK, args=[""], queue="jobs")
    deadline = time.monotonic() + 30
    while cache.get(metrics.POLL_KEY.format("")) is None:
        assert time.monotonic() < deadline, "no poll report from the worker"
        time.sleep(0.1)
    text = client.get("/metrics").content.decode()
    assert 'balloonweb_poll_duration_seconds{group="",phase="total"}' in text
    assert 'balloonweb_host_up{host="hv1",status="online"} 1.0' in text
