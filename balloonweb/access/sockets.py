"""Closing a user's open WebSockets when their access changes (a role lost, a sign-out).

Every consumer joins its user's group "user.<id>" besides the groups of what it watches (GuardedConsumer does
both). On a role change, a removed membership or a sign-out, `access_changed()` publishes an "access" hint
there; each socket then checks its access again from the database (session still there, rule still allows)
and closes itself if not. The hint says nothing the check would not find: a lost message costs only delay,
never access, since the next connect checks again.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.contrib.sessions.backends.base import SessionBase

from balloonweb.live.publish import group_name, publish

from . import rules
from .actors import Actor

TOPIC = "user"
# Close codes (4000-4999 are the application's): the page can tell a lost session from a lost right.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404


def user_group(user_id: int) -> str:
    return group_name(TOPIC, user_id)


def access_changed(user_id: int, **why) -> None:
    """Tell the user's open sockets to check their access again (after the current transaction commits)."""
    publish(TOPIC, user_id, {"type": "access", **why})


class GuardedConsumer(AsyncJsonWebsocketConsumer):
    """A socket that watches one object: joins its groups only after rules.require(action), and leaves when the
    user's access ends. Subclasses give `get_object()` (from self.scope["url_route"]["kwargs"], raising the
    model's DoesNotExist when absent) and `groups_for(obj)`; messages published to those groups arrive in
    `live_update()` and are sent on as JSON."""

    action = "view"

    def get_object(self):  # runs in a thread: may use the ORM
        raise NotImplementedError

    def groups_for(self, obj) -> list[str]:
        raise NotImplementedError

    def _check(self):
        """(close code or None, object). The whole access rule, as a page view applies it."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return CLOSE_UNAUTHENTICATED, None
        try:
            obj = self.get_object()
        except Exception as exc:  # noqa: BLE001 - a missing object (DoesNotExist, Http404) answers as an outsider's
            if type(exc).__name__ in {"DoesNotExist", "Http404"} or isinstance(exc, LookupError):
                return CLOSE_NOT_FOUND, None
            raise
        try:
            rules.require(Actor.for_user(user), self.action, obj)
        except rules.NotFound:
            return CLOSE_NOT_FOUND, None
        except rules.Forbidden:
            return CLOSE_FORBIDDEN, None
        return None, obj

    async def connect(self):
        refused, obj = await database_sync_to_async(self._check)()
        if refused:
            # Accept-then-close would show the code to the page; a refused handshake (403) shows nothing.
            await self.close(code=refused)
            return
        self.watched = [*self.groups_for(obj), user_group(self.scope["user"].pk)]
        for group in self.watched:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "watched", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def _session_alive(self) -> bool:
        session: SessionBase | None = self.scope.get("session")
        key = getattr(session, "session_key", None)
        if session is None or key is None:
            return True  # not session-authenticated (tests with a user in scope): only the rule applies
        return await database_sync_to_async(session.exists)(key)

    async def live_update(self, event):
        payload = event["payload"]
        if payload.get("type") == "access":
            refused, _obj = await database_sync_to_async(self._check)()
            if refused or not await self._session_alive():
                await self.close(code=refused or CLOSE_UNAUTHENTICATED)
            return
        await self.send_json(payload)
