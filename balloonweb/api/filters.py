"""Filters for every list. Filters on related objects go by name or id without loading the object first, so a
list costs the same number of queries whatever is asked."""

import django_filters as filters

from balloonweb.access.models import Membership, Team
from balloonweb.audit import review
from balloonweb.audit.models import AuditEntry
from balloonweb.instants import IsoInstantField
from domains.models import Domain, Job
from hosts.models import Host

ID = {"min_value": 1, "max_value": 2**63 - 1}


class InstantFilter(filters.IsoDateTimeFilter):
    field_class = IsoInstantField


def id_filter(field_name: str, help_text: str) -> filters.NumberFilter:
    return filters.NumberFilter(field_name=field_name, help_text=help_text, **ID)


class HostFilter(filters.FilterSet):
    name = filters.CharFilter(help_text="exact name")
    status = filters.ChoiceFilter(choices=Host.Status.choices)
    team = id_filter("team_id", "team id")

    class Meta:
        model = Host
        fields = ["name", "status", "team"]


class DomainFilter(filters.FilterSet):
    name = filters.CharFilter(help_text="exact name")
    name_contains = filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="part of the name")
    host = filters.CharFilter(field_name="host__name", help_text="the host's name")
    host_id = id_filter("host_id", "the host's id")
    team = id_filter("host__team_id", "team id")
    state = filters.ChoiceFilter(choices=Domain.State.choices, help_text="without it, domains that are gone are left out")

    class Meta:
        model = Domain
        fields = ["name", "name_contains", "host", "host_id", "team", "state"]


class JobFilter(filters.FilterSet):
    kind = filters.ChoiceFilter(choices=Job.Kind.choices)
    state = filters.ChoiceFilter(choices=Job.State.choices)
    domain = id_filter("domain_id", "domain id")
    host = filters.CharFilter(field_name="host__name", help_text="the host's name (a migration's source)")
    created_after = InstantFilter(field_name="created", lookup_expr="gte")

    class Meta:
        model = Job
        fields = ["kind", "state", "domain", "host", "created_after"]


class AuditFilter(filters.FilterSet):
    action = filters.CharFilter(help_text="e.g. domain.resize, token.create")
    actor = filters.CharFilter(method="filter_actor", help_text="a user's name (their page, token and command line "
                               "actions), or an actor's label (command line, autoscaler policy N)")
    actor_kind = filters.CharFilter()
    result = filters.ChoiceFilter(choices=AuditEntry.Result.choices)
    team = id_filter("team_id", "team id")
    host = id_filter("host_id", "host id")
    domain = id_filter("domain_id", "domain id")
    job = id_filter("job_id", "job id")
    since = InstantFilter(method="filter_period", help_text="at or after this instant")
    until = InstantFilter(method="filter_period", help_text="at or before this instant")

    class Meta:
        model = AuditEntry
        fields = ["action", "actor", "actor_kind", "result", "team", "host", "domain", "job", "since", "until"]

    def filter_actor(self, entries, name, value):
        return review.by_actor(entries, value)

    def filter_period(self, entries, name, value):
        # As the review page: the instants also become id bounds (one range of the primary key).
        return review.in_period(entries, value if name == "since" else None, value if name == "until" else None)


class TeamFilter(filters.FilterSet):
    name = filters.CharFilter()

    class Meta:
        model = Team
        fields = ["name"]


class MembershipFilter(filters.FilterSet):
    team = id_filter("team_id", "team id")
    user = filters.CharFilter(field_name="user__username", help_text="user name")
    role = filters.ChoiceFilter(choices=Membership.Role.choices)

    class Meta:
        model = Membership
        fields = ["team", "user", "role"]
