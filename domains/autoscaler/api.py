"""The autoscaler's API under /api/autoscaler/: decisions (list, approve, dismiss), policies (get, change) and
the what-if. The same authentication, permission classes and error answers as balloonweb/api (its ApiView);
objects are found through rules.restrict, changes go through run.py and the services.
"""

from collections.abc import Mapping

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from balloonweb.access import rules
from balloonweb.access.models import Team
from balloonweb.api.views import ApiView, NewestFirst
from balloonweb.ids import as_id
from domains import services
from domains.models import Domain
from hosts.models import Host
from hosts.units import mib

from . import run, show
from .models import Decision

class DecisionSerializer(serializers.ModelSerializer):
    host = serializers.CharField(source="host.name", default=None)
    domain = serializers.CharField(source="domain.name", default=None)
    to_host = serializers.CharField(source="to_host.name", default=None)
    from_mib = serializers.SerializerMethodField()
    to_mib = serializers.SerializerMethodField()
    decided_by = serializers.CharField(source="decided_by.username", default=None)

    class Meta:
        model = Decision
        fields = ["id", "at", "kind", "code", "state", "mode", "policy_version", "host", "domain", "step_kind",
                  "from_mib", "to_mib", "to_host", "reason", "figures", "job", "error", "decided_by", "decided_at"]

    def get_from_mib(self, decision) -> int | None:
        return mib(decision.from_kib)

    def get_to_mib(self, decision) -> int | None:
        return mib(decision.to_kib)


class DecisionList(ApiView, generics.ListAPIView):
    """Decisions on hosts you can see, newest first. Filters: `host`, `domain` (ids), `state` (e.g. recommended)."""

    serializer_class = DecisionSerializer
    pagination_class = NewestFirst

    def get_queryset(self):
        hosts = rules.restrict(Host.objects.all(), self.actor, "view")
        decisions = Decision.objects.filter(host__in=hosts).select_related("host", "domain", "to_host", "decided_by")
        for name in ("host", "domain", "state"):
            value = self.request.query_params.get(name)
            if value:
                if name != "state" and as_id(value) is None:
                    raise serializers.ValidationError({name: f"{value!r} is not an id: give the {name}'s id, a number"})
                decisions = decisions.filter(**{name if name == "state" else f"{name}_id": value})
        return decisions


class Decide(ApiView, APIView):
    """POST: approve (202: its job is created as you, with your rights) or dismiss (200) a recommended step."""

    verdict = "approve"

    @extend_schema(request=None, responses=DecisionSerializer)
    def post(self, request, pk: int):
        hosts = rules.restrict(Host.objects.all(), self.actor, "view")
        decision = Decision.objects.filter(pk=pk, host__in=hosts).first()
        if decision is None:
            raise services.NotFound("no such decision, or not one you may see")
        if self.verdict == "approve":
            decision = run.approve(self.actor, decision)
            return Response(DecisionSerializer(decision).data, status=status.HTTP_202_ACCEPTED)
        return Response(DecisionSerializer(run.dismiss(self.actor, decision)).data)


class ApprovePlanSerializer(serializers.Serializer):
    steps = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False,
                                  help_text="the ids of the recommended steps you looked at")


class ApprovePlan(ApiView, APIView):
    """POST: approve every step recommended on a host, in the plan's order (202). Each step comes back with its
    state: applied (its job created as you), waiting (for the shrinks approved with it), or still recommended
    with the refusal in `error`. With `steps` (the ids of the steps you looked at), nothing is approved unless
    they are exactly the steps recommended now (409 plan_changed)."""

    queryset = Host.objects.none()  # for the schema: `pk` is a host's

    @extend_schema(request=ApprovePlanSerializer, responses=DecisionSerializer(many=True))
    def post(self, request, pk: int):
        host = Host.objects.filter(pk=pk).first()
        if host is None:
            raise services.NotFound("no such host")
        services.check_permission(self.actor, "view", host)
        given = ApprovePlanSerializer(data=request.data if hasattr(request.data, "keys") else {})
        given.is_valid(raise_exception=True)
        steps = run.approve_plan(self.actor, host, given.validated_data.get("steps"))
        return Response(DecisionSerializer(steps, many=True).data, status=status.HTTP_202_ACCEPTED)


class Policy(ApiView, APIView):
    """GET a team's, host's or domain's autoscaling policy (`kind` team | host | domain); PATCH (or PUT) some of
    its settings: admins only, bounds checked, audited, and a new policy version."""

    MODELS = {"team": Team, "host": Host, "domain": Domain}

    def target(self, kind: str, pk: int):
        if kind not in self.MODELS:
            raise services.NotFound(f"no policy kind {kind!r}: team, host or domain")
        obj = self.MODELS[kind].objects.filter(pk=pk).first()
        if obj is None:
            raise services.NotFound(f"no such {kind}")
        services.check_permission(self.actor, "view", obj)
        return obj

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, kind: str, pk: int):
        obj = self.target(kind, pk)
        answer = {"kind": kind, "id": obj.pk, **show.policy_of(obj)}
        if kind != "team":
            answer["effective_mode"] = show.host_mode(obj if kind == "host" else obj.host)
        return Response(answer)

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def patch(self, request, kind: str, pk: int):
        obj = self.target(kind, pk)
        fields = show.POLICY_FIELDS[kind][1]
        if not isinstance(request.data, Mapping):
            raise serializers.ValidationError({"non_field_errors": [f"send a JSON object of settings of a {kind} policy ({', '.join(fields)})"]})
        unknown = sorted(set(request.data) - set(fields))
        if unknown:
            raise serializers.ValidationError({name: f"not a setting of a {kind} policy ({', '.join(fields)})" for name in unknown})
        run.set_policy(self.actor, obj, **dict(request.data.items()))
        return self.get(request, kind, pk)

    put = patch


class WhatIfSerializer(serializers.Serializer):
    memory = serializers.CharField(help_text="size of the new domain: 2048 (MiB), 2G, 524288K")
    maxmem = serializers.CharField(required=False, help_text="its maxmem; as memory when left out")
    apply = serializers.BooleanField(default=False, help_text="carry out the plan as you (only where every host it touches has the autoscaler on)")


class WhatIfView(ApiView, APIView):
    """POST "make room for one more": which host can take a new domain of this size, and the plan to make it so."""

    @extend_schema(request=WhatIfSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        serializer = WhatIfSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        memory_kib = services.parse_size(data["memory"])
        maxmem_kib = services.parse_size(data["maxmem"]) if data.get("maxmem") else memory_kib
        answer = run.what_if(self.actor, memory_kib, maxmem_kib)
        body = {
            "host": next((c.host_name for c in answer.candidates if c.host_id == answer.host_id), None),
            "grade": answer.grade, "reason": answer.reason,
            "steps": [{"kind": s.kind, "domain": s.domain_name, "from_mib": mib(s.from_kib), "to_mib": mib(s.to_kib),
                       "host_id": s.host_id, "to_host_id": s.to_host_id, "reason": s.reason} for s in show.what_if_steps(answer)],
            "applied": None,
        }
        if data["apply"]:
            decisions = show.apply_what_if_as_person(self.actor, answer)
            body["applied"] = DecisionSerializer(decisions, many=True).data
            return Response(body, status=status.HTTP_202_ACCEPTED)
        return Response(body)
