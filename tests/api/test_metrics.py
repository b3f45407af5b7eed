"""/metrics: the fleet's memory, jobs and poll cycle, in a fixed number of queries, behind a token or networks."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings

from balloonweb.api import metrics
from domains.models import Job

from .conftest import fake_domain

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return response.content.decode()


def test_memory_jobs_and_the_poll_cycle(fleet, client):
    Job.objects.create(kind="resize", domain=fleet["foo"], host=fleet["h1"], params={"target_kib": 512 * 1024})
    metrics.store_poll_report(task=type("T", (), {"name": metrics.POLL_TASK})(), args=[""], state="SUCCESS",
                              retval={"hosts": 3, "domains": 2, "libvirt_s": 0.25, "database_s": 0.05, "publish_s": 0.01})
    text = scrape(client)
    assert 'balloonweb_host_memory_total_bytes{host="h1"} 8.589934592e+09' in text
    assert 'balloonweb_host_memory_reserved_bytes{host="h1"} 5.36870912e+08' in text
    assert 'balloonweb_host_memory_used_bytes{host="h1"} 1.073741824e+09' in text
    assert 'balloonweb_host_maintenance{host="h1"} 0.0' in text
    uuid = fleet["foo"].uuid
    assert f'balloonweb_domain_memory_target_bytes{{domain="foo",host="h1",uuid="{uuid}"}} 1.073741824e+09' in text
    assert f'balloonweb_domain_memory_current_bytes{{domain="foo",host="h1",uuid="{uuid}"}} 1.073741824e+09' in text
    assert 'balloonweb_jobs{kind="resize",state="queued"} 1.0' in text
    assert 'balloonweb_jobs{kind="migrate",state="failed"} 0.0' in text
    assert 'balloonweb_autoscaler_jobs{kind="resize",state="queued"} 0.0' in text
    assert 'balloonweb_poll_duration_seconds{group="",phase="libvirt"} 0.25' in text
    assert 'balloonweb_poll_domains{group=""} 2.0' in text


def test_balloon_stats(fleet, client):
    fake_domain(fleet["h2"], "web1", unused_kib=300 * 1024, available_kib=900 * 1024, rss_kib=1000 * 1024)
    text = scrape(client)
    assert 'balloonweb_domain_balloon_unused_bytes{domain="web1"' in text
    assert 'balloonweb_domain_balloon_available_bytes{domain="web1"' in text


def test_queries_do_not_grow_with_the_fleet(fleet, client):
    scrape(client)
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for i in range(30):
        fake_domain(fleet["h2"], f"d{i}")
    with CaptureQueriesContext(connection) as many:
        scrape(client)
    assert len(few) == len(many) <= 6


@override_settings(METRICS_TOKEN="s3cret", METRICS_ALLOWED_NETWORKS="")
def test_a_token_guards_it(fleet, client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert "balloonweb_host_up" in scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")


@override_settings(METRICS_ALLOWED_NETWORKS="10.0.0.0/8, 192.168.1.0/24", METRICS_TOKEN="")
def test_networks_guard_it(fleet, client):
    assert client.get("/metrics").status_code == 403  # the test client is 127.0.0.1
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.2.1").status_code == 403


@override_settings(METRICS_ALLOWED_NETWORKS="", METRICS_TOKEN="")
def test_by_default_only_this_machine(fleet, client):
    assert client.get("/metrics").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 403


@override_settings(METRICS_ALLOWED_NETWORKS="", METRICS_TOKEN="", TRUSTED_PROXIES=["127.0.0.1"])
def test_behind_the_proxy_of_docs_deploy_the_client_is_judged_not_the_proxy(fleet, client):
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics").status_code == 200  # a scraper on this machine, not through the proxy
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="unknown").status_code == 403  # not the proxy's own address


@override_settings(METRICS_ALLOWED_NETWORKS="", METRICS_TOKEN="", TRUSTED_PROXIES=[])
def test_behind_a_proxy_not_named_in_trusted_proxies_nobody_is_local(fleet, client):
    refused = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")  # the proxy on this machine: 127.0.0.1
    assert refused.status_code == 403 and "name it in TRUSTED_PROXIES" in refused.content.decode()


def test_the_autoscalers_decisions_of_the_last_hour(fleet, client):
    from datetime import timedelta

    from django.utils import timezone

    from domains.autoscaler.models import Decision

    common = dict(kind="step", code="shrink", host=fleet["h1"], domain=fleet["foo"], reason="surplus", mode="recommend", policy_version="1")
    Decision.objects.create(at=timezone.now(), step_kind="resize", state="recommended", **common)
    Decision.objects.create(at=timezone.now() - timedelta(hours=2), step_kind="resize", state="applied", **common)
    text = scrape(client)
    assert 'balloonweb_autoscaler_decisions_last_hour{state="recommended",step="resize"} 1.0' in text
    lines = [line for line in text.splitlines() if line.startswith("balloonweb_autoscaler_decisions_last_hour{")]
    assert len(lines) == 1  # the applied one is two hours old
