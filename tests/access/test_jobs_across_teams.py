"""A migration across teams (by someone in both, or a superuser) is seen, and may be stopped, by both teams: it
fills the destination team's host. A domain's jobs from before it changed teams stay with the team that ran them."""

from django.urls import reverse

from domains.models import Domain, Job

from .conftest import MiB, World, make_domain


def test_a_migration_across_teams_is_in_both_teams_lists_and_stoppable_from_the_destination(world: World):
    moving = make_domain(world.a2, "moving")
    job = Job.objects.create(kind=Job.Kind.MIGRATE, domain=moving, host=world.a2, target_host=world.b1,
                             params={"memory_kib": 1024 * MiB}, actor_kind="user", actor_label="root")
    b_admin = world.client("outsider")  # team B's admin
    assert job.pk in [j["id"] for j in b_admin.get("/api/jobs/").json()["results"]]
    assert b_admin.get(f"/api/jobs/{job.pk}/").status_code == 200
    assert f"job-{job.pk}" in b_admin.get(reverse("jobs")).content.decode()
    assert job.pk in [j["id"] for j in world.client("viewer").get("/api/jobs/").json()["results"]]  # team A's too
    # Team B's resizes on a's hosts stay out of sight: only the migration into B is theirs to see.
    assert world.job.pk not in [j["id"] for j in b_admin.get("/api/jobs/").json()["results"]]
    stopped = b_admin.post(f"/api/jobs/{job.pk}/cancel/")
    assert stopped.status_code == 200 and Job.objects.get(pk=job.pk).state == Job.State.CANCELLED


def test_a_domain_page_shows_the_jobs_of_its_team_not_those_of_a_team_it_left(world: World):
    old = world.job  # a resize of da while it was team A's
    Domain.objects.filter(pk=world.da.pk).update(host=world.b1)  # da is team B's now
    page = world.client("outsider").get(reverse("domain", args=[world.da.pk])).content.decode()
    assert f"job-{old.pk}" not in page
    assert f"job-{old.pk}" in world.client("superuser").get(reverse("domain", args=[world.da.pk])).content.decode()


def test_a_migration_across_teams_is_audited_in_both_teams(world: World):
    """Team A saw the request and never its outcome; team B the outcome and never the request."""
    from balloonweb.access.actors import Actor
    from balloonweb.audit.models import AuditEntry
    from domains import jobs, services

    moving = make_domain(world.a2, "moving")
    job = services.request_migrate(Actor.for_user(world.users["superuser"]), moving, world.b1)
    Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED)
    Domain.objects.filter(pk=moving.pk).update(host=world.b1)  # where a successful move leaves it
    jobs._audit_outcome(Job.objects.select_related("domain__host", "host", "target_host").get(pk=job.pk))
    for team in (world.team_a, world.team_b):
        seen = set(AuditEntry.objects.filter(team_id=team.pk, job_id=job.pk).values_list("action", flat=True))
        assert seen == {"domain.migrate", "job.migrate"}, team.name


def test_a_host_given_to_another_team_is_audited_for_the_team_that_lost_it(world: World):
    from balloonweb.access.actors import Actor
    from balloonweb.audit.models import AuditEntry
    from domains import host_registry

    host_registry.change_host(Actor.command_line(), world.a1, team=world.team_b.name)
    given = AuditEntry.objects.filter(action="host.update", host_id=world.a1.pk)
    assert set(given.values_list("team_id", flat=True)) == {world.team_a.pk, world.team_b.pk}


def test_a_superseded_resize_is_audited_as_not_done(world: World):
    from balloonweb.audit.models import AuditEntry
    from domains import jobs

    later = Job.objects.create(kind=Job.Kind.RESIZE, domain=world.da, host=world.a1, params={"target_kib": 512 * MiB},
                               actor_kind="cli", actor_label="command line")
    assert jobs.run_job(world.job.pk) == "skip"  # the later resize supersedes it
    entry = AuditEntry.objects.get(action="job.resize", job_id=world.job.pk)
    assert entry.result == AuditEntry.Result.FAILED and f"superseded by job {later.pk}" in entry.message
