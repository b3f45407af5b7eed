from django import forms

from hosts.units import BadSize, parse_memory_kib

from .models import Membership, Team


class MemoryLimitField(forms.CharField):
    """A size as `xm` takes it (512, 512M, 4G, 524288K; MiB when bare) in KiB; blank means no limit."""

    def __init__(self, **kwargs):
        super().__init__(required=False, help_text="e.g. 4G or 2048 (MiB); blank: no limit", **kwargs)

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        try:
            return parse_memory_kib(value)
        except BadSize as exc:
            raise forms.ValidationError(str(exc)) from exc


class TeamLimitsForm(forms.ModelForm):
    operator_max_kib = MemoryLimitField(label="Largest memory an operator may give one domain")
    quota_kib = MemoryLimitField(label="Team quota of running memory")

    class Meta:
        model = Team
        fields = ["operator_max_kib", "quota_kib"]

    def __init__(self, *args, may_set_quota: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # The quota is what the fleet's owner grants the team; its admins hand out within it (services.check_delegation).
        if not may_set_quota:
            self.fields["quota_kib"].disabled = True
            self.fields["quota_kib"].help_text = "set by a superuser"


class TeamCreateForm(forms.ModelForm):
    class Meta:
        model = Team
        fields = ["name"]


class AddMemberForm(forms.Form):
    """What the team page shows; balloonweb/api/teams.add_member judges what was typed."""

    username = forms.CharField(label="User name")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.VIEWER)
