"""The API's shapes. Memory is KiB inside BalloonWeb; here it is MiB, in fields whose names say so.

Serializers only shape data: sizes arrive as text (`"512"`, `"512M"`, `"4G"`) and the services parse and judge
them, so that the API refuses exactly what the pages and `xm` refuse.
"""

from django.contrib.auth import get_user_model
from django.db.models import F
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from balloonweb.access.models import Membership, Team
from balloonweb.audit.models import AuditEntry
from domains.models import Domain, Job
from domains.services import POWER_ACTIONS
from hosts.models import Host
from hosts.units import mib

from .models import ApiToken


def kib_or_none(mib_value: int | None) -> int | None:
    return None if mib_value is None else mib_value * 1024


SIZE_HELP = "MiB when bare, as in xm: 512, 512M, 4G, 524288K"


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="stable, for scripts: bad_size, above_maxmem, no_room, host_unreachable, ...")
    message = serializers.CharField(help_text="what went wrong and what to do about it")


class ValidationErrorSerializer(ErrorSerializer):
    fields = serializers.DictField(required=False, help_text="the message of each field that was refused")


class HostSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", default=None, allow_null=True, read_only=True)
    total_mib = serializers.SerializerMethodField()
    capacity_mib = serializers.SerializerMethodField()
    reserved_mib = serializers.SerializerMethodField()
    usable_mib = serializers.SerializerMethodField()
    running_mib = serializers.SerializerMethodField(help_text="current memory of the running domains")
    running_domains = serializers.IntegerField(read_only=True)

    class Meta:
        model = Host
        fields = ["id", "name", "uri", "team", "team_name", "queue_group", "status", "last_error", "last_seen",
                  "status_changed", "cpus", "total_mib", "capacity_mib", "reserved_mib", "usable_mib", "running_mib",
                  "running_domains", "maintenance"]
        read_only_fields = ["maintenance"]

    def get_total_mib(self, host) -> int:
        return mib(host.total_kib)

    def get_capacity_mib(self, host) -> int | None:
        return mib(host.capacity_kib)

    def get_reserved_mib(self, host) -> int:
        return mib(host.reserved_kib)

    def get_usable_mib(self, host) -> int:
        return mib(host.usable_kib)

    def get_running_mib(self, host) -> int:
        return mib(host.running_kib or 0)


# The fields a domain shows, in MiB; declared for the schema. `to_representation` builds the dict by hand from a
# plain row (DOMAIN_ROW): the list of 100 domains is the API's busiest answer, and model instances plus DRF's
# per-field machinery would be most of its time.
DOMAIN_MIB_FIELDS = ["memory", "maxmem", "config_memory", "config_maxmem", "floor"]
DOMAIN_STATS_FIELDS = ["actual", "unused", "available", "usable", "rss"]
DOMAIN_ROW = ["id", "name", "uuid", "host_id", "state", "hv_id", "vcpus", "stats_stale", "cpu_time_ns", "last_seen",
              *(f"{field}_kib" for field in DOMAIN_MIB_FIELDS + DOMAIN_STATS_FIELDS)]
XEN_STATE = {state: Domain(state=state).xen_state for state in Domain.State.values}


def domain_rows(domains):
    """A domain queryset as the rows DomainSerializer reads (the host's name joined in)."""
    return domains.values(*DOMAIN_ROW, host_name=F("host__name"))


class DomainSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    url = serializers.URLField(read_only=True)
    name = serializers.CharField(read_only=True)
    uuid = serializers.UUIDField(read_only=True)
    host = serializers.CharField(read_only=True, help_text="the host's name")
    host_id = serializers.IntegerField(read_only=True)
    state = serializers.ChoiceField(choices=Domain.State.choices, read_only=True)
    xen_state = serializers.CharField(read_only=True, help_text="as in xm list: r----- running, -b---- blocked, ...")
    hv_id = serializers.IntegerField(read_only=True, allow_null=True, help_text="the hypervisor's id while it runs")
    vcpus = serializers.IntegerField(read_only=True)
    memory_mib = serializers.IntegerField(read_only=True, help_text="the balloon target the hypervisor holds")
    maxmem_mib = serializers.IntegerField(read_only=True, help_text="the live maximum")
    config_memory_mib = serializers.IntegerField(read_only=True, help_text="memory in the persistent config")
    config_maxmem_mib = serializers.IntegerField(read_only=True, help_text="maxmem in the persistent config (next boot)")
    floor_mib = serializers.IntegerField(read_only=True, help_text="nothing shrinks the domain below this")
    actual_mib = serializers.IntegerField(read_only=True, allow_null=True, help_text="balloon: what the guest has now")
    unused_mib = serializers.IntegerField(read_only=True, allow_null=True)
    available_mib = serializers.IntegerField(read_only=True, allow_null=True)
    usable_mib = serializers.IntegerField(read_only=True, allow_null=True)
    rss_mib = serializers.IntegerField(read_only=True, allow_null=True)
    used_mib = serializers.IntegerField(read_only=True, allow_null=True, help_text="available - unused")
    stats_stale = serializers.BooleanField(read_only=True)
    cpu_time_s = serializers.FloatField(read_only=True)
    last_seen = serializers.DateTimeField(read_only=True, allow_null=True)

    def to_representation(self, row) -> dict:
        if isinstance(row, Domain):
            row = domain_rows(Domain.objects.filter(pk=row.pk)).get()
        prefix = self.context.get("_domains_url")
        if prefix is None:  # once per answer: reversing a URL per row would cost more than the rest of the row
            prefix = self.context["_domains_url"] = reverse("api:domain-list", request=self.context.get("request"))
        data = {
            "id": row["id"],
            "url": f"{prefix}{row['id']}/",
            "name": row["name"],
            "uuid": str(row["uuid"]),
            "host": row["host_name"],
            "host_id": row["host_id"],
            "state": row["state"],
            "xen_state": XEN_STATE.get(row["state"], "------"),
            "hv_id": row["hv_id"],
            "vcpus": row["vcpus"],
        }
        for field in DOMAIN_MIB_FIELDS + DOMAIN_STATS_FIELDS:
            value = row[f"{field}_kib"]
            data[f"{field}_mib"] = None if value is None else value // 1024
        available, unused = row["available_kib"], row["unused_kib"]
        data["used_mib"] = None if available is None or unused is None else max(0, available - unused) // 1024  # as Domain.used_kib
        data["stats_stale"] = row["stats_stale"]
        data["cpu_time_s"] = round(row["cpu_time_ns"] / 1e9, 3)
        data["last_seen"] = row["last_seen"].isoformat().replace("+00:00", "Z") if row["last_seen"] else None
        return data


class SizeSerializer(serializers.Serializer):
    size = serializers.CharField(max_length=40, help_text=SIZE_HELP)


class MigrateSerializer(serializers.Serializer):
    host = serializers.CharField(max_length=100, help_text="the destination host's name")


class PowerSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=list(POWER_ACTIONS),
                                     help_text="; ".join(f"{name}: {what}" for name, what in POWER_ACTIONS.items()))
    force = serializers.BooleanField(default=False, help_text="shutdown and restart: turn the guest off at once, without asking it")


class MaintenanceSerializer(serializers.Serializer):
    on = serializers.BooleanField(help_text="true: start maintenance (empty the host); false: end it")


class StayingSerializer(serializers.Serializer):
    domain = serializers.CharField()
    reason = serializers.CharField()


class MovingSerializer(serializers.Serializer):
    domain = serializers.CharField()
    to = serializers.CharField(help_text="the host it is migrating to")


class MaintenanceResultSerializer(serializers.Serializer):
    host = serializers.CharField()
    maintenance = serializers.BooleanField()
    jobs = serializers.ListField(child=serializers.IntegerField(), help_text="the migrations queued to empty it")
    job_urls = serializers.ListField(child=serializers.URLField(), help_text="the same migrations' URLs, to follow them")
    staying = StayingSerializer(many=True, help_text="running or shut-off domains left on it, and why")
    moving = MovingSerializer(many=True, help_text="domains already on their way (asking again moves only the rest)")


class HostSettingsSerializer(serializers.Serializer):
    """A host's settings as typed (domains/host_registry.py parses and judges them, as for the pages)."""

    team = serializers.CharField(required=False, allow_blank=True, allow_null=True,
                                 help_text="a team's name or id; empty or null: no team (only superusers see it)")
    reserved = serializers.CharField(required=False, allow_blank=True, max_length=20,
                                     help_text="memory the host keeps for itself: 512 (MiB), 1G or 0; default 512 MiB")
    capacity = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=20,
                                     help_text="what the host hands out in all, reserve included; empty or null: all it reports")
    queue_group = serializers.CharField(required=False, allow_blank=True, max_length=100,
                                        help_text="its jobs and polls go to the queues jobs.GROUP and poll.GROUP; empty: the default ones")


class AddHostSerializer(HostSettingsSerializer):
    name = serializers.CharField(max_length=100)
    uri = serializers.CharField(max_length=500, help_text="qemu:///system, qemu+ssh://root@hv3/system, xen+ssh://root@hv3/")


class RemovedSerializer(serializers.Serializer):
    message = serializers.CharField()


class CreateDomainSerializer(serializers.Serializer):
    host = serializers.CharField(max_length=100, help_text="the host's name")
    config = serializers.CharField(max_length=10000, trim_whitespace=False,
                                   help_text='a Xen-style config, as for xm create: name = "foo"\\nmemory = 1024\\nmaxmem = 4096\\nvcpus = 1')


class JobSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    domain_name = serializers.CharField(source="domain.name", default=None, allow_null=True, read_only=True)
    host = serializers.CharField(source="host.name", read_only=True)
    target_host = serializers.CharField(source="target_host.name", default=None, allow_null=True, read_only=True)
    parameters = serializers.SerializerMethodField(help_text="what the job was asked to do; sizes in MiB")
    actor = serializers.CharField(source="actor_label", read_only=True)
    finished_ok = serializers.SerializerMethodField(help_text="null while the job runs")
    stop_requested_by = serializers.CharField(
        read_only=True, help_text="who asked this running migration to stop; empty if nobody did"
    )

    class Meta:
        model = Job
        fields = ["id", "url", "kind", "state", "progress", "finished_ok", "domain", "domain_name", "host", "target_host",
                  "parameters", "actor_kind", "actor", "log", "error_code", "error", "stop_requested_by", "created", "started",
                  "finished"]

    def get_url(self, job) -> str:
        return reverse("api:job-detail", args=[job.pk], request=self.context.get("request"))

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_parameters(self, job) -> dict:
        return {
            (key[:-4] + "_mib" if key.endswith("_kib") else key): (mib(value) if key.endswith("_kib") and isinstance(value, int) else value)
            for key, value in job.params.items()
        }

    def get_finished_ok(self, job) -> bool | None:
        return None if not job.is_finished else job.state == Job.State.SUCCEEDED


class AuditEntrySerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEntry
        fields = ["id", "at", "actor_kind", "actor_label", "action", "object_type", "object_id", "object_repr", "team_id",
                  "host_id", "domain_id", "before", "after", "result", "message", "job_id", "request_id", "client_ip"]


class TeamSerializer(serializers.ModelSerializer):
    operator_max_mib = serializers.IntegerField(source="operator_max_kib", required=False, allow_null=True, min_value=1,
                                                max_value=2**40, help_text="the most an operator may give one domain; null: no limit")
    quota_mib = serializers.IntegerField(source="quota_kib", required=False, allow_null=True, min_value=1, max_value=2**40,
                                         help_text="the team's total running memory; null: no limit")

    class Meta:
        model = Team
        fields = ["id", "name", "operator_max_mib", "quota_mib"]
        # A taken name is the service's to refuse (409 name_taken), like every other conflict.
        extra_kwargs = {"name": {"validators": []}}

    def to_representation(self, team):
        data = super().to_representation(team)
        data["operator_max_mib"], data["quota_mib"] = mib(team.operator_max_kib), mib(team.quota_kib)
        return data

    def to_internal_value(self, data):
        values = super().to_internal_value(data)
        for field in ("operator_max_kib", "quota_kib"):
            if field in values:
                values[field] = kib_or_none(values[field])
        return values


class MembershipSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)
    team_name = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "team", "team_name", "user", "role"]
        read_only_fields = fields


class MembershipCreateSerializer(serializers.Serializer):
    # The team is looked up by the view among those the caller sees: a team id is not validated here, where a
    # missing team and someone else's would answer differently.
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    username = serializers.CharField(max_length=150, help_text="the member's user name")
    role = serializers.ChoiceField(choices=Membership.Role.choices)


class MembershipUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["role"]


class AccountMembershipSerializer(serializers.ModelSerializer):
    team_name = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = Membership
        fields = ["team", "team_name", "role"]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    teams = AccountMembershipSerializer(source="memberships", many=True, read_only=True)
    email = serializers.CharField(read_only=True, help_text="empty when the account has none")

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "email", "is_active", "is_superuser", "last_login", "date_joined", "teams"]
        read_only_fields = fields


class NewAccountSerializer(serializers.Serializer):
    # Only shapes: balloonweb/access/accounts.py judges the values, as for the People page.
    username = serializers.CharField(max_length=300)
    email = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")
    password = serializers.CharField(max_length=300, required=False, allow_blank=True, default="", trim_whitespace=False,
                                     help_text="empty or absent: one is generated and returned once, as `password`")
    team = serializers.CharField(max_length=100, required=False, allow_blank=True, default="", help_text="a team's name or id")
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False, default=Membership.Role.VIEWER)


class AccountActiveSerializer(serializers.Serializer):
    is_active = serializers.BooleanField()


class NewPasswordSerializer(serializers.Serializer):
    password = serializers.CharField(max_length=300, required=False, allow_blank=True, default="", trim_whitespace=False,
                                     help_text="empty or absent: one is generated and returned once")


class SignedOutSerializer(serializers.Serializer):
    sessions_ended = serializers.IntegerField()


class HandedOverSerializer(UserSerializer):
    password = serializers.CharField(required=False, help_text="the generated password, present only when it was generated")

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "password"]


class TokenSerializer(serializers.ModelSerializer):
    token_prefix = serializers.SerializerMethodField(help_text="the start of the token, to recognise it")
    scope = serializers.CharField(read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "name", "token_prefix", "write", "scope", "created", "expires", "revoked", "last_used", "last_used_ip"]
        read_only_fields = ["created", "revoked", "last_used", "last_used_ip"]

    def get_token_prefix(self, token) -> str:
        return f"bw_{token.prefix}"


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="the whole token: shown this once, never again")

    class Meta(TokenSerializer.Meta):
        fields = TokenSerializer.Meta.fields + ["token"]
