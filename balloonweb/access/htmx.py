"""Refusals of htmx requests as the fragment a control shows, not a whole page swapped into it.

A page's controls and live regions are htmx requests whose 4xx answers are swapped in where they were asked
(templates/base.html: a refusal is a message beside its control). A 403 or 404 raised by a view, and a request
whose session ended (login_required redirects it to the login page, which the browser would follow and swap in),
would put a whole page, top bar and all, inside a control.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import resolve_url
from django.utils.html import format_html
from django.utils.http import urlencode


def refusal_fragment(message: str, status: int) -> HttpResponse:
    return HttpResponse(format_html('<p class="error" role="alert">{}</p>', message), status=status)


class HtmxRefusalMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not getattr(request, "htmx", False) or response.status_code != 302:
            return response
        login = resolve_url(settings.LOGIN_URL)
        if response.get("Location", "").split("?")[0] != login:
            return response
        # Signed out (idle, or elsewhere): the whole page goes to the login, and back to where the person was.
        page = request.htmx.current_url_abs_path or "/"
        redirect = HttpResponse(status=204)
        redirect["HX-Redirect"] = f"{login}?{urlencode({'next': page})}"
        return redirect

    def process_exception(self, request, exception):
        if not getattr(request, "htmx", False):
            return None
        if isinstance(exception, PermissionDenied):
            return refusal_fragment(f"Not allowed: {exception or 'your role does not allow this'}", 403)
        if isinstance(exception, Http404):
            return refusal_fragment(f"Not found: {exception or 'it is gone, or not yours to see'}; reload the page", 404)
        return None


def csrf_failure(request, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: a page whose form token is out of date (signed in again in another tab)."""
    if getattr(request, "htmx", False):
        return refusal_fragment("This page is out of date (you signed in again since it was drawn): reload it", 403)
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
