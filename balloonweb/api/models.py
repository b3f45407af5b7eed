"""API tokens: per user, read-only or read-write, optionally expiring. Only a hash of the secret is stored."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    # The token is "bw_<prefix>_<secret>": the prefix finds the row (and is safe to show), the secret is checked
    # against its SHA-256. A random 256-bit secret needs no slow hash: it cannot be guessed from its digest.
    prefix = models.CharField(max_length=16, unique=True)
    secret_sha256 = models.CharField(max_length=64)
    write = models.BooleanField("read-write", default=False)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"token {self.name} (bw_{self.prefix}) of {self.user}"

    @property
    def scope(self) -> str:
        return "read-write" if self.write else "read-only"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked is None and (self.expires is None or self.expires > now)
