"""Pages for managing teams: members and their roles, and the team's limits; and people's accounts. Team admins
manage their own teams; superusers create teams and manage all. The pages are thin: each change goes through the
service the API calls too (balloonweb/api/teams.py, accounts.py), which checks who may, audits a refusal and runs
the change in one transaction with its entry (written by the model signals, signals.py). A page only shows the
answer: outsiders get 404 (a team's existence is not revealed), members without the right 403, both with the
service's message; other refusals are shown on the page."""

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from balloonweb.api import teams as teams_service  # the API's services: the one place of the teams' rules
from domains.services import Forbidden, ServiceError

from . import accounts, rules
from .actors import Actor
from .forms import AddMemberForm, TeamCreateForm, TeamLimitsForm
from .models import Membership, Team, UserSession
from .ratelimit import PasswordChangeForm
from .sessions import end_all_sessions
from .teams import may_set_quota


def actor_of(request: HttpRequest) -> Actor:
    return request.actor


def managed_team(request: HttpRequest, team_id: int, action: str = "manage_team") -> Team:
    """The team, if the user may do `action` (the team page: administer it; a change: see it, the service
    judges the rest): 404 for outsiders, 403 for members without the right."""
    team = get_object_or_404(Team, pk=team_id)
    try:
        rules.require(actor_of(request), action, team)
    except rules.NotFound:
        raise Http404("no such team") from None
    except rules.Forbidden as exc:
        raise PermissionDenied(str(exc)) from None
    return team


def raise_refusal(exc: ServiceError) -> None:
    """A service's refusal of who asked (the service has audited it), with its message: 404 for outsiders, 403
    for members without the right. Other refusals (what was typed, a conflict) are the caller's to show."""
    if exc.status == 404:
        raise Http404(exc.message) from exc
    if exc.status == 403:
        raise PermissionDenied(exc.message) from exc


def refused(request: HttpRequest, exc: ServiceError) -> None:
    """A refusal of a plain form that goes back to its page: who asked (raised), or a message on that page."""
    raise_refusal(exc)
    messages.error(request, f"{exc.message}.")


def showing(form: Form, field: str | None, exc: ServiceError) -> Form:
    """The form as it was typed, with the service's refusal as its one error: the service judges what was typed
    (the same for every entrance); the form only shows it."""
    form.errors.clear()
    form.add_error(field, exc.message)
    return form


@login_required
def teams(request: HttpRequest) -> HttpResponse:
    actor = actor_of(request)
    roles = rules.roles_of(actor)
    visible = rules.restrict(Team.objects.order_by("name"), actor, "view")
    form = TeamCreateForm()
    if request.method == "POST":
        try:
            team = teams_service.create_team(actor, request.POST.get("name", ""))
        except ServiceError as exc:
            raise_refusal(exc)
            form = showing(TeamCreateForm(request.POST), "name", exc)
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("team", team_id=team.pk)
    rows = [{"team": t, "role": "superuser" if actor.is_privileged else roles.get(t.pk), "manages": rules.allows(actor, "manage_team", t.pk)} for t in visible]
    return render(request, "access/teams.html", {"rows": rows, "form": form if request.user.is_superuser else None, "nav": "teams"})


@login_required
def team(request: HttpRequest, team_id: int) -> HttpResponse:
    """The team's page for its admins; its form saves the team's limits."""
    if request.method != "POST":
        team = managed_team(request, team_id)
        return render(request, "access/team.html", team_context(request, team))
    actor = actor_of(request)
    team = get_object_or_404(Team, pk=team_id)
    limits = TeamLimitsForm(request.POST, instance=team, may_set_quota=may_set_quota(actor))
    # The limits the form lets this person set. Sizes that do not parse change nothing, but the service still
    # judges who asked (and audits a refusal): only those who may change the limits see what they mistyped.
    changes = {}
    if limits.is_valid():
        changes = {field: value for field, value in limits.cleaned_data.items() if not limits.fields[field].disabled}
    try:
        teams_service.update_team(actor, team, **changes)
    except ServiceError as exc:
        raise_refusal(exc)
        limits = showing(limits, None, exc)
    if limits.errors:
        return render(request, "access/team.html", team_context(request, team, limits=limits), status=400)
    messages.success(request, f"Limits of {team.name} saved.")
    return redirect("team", team_id=team.pk)


def team_context(request: HttpRequest, team: Team, **forms) -> dict:
    members = team.memberships.select_related("user").order_by("user__username")
    return {
        "team": team,
        "members": members,
        "hosts": team.hosts.order_by("name"),
        "roles": Membership.Role.choices,
        "limits": forms.get("limits") or TeamLimitsForm(instance=team, may_set_quota=may_set_quota(actor_of(request))),
        "add": forms.get("add") or AddMemberForm(),
        "nav": "teams",
        "owner": actor_of(request).is_privileged,
    }


@login_required
@require_POST
def add_member(request: HttpRequest, team_id: int) -> HttpResponse:
    team = managed_team(request, team_id, "view")  # as the API: a team the user cannot see is a 404
    try:
        membership = teams_service.add_member(actor_of(request), team, request.POST.get("username", ""), request.POST.get("role", ""))
    except Forbidden as exc:
        raise PermissionDenied(exc.message) from exc
    except ServiceError as exc:  # what was typed: no such user, a member already, not a role
        form = showing(AddMemberForm(request.POST), "role" if exc.code == "bad_role" else "username", exc)
        return render(request, "access/team.html", team_context(request, team, add=form), status=400)
    messages.success(request, f"{membership.user.get_username()} joined {team.name} as {membership.role}.")
    return redirect("team", team_id=team.pk)


def team_member(request: HttpRequest, team_id: int, membership_id: int) -> Membership:
    team = managed_team(request, team_id, "view")
    return get_object_or_404(Membership.objects.select_related("user", "team"), pk=membership_id, team=team)


@login_required
@require_POST
def member_role(request: HttpRequest, team_id: int, membership_id: int) -> HttpResponse:
    membership = team_member(request, team_id, membership_id)
    try:
        membership = teams_service.change_role(actor_of(request), membership, request.POST.get("role", ""))
    except ServiceError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"{membership.user} is now {membership.role} in {membership.team.name}.")
    return redirect("team", team_id=membership.team_id)


@login_required
@require_POST
def remove_member(request: HttpRequest, team_id: int, membership_id: int) -> HttpResponse:
    membership = team_member(request, team_id, membership_id)
    try:
        teams_service.remove_member(actor_of(request), membership)
    except ServiceError as exc:
        refused(request, exc)
    else:
        messages.success(request, f"{membership.user} left {membership.team.name}.")
    return redirect("team", team_id=membership.team_id)


@login_required
@require_POST
def delete_team(request: HttpRequest, team_id: int) -> HttpResponse:
    """A superuser deletes a team that has no hosts left (the same service as the API's)."""
    team = get_object_or_404(Team, pk=team_id)
    try:
        teams_service.delete_team(actor_of(request), team)
    except ServiceError as exc:
        refused(request, exc)
        return redirect("team", team_id=team.pk)
    messages.success(request, f"Team {team.name} deleted.")
    return redirect("teams")


@login_required
@require_POST
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """End every session of the user (other browsers, forgotten machines), this one included."""
    others = end_all_sessions(request.user, except_key=request.session.session_key)
    logout(request)  # this one last, through Django, so that it is audited as any sign-out
    messages.info(request, f"Signed out here and in {others} other session{'s' if others != 1 else ''}.")
    return redirect("login")


# -- people's accounts (a superuser's page; accounts.py holds the rules) ----------------------------------------

PEOPLE_PAGE_SIZE = 100
NEW_ACCOUNT_FIELDS = ("username", "email", "team", "role")


def require_account_owner(request: HttpRequest) -> None:
    """Reading the list of accounts (a change is judged, and a refusal audited, by accounts.py)."""
    if not actor_of(request).is_privileged:
        raise PermissionDenied("only a superuser manages accounts")


@login_required
def people(request: HttpRequest) -> HttpResponse:
    """Every account, with its teams, and a form for a new one."""
    values, error, status = {"role": Membership.Role.VIEWER}, "", 200
    if request.method != "POST":
        require_account_owner(request)
    else:
        values = {field: request.POST.get(field, "") for field in NEW_ACCOUNT_FIELDS}
        try:
            user, password = accounts.create_account(
                actor_of(request), values["username"], email=values["email"], password=request.POST.get("password", ""),
                team=values["team"], role=values["role"],
            )
        except ServiceError as exc:
            raise_refusal(exc)
            error, status = exc.message, exc.status
        else:
            membership = user.memberships.select_related("team").first()
            joined = f" and joined {membership.team.name} as {membership.role}" if membership else ""
            return handed_over(request, user, password, f"Account {user.get_username()} created{joined}.")
    query = request.GET.get("q", "").strip()[:150].replace("\x00", "")
    users = get_user_model().objects.order_by("username").prefetch_related(
        Prefetch("memberships", Membership.objects.select_related("team").order_by("team__name")))
    if query:
        users = users.filter(Q(username__icontains=query) | Q(email__icontains=query))
    return render(request, "access/people.html", {
        "page": Paginator(users, PEOPLE_PAGE_SIZE).get_page(request.GET.get("page")), "query": query,
        "base_query": f"{urlencode({'q': query})}&" if query else "", "values": values, "error": error,
        "teams": Team.objects.order_by("name"), "roles": Membership.Role.choices, "nav": "people",
    }, status=status)


def handed_over(request: HttpRequest, user, password: str | None, done: str) -> HttpResponse:
    """The answer to a change that may have made a password: shown once, in this response only (never in a
    message, which would keep it in the session or a cookie)."""
    response = render(request, "access/password_once.html", {"person": user, "password": password, "done": done, "nav": "people"})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def person_change(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    """Deactivate or reactivate an account, give it a new password, or sign it out everywhere."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None:
        if not actor_of(request).is_privileged:
            # Refused as for an account that exists, word for word: a 404 or another message would tell which do.
            user = get_user_model()(username="")
        else:
            raise Http404("no such account")
    name = user.get_username()
    try:
        if action == "password":
            password = accounts.new_password(actor_of(request), user, request.POST.get("password", ""))
            return handed_over(request, user, password, f"{name} has a new password and was signed out everywhere.")
        if action == "sign-out":
            ended = accounts.sign_out_everywhere(actor_of(request), user)
            messages.success(request, f"{name} was signed out everywhere ({ended} session{'s' if ended != 1 else ''}).")
            return redirect(f"{reverse('people')}?{urlencode({'q': name})}")
        active = request.POST.get("active") == "1"
        accounts.set_active(actor_of(request), user, active)
        messages.success(request, f"{name} can sign in again." if active else f"{name} is deactivated and was signed out everywhere.")
    except ServiceError as exc:
        refused(request, exc)
    return redirect(f"{reverse('people')}?{urlencode({'q': name})}")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's, with the current password checked as a sign-in is, and this browser's session kept in the list
    that "sign out everywhere" ends: keeping the person signed in gives the session a new key."""

    form_class = PasswordChangeForm

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "request": self.request}

    def form_valid(self, form):
        old_key = self.request.session.session_key
        response = super().form_valid(form)
        new_key = self.request.session.session_key
        if old_key and new_key and new_key != old_key:
            UserSession.objects.filter(session_key=old_key).update(session_key=new_key)
        return response
