"""Who is calling: a bearer token or the browser's session (with CSRF). Both end as an Actor for the services."""

import uuid

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from balloonweb.access.actors import Actor

from . import tokens
from .models import ApiToken


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer bw_<prefix>_<secret>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("the Authorization header must be `Bearer <token>`, with no spaces in the token")
        try:
            text = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("the token has characters that no token has") from None
        token = tokens.check(text)
        if token is None:
            raise exceptions.AuthenticationFailed("the token is unknown, expired or revoked; create a new one on your tokens page")
        context = request_context(request)
        tokens.note_use(token, tokens.token_actor(token, **context), context.get("client_ip"))
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) to a request without credentials.
        return f'{self.keyword} realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = BearerTokenAuthentication
    name = "bearerToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token `bw_<prefix>_<secret>` from your tokens page."}


def request_context(request) -> dict:
    """Request id and client address for the audit log: those RequestContextMiddleware found, when it ran."""
    django_request = getattr(request, "_request", request)
    return {
        "request_id": getattr(django_request, "request_id", None) or _own_request_id(django_request),
        "client_ip": getattr(django_request, "client_ip", None) or django_request.META.get("REMOTE_ADDR"),
    }


def _own_request_id(django_request) -> str:
    if not hasattr(django_request, "_api_request_id"):
        django_request._api_request_id = uuid.uuid4().hex
    return django_request._api_request_id


def actor_of(request) -> Actor:
    """The Actor the services see for this request, made once per request (it caches the caller's roles)."""
    actor = getattr(request, "_api_actor", None)
    if actor is None:
        if isinstance(request.auth, ApiToken):
            actor = tokens.token_actor(request.auth, **request_context(request))
        else:
            actor = Actor.for_user(request.user, **request_context(request))
        request._api_actor = actor
    return actor


class TokenScope(permissions.BasePermission):
    """A read-only token reads; changes need a read-write token (or the session)."""

    message = "this token is read-only; changes need a read-write token"
    code = "read_only_token"

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS or not isinstance(request.auth, ApiToken):
            return True
        return request.auth.write
