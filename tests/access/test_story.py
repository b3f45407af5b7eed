"""Tried as a new user would: two teams; a viewer who sees the resize control disabled and gets 403 from the
API; an operator stopped at the team limit with a clear message; an admin who finds all of it on the review
page; and the other team's admin, who sees none of it."""

import re

from django.urls import reverse

from .conftest import World


def test_the_story(world: World):
    da = world.da
    page = reverse("domain", args=[da.pk])
    api_resize = f"/api/domains/{da.pk}/resize/"

    # The team's admin sets the operator limit on the team page.
    admin = world.client("admin")
    assert admin.post(reverse("team", args=[world.team_a.pk]), {"operator_max_kib": "2G"}).status_code == 302

    # A viewer sees the domain, but no resize control: the page says why.
    viewer = world.client("viewer")
    html = viewer.get(page).content.decode()
    resize_form = re.search(r'<form id="resize-form".*?</form>', html, re.S).group(0)
    assert 'name="memory"' not in resize_form and "Your role does not allow resizing" in resize_form
    # ...and the API refuses the resize with 403 and a reason.
    refused = viewer.post(api_resize, {"size": "512"}, content_type="application/json")
    assert refused.status_code == 403 and "does not allow 'resize'" in refused.json()["message"]

    # An operator has the control, and is stopped at the team limit with the limit named beside it.
    operator = world.client("operator")
    assert 'name="memory"' in operator.get(page).content.decode()
    over = operator.post(reverse("domain-resize", args=[da.pk]), {"memory": "3G"}, headers={"HX-Request": "true"})
    assert over.status_code == 403
    assert "3,072 MiB is above the team A&#x27;s limit of 2,048 MiB for one domain that an operator may give" in over.content.decode()
    api_over = operator.post(api_resize, {"size": "3G"}, content_type="application/json")
    assert api_over.status_code == 403 and api_over.json()["code"] == "team_limit"
    # Within the limit it is accepted.
    assert operator.post(api_resize, {"size": "2G"}, content_type="application/json").status_code == 202

    # The admin finds all of it on the review page: the limit, the refusals with their reasons, the accepted job.
    review = admin.get(reverse("audit"), {"team": world.team_a.pk}).content.decode()
    for text in ("team.update", "viewer", "does not allow", "operator", "limit of 2,048 MiB", "accepted"):
        assert text in review, text
    refusals = admin.get(reverse("audit"), {"result": "refused", "domain": da.pk}).context["rows"]
    assert [(e.actor_label, e.action) for e in refusals] == [("operator", "domain.resize")] * 2 + [("viewer", "domain.resize")]
    assert all(e.request_id and e.client_ip == "127.0.0.1" for e in refusals)
    # The domain page shows the same history.
    assert "limit of 2,048 MiB" in admin.get(page).content.decode()

    # The other team's admin: no such domain, and none of team A's entries.
    outsider = world.client("outsider")
    assert outsider.get(page).status_code == 404 and outsider.post(api_resize, {"size": "512"}, content_type="application/json").status_code == 404
    assert all(e.team_id != world.team_a.pk for e in outsider.get(reverse("audit")).context["rows"])
