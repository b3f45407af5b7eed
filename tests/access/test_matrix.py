"""The permission matrix: every HTTP route (walked from the URL configuration) and every WebSocket route, for
anonymous, outsider, viewer, operator, admin and superuser, with the answer each must get.

A route that is not in the matrix fails `test_every_route_is_in_the_matrix`: a new endpoint cannot escape it.
Answers: a status code, or LOGIN (a redirect to the sign-in page). Outsiders get 404 (the object's existence is
not revealed), members without the right 403.
"""

from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from balloonweb.routing import websocket_urlpatterns

from .conftest import ROLES, World

LOGIN = "login"
ANY_SIGNED_IN = dict(anonymous=LOGIN, outsider=200, viewer=200, operator=200, admin=200, superuser=200)
TEAM_PAGE = dict(anonymous=LOGIN, outsider=404, viewer=200, operator=200, admin=200, superuser=200)


def answers(anonymous=LOGIN, outsider=404, viewer=403, operator=403, admin=200, superuser=None):
    return dict(anonymous=anonymous, outsider=outsider, viewer=viewer, operator=operator, admin=admin,
                superuser=admin if superuser is None else superuser)


# The API answers an anonymous caller 401 (it offers bearer tokens); members without the right 403.
API_LIST = dict(anonymous=401, outsider=200, viewer=200, operator=200, admin=200, superuser=200)
API_OBJECT = dict(anonymous=401, outsider=404, viewer=200, operator=200, admin=200, superuser=200)
API_OPERATOR = dict(anonymous=401, outsider=404, viewer=403, operator=202, admin=202, superuser=202)
API_ADMIN = dict(anonymous=401, outsider=404, viewer=403, operator=403, admin=202, superuser=202)
OWNER_ONLY_API = dict(anonymous=401, outsider=403, viewer=403, operator=403, admin=403, superuser=201)


@dataclass
class Case:
    method: str = "get"
    args: dict = field(default_factory=dict)  # URL kwargs: a World attribute path ("da.pk") or a literal
    data: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    json: bool = False
    headers: dict = field(default_factory=dict)


def resolve_args(world: World, args: dict) -> dict:
    def value(spec):
        if isinstance(spec, str) and "." in spec:
            obj = world
            for part in spec.split("."):
                obj = obj[part] if isinstance(obj, dict) else getattr(obj, part)
            return obj
        return spec

    return {k: value(v) for k, v in args.items()}


MATRIX: dict[str, list[Case]] = {
    # -- sign-in and account ----------------------------------------------------------------------------------
    "login": [Case(expect=dict(anonymous=200, outsider=302, viewer=302, operator=302, admin=302, superuser=302))],
    "logout": [Case("post", expect=dict.fromkeys(ROLES, 302))],
    "password_change": [Case(expect=ANY_SIGNED_IN)],
    "password_change_done": [Case(expect=ANY_SIGNED_IN)],
    # Accounts are a superuser's: everyone else is refused the page and its actions (the viewer is the one changed).
    "people": [
        Case(expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=200)),
        Case("post", data={"username": "newcomer"}, expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=200)),
    ],
    "person-change": [
        Case("post", {"user_id": "users.viewer.pk", "action": "active"}, {"active": "0"},
             dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=302)),
        Case("post", {"user_id": "users.viewer.pk", "action": "password"},
             expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=200)),
        Case("post", {"user_id": "users.viewer.pk", "action": "sign-out"},
             expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=302)),
    ],
    "sign-out-everywhere": [Case("post", expect={**dict.fromkeys(ROLES, 302), "anonymous": LOGIN})],
    # -- the console's pages (issue 3) ------------------------------------------------------------------------
    "fleet": [Case(expect=ANY_SIGNED_IN)],
    "jobs": [Case(expect=ANY_SIGNED_IN)],
    "domains": [Case(expect=ANY_SIGNED_IN)],
    "domains-csv": [Case(expect=ANY_SIGNED_IN)],
    # Team B has host b1: a superuser is told to move it first (a message on the team page).
    "team-delete": [Case("post", {"team_id": "team_b.pk"}, expect=dict(anonymous=LOGIN, outsider=403, viewer=404, operator=404, admin=404, superuser=302))],
    "host": [Case(args={"host_id": "a1.pk"}, expect=TEAM_PAGE)],
    "host-add": [
        Case(expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=200)),
        Case("post", data={"name": "new", "uri": "qemu+ssh://root@new/system"},
             expect=dict(anonymous=LOGIN, outsider=403, viewer=403, operator=403, admin=403, superuser=302)),
    ],
    "host-settings": [Case("post", {"host_id": "a1.pk"}, {"reserved": "256"}, answers(admin=302))],
    "host-remove": [Case("post", {"host_id": "a2.pk"}, expect=answers(admin=403, superuser=302))],
    "host-part": [Case(args={"host_id": "a1.pk", "part": part}, expect=TEAM_PAGE) for part in ("autoscaler", "history")]
    + [Case(args={"host_id": "a1.pk", "part": "evacuation"}, expect={**TEAM_PAGE, "viewer": 403, "operator": 403})],
    # Maintenance is the host admins': a plain form, answered with a redirect back to the host page.
    "host-maintenance-start": [Case("post", {"host_id": "a1.pk"}, expect=answers(admin=302))],
    "host-maintenance-end": [Case("post", {"host_id": "a1.pk"}, expect=answers(admin=302))],
    "domain": [Case(args={"domain_id": "da.pk"}, expect=TEAM_PAGE)],
    "domain-part": [Case(args={"domain_id": "da.pk", "part": "figures"}, expect=TEAM_PAGE)],
    "domain-samples": [Case(args={"domain_id": "da.pk"}, expect=TEAM_PAGE)],
    # Controls answer a plain (non-htmx) POST with a redirect back to the page when accepted.
    "domain-resize": [Case("post", {"domain_id": "da.pk"}, {"memory": "512"}, answers(operator=302, admin=302))],
    "domain-maxmem": [Case("post", {"domain_id": "da.pk"}, {"memory": "4096"}, answers(admin=302))],
    "domain-floor": [Case("post", {"domain_id": "da.pk"}, {"memory": "256"}, answers(admin=302))],
    "domain-migrate": [Case("post", {"domain_id": "da.pk"}, {"target": "a2.pk"}, answers(operator=302, admin=302))],
    # Turning a domain off and on is for its team's admins (a restart of da, running).
    "domain-power": [Case("post", {"domain_id": "da.pk"}, {"action": "restart"}, answers(admin=302))],
    # The cancel button is an htmx control; a plain POST is answered with a redirect to the jobs page and a message.
    "job-cancel": [Case("post", {"job_id": "job.pk"}, headers={"HX-Request": "true"}, expect=answers(operator=200))],
    # -- teams and the audit log (issue 4) --------------------------------------------------------------------
    "teams": [
        Case(expect=ANY_SIGNED_IN),
        Case("post", data={"name": "C"}, expect=answers(outsider=403, admin=403, superuser=302)),
    ],
    "team": [
        Case(args={"team_id": "team_a.pk"}, expect=answers()),
        Case("post", {"team_id": "team_a.pk"}, {"operator_max_kib": "2G"}, answers(admin=302)),
    ],
    "team-add-member": [Case("post", {"team_id": "team_a.pk"}, {"username": "root", "role": "viewer"}, answers(admin=302))],
    "team-member-role": [Case("post", {"team_id": "team_a.pk", "membership_id": "memberships.viewer.pk"}, {"role": "operator"}, answers(admin=302))],
    "team-member-remove": [Case("post", {"team_id": "team_a.pk", "membership_id": "memberships.viewer.pk"}, expect=answers(admin=302))],
    # Team admins review their own teams' entries (the outsider administers team B); others have no log to see.
    "audit": [Case(expect=answers(outsider=200))],
    "audit-export": [Case(expect=answers(outsider=200))],
    # -- the API (issue 5) ------------------------------------------------------------------------------------
    # Hosts are the fleet owner's to add and remove; a team's admins set their reserve and capacity.
    "api:host-list": [
        Case(expect=API_LIST),
        Case("post", data={"name": "new", "uri": "qemu+ssh://root@new/system"}, json=True, expect=OWNER_ONLY_API),
    ],
    "api:host-detail": [
        Case(args={"pk": "a1.pk"}, expect=API_OBJECT),
        Case("patch", {"pk": "a1.pk"}, {"reserved": "256"}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True),
        Case("delete", {"pk": "a2.pk"}, expect={**API_ADMIN, "admin": 403, "superuser": 200}),
    ],
    "api:host-maintenance": [Case("post", {"pk": "a1.pk"}, {"on": True}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True)],
    "api:domain-list": [
        Case(expect=API_LIST),
        Case("post", data={"host": "a1", "config": 'name = "new"\nmemory = 256\n'}, json=True, expect=API_ADMIN),
    ],
    "api:domain-detail": [Case(args={"pk": "da.pk"}, expect=API_OBJECT)],
    "api:domain-resize": [Case("post", {"pk": "da.pk"}, {"size": "512"}, API_OPERATOR, json=True)],
    "api:domain-maxmem": [Case("post", {"pk": "da.pk"}, {"size": "4096"}, API_ADMIN, json=True)],
    "api:domain-floor": [Case("post", {"pk": "da.pk"}, {"size": "256"}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True)],
    "api:domain-migrate": [Case("post", {"pk": "da.pk"}, {"host": "a2"}, API_OPERATOR, json=True)],
    "api:domain-power": [Case("post", {"pk": "da.pk"}, {"action": "shutdown"}, API_ADMIN, json=True)],
    "api:job-list": [Case(expect=API_LIST)],
    "api:job-detail": [Case(args={"pk": "job.pk"}, expect=API_OBJECT)],
    "api:job-cancel": [Case("post", {"pk": "job.pk"}, expect={**API_OPERATOR, "operator": 200, "admin": 200, "superuser": 200}, json=True)],
    # The audit API lists what the review page shows: a team's entries to its admins. Others see an empty list,
    # and an entry of team A is, for them, not there.
    "api:auditentry-list": [Case(expect=API_LIST)],
    "api:auditentry-detail": [Case(args={"pk": "extra.team_a_entry"}, expect={**API_OBJECT, "viewer": 404, "operator": 404})],
    "api:team-list": [
        Case(expect=API_LIST),
        Case("post", data={"name": "C"}, json=True, expect=dict(anonymous=401, outsider=403, viewer=403, operator=403, admin=403, superuser=201)),
    ],
    "api:team-detail": [
        Case(args={"pk": "team_a.pk"}, expect=API_OBJECT),
        Case("patch", {"pk": "team_a.pk"}, {"operator_max_mib": 2048}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True),
    ],
    "api:membership-list": [
        Case(expect=API_LIST),
        Case("post", data={"team": "team_a.pk", "username": "root", "role": "viewer"}, json=True, expect={**API_ADMIN, "admin": 201, "superuser": 201}),
    ],
    "api:membership-detail": [
        Case(args={"pk": "memberships.viewer.pk"}, expect=API_OBJECT),
        Case("patch", {"pk": "memberships.viewer.pk"}, {"role": "operator"}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True),
        Case("delete", {"pk": "memberships.viewer.pk"}, expect={**API_ADMIN, "admin": 204, "superuser": 204}),
    ],
    # Tokens are their owner's only: anyone else, a superuser too, finds no such token.
    "api:token-list": [
        Case(expect=API_LIST),
        Case("post", data={"name": "mine"}, json=True, expect={**dict.fromkeys(ROLES, 201), "anonymous": 401}),
    ],
    "api:token-detail": [Case(args={"pk": "extra.viewer_token"}, expect=dict(anonymous=401, outsider=404, viewer=200, operator=404, admin=404, superuser=404))],
    # Anyone sees their own account (who a token is); a superuser sees and manages all.
    "api:user-list": [Case(expect=API_LIST), Case("post", data={"username": "newcomer"}, json=True, expect=OWNER_ONLY_API)],
    "api:user-detail": [
        Case(args={"pk": "users.viewer.pk"}, expect={**API_OBJECT, "operator": 404, "admin": 404}),
        Case("patch", {"pk": "users.viewer.pk"}, {"is_active": False}, dict(anonymous=401, outsider=404, viewer=403, operator=404, admin=404, superuser=200), json=True),
    ],
    "api:user-sign-out": [Case("post", {"pk": "users.viewer.pk"}, expect=dict(anonymous=401, outsider=404, viewer=403, operator=404, admin=404, superuser=200), json=True)],
    "api:user-password": [Case("post", {"pk": "users.viewer.pk"}, expect=dict(anonymous=401, outsider=404, viewer=403, operator=404, admin=404, superuser=200), json=True)],
    # The schema and its documentation page describe the API, not the fleet: public.
    "api:schema": [Case(expect=dict.fromkeys(ROLES, 200))],
    "api:docs": [Case(expect=dict.fromkeys(ROLES, 200))],
    "api:tokens": [Case(expect=ANY_SIGNED_IN)],
    # Any other path under /api/: a JSON 404 for everyone, which reveals nothing.
    "api:no-such-endpoint": [Case(expect=dict.fromkeys(ROLES, 404))],
    # Metrics are for the monitoring system: by network or token (METRICS_* settings), not by role.
    "api:metrics": [Case(expect=dict.fromkeys(ROLES, 200))],
    # -- the autoscaler (issue 6): a recommended step (resize da to 512 MiB) is extra.decision -----------------
    # Page actions answer a plain POST with a redirect back to the page and a message; approving creates the
    # job as the person (operators and admins), dismissing needs the same right, policies are for admins.
    "autoscaler-approve": [Case("post", {"decision_id": "extra.decision"}, expect=answers(operator=302, admin=302))],
    "autoscaler-dismiss": [Case("post", {"decision_id": "extra.decision"}, expect=answers(operator=302, admin=302))],
    "autoscaler-approve-plan": [Case("post", {"host_id": "a1.pk"}, expect=answers(operator=302, admin=302))],
    "autoscaler-host-policy": [Case("post", {"object_id": "a1.pk"}, {"mode": "recommend", "target_use": 0.9, "migrations_in": "2",
                                                                   "migrations_out": "2", "migrations_per_hour": "6"}, answers(admin=302))],
    "autoscaler-domain-policy": [Case("post", {"object_id": "da.pk"}, {"free_share": 0.3, "deadband_share": 0.05, "priority": "1",
                                                                     "shrink_cooldown_s": "60", "migrate_cooldown_s": "3600"}, answers(admin=302))],
    "autoscaler-team-policy": [Case("post", {"object_id": "team_a.pk"}, {"mode": "recommend"}, answers(admin=302))],
    "autoscaler-domain-chart": [Case(args={"domain_id": "da.pk"}, expect=TEAM_PAGE)],
    # A what-if covers the hosts the caller sees; applying it is refused (a message) unless they are automatic.
    "autoscaler-what-if-apply": [Case("post", data={"memory": "512"}, expect={**dict.fromkeys(ROLES, 302), "anonymous": LOGIN})],
    "autoscaler-api-decisions": [Case(expect=API_LIST)],
    "autoscaler-api-approve": [Case("post", {"pk": "extra.decision"}, expect=API_OPERATOR, json=True)],
    "autoscaler-api-approve-plan": [Case("post", {"pk": "a1.pk"}, expect=API_OPERATOR, json=True)],
    "autoscaler-api-dismiss": [Case("post", {"pk": "extra.decision"}, expect={**API_OPERATOR, "operator": 200, "admin": 200, "superuser": 200}, json=True)],
    "autoscaler-api-policy": [
        Case(args={"kind": "host", "pk": "a1.pk"}, expect=API_OBJECT),
        Case("patch", {"kind": "host", "pk": "a1.pk"}, {"mode": "recommend"}, {**API_ADMIN, "admin": 200, "superuser": 200}, json=True),
    ],
    "autoscaler-api-what-if": [Case("post", data={"memory": "512"}, expect=API_LIST, json=True)],
}

# Django's admin has its own staff permissions: every route under it answers alike, so one rule covers them.
PREFIX_RULES = {"admin:": Case(expect=dict(anonymous=302, outsider=302, viewer=302, operator=302, admin=302, superuser=200))}

WS_MATRIX: dict[str, tuple[dict, dict]] = {
    # route name: (URL kwargs, accepted? per role)
    "ws-fleet": ({}, dict(anonymous=False, outsider=True, viewer=True, operator=True, admin=True, superuser=True)),
    "ws-jobs": ({}, dict(anonymous=False, outsider=True, viewer=True, operator=True, admin=True, superuser=True)),
    "ws-host": ({"host_id": "a1.pk"}, dict(anonymous=False, outsider=False, viewer=True, operator=True, admin=True, superuser=True)),
    "ws-domain": ({"domain_id": "da.pk"}, dict(anonymous=False, outsider=False, viewer=True, operator=True, admin=True, superuser=True)),
}


# -- walking the routes ----------------------------------------------------------------------------------------


def http_routes(patterns=None, namespace: str = "", prefix: str = ""):
    """(name, pattern) of every HTTP route; unnamed routes by their pattern, so they too must be listed."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            inner = ":".join(n for n in (namespace, entry.namespace or "") if n)
            yield from http_routes(entry.url_patterns, inner, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            name = entry.name or prefix + str(entry.pattern)
            yield (f"{namespace}:{name}" if namespace else name), prefix + str(entry.pattern)


def ws_routes():
    return [(route.name or str(route.pattern)) for route in websocket_urlpatterns]


def covered(name: str) -> bool:
    return name in MATRIX or any(name.startswith(p) for p in PREFIX_RULES)


def test_every_route_is_in_the_matrix():
    missing = sorted({f"{name} ({pattern})" for name, pattern in http_routes() if not covered(name)})
    assert not missing, f"routes missing from the permission matrix: {missing}"
    missing_ws = sorted(set(ws_routes()) - set(WS_MATRIX))
    assert not missing_ws, f"WebSocket routes missing from the permission matrix: {missing_ws}"
    stale = sorted(set(MATRIX) - {name for name, _ in http_routes()})
    assert not stale, f"the matrix names routes that no longer exist: {stale}"


# -- HTTP ------------------------------------------------------------------------------------------------------


def http_cases():
    for name, cases in MATRIX.items():
        for index, case in enumerate(cases):
            for role in ROLES:
                yield pytest.param(name, case, role, id=f"{name}-{case.method}{index if len(cases) > 1 else ''}-{role}")
    yield from (pytest.param("admin:index", case, role, id=f"admin-{role}") for case in PREFIX_RULES.values() for role in ROLES)


def fixtures_for(world: World):
    """Objects some routes need besides the world: an audit entry of team A, a token of the viewer."""
    from balloonweb.audit.models import AuditEntry

    world.extra = {}
    world.extra["decision"] = _recommended_step(world)
    world.extra["team_a_entry"] = AuditEntry.objects.filter(team_id=world.team_a.pk).values_list("pk", flat=True).first()
    try:
        from balloonweb.access.actors import Actor
        from balloonweb.api import tokens

        token, _text = tokens.create_token(Actor.for_user(world.users["viewer"]), world.users["viewer"], "matrix")
        world.extra["viewer_token"] = token.pk
    except ImportError:  # the API is not there yet
        world.extra["viewer_token"] = 0


def _recommended_step(world: World) -> int:
    from django.utils import timezone

    from domains.autoscaler.models import Decision

    return Decision.objects.create(
        at=timezone.now(), kind=Decision.Kind.STEP, code="shrink", host=world.a1, domain=world.da, step_kind="resize",
        from_kib=1024 * 1024, to_kib=512 * 1024, reason="da has 512 MiB more than it needs", mode="recommend",
        policy_version="1.0", state=Decision.State.RECOMMENDED,
    ).pk


def request(client: Client, name: str, case: Case, world: World):
    url = reverse(name, kwargs=resolve_args(world, case.args))
    data = resolve_args(world, case.data)
    if case.json:
        return getattr(client, case.method)(url, data, content_type="application/json", headers=case.headers)
    return getattr(client, case.method)(url, data, headers=case.headers)


@pytest.mark.parametrize("name, case, role", list(http_cases()))
def test_http_matrix(world: World, name: str, case: Case, role: str):
    fixtures_for(world)
    response = request(world.client(role), name, case, world)
    expected = case.expect[role]
    if expected == LOGIN:
        # An htmx request sends the whole page there (balloonweb/access/htmx.py), a plain one is redirected.
        to_login = response.get("HX-Redirect", "") if response.status_code == 204 else response.get("Location", "")
        assert response.status_code in (204, 302) and to_login.startswith(reverse("login")), (
            f"{role} {case.method.upper()} {name}: expected a redirect to sign in, got {response.status_code} {to_login}"
        )
    else:
        assert response.status_code == expected, (
            f"{role} {case.method.upper()} {name}: expected {expected}, got {response.status_code}: {response.content[:300]!r}"
        )


# -- CSRF: every route that changes something refuses a POST without the token, even from a superuser ------------


def csrf_cases():
    for name, cases in MATRIX.items():
        for case in cases:
            # The API's token-authenticated calls carry no cookie, so CSRF does not apply to them; its session
            # calls are checked by DRF, and are here too.
            if case.method in ("post", "patch", "delete") and name != "logout":
                yield pytest.param(name, case, id=f"{name}-{case.method}")


@pytest.mark.parametrize("name, case", list(csrf_cases()))
def test_csrf_is_required(world: World, name: str, case: Case):
    fixtures_for(world)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["superuser"])
    response = request(client, name, case, world)
    assert response.status_code == 403, f"{name}: {response.status_code} without a CSRF token"


# -- WebSockets ------------------------------------------------------------------------------------------------


def ws_cases():
    for name, (_args, expect) in WS_MATRIX.items():
        for role in ROLES:
            yield pytest.param(name, role, id=f"{name}-{role}")


def ws_path(name: str, kwargs: dict) -> str:
    route = next(r for r in websocket_urlpatterns if r.name == name)
    path = str(route.pattern)
    for key, value in kwargs.items():
        path = path.replace(f"<int:{key}>", str(value)).replace(f"<{key}>", str(value))
    return "/" + path.lstrip("^")


async def ws_accepted(path: str, user) -> bool:
    """Whether the socket stays open: a refused one is closed at once (with a code the page reads)."""
    communicator = WebsocketCommunicator(URLRouter(websocket_urlpatterns), path)
    communicator.scope["user"] = user
    connected, _code = await communicator.connect(timeout=5)
    stays = connected and await communicator.receive_nothing(timeout=0.1)
    await communicator.disconnect()
    return stays


@pytest.mark.parametrize("name, role", list(ws_cases()))
def test_websocket_matrix(live_world: World, name: str, role: str):
    args, expect = WS_MATRIX[name]
    user = AnonymousUser() if role == "anonymous" else live_world.users[role]
    path = ws_path(name, resolve_args(live_world, args))
    assert async_to_sync(ws_accepted)(path, user) is expect[role], f"{role} on {path}"
