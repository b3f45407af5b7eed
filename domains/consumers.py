"""WebSocket consumers of the live pages. They forward hints; the page refetches what it shows.

A consumer joins its groups only after balloonweb.access.rules says the user may view the object. An anonymous
user, an outsider or a missing object gets the socket closed at once with a code the page understands (a refused
handshake reaches a browser only as 1006, which it would retry for ever). Every socket also joins "user.<id>",
so that a payload {"type": "close"} published there (a sign-out, a role changed, a host given away) closes the
user's open sockets with CLOSE_RECHECK: the page reconnects, and the connect checks afresh what it may see.
"""

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import ObjectDoesNotExist

from balloonweb.access import rules
from balloonweb.access.actors import Actor
from balloonweb.live.publish import group_name
from hosts.models import Host

from .models import Domain, Job

# Close codes in the private range (static/balloonweb/live.js): reconnect to be checked again; signed out; not
# allowed to see this (or it is gone). The page retries only the first.
CLOSE_RECHECK = 4000
CLOSE_SIGNED_OUT = 4401
CLOSE_NOT_ALLOWED = 4403
FINISHED = {s.value for s in Job.State if s not in Job.UNFINISHED}


class LiveConsumer(AsyncJsonWebsocketConsumer):
    joined: list[str]
    closing = False  # closed by the server: nothing more is sent

    async def connect(self) -> None:
        self.joined = []
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_SIGNED_OUT)
            return
        self.actor = Actor.for_user(user)
        self.closing = False
        # The user's own group first: a removal that commits while the rights are read below sends its "close"
        # there, and this socket must hear it.
        await self.join([group_name("user", user.pk)])
        groups = await self.groups_now_allowed()
        if groups is None:
            await self.leave(list(self.joined))
            await self.refuse(CLOSE_NOT_ALLOWED)
            return
        await self.join(groups)
        await self.accept()

    async def refuse(self, code: int) -> None:
        """Accepted, joined to nothing, and closed at once with `code`, so that the page knows not to retry."""
        await self.accept()
        await self.close(code=code)

    def allowed_groups(self, **kwargs) -> list[str]:
        """The groups this socket may join; raise rules.NotFound/Forbidden (via rules.require) if none."""
        raise NotImplementedError

    async def groups_now_allowed(self) -> list[str] | None:
        """allowed_groups for this socket's URL, or None if the actor may not look."""
        try:
            return await database_sync_to_async(self.allowed_groups)(**self.scope["url_route"]["kwargs"])
        except (rules.NotFound, rules.Forbidden, ObjectDoesNotExist):
            return None

    async def join(self, groups: list[str]) -> None:
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)

    async def leave(self, groups: list[str]) -> None:
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)
            self.joined.remove(group)

    async def disconnect(self, code: int) -> None:
        await self.leave(list(self.joined))

    async def receive(self, text_data=None, bytes_data=None, **kwargs) -> None:
        """Frames that are not JSON text (binary, or broken) are ignored, rather than ending the socket."""
        if text_data is None:
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            return
        await self.receive_json(content)

    async def receive_json(self, content, **kwargs) -> None:
        """The page sends nothing that matters; a ping is answered so a client can measure the socket."""
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong", "t": content.get("t")})

    async def dispatch(self, message: dict) -> None:
        # Channels runs close_old_connections() on the database thread before every handler: a thread hop per
        # message, all through one thread. A live hint touches no database (follow() goes through
        # database_sync_to_async, which closes old connections itself), and that hop was most of the time it
        # took to fan one hint out to hundreds of sockets (bench/live.py).
        if message["type"] == "live.update":
            await self.live_update(message)
        else:
            await super().dispatch(message)

    async def live_update(self, event: dict) -> None:
        payload = event["payload"]
        if payload.get("type") == "close":
            await self.close(code=CLOSE_RECHECK)
            return
        if payload.get("type") == "resync":  # hints may have been lost (balloonweb/live/layer.py)
            # Lost hints may include a "close" or a "regroup": reconnecting checks the rights afresh, and the page
            # refetches every region when it is open again.
            await self.close(code=CLOSE_RECHECK)
            return
        if payload.get("type") == "regroup":  # the user joined a team (balloonweb/access/sockets.py)
            await self.regroup()
            return
        if await self.concerns(payload) and not self.closing:
            await self.send_json(payload)

    async def concerns(self, payload: dict) -> bool:
        return True

    async def regroup(self) -> None:
        """Join the groups the user may now see, and have the page refetch what it shows."""
        self.actor = Actor.for_user(self.scope["user"])  # an actor keeps the roles it was made with
        groups = await self.groups_now_allowed()
        if groups is None:
            return  # losing access closes the socket instead (a "close" hint)
        await self.join([group for group in groups if group not in self.joined])
        await self.send_json({"type": "resync", "reason": "you joined a team"})


def visible_team_groups(actor: Actor, topic: str) -> list[str]:
    """One group per team whose hosts the actor may view (the fleet and the jobs pages span teams)."""
    teams = rules.restrict(Host.objects.all(), actor, "view").values_list("team_id", flat=True).distinct()
    return sorted({group_name(topic, team) for team in teams})


class FleetConsumer(LiveConsumer):
    def allowed_groups(self) -> list[str]:
        return visible_team_groups(self.actor, "fleet")


class JobsConsumer(LiveConsumer):
    def allowed_groups(self) -> list[str]:
        return visible_team_groups(self.actor, "jobs")


class HostConsumer(LiveConsumer):
    def allowed_groups(self, host_id: int) -> list[str]:
        host = Host.objects.get(pk=host_id)
        rules.require(self.actor, "view", host)
        return [group_name("host", host.pk)]


class DomainConsumer(LiveConsumer):
    """Listens on its domain's host group and forwards what concerns the domain; follows it when it migrates."""

    def allowed_groups(self, domain_id: int) -> list[str]:
        domain = Domain.objects.select_related("host").get(pk=domain_id)
        rules.require(self.actor, "view", domain)
        self.domain_id, self.host_id = domain.pk, domain.host_id
        return [group_name("host", domain.host_id)]

    async def concerns(self, payload: dict) -> bool:
        kind = payload.get("type")
        mine = (
            payload.get("domain") == self.domain_id
            or self.domain_id in payload.get("domains", ())
            or (kind == "host" and payload.get("host") == self.host_id)
        )
        ended = kind in ("job", "domain") and payload.get("state", "succeeded") in FINISHED
        if mine and (ended or self.domain_id in payload.get("moved", ())):
            await self.follow()
        return mine

    async def follow(self) -> None:
        """After a job ends the domain may live on another host: listen there instead (the rules allow it
        only if the user may still view the domain; otherwise the socket closes)."""
        try:
            host_id = await database_sync_to_async(self._current_host)()
        except (rules.NotFound, rules.Forbidden, ObjectDoesNotExist):
            self.closing = True  # nothing more is sent on it
            await self.leave(list(self.joined))
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        if host_id != self.host_id:
            await self.leave([group_name("host", self.host_id)])
            self.host_id = host_id
            await self.join([group_name("host", host_id)])

    def _current_host(self) -> int:
        self.actor = Actor.for_user(self.actor.user)  # roles read afresh: they may have changed since connect
        domain = Domain.objects.select_related("host").get(pk=self.domain_id)
        rules.require(self.actor, "view", domain)
        return domain.host_id
