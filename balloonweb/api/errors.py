"""Every error the API returns is JSON `{"code": ..., "message": ...}`: a stable code for scripts, a message a
person can act on. Service refusals keep their own status and code; the rules' NotFound/Forbidden become 404/403.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from balloonweb.access import rules
from domains.services import ServiceError


def error(status_code: int, code: str, message: str, **extra) -> Response:
    return Response({"code": code, "message": message, **extra}, status=status_code)


def _flatten(detail, path: str = "") -> list[str]:
    """DRF's nested validation detail as lines `field: message`."""
    if isinstance(detail, dict):
        return [line for key, value in detail.items() for line in _flatten(value, f"{path}.{key}" if path else str(key))]
    if isinstance(detail, list):
        return [line for item in detail for line in _flatten(item, path)]
    return [f"{path}: {detail}" if path and path != "non_field_errors" else str(detail)]


def handle(exc, context):
    if isinstance(exc, ServiceError):
        return error(exc.status, exc.code, exc.message)
    if isinstance(exc, rules.NotFound):
        return error(404, "not_found", str(exc))
    if isinstance(exc, rules.Forbidden):
        return error(403, "forbidden", str(exc))
    if isinstance(exc, ProtectedError):
        return error(409, "in_use", "it is still in use: " + ", ".join(sorted({str(o) for o in exc.protected_objects})[:5]))
    if isinstance(exc, exceptions.ValidationError):
        return error(400, "invalid", "; ".join(_flatten(exc.detail)), fields=exc.detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("no such object, or not one you may see")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)  # keeps WWW-Authenticate, Retry-After and Allow headers
    if response is None:
        return None  # a bug: let Django log it (tests and schemathesis look for these)
    codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
    code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
    if response.status_code == status.HTTP_401_UNAUTHORIZED:
        code = "not_authenticated" if isinstance(exc, exceptions.NotAuthenticated) else "bad_token"
    response.data = {"code": code, "message": _flatten(exc.detail)[0] if getattr(exc, "detail", None) else str(exc)}
    return response
