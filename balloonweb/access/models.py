from django.conf import settings
from django.db import models


class Team(models.Model):
    """A group of people sharing hosts. A host belongs to one team; its domains follow it."""

    name = models.CharField(max_length=100, unique=True)
    # Range-bounded delegation: the most memory an operator may give one domain, and the team's total running
    # memory. Null means no limit.
    operator_max_kib = models.BigIntegerField(null=True, blank=True)
    quota_kib = models.BigIntegerField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer"
        OPERATOR = "operator", "Operator"
        ADMIN = "admin", "Admin"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "team"], name="one_membership_per_team")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} as {self.role}"


class UserSession(models.Model):
    """The sessions a user is signed in with, so that "sign out everywhere" can end them all (the session
    table itself cannot be searched by user without decoding every row)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    session_key = models.CharField(max_length=40, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
