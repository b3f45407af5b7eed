"""Who asked for a change: a person, an API token, the command line or the autoscaler.

Every service takes an Actor, so that permissions and the audit log see the same identity whatever the entrance.
"""

import contextvars
from collections.abc import Callable
from contextlib import contextmanager
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
    def from_request(cls, request, user=None, kind: str = "user", label: str | None = None, **context) -> "Actor":
        """The actor of a web or API request: its user (or `user`, e.g. a token's owner) with the request id and
        client address that RequestContextMiddleware found."""
        user = user if user is not None else request.user
        context = {"request_id": getattr(request, "request_id", ""), "client_ip": getattr(request, "client_ip", None), **context}
        return cls(kind, label if label is not None else user.get_username(), user, context)

    @classmethod
    def autoscaler(cls, policy_version: str, team_ids: list[int], **context) -> "Actor":
        """The autoscaler applying a plan: it acts as an operator of the teams whose policies it applies, so
        the teams' limits and quotas bind it as they bind a person (rules.roles_of)."""
        return cls("autoscaler", f"autoscaler policy {policy_version}", None, {"team_ids": list(team_ids), **context})

    @classmethod
    def command_line(cls, **context) -> "Actor":
        return cls("cli", "command line", None, context)

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


# The actor of the request or command being handled, for changes recorded by signal handlers (a team edited in
# Django's admin, a host added by `simhost`), which are not handed an actor. Set by RequestContextMiddleware and
# by `acting_as`; the system actor otherwise.
# The variable holds a function returning the actor, not the actor: asgiref looks at the value of every context
# variable when a request crosses between a worker thread and the event loop (`isinstance`), which would make
# the request's lazy actor load its user (a database query) in async context, and the request would hang.
_current: contextvars.ContextVar[Callable[[], Actor] | None] = contextvars.ContextVar("balloonweb_actor", default=None)


def current() -> Actor:
    getter = _current.get()
    return getter() if getter is not None else Actor.system()


@contextmanager
def acting_as(actor: Actor):
    token = _current.set(lambda: actor)
    try:
        yield actor
    finally:
        _current.reset(token)
