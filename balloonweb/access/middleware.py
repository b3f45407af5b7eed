"""Per-request context for the audit log: a request id, the client's address, and the request's Actor."""

import ipaddress
import re
import uuid
from functools import lru_cache

from django.conf import settings
from django.utils.functional import SimpleLazyObject

from . import actors

# A request id handed on by a trusted proxy is kept if it looks like one (it ends up in logs and the audit).
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]):
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def trusted_proxy(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(meta: dict) -> str | None:
    """The peer address; behind a trusted proxy, the right-most X-Forwarded-For address that is not one of
    our proxies (everything left of it was written by the client and proves nothing)."""
    peer = meta.get("REMOTE_ADDR") or None
    if not peer or not trusted_proxy(peer):
        return peer
    forwarded = [a.strip() for a in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
    for address in reversed(forwarded):
        if not trusted_proxy(address):
            try:
                return str(ipaddress.ip_address(address))
            except ValueError:
                return None  # not the proxy's own address, and not a client's either: unknown
    return peer


def request_id(meta: dict) -> str:
    given = meta.get("HTTP_X_REQUEST_ID", "")
    if given and REQUEST_ID.match(given) and trusted_proxy(meta.get("REMOTE_ADDR", "")):
        return given
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = request_id(request.META)
        request.client_ip = client_ip(request.META)
        request.actor = SimpleLazyObject(lambda: actors.Actor.from_request(request))
        with actors.acting_as(request.actor):
            response = self.get_response(request)
        response["X-Request-ID"] = request.request_id
        return response


# The page's own refreshes (live hints, charts) send it; they do not keep an idle session alive.
BACKGROUND_HEADER = "HTTP_X_BACKGROUND"


class IdleSessionMiddleware:
    """A session lasts SESSION_COOKIE_AGE after the last request a person made: each such request renews it, the
    page's background refreshes do not (a console left open overnight stayed signed in, Force off and all)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # Signed in only: a stale cookie on a request that never read its session would be saved as a new one.
        if user is not None and user.is_authenticated and BACKGROUND_HEADER not in request.META:
            request.session.modified = True  # saved again by SessionMiddleware, with a new expiry
        return response


class ContentSecurityPolicyMiddleware:
    """Scripts only from the console's own files: the pages have no inline script, so an HTML injection could
    not run one (and htmx's hx-* attributes would otherwise let injected HTML make requests). Inline styles stay
    allowed (the memory bars' widths, htmx's indicator style). Paths in CSP_EXEMPT_PATHS (the API's Swagger page,
    whose bundled page starts with an inline script) get none."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not request.path.startswith(tuple(settings.CSP_EXEMPT_PATHS)):
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
