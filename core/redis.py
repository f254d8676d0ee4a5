"""The shop's Redis client, Lua script loading and the purchase's transport to Redis, shared by every
Redis-backed module."""

import os
import socket
import threading
import time
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import hiredis
import redis
from django.conf import settings
from django_redis import get_redis_connection
from redis._parsers.base import BaseParser
from redis.cluster import ClusterNode, RedisCluster
from redis.connection import parse_url
from redis.exceptions import NoScriptError, RedisClusterException, SlotNotCoveredError

from core.conf import hot_settings
from core.metrics import REDIS_SCRIPT_SECONDS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def redis_client() -> redis.Redis | RedisCluster:
    """The one Redis of the shop, or with REDIS_CLUSTER the cluster that REDIS_URL names a node of."""
    if hot_settings.REDIS_CLUSTER:
        return _cluster_client(settings.REDIS_URL, settings.REDIS_SOCKET_TIMEOUT)
    return get_redis_connection("default")


# What redis-py raises, outside RedisError, when it cannot reach the cluster or map its slots.
CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")


def _as_connection_error(error: RedisClusterException) -> Exception:
    if isinstance(error, SlotNotCoveredError) or str(error).startswith(CLUSTER_UNREACHABLE):
        return redis.ConnectionError(str(error))
    return error


class ShopRedisCluster(RedisCluster):
    """A cluster client whose "cannot reach the cluster" errors are ConnectionErrors, as a plain
    Redis's are: every caller's `except redis.RedisError` (503 answers, the limiter's fallback,
    the writer's retries) then covers a cluster too. Other cluster errors (a command whose keys
    span slots) stay what they are: bugs, not outages."""

    def execute_command(self, *args, **kwargs):
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as error:
            raise _as_connection_error(error) from error


@cache
def _cluster_client(url: str, socket_timeout: float) -> RedisCluster:
    # One per process: it keeps the cluster's slot map and a connection pool per node, and
    # follows a failover by asking the cluster again when a node is gone or answers MOVED.
    # REDIS_URL may name several nodes, comma-separated: the process starts from any that is up
    # (a process that found none raises, caches nothing, and tries again on its next call).
    first, *others = url.split(",")
    try:
        return ShopRedisCluster(
            url=first,
            startup_nodes=[ClusterNode(urlparse(other).hostname, urlparse(other).port or 6379) for other in others],
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
        )
    except RedisClusterException as error:
        raise _as_connection_error(error) from error


INCLUDE = "--!include "


def lua_source(path: Path) -> str:
    """The script's text, with each `--!include <path from the project's root>` line replaced by
    that file: scripts share functions this way (Redis has no includes of its own)."""
    lines = path.read_text().splitlines()
    return "\n".join(
        lua_source(PROJECT_ROOT / line.removeprefix(INCLUDE).strip()) if line.startswith(INCLUDE) else line
        for line in lines
    )


@cache
def lua_script(path: Path) -> redis.commands.core.Script:
    """A script loaded once and called by SHA (redis-py reloads it on NOSCRIPT).

    Bound to no client for good: each call passes the current one, since settings may change it.
    """
    return redis.Redis().register_script(lua_source(path))


@cache
def _script_seconds(path: Path):
    return REDIS_SCRIPT_SECONDS.labels(path.stem)


def run_lua(path: Path, keys: list[str], args: list):
    started = time.perf_counter()  # Not the histogram's timer: a purchase's every µs counts.
    try:
        script = lua_script(path)
        transport = redis_transport()
        if transport is None:
            return script(keys=keys, args=args, client=redis_client())
        call = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return transport.execute(call)[0]
        except NoScriptError:  # Redis restarted, or flushed its scripts: load it again.
            transport.execute(("SCRIPT", "LOAD", script.script))
            return transport.execute(call)[0]
    finally:
        _script_seconds(path).observe(time.perf_counter() - started)


def redis_round_trip(*commands: tuple) -> list:
    """Each command's reply, in one round trip: through the purchase's transport to a standalone
    Redis (`Transport`, below), else a pipeline of redis-py's client."""
    transport = redis_transport()
    if transport is not None:
        return transport.execute(*commands)
    pipe = redis_client().pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    return pipe.execute()


# --- The purchase's transport ------------------------------------------------------------------
# A purchase sends one EVALSHA (or one pipeline of reads, for a repeat). redis-py wraps each in a
# connection pool, a retry policy, command parsing and response callbacks, which cost more than
# the call packed by hiredis and written to a socket (README, instructions per request). This is
# that socket: one per process and thread, reconnected after a fork, a timeout or any error,
# with the client's own timeout and database. It raises redis-py's exception types (a timeout,
# a connection refused or lost, an error reply), so the circuit breaker, the 503 and the
# database fallback behave as they do with redis-py. Standalone Redis only: with a Cluster or
# Sentinel the shop's redis-py client, which follows them, carries every call.

_local = threading.local()


class StaleConnection(Exception):
    """The server had closed the connection before the call reached it."""


class Transport:
    """A socket to one Redis server. Not shared: each thread of each process has its own."""

    def __init__(self, location: str, timeout: float):
        self.location, self.timeout, self.pid = location, timeout, os.getpid()
        self._options = parse_url(location)
        self._socket: socket.socket | None = None
        self._reader = hiredis.Reader()
        self._used = self._heard = False

    def execute(self, *commands: tuple) -> list:
        """Each command's reply, in one round trip. Raises redis.ConnectionError or
        redis.TimeoutError when Redis cannot be reached (the socket is dropped, and the next
        call connects again), and the first error reply as redis-py raises it."""
        request = b"".join(hiredis.pack_command(command) for command in commands)
        try:
            try:
                replies = self._round_trip(self._socket or self._connect(), request, len(commands))
            except StaleConnection:
                # Redis closed an idle connection before this call (its `timeout`): it read
                # nothing of it, so the call is sent again, once, on a new one.
                replies = self._round_trip(self._connect(), request, len(commands))
        except TimeoutError as error:
            self.close()
            raise redis.TimeoutError(f"Timeout reading from {self.location}") from error
        except (OSError, hiredis.ProtocolError) as error:
            self.close()
            raise redis.ConnectionError(f"Error talking to {self.location}: {error}") from error
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise BaseParser.parse_error(str(reply))
        return replies

    def _round_trip(self, connection: socket.socket, request: bytes, count: int) -> list:
        reused = connection is self._socket and self._used
        self._used, self._heard = True, False
        try:
            connection.sendall(request)
            first = self._reply(connection)
        except (ConnectionResetError, BrokenPipeError) as error:
            if reused and not self._heard:
                self.close()
                raise StaleConnection() from error
            raise
        return [first, *(self._reply(connection) for _ in range(count - 1))]

    def _reply(self, connection: socket.socket):
        reply = self._reader.gets()
        while reply is False:
            data = connection.recv(65536)
            if not data:
                raise ConnectionResetError("Redis closed the connection")
            self._heard = True
            self._reader.feed(data)
            reply = self._reader.gets()
        return reply

    def _connect(self) -> socket.socket:
        connection = socket.create_connection(
            (self._options.get("host", "localhost"), self._options.get("port", 6379)), timeout=self.timeout
        )
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket, self._reader, self._used = connection, hiredis.Reader(), False
        setup = []
        if self._options.get("password"):
            setup.append(("AUTH", *filter(None, [self._options.get("username"), self._options["password"]])))
        if self._options.get("db"):
            setup.append(("SELECT", self._options["db"]))
        if setup:
            self.execute(*setup)
        return connection

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
        self._socket = None


def redis_transport() -> Transport | None:
    """This thread's transport to the shop's standalone Redis (as the cache's settings name it,
    so that a test pointing them elsewhere is followed), or None where redis-py must carry the
    call: a Cluster, Sentinel, TLS or a socket path."""
    location = hot_settings.CACHES["default"]["LOCATION"]
    if hot_settings.REDIS_CLUSTER or hot_settings.REDIS_SENTINELS or not str(location).startswith("redis://"):
        return None
    transport = getattr(_local, "transport", None)
    if transport is not None and transport.location == location and transport.pid == os.getpid():
        return transport
    timeout = settings.CACHES["default"].get("OPTIONS", {}).get("SOCKET_TIMEOUT", settings.REDIS_SOCKET_TIMEOUT)
    if transport is not None and transport.pid == os.getpid():
        transport.close()  # The settings changed: the old server is not ours any more.
    _local.transport = Transport(location, timeout)
    return _local.transport
