"""The shared store: the protocol of ``drf_scale.cache.store`` in one Redis (the redis extra).

Each operation is one round trip (a Lua script or a pipeline) with a bounded socket timeout,
guarded by the circuit breaker. Imported only when CACHE_URL names a Redis.

A redis+sentinel:// CACHE_URL finds the master through Redis Sentinel, at every new
connection: after a failover, connections to the old master fail (Unavailable, the breaker),
and new ones go to the promoted replica, whose run_id renews the epoch before they are used.

A redis+cluster:// CACHE_URL spreads models over the cluster's slots: a model's keys share
its hash tag, and so an epoch of its own. No connection hook sees a node fail over there, so
each script first compares the node's run_id with the one its epoch was made under.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any, TypeVar

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from drf_scale.breaker import Breaker
from drf_scale.cache.store import (
    Entry,
    Items,
    Lookup,
    Unavailable,
    collection_key,
    epoch_key,
    generation_key,
    lookup,
    object_key,
    run_key,
    ttl,
)
from drf_scale.conf import scale_settings
from drf_scale.redis_urls import CLUSTER_SCHEME, ClusterURL, parse_url

__all__ = ["RedisStore"]

T = TypeVar("T")
# What a Redis, a Sentinel or a cluster that fails raises (a cluster's own is no RedisError).
ERRORS = (redis.RedisError, RedisClusterException)
RENEWER_THREAD = "drf-scale epoch renewal"


# Every script's last ARGV is a new epoch, for an epoch key that is missing or renewed.

# KEYS: epoch, generation, objects...; ARGV: field, token prefix, lease ms, ttl s, new epoch.
# Per object: "<etag>|<json>" (hit), "!<token>" (lease taken; "!" alone, with lease ms 0: a
# peek, which takes none) or "" (another lease is live).
_READ = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then epoch = ARGV[#ARGV]; redis.call('SET', KEYS[1], epoch) end
local field = ARGV[1] .. ':' .. (redis.call('GET', KEYS[2]) or '0')
local lease_field = 'lease:' .. field
local prefix = epoch .. '|'
local lease_ms = tonumber(ARGV[3])
local now
local out = {}
for i = 3, #KEYS do
  local value = redis.call('HGET', KEYS[i], field)
  if value and string.sub(value, 1, #prefix) == prefix then
    out[i - 2] = string.sub(value, #prefix + 1)
  elseif lease_ms == 0 then
    out[i - 2] = '!'
  else
    if not now then
      local clock = redis.call('TIME')
      now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
    end
    local lease = redis.call('HGET', KEYS[i], lease_field)
    local expires = lease and tonumber(string.match(lease, '(%d+)$'))
    if expires and expires > now then
      out[i - 2] = ''
    else
      local token = ARGV[2] .. ':' .. (i - 2)
      redis.call('HSET', KEYS[i], lease_field, token .. '|' .. epoch .. '|' .. (now + lease_ms))
      if redis.call('TTL', KEYS[i]) < 0 then redis.call('EXPIRE', KEYS[i], ARGV[4]) end
      out[i - 2] = '!' .. token
    end
  end
end
return out
"""

# KEYS: epoch, generation, objects...; ARGV: field, ttl s, then per object token and payload
# ("" releases the lease). Stores only where the lease is still there, in the same epoch.
_WRITE = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then return 0 end
local field = ARGV[1] .. ':' .. (redis.call('GET', KEYS[2]) or '0')
local lease_field = 'lease:' .. field
local stored = 0
for i = 3, #KEYS do
  local token, payload = ARGV[2 * i - 3], ARGV[2 * i - 2]
  local lease = redis.call('HGET', KEYS[i], lease_field)
  local mine = token .. '|' .. epoch .. '|'
  if lease and string.sub(lease, 1, #mine) == mine then
    redis.call('HDEL', KEYS[i], lease_field)
    if payload ~= '' then
      redis.call('HSET', KEYS[i], field, epoch .. '|' .. payload)
      redis.call('EXPIRE', KEYS[i], ARGV[2])
      stored = stored + 1
    end
  end
end
return stored
"""


# KEYS: epoch, run; ARGV: this Redis's run_id, a new epoch. Renews the epoch after a restart.
_RESTARTED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1])
end
"""
_RUN_ID = re.compile(rb"run_id:(\w+)")

# Redis Cluster, before each script: KEYS[1] is the model's epoch, beside it the run_id of
# the node it was made on; another node (a promoted replica, a restart) renews it.
_NODE_CHANGED = """
local run = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('GET', KEYS[1] .. '-run') ~= run then
  redis.call('SET', KEYS[1], ARGV[#ARGV])
  redis.call('SET', KEYS[1] .. '-run', run)
end
"""

# KEYS: epoch, generation, collection: the version of a model's lists.
_VERSION = """
if not redis.call('GET', KEYS[1]) then redis.call('SET', KEYS[1], ARGV[#ARGV]) end
return redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
"""


def _restart_check() -> tuple[Any, ...]:
    """The EVAL of _RESTARTED, once INFO has given the run_id (appended by the caller)."""
    return ("EVAL", _RESTARTED, 2, epoch_key(), run_key())


def _run_id(info: Any) -> bytes:
    found = _RUN_ID.search(info if isinstance(info, bytes) else str(info).encode())
    return found.group(1) if found else b"unknown"


def _on_connect(connection: Any) -> None:
    """Before a new connection is used: a restarted Redis gets a new epoch."""
    connection.on_connect()
    connection.send_command("INFO", "server")
    run_id = _run_id(connection.read_response())
    connection.send_command(*_restart_check(), run_id, secrets.token_hex(8))
    connection.read_response()


async def _aon_connect(connection: Any) -> None:
    """_on_connect for redis.asyncio connections."""
    await connection.on_connect()
    await connection.send_command("INFO", "server")
    run_id = _run_id(await connection.read_response())
    await connection.send_command(*_restart_check(), run_id, secrets.token_hex(8))
    await connection.read_response()


def _new() -> str:
    """A new epoch, should the script need one."""
    return secrets.token_hex(8)


def _client(url: str, flavour: ModuleType, **options: Any) -> Any:
    """A ``flavour`` (redis or redis.asyncio) client of the Redis ``url`` names, through
    Sentinel for a redis+sentinel:// URL. Every socket, to the Sentinels too, times out after
    CACHE_SOCKET_TIMEOUT."""
    timeout = scale_settings.CACHE_SOCKET_TIMEOUT
    options |= {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    parsed = parse_url(url)
    if parsed is None:
        return flavour.Redis.from_url(url, **options)
    if isinstance(parsed, ClusterURL):
        options.pop("redis_connect_func")  # the scripts check the node themselves
        return flavour.cluster.RedisCluster(
            startup_nodes=[flavour.cluster.ClusterNode(*node) for node in parsed.nodes],
            username=parsed.username,
            password=parsed.password,
            require_full_coverage=False,  # start while a slot is failing over
            **options,
        )
    sentinel = flavour.sentinel.Sentinel(
        parsed.sentinels,
        sentinel_kwargs={
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": options["retry"],
            "password": parsed.sentinel_password,
        },
    )
    # Each new connection asks the Sentinels for the master, then runs redis_connect_func.
    return sentinel.master_for(
        parsed.service,
        redis_class=flavour.Redis,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        **options,
    )


class RedisStore:
    """The shared store: each operation is one round trip, guarded by the breaker."""

    def __init__(self, url: str) -> None:
        self.cluster = url.startswith(CLUSTER_SCHEME)
        self.client: Any = None  # made at the first operation (a cluster client connects)
        self.labels: set[str] = set()  # the models this process used (cluster epochs)
        self.breaker = Breaker(
            scale_settings.CACHE_BREAKER_FAILURES, scale_settings.CACHE_BREAKER_COOLDOWN
        )
        self.lock = threading.Lock()
        self.renew_epoch = False  # an invalidation was lost, or the breaker opened
        self.renewer: threading.Thread | None = None
        self.retired = False
        self.url = url
        # redis.asyncio clients belong to the event loop that made them: one per loop.
        self.async_scripts: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    def _call(self, operation: Callable[[], T], *, past_breaker: bool = False) -> T:
        """One round trip, after the epoch renewal a lost invalidation asked for. Refused while
        the breaker is open, unless ``past_breaker`` (invalidations: correctness first)."""
        if not past_breaker and not self.breaker.allows():
            raise Unavailable("the circuit breaker is open")
        try:
            if self.client is None:
                self._connect()
            if self.renew_epoch:  # orphan what was stored before what may have been lost
                self.renew_epoch = False  # first: a loss meanwhile sets it again
                try:
                    self._renew()
                except ERRORS:
                    self.renew_epoch = True
                    raise
            result = operation()
        except ERRORS as error:
            self._failed()
            raise Unavailable(str(error)) from error
        self.breaker.succeeded()
        return result

    def _failed(self) -> None:
        with self.lock:
            self.breaker.failed()
            if not self.breaker.allows():  # it opened: invalidations may have been lost
                self.renew_epoch = True

    def _connect(self) -> None:
        client = _client(
            self.url, redis, retry=Retry(NoBackoff(), 0), redis_connect_func=_on_connect
        )
        self.read_script = self.script(_READ, client)
        self.write_script = self.script(_WRITE, client)
        self.version_script = self.script(_VERSION, client)
        self.client = client

    def script(self, source: str, client: Any) -> Any:
        """``source`` registered on ``client`` (this store's), after the node check on a
        cluster."""
        prelude = _NODE_CHANGED if self.cluster else ""
        return client.register_script(prelude + source)

    def keys(self, label: str, *more: str) -> list[str]:
        """The epoch and generation of ``label``'s entries, then ``more`` keys."""
        if self.cluster:
            self.labels.add(label)
        return [epoch_key(label if self.cluster else None), generation_key(label), *more]

    def _renew(self) -> None:
        """A new epoch: every model's, on a cluster (those this process knows of)."""
        if not self.cluster:
            self.client.set(epoch_key(), secrets.token_hex(8))
            return
        from drf_scale.cache.invalidation import registry

        labels = self.labels | {model._meta.label_lower for model in registry.roots}
        for label in sorted(labels):
            self.client.set(epoch_key(label), secrets.token_hex(8))

    def read(self, label: str, pks: Sequence[Any], field: str, lease_ms: int) -> list[Lookup]:
        keys = self.keys(label, *(object_key(label, pk) for pk in pks))
        args = [field, secrets.token_hex(8), lease_ms, ttl(), _new()]
        values = self._call(lambda: self.read_script(keys=keys, args=args))
        return [lookup(value) for value in values]

    async def apeek(self, label: str, pks: Sequence[Any], field: str) -> list[Entry | None]:
        """Entries only, through an async client on the running loop (async views' hits).

        It takes no lease (one expiring at once): a miss is rebuilt by the sync path."""
        if not self.breaker.allows() or self.renew_epoch:
            raise Unavailable("the circuit breaker is open, or the epoch is to be renewed")
        loop = asyncio.get_running_loop()
        if loop not in self.async_scripts:
            client = _client(self.url, redis.asyncio, retry=None, redis_connect_func=_aon_connect)
            self.async_scripts[loop] = self.script(_READ, client)
        keys = self.keys(label, *(object_key(label, pk) for pk in pks))
        args = [field, secrets.token_hex(8), 0, ttl(), _new()]
        try:
            values = await self.async_scripts[loop](keys=keys, args=args)
        except ERRORS as error:
            self._failed()
            raise Unavailable(str(error)) from error
        self.breaker.succeeded()
        return [found if isinstance(found := lookup(v), Entry) else None for v in values]

    def write(self, label: str, field: str, items: Items) -> int:
        keys = self.keys(label, *(object_key(label, pk) for pk, _, _ in items))
        args: list[Any] = [field, ttl()]
        for _, lease, entry in items:
            args += [lease.token, entry.pack() if entry else b""]
        args.append(_new())
        return int(self._call(lambda: self.write_script(keys=keys, args=args)))

    def invalidate(self, objects: dict[str, set[Any]], models: Sequence[str] = ()) -> None:
        """Delete the objects' entries and leases; bump their lists' and ``models``' versions."""

        def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for label, pks in objects.items():
                if pks:
                    pipe.delete(*(object_key(label, pk) for pk in pks))
                pipe.incr(collection_key(label))
            for label in models:
                pipe.incr(generation_key(label))
                pipe.incr(collection_key(label))
            pipe.execute()

        try:
            self._call(run, past_breaker=True)  # even with the breaker open: it may be back
        except Unavailable:
            self.lost_invalidation()
            raise

    def lost_invalidation(self) -> None:
        """An invalidation was lost: orphan every entry as soon as Redis answers again.

        Not at this process's next request, nor once its breaker closes: other processes may
        read from Redis before then, and serve what the lost invalidation removed. A thread
        renews the epoch every CACHE_RENEW_INTERVAL seconds until Redis takes it."""
        with self.lock:
            self.renew_epoch = True
            if self.renewer is None:
                self.renewer = threading.Thread(
                    target=self._renew_until_done, name=RENEWER_THREAD, daemon=True
                )
                self.renewer.start()

    def retire(self) -> None:
        """This store is no longer the process's (settings changed): stop its renewals."""
        self.retired = True

    def _renew_until_done(self) -> None:
        while True:
            with self.lock:  # a loss meanwhile either sees this thread or starts another
                if not self.renew_epoch or self.retired:
                    self.renewer = None
                    return
            try:
                self._call(lambda: None, past_breaker=True)  # the renewal comes first
            except Exception:  # Unavailable; anything else must not end the renewals either
                time.sleep(scale_settings.CACHE_RENEW_INTERVAL)

    def version(self, label: str) -> str:
        """The epoch, generation and collection version of ``label``'s lists, in one string."""
        keys = self.keys(label, collection_key(label))
        values = self._call(lambda: self.version_script(keys=keys, args=[_new()]))
        return ":".join((value or b"0").decode() for value in values)

    def clear(self) -> None:
        """Delete every key under the prefix (tests, and after a manual database restore)."""
        prefix = scale_settings.CACHE_KEY_PREFIX

        def run() -> None:
            keys = list(self.client.scan_iter(f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 1000):
                self.client.delete(*keys[start : start + 1000])

        self._call(run)
