"""The REST API: a second face of domains.services and the access rules, never a second set of rules.

Views are thin: they find the object the caller may see (rules.restrict), hand the request to a service, and
shape the answer. Permission, bounds, room and audit are the services' business.
"""

import os
import time

from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q, Sum
from django.http import JsonResponse
from django.utils.functional import SimpleLazyObject
from django.views.decorators.csrf import csrf_exempt
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, pagination, parsers, renderers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.reverse import reverse

from balloonweb.access import accounts, actors, rules
from balloonweb.access.models import Membership, Team
from balloonweb.audit import review
from domains import host_registry, maintenance, services
from domains.models import Domain, Job
from hosts.models import RUNNING_STATES, Host

from . import errors, filters, serializers, teams, tokens
from .auth import BearerTokenAuthentication, TokenScope, actor_of
from .models import ApiToken
from .schema import ApiSchema

# GET /api/jobs/<id>/?wait=N holds the answer until the job ends or N seconds pass (a thread of the server waits).
JOB_WAIT_MAX_S = float(os.environ.get("API_JOB_WAIT_MAX", "30"))
JOB_WAIT_STEP_S = 0.2


class Pagination(pagination.CursorPagination):
    """Cursor pages: no COUNT, and the same cost on page 1 and page 200."""

    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "id"

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except exceptions.NotFound:
            raise exceptions.ValidationError({"cursor": "not a cursor this API gave out; follow the `next` link"}) from None


class FilterBackend(DjangoFilterBackend):
    """django-filter, skipped when the request names no filter: building a FilterSet and its form for every page
    costs about as much as the page's rows."""

    def filter_queryset(self, request, queryset, view):
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is None or not any(name in request.query_params for name in filterset_class.base_filters):
            return queryset
        return super().filter_queryset(request, queryset, view)


class NewestFirst(Pagination):
    ordering = "-id"


class ApiView:
    """What every API view shares: who may call, how errors look, how lists page and filter."""

    # The browser's session works too; DRF enforces CSRF on its unsafe requests.
    authentication_classes = [BearerTokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated, TokenScope]
    renderer_classes = [renderers.JSONRenderer]
    parser_classes = [parsers.JSONParser, parsers.FormParser]
    pagination_class = Pagination
    filter_backends = [FilterBackend]
    schema = ApiSchema()
    lookup_value_regex = "[0-9]+"

    def get_exception_handler(self):
        return errors.handle

    def dispatch(self, request, *args, **kwargs):
        # Changes audited by model signals (teams, memberships) name the caller: a token, not the anonymous
        # session the middleware saw. Lazy, since DRF authenticates inside dispatch.
        with actors.acting_as(SimpleLazyObject(lambda: actor_of(self.request))):
            return super().dispatch(request, *args, **kwargs)

    @property
    def actor(self):
        return actor_of(self.request)


@csrf_exempt  # a 404 whatever the method, not a CSRF page
def no_such_endpoint(request, *args, **kwargs) -> JsonResponse:
    return JsonResponse({"code": "not_found", "message": f"no API endpoint at {request.path}; see /api/docs/"}, status=404)


def job_accepted(job: Job, request) -> Response:
    """202 with the job, and where to follow it."""
    data = serializers.JobSerializer(job, context={"request": request}).data
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": data["url"]})


def body(serializer_class, request) -> dict:
    """The request's fields, validated; a field the request does not take is refused, not ignored (a client
    sending `reserve` for `reserved` was answered 200 with nothing changed)."""
    serializer = serializer_class(data=request.data)
    given = set(request.data.keys() if hasattr(request.data, "keys") else ()) - {"csrfmiddlewaretoken"}  # a form's own
    unknown = sorted(given - set(serializer.fields))
    if unknown:
        raise exceptions.ValidationError({unknown[0]: [f"not a field of this request; it takes {', '.join(serializer.fields)}"]})
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


# -- hosts ----------------------------------------------------------------------------------------------------


class HostViewSet(ApiView, viewsets.ReadOnlyModelViewSet):
    """Hosts you can see, with their memory in MiB. Superusers add and remove hosts; a team's admins set their
    reserve and capacity (domains/host_registry.py)."""

    serializer_class = serializers.HostSerializer
    filterset_class = filters.HostFilter

    def shown(self, host: Host) -> dict:
        return self.get_serializer(self.get_queryset().get(pk=host.pk)).data

    @extend_schema(request=serializers.AddHostSerializer, responses={201: serializers.HostSerializer},
                   summary="Add a host (superusers); BalloonWeb connects to it at its next poll")
    def create(self, request):
        values = body(serializers.AddHostSerializer, request)
        settings = {field: values[field] for field in host_registry.SETTINGS if field in values}
        host = host_registry.add_host(self.actor, values["name"], values["uri"], **settings)
        return Response(self.shown(host), status=status.HTTP_201_CREATED)

    @extend_schema(request=serializers.HostSettingsSerializer, responses={200: serializers.HostSerializer},
                   summary="Change a host's reserve or capacity (its team's admins), team or queue group (superusers)")
    def partial_update(self, request, pk=None):
        host = host_registry.change_host(self.actor, self.get_object(), **body(serializers.HostSettingsSerializer, request))
        return Response(self.shown(host))

    @extend_schema(responses={200: serializers.RemovedSerializer},
                   summary="Remove a host that runs nothing (superusers); the hypervisor is not touched")
    def destroy(self, request, pk=None):
        return Response({"message": host_registry.remove_host(self.actor, self.get_object())})

    def get_queryset(self):
        running = Q(domains__state__in=RUNNING_STATES)
        hosts = Host.objects.select_related("team").annotate(
            running_kib=Sum("domains__memory_kib", filter=running), running_domains=Count("domains", filter=running)
        )
        return rules.restrict(hosts, self.actor, "view")

    @extend_schema(request=serializers.MaintenanceSerializer, responses={200: serializers.MaintenanceResultSerializer},
                   summary="Start maintenance (no domain may come; its running domains migrate away, as your jobs) or end it; "
                   "on again, it moves what is still there")
    @action(detail=True, methods=["post"])
    def maintenance(self, request, pk=None):
        host = self.get_object()
        if body(serializers.MaintenanceSerializer, request)["on"]:
            done = maintenance.start(self.actor, host)
            jobs, staying = [job.pk for job in done.jobs], [{"domain": d.name, "reason": r} for d, r in done.staying]
            moving = [{"domain": d.name, "to": to} for d, to in done.moving]
        else:
            maintenance.end(self.actor, host)
            jobs, staying, moving = [], [], []
        host.refresh_from_db()
        job_urls = [reverse("api:job-detail", args=[pk], request=request) for pk in jobs]  # to follow them (?wait=)
        return Response({"host": host.name, "maintenance": host.maintenance, "jobs": jobs, "job_urls": job_urls,
                         "staying": staying, "moving": moving})


# -- domains --------------------------------------------------------------------------------------------------


class DomainViewSet(ApiView, viewsets.GenericViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Domains you can see; changes answer 202 with the job that makes them."""

    serializer_class = serializers.DomainSerializer
    filterset_class = filters.DomainFilter

    def get_queryset(self):
        domains = Domain.objects.select_related("host")
        if self.action == "list" and not self.request.query_params.get("state"):  # `?state=` filters nothing
            domains = domains.present()
        return rules.restrict(domains, self.actor, "view")

    def paginate_queryset(self, queryset):
        # The list pages plain rows, not model instances (see DomainSerializer).
        return super().paginate_queryset(serializers.domain_rows(queryset))

    @extend_schema(request=serializers.CreateDomainSerializer, responses={202: serializers.JobSerializer},
                   summary="Create and start a domain from a Xen-style config (xm create)")
    def create(self, request):
        values = body(serializers.CreateDomainSerializer, request)
        host = services.find_host(self.actor, values["host"])
        return job_accepted(services.request_create(self.actor, host, values["config"]), request)

    @extend_schema(request=serializers.SizeSerializer, responses={202: serializers.JobSerializer},
                   summary="Balloon a running domain to a size (xm mem-set)")
    @action(detail=True, methods=["post"])
    def resize(self, request, pk=None):
        size = body(serializers.SizeSerializer, request)["size"]
        return job_accepted(services.request_resize(self.actor, self.get_object(), size), request)

    @extend_schema(request=serializers.SizeSerializer, responses={202: serializers.JobSerializer},
                   summary="Set maxmem in the persistent config (xm mem-max); a running domain takes it at its next boot")
    @action(detail=True, methods=["post"])
    def maxmem(self, request, pk=None):
        size = body(serializers.SizeSerializer, request)["size"]
        return job_accepted(services.request_set_maxmem(self.actor, self.get_object(), size), request)

    @extend_schema(request=serializers.SizeSerializer, responses={200: serializers.DomainSerializer},
                   summary="Set the floor below which nothing shrinks the domain (at once, no job)")
    @action(detail=True, methods=["post"])
    def floor(self, request, pk=None):
        size = body(serializers.SizeSerializer, request)["size"]
        domain = services.set_floor(self.actor, self.get_object(), size)
        return Response(self.get_serializer(domain).data)

    @extend_schema(request=serializers.MigrateSerializer, responses={202: serializers.JobSerializer},
                   summary="Live-migrate a running domain to another host (xm migrate)")
    @action(detail=True, methods=["post"])
    def migrate(self, request, pk=None):
        target = services.find_host(self.actor, body(serializers.MigrateSerializer, request)["host"])
        return job_accepted(services.request_migrate(self.actor, self.get_object(), target), request)

    @extend_schema(request=serializers.PowerSerializer, responses={202: serializers.JobSerializer},
                   summary="Start, shut down (force: at once, xm destroy) or restart a domain with its persistent config (team admins)")
    @action(detail=True, methods=["post"])
    def power(self, request, pk=None):
        values = body(serializers.PowerSerializer, request)
        return job_accepted(services.request_power(self.actor, self.get_object(), values["action"], force=values["force"]), request)


# -- jobs -----------------------------------------------------------------------------------------------------


class JobViewSet(ApiView, viewsets.ReadOnlyModelViewSet):
    """Jobs on hosts you can see, newest first. GET one with ?wait=N to follow it to its end."""

    serializer_class = serializers.JobSerializer
    filterset_class = filters.JobFilter
    pagination_class = NewestFirst

    def get_queryset(self):
        jobs = Job.objects.select_related("domain", "host", "target_host")
        return rules.restrict(jobs, self.actor, "view")

    @extend_schema(parameters=[OpenApiParameter("wait", OpenApiTypes.FLOAT, description=(
        f"seconds (at most {JOB_WAIT_MAX_S:g}) to wait for the job to end before answering"))])
    def retrieve(self, request, pk=None):
        job = self.get_object()
        deadline = time.monotonic() + self._wait_seconds()
        while not job.is_finished and time.monotonic() < deadline:
            time.sleep(JOB_WAIT_STEP_S)
            job.refresh_from_db()
        return Response(self.get_serializer(job).data)

    def _wait_seconds(self) -> float:
        raw = self.request.query_params.get("wait", "0")
        try:
            wait = float(raw)
        except ValueError:
            raise exceptions.ValidationError({"wait": f"{raw!r} is not a number of seconds"}) from None
        if not 0 <= wait <= JOB_WAIT_MAX_S:  # also refuses nan and inf
            raise exceptions.ValidationError({"wait": f"wait between 0 and {JOB_WAIT_MAX_S:g} seconds"})
        return wait

    @extend_schema(request=None, responses={200: serializers.JobSerializer}, summary="Cancel a job that has not started, or stop a running migration")
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = services.cancel_job(self.actor, self.get_object())
        return Response(self.get_serializer(job).data)


# -- audit ----------------------------------------------------------------------------------------------------


class AuditEntryViewSet(ApiView, viewsets.ReadOnlyModelViewSet):
    """The audit log of the teams you administer (superusers: all of it), newest first."""

    serializer_class = serializers.AuditEntrySerializer
    filterset_class = filters.AuditFilter
    pagination_class = NewestFirst

    def get_queryset(self):
        return review.visible_entries(self.actor)


# -- teams and memberships ------------------------------------------------------------------------------------


class TeamViewSet(ApiView, viewsets.ModelViewSet):
    """Teams you belong to. Superusers create and delete teams; a team's admins change its limits."""

    serializer_class = serializers.TeamSerializer
    filterset_class = filters.TeamFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return rules.restrict(Team.objects.all(), self.actor, "view")

    def perform_create(self, serializer):
        serializer.instance = teams.create_team(self.actor, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = teams.update_team(self.actor, serializer.instance, **serializer.validated_data)

    def perform_destroy(self, team):
        teams.delete_team(self.actor, team)


class MembershipViewSet(ApiView, viewsets.ModelViewSet):
    """Who is in the teams you see, with which role; a team's admins add, change and remove members."""

    filterset_class = filters.MembershipFilter
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_serializer_class(self):
        return serializers.MembershipUpdateSerializer if self.action == "partial_update" else serializers.MembershipSerializer

    def get_queryset(self):
        return teams.visible_memberships(self.actor).select_related("team", "user")

    @extend_schema(request=serializers.MembershipCreateSerializer, responses={201: serializers.MembershipSerializer})
    def create(self, request):
        values = body(serializers.MembershipCreateSerializer, request)
        # A team the caller cannot see is a 404, as everywhere.
        team = rules.restrict(Team.objects.all(), self.actor, "view").filter(pk=values["team"]).first()
        if team is None:
            raise services.NotFound("no such team")
        membership = teams.add_member(self.actor, team, values["username"], values["role"])
        return Response(serializers.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer):
        membership = serializer.instance
        # A PATCH may leave the role out; then it stays as it is (and the permission check still runs).
        serializer.instance = teams.change_role(self.actor, membership, serializer.validated_data.get("role", membership.role))

    def perform_destroy(self, membership):
        teams.remove_member(self.actor, membership)


# -- people's accounts ----------------------------------------------------------------------------------------


class UserViewSet(ApiView, viewsets.GenericViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Accounts: a superuser sees and manages all (balloonweb/access/accounts.py); anyone else sees only their
    own, which says who a token belongs to."""

    serializer_class = serializers.UserSerializer

    def get_queryset(self):
        users = get_user_model().objects.prefetch_related(
            Prefetch("memberships", Membership.objects.select_related("team").order_by("team__name")))
        return users if self.actor.is_privileged else users.filter(pk=self.request.user.pk)

    def handed_over(self, user, password: str | None, status_code: int = status.HTTP_200_OK) -> Response:
        data = serializers.UserSerializer(self.get_queryset().get(pk=user.pk)).data
        if password is not None:
            data["password"] = password
        return Response(data, status=status_code, headers={"Cache-Control": "no-store"})

    @extend_schema(request=serializers.NewAccountSerializer, responses={201: serializers.HandedOverSerializer},
                   summary="Create an account (superusers), in a team if one is named")
    def create(self, request):
        values = body(serializers.NewAccountSerializer, request)
        user, password = accounts.create_account(self.actor, values["username"], email=values["email"],
                                                 password=values["password"], team=values["team"], role=values["role"])
        return self.handed_over(user, password, status.HTTP_201_CREATED)

    @extend_schema(request=serializers.AccountActiveSerializer, responses={200: serializers.UserSerializer},
                   summary="Deactivate an account (signs it out everywhere) or reactivate it (superusers)")
    def partial_update(self, request, pk=None):
        user = self.get_object()
        accounts.set_active(self.actor, user, body(serializers.AccountActiveSerializer, request)["is_active"])
        return self.handed_over(user, None)

    @extend_schema(request=serializers.NewPasswordSerializer, responses={200: serializers.HandedOverSerializer},
                   summary="Give an account a new password and sign it out everywhere (superusers)")
    @action(detail=True, methods=["post"])
    def password(self, request, pk=None):
        user = self.get_object()
        password = accounts.new_password(self.actor, user, body(serializers.NewPasswordSerializer, request)["password"])
        return self.handed_over(user, password)

    @extend_schema(request=None, responses={200: serializers.SignedOutSerializer},
                   summary="End every session of an account and close its open pages (superusers)")
    @action(detail=True, methods=["post"], url_path="sign-out")
    def sign_out(self, request, pk=None):
        return Response({"sessions_ended": accounts.sign_out_everywhere(self.actor, self.get_object())})


# -- tokens ---------------------------------------------------------------------------------------------------


class TokenViewSet(ApiView, viewsets.GenericViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin):
    """Your own API tokens. New ones are made from a signed-in session (the tokens page) or `manage.py apitoken`:
    a token does not mint tokens."""

    serializer_class = serializers.TokenSerializer
    pagination_class = NewestFirst

    queryset = ApiToken.objects.none()  # for the schema; get_queryset is per caller

    def get_queryset(self):
        return ApiToken.objects.filter(user=self.request.user)

    @extend_schema(request=serializers.TokenSerializer, responses={201: serializers.NewTokenSerializer})
    def create(self, request):
        if isinstance(request.auth, ApiToken):
            raise services.Forbidden("tokens are created from a signed-in session or with manage.py apitoken, not with a token", "token_cannot_create_tokens")
        values = body(serializers.TokenSerializer, request)
        try:
            token, text = tokens.create_token(self.actor, request.user, values["name"], write=values.get("write", False), expires=values.get("expires"))
        except tokens.TokenError as exc:
            raise services.BadRequest(str(exc), "bad_token_request") from exc
        data = serializers.TokenSerializer(token).data
        data["token"] = text
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Revoke a token (it stops working at once; the row stays for the record)")
    def destroy(self, request, pk=None):
        tokens.revoke_token(self.actor, self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
