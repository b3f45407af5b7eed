"""Who asked for a change: a person, an API token, the command line or the autoscaler.

Every service takes an Actor, so that permissions and the audit log see the same identity whatever the entrance.
"""

from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser


@dataclass(frozen=True)
class Actor:
    kind: str  # "user", "token", "cli", "autoscaler", "system"
    label: str
    user: AbstractBaseUser | None = None
    # Free-form context kept with audit entries: token id, policy version, client IP, request id.
    context: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def for_user(cls, user: AbstractBaseUser, **context) -> "Actor":
        return cls("user", user.get_username(), user, context)

    @classmethod
    def command_line(cls) -> "Actor":
        return cls("cli", "command line")

    @classmethod
    def system(cls, label: str = "system") -> "Actor":
        return cls("system", label)

    @property
    def is_privileged(self) -> bool:
        """The command line run on the server and internal jobs act with the rights of the machine's owner."""
        if self.user is not None:
            return bool(self.user.is_superuser)
        return self.kind in {"cli", "system"}

    def __str__(self) -> str:
        return self.label if self.kind == "user" else f"{self.kind}:{self.label}"
