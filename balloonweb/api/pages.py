"""The user's tokens page: create a token (shown once), see when each was last used, revoke one."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from balloonweb.access.actors import Actor

from . import tokens
from .models import ApiToken


def _actor(request) -> Actor:
    return Actor("user", request.user.get_username(), request.user,
                 {"request_id": getattr(request, "request_id", ""), "client_ip": getattr(request, "client_ip", None) or request.META.get("REMOTE_ADDR")})


@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request):
    created = None
    if request.method == "POST":
        if "revoke" in request.POST:
            token = ApiToken.objects.filter(user=request.user, pk=_int(request.POST["revoke"])).first()
            if token is not None:
                tokens.revoke_token(_actor(request), token)
                messages.success(request, f"Token {token.name} (bw_{token.prefix}) is revoked: it no longer works.")
            return redirect("api:tokens")
        try:
            token, text = tokens.create_token(
                _actor(request), request.user, request.POST.get("name", ""),
                write=request.POST.get("write") == "on", expires=tokens.expiry(_int(request.POST.get("expires_days", ""))),
            )
            # Rendered, not redirected: the secret must not land in a URL, a session or a log.
            created = {"token": token, "text": text}
        except tokens.TokenError as exc:
            messages.error(request, str(exc))
    return render(request, "api/tokens.html", {
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-id"),
        "created": created,
        "now": timezone.now(),
        "max_days": tokens.MAX_EXPIRY_DAYS,
    })


def _int(text: str) -> int | None:
    try:
        return int(text)
    except (TypeError, ValueError):
        return None
