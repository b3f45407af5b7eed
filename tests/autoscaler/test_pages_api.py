"""The autoscaler on the pages and in the API, on the access tests' world (team A: a1, a2, domain `da`)."""

import re

import pytest
from django.utils import timezone

from balloonweb.audit.models import AuditEntry
from domains.autoscaler import run
from domains.autoscaler.models import Decision, EngineState, HostPolicy, TeamPolicy
from domains.models import Domain, Job
from tests.access.conftest import World, build_world, make_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> World:
    return build_world()


def recommend(world: World, to_mib: int = 512) -> Decision:
    return Decision.objects.create(
        at=timezone.now(), kind=Decision.Kind.STEP, code="shrink", host=world.a1, domain=world.da, step_kind="resize",
        from_kib=1024 * 1024, to_kib=to_mib * 1024, reason="da has more than it needs", mode="recommend",
        policy_version="1.0", state=Decision.State.RECOMMENDED,
    )


def test_host_page_offers_approve_to_operators_and_the_policy_to_admins(world):
    recommend(world)
    operator = world.client("operator").get(f"/hosts/{world.a1.pk}/").content.decode()
    viewer = world.client("viewer").get(f"/hosts/{world.a1.pk}/").content.decode()
    admin = world.client("admin").get(f"/hosts/{world.a1.pk}/").content.decode()
    assert "da has more than it needs" in viewer and "Approve" not in viewer
    assert "Approve" in operator and "Host policy" not in operator
    assert "Host policy" in admin


def test_the_host_pages_plan_is_a_part_it_refetches_alone(world):
    """The live region of the host page (refetched on an autoscaler hint): the steps with the person's buttons,
    without the policy form, which someone may be filling in."""
    recommend(world)
    url = f"/hosts/{world.a1.pk}/part/autoscaler/"
    operator = world.client("operator").get(url).content.decode()
    admin = world.client("admin").get(url).content.decode()
    assert "da has more than it needs" in operator and "Approve" in operator
    assert "Host policy" not in admin and "<h2" not in admin
    assert world.client("outsider").get(url).status_code == 404
    assert world.client("operator").get(f"/hosts/{world.a1.pk}/part/figures/").status_code == 404


def test_approving_on_the_page_creates_the_job_as_the_person(world):
    step = recommend(world)
    response = world.client("operator").post(f"/autoscaler/steps/{step.pk}/approve/")
    assert response.status_code == 302
    step.refresh_from_db()
    assert step.state == Decision.State.APPLIED and step.decided_by == world.users["operator"]
    assert Job.objects.get(pk=step.job_id).actor_kind == "user"


def test_domain_page_shows_decisions_and_the_policy_to_admins(world):
    recommend(world)
    page = world.client("admin").get(f"/domains/{world.da.pk}/").content.decode()
    assert "Decisions" in page and "da has more than it needs" in page and "Domain policy" in page
    assert "Domain policy" not in world.client("operator").get(f"/domains/{world.da.pk}/").content.decode()
    chart = world.client("viewer").get(f"/autoscaler/domains/{world.da.pk}/chart/").json()
    assert chart["steps"][0][1] == 512


def test_fleet_what_if_is_applied_as_the_person_where_the_autoscaler_is_on(world):
    """Recommend mode: the person's Apply is their approval of the plan's steps, each a job created as theirs.
    A viewer is not offered it and is refused; a host whose autoscaler is off is not touched."""
    assert "no host is online with autoscaling on" in world.client("admin").get("/?memory=2048").content.decode()
    TeamPolicy.objects.create(team=world.team_a, mode="recommend")
    ask = "/?memory=7000&maxmem=8G"  # a1 (da: 1,024 MiB, using nothing) makes room by shrinking da; a2 is empty
    Job.objects.filter(pk=world.job.pk).update(state=Job.State.SUCCEEDED)  # a busy domain is left alone
    Domain.objects.filter(pk=world.da.pk).update(actual_kib=1024 * 1024, available_kib=1000 * 1024, unused_kib=900 * 1024)
    make_domain(world.a2, "big", memory_mib=6500, maxmem_mib=7000)
    page = world.client("operator").get(ask).content.decode()
    assert "Make room for one more" in page and "<strong>a1</strong>" in page and "Apply: make the room" in page
    viewer = world.client("viewer")
    assert "Apply: make the room" not in viewer.get(ask).content.decode()
    assert viewer.post("/autoscaler/what-if/apply/", {"memory": "7000", "maxmem": "8G"}).status_code == 403
    assert not Job.objects.exclude(pk=world.job.pk).exists()
    assert AuditEntry.objects.filter(action="autoscaler.what_if", result=AuditEntry.Result.REFUSED, actor_label="viewer").exists()
    shown = re.search(r'name="plan" value="([^"]*)"', page).group(1)
    operator = world.client("operator")
    response = operator.post("/autoscaler/what-if/apply/", {"memory": "7000", "maxmem": "8G", "plan": shown}, follow=True)
    assert "Making room for 7,000 MiB: 1 of 1 steps queued" in response.content.decode()
    job = Job.objects.exclude(pk=world.job.pk).get()
    assert (job.domain_id, job.actor_label) == (world.da.pk, "operator")
    # A second click on the same answer: da's shrink is under way, the plan worked out now is another one.
    again = operator.post("/autoscaler/what-if/apply/", {"memory": "7000", "maxmem": "8G", "plan": shown}, follow=True)
    assert again.redirect_chain[-1][0] == "/?memory=7000&maxmem=8G#what-if"
    assert "nothing to apply: no host can take 7,000 MiB" in again.content.decode()
    assert Job.objects.exclude(pk=world.job.pk).count() == 1
    # The plan changed between the answer and the click (here: the shown one is made up): nothing is applied.
    Job.objects.exclude(pk=world.job.pk).delete()
    changed = operator.post("/autoscaler/what-if/apply/", {"memory": "7000", "maxmem": "8G", "plan": "1:"}, follow=True)
    assert "nothing was applied: the fleet changed since the answer was shown" in changed.content.decode()
    assert "<strong>a1</strong>" in changed.content.decode() and not Job.objects.exclude(pk=world.job.pk).exists()
    HostPolicy.objects.create(host=world.a1, mode="off")
    refused = world.client("operator").post("/autoscaler/what-if/apply/", {"memory": "7000", "maxmem": "8G"}, follow=True)
    assert "nothing to apply: no host can take 7,000 MiB" in refused.content.decode()  # a1 is no longer counted on
    assert not Job.objects.exclude(pk=world.job.pk).exists()


def test_api_policy_change_is_audited_and_bumps_the_version(world):
    client = world.client("admin")
    before = EngineState.get().revision
    response = client.patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", {"mode": "automatic"}, content_type="application/json")
    assert response.status_code == 200 and response.json()["effective_mode"] == "automatic"
    assert HostPolicy.objects.get(host=world.a1).mode == "automatic" and EngineState.get().revision == before + 1
    bad = client.patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", {"target_use": 2}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_policy"
    assert client.get(f"/api/autoscaler/policies/team/{world.team_a.pk}/").json()["mode"] == "off"


def test_api_decisions_approve_and_what_if_apply_in_automatic_mode(world):
    step = recommend(world)
    client = world.client("operator")
    listed = client.get("/api/autoscaler/decisions/?state=recommended").json()["results"]
    assert [d["id"] for d in listed] == [step.pk]
    approved = client.post(f"/api/autoscaler/decisions/{step.pk}/approve/", content_type="application/json")
    assert approved.status_code == 202 and approved.json()["state"] == "applied"
    again = client.post(f"/api/autoscaler/decisions/{step.pk}/approve/", content_type="application/json")
    assert again.status_code == 409
    TeamPolicy.objects.create(team=world.team_a, mode="automatic")
    answer = client.post("/api/autoscaler/what-if/", {"memory": "7000", "maxmem": "8G"}, content_type="application/json").json()
    assert answer["host"] in ("a1", "a2"), answer


def test_team_admins_set_the_teams_mode_on_the_team_page(world):
    """A mode per team or host: the team's mode was only in the API; its admins now set it on the team page."""
    HostPolicy.objects.create(host=world.a2, mode="off")
    page = world.client("admin").get(f"/teams/{world.team_a.pk}/").content.decode()
    assert "Save mode" in page and "Hosts with a mode of their own: a2 (off)." in page
    response = world.client("admin").post(f"/autoscaler/teams/{world.team_a.pk}/policy/", {"mode": "recommend"})
    assert response.status_code == 302 and response.url == f"/teams/{world.team_a.pk}/"
    assert TeamPolicy.objects.get(team=world.team_a).mode == "recommend"
    entry = AuditEntry.objects.get(action="autoscaler.policy")
    assert entry.actor_label == "admin" and entry.before == {"mode": "off"} and entry.after == {"mode": "recommend"}
    assert world.client("operator").post(f"/autoscaler/teams/{world.team_a.pk}/policy/", {"mode": "automatic"}).status_code == 403
    assert world.client("outsider").post(f"/autoscaler/teams/{world.team_a.pk}/policy/", {"mode": "automatic"}).status_code == 404
    refused = world.client("admin").post(f"/autoscaler/teams/{world.team_a.pk}/policy/", {"mode": "sometimes"}, follow=True)
    assert "mode: Select a valid choice" in refused.content.decode()
    assert TeamPolicy.objects.get(team=world.team_a).mode == "recommend"


def plan_on_a1(world: World) -> tuple[Decision, Decision]:
    """a1 (7,680 MiB usable) holds da (1,024 MiB) and db (6,144 MiB): the plan shrinks da by 512 MiB so that db
    can grow by 700, which the 512 MiB free now cannot give it."""
    db = make_domain(world.a1, "db", memory_mib=6144, maxmem_mib=7168)
    shrink = recommend(world)
    grow = Decision.objects.create(
        at=shrink.at, kind=Decision.Kind.STEP, code="grow", host=world.a1, domain=db, step_kind="resize",
        from_kib=6144 * 1024, to_kib=6844 * 1024, reason="db is short of memory", mode="recommend",
        policy_version="1.0", state=Decision.State.RECOMMENDED,
    )
    return shrink, grow


def test_approving_the_whole_plan_runs_each_step_as_the_person_in_order(world):
    shrink, grow = plan_on_a1(world)
    page = world.client("operator").get(f"/hosts/{world.a1.pk}/").content.decode()
    assert "Approve all 2 steps" in page
    shown = re.search(r'name="steps" value="([^"]*)"', page).group(1)
    assert shown == f"{shrink.pk},{grow.pk}"
    response = world.client("operator").post(f"/autoscaler/hosts/{world.a1.pk}/approve-all/", {"steps": shown}, follow=True)
    shrink.refresh_from_db()
    grow.refresh_from_db()
    assert shrink.state == Decision.State.APPLIED and Job.objects.get(pk=shrink.job_id).actor_label == "operator"
    # The grow needs the room the shrink is freeing: it waits for it, as the operator's.
    assert grow.state == Decision.State.WAITING and grow.decided_by == world.users["operator"]
    assert f"Approved 2 of 2 steps: job {shrink.job_id} queued; 1 will run as yours" in response.content.decode()
    # da's jobs end (as a worker would end them): the grow is sent as the operator's job, not the autoscaler's.
    Job.objects.filter(domain=world.da).update(state=Job.State.SUCCEEDED)
    Domain.objects.filter(pk=world.da.pk).update(memory_kib=512 * 1024)
    applied = run.apply_waiting([grow.pk])
    grow.refresh_from_db()
    assert applied == (1, 0), grow.error
    job = Job.objects.get(pk=grow.job_id)
    assert (job.actor_kind, job.actor_label, job.params["target_kib"]) == ("user", "operator", 6844 * 1024)


def test_a_step_refused_in_a_plan_stays_for_a_person_and_says_why(world):
    shrink, grow = plan_on_a1(world)
    Decision.objects.filter(pk=grow.pk).update(to_kib=9000 * 1024)  # above db's maxmem since the plan was made
    response = world.client("operator").post(f"/autoscaler/hosts/{world.a1.pk}/approve-all/", follow=True)
    grow.refresh_from_db()
    assert grow.state == Decision.State.RECOMMENDED and "above the maxmem of db" in grow.error
    page = response.content.decode()
    assert "Not approved last time: 9,000 MiB is above the maxmem of db" in page  # the plan, still on the page
    assert "Approved 1 of 2 steps" in page and "Not approved: resize db 6,144 MiB → 9,000 MiB: 9,000 MiB is above the maxmem" in page


def test_a_plan_that_changed_since_the_page_was_drawn_is_not_approved(world):
    """The autoscaler planned again meanwhile (or the live page missed it): Approve all would approve unseen steps."""
    shrink, grow = plan_on_a1(world)
    response = world.client("operator").post(f"/autoscaler/hosts/{world.a1.pk}/approve-all/", {"steps": str(shrink.pk)}, follow=True)
    assert "nothing was approved: the plan for a1 changed since it was shown; look at it again" in response.content.decode()
    assert set(Decision.objects.filter(pk__in=[shrink.pk, grow.pk]).values_list("state", flat=True)) == {Decision.State.RECOMMENDED}
    api = world.client("operator").post(f"/api/autoscaler/hosts/{world.a1.pk}/approve-all/", {"steps": [shrink.pk]},
                                         content_type="application/json")
    assert (api.status_code, api.json()["code"]) == (409, "plan_changed")
    applied = world.client("operator").post(f"/api/autoscaler/hosts/{world.a1.pk}/approve-all/", {"steps": [grow.pk, shrink.pk]},
                                            content_type="application/json")
    assert applied.status_code == 202 and [d["state"] for d in applied.json()] == ["applied", "waiting"]


def test_a_viewer_cannot_approve_a_plan_and_nothing_changes(world):
    shrink, grow = plan_on_a1(world)
    assert "Approve all" not in world.client("viewer").get(f"/hosts/{world.a1.pk}/").content.decode()
    assert world.client("viewer").post(f"/autoscaler/hosts/{world.a1.pk}/approve-all/").status_code == 403
    assert world.client("outsider").post(f"/autoscaler/hosts/{world.a1.pk}/approve-all/").status_code == 404
    assert set(Decision.objects.values_list("state", flat=True)) == {Decision.State.RECOMMENDED}
    assert AuditEntry.objects.filter(action="autoscaler.approve", result=AuditEntry.Result.REFUSED, actor_label="viewer").exists()


def test_api_approves_a_plan_and_answers_each_steps_state(world):
    shrink, grow = plan_on_a1(world)
    client = world.client("operator")
    response = client.post(f"/api/autoscaler/hosts/{world.a1.pk}/approve-all/", content_type="application/json")
    assert response.status_code == 202
    assert [(d["domain"], d["state"]) for d in response.json()] == [("da", "applied"), ("db", "waiting")]
    again = client.post(f"/api/autoscaler/hosts/{world.a1.pk}/approve-all/", content_type="application/json")
    assert again.status_code == 409 and "nothing to approve" in again.json()["message"]


def test_a_step_is_approved_on_the_domain_page_too(world):
    step = recommend(world)
    page = world.client("operator").get(f"/domains/{world.da.pk}/").content.decode()
    assert f'action="/autoscaler/steps/{step.pk}/approve/"' in page
    assert "/approve/" not in world.client("viewer").get(f"/domains/{world.da.pk}/").content.decode()
    response = world.client("operator").post(f"/autoscaler/steps/{step.pk}/approve/", {"back": "domain"})
    assert response.status_code == 302 and response.url == f"/domains/{world.da.pk}/"
    step.refresh_from_db()
    assert step.state == Decision.State.APPLIED


def test_refused_approvals_dismissals_and_policy_changes_are_audited(world):
    step = recommend(world)
    assert world.client("viewer").post(f"/autoscaler/steps/{step.pk}/approve/").status_code == 403
    assert world.client("viewer").post(f"/autoscaler/steps/{step.pk}/dismiss/").status_code == 403
    refused = world.client("operator").patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", {"mode": "automatic"},
                                             content_type="application/json")
    assert refused.status_code == 403
    entries = AuditEntry.objects.filter(result=AuditEntry.Result.REFUSED).order_by("id")
    assert [(e.action, e.actor_label, e.host_id) for e in entries] == [
        ("autoscaler.approve", "viewer", world.a1.pk), ("autoscaler.dismiss", "viewer", world.a1.pk),
        ("autoscaler.policy", "operator", world.a1.pk),
    ]
    step.refresh_from_db()
    assert step.state == Decision.State.RECOMMENDED and HostPolicy.objects.filter(host=world.a1).count() == 0


@pytest.mark.parametrize("value, message", [
    ("x", "target_use must be a number from 0.5 to 1.0, not 'x'"),
    (None, "target_use must be a number from 0.5 to 1.0, not 'None'"),
    (True, "target_use must be a number from 0.5 to 1.0, not 'True'"),
    ([0.9], "target_use must be a number from 0.5 to 1.0, not '[0.9]'"),
    (10**400, "target_use must be a number from 0.5 to 1.0, not '1" + "0" * 39 + "'"),  # no float holds it
])
def test_a_policy_value_that_is_not_a_number_is_refused_with_what_is_allowed(world, value, message):
    client = world.client("admin")
    answer = client.patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", {"target_use": value}, content_type="application/json")
    assert answer.status_code == 400 and answer.json() == {"code": "bad_policy", "message": message}
    whole = client.patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", {"migrations_in": 2.5}, content_type="application/json")
    assert whole.json()["message"] == "migrations_in must be a whole number from 0 to 20, not '2.5'"
    # From a form, numbers come as text.
    form = client.patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", "target_use=0.9&migrations_in=3",
                        content_type="application/x-www-form-urlencoded")
    assert form.status_code == 200, form.content
    assert (HostPolicy.objects.get(host=world.a1).target_use, HostPolicy.objects.get(host=world.a1).migrations_in) == (0.9, 3)


@pytest.mark.parametrize("body", ["null", "5", '["mode"]', '"automatic"'])
def test_a_policy_change_that_is_not_an_object_of_settings_is_refused_with_what_is_allowed(world, body):
    answer = world.client("admin").patch(f"/api/autoscaler/policies/host/{world.a1.pk}/", body, content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["message"].startswith("send a JSON object of settings of a host policy (mode, ")
    assert HostPolicy.objects.filter(host=world.a1).count() == 0


@pytest.mark.parametrize("host", ["²", "99999999999999999999999", "a1"])
def test_decisions_are_filtered_by_an_id_and_anything_else_is_refused(world, host):
    answer = world.client("admin").get("/api/autoscaler/decisions/", {"host": host})
    assert answer.status_code == 400 and answer.json()["message"] == f"host: {host!r} is not an id: give the host's id, a number"
