"""The channel layer: channels-redis over Redis pub/sub, and a "resync" hint after its connection comes back.

Why pub/sub: a group_send is one PUBLISH whatever the group's size, and each server process fans it out to its
own sockets. channels-redis' default layer instead queues one copy per member in Redis and pops them one by
one, which measured ~4x slower for 500 sockets watching the fleet page (bench/live.py).

What pub/sub does not do: keep messages while a server's connection to Redis is down. redis-py reconnects and
subscribes again by itself, silently; so when it does, every socket of the process gets {"type": "resync"},
and its page refetches what it shows. Messages are hints; this keeps them honest after a gap.

This leans on channels-redis 4.3's RedisSingleShardConnection and redis-py's PubSub.on_connect (both pinned);
tests/browser (the Redis-drop test) fails if either changes under it.
"""

import asyncio
import logging

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer, RedisSingleShardConnection
from channels_redis.utils import _wrap_close

log = logging.getLogger(__name__)

RESYNC = {"type": "live.update", "payload": {"type": "resync"}}


class ResyncOnReconnect:
    """Wraps redis-py's PubSub.on_connect (which subscribes again): after the first connect, also resync.
    redis-py keeps connect callbacks as weak bound methods, so the shard holds this object."""

    def __init__(self, shard: "ResyncingShard", subscribe_again):
        self.shard, self.subscribe_again, self.connected_before = shard, subscribe_again, False

    async def on_connect(self, connection) -> None:
        await self.subscribe_again(connection)
        if self.connected_before:
            log.warning("live updates: reconnected to Redis; asking every open page to refetch")
            self.shard.channel_layer.resync()
        self.connected_before = True


class ResyncingShard(RedisSingleShardConnection):
    def _ensure_redis(self) -> None:
        fresh = self._redis is None
        super()._ensure_redis()
        if fresh:
            self._resync = ResyncOnReconnect(self, self._pubsub.on_connect)
            self._pubsub.on_connect = self._resync.on_connect


class ResyncingLoopLayer(RedisPubSubLoopLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._shards = [ResyncingShard(shard.host, self) for shard in self._shards]

    def resync(self) -> None:
        message = self.channel_layer.serialize(RESYNC)
        for queue in self.channels.values():
            queue.put_nowait(message)


class LiveChannelLayer(RedisPubSubChannelLayer):
    def _get_layer(self):
        loop = asyncio.get_running_loop()
        layer = self._layers.get(loop)
        if layer is None:
            layer = self._layers[loop] = ResyncingLoopLayer(*self._args, **self._kwargs, channel_layer=self)
            _wrap_close(self, loop)
        return layer
