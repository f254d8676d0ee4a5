"""The purchase's transport to Redis (core/redis.py), against a real Redis: it loads a
script Redis forgot, raises redis-py's exceptions, connects again after Redis closed its
connection or the process forked, and gives up at its timeout."""

import multiprocessing
import socket
import threading
import uuid

import pytest
import redis

from core.redis import Transport, lua_script, redis_round_trip, redis_transport, run_lua
from limits.buckets import RATE_LIMIT_LUA


def test_a_standalone_redis_is_reached_through_the_transport(redis_client):
    key = f"transport:{uuid.uuid4().hex}"

    assert redis_transport() is not None
    assert redis_round_trip(("SET", key, "1"), ("INCR", key), ("GET", key)) == [b"OK", 2, b"2"]


def test_a_script_redis_forgot_is_loaded_again(redis_client):
    redis_client.script_flush()
    keys, args = [f"rl:transport:{uuid.uuid4().hex}"], [1_000_000, 5]

    allowed, *_ = run_lua(RATE_LIMIT_LUA, keys, args)

    assert allowed == 1
    assert redis_client.script_exists(lua_script(RATE_LIMIT_LUA).sha) == [True]


def test_an_error_reply_is_redis_pys_exception(redis_client):
    key = f"transport:{uuid.uuid4().hex}"
    redis_client.set(key, "not a number")

    with pytest.raises(redis.ResponseError, match="not an integer"):
        redis_round_trip(("INCR", key))
    assert redis_round_trip(("GET", key)) == [b"not a number"]  # the connection is still good


def test_a_connection_redis_closed_is_opened_again(redis_client):
    transport = redis_transport()
    transport.execute(("PING",))
    (own_id,) = transport.execute(("CLIENT", "ID"))

    redis_client.client_kill_filter(_id=own_id)

    assert transport.execute(("PING",)) == [b"PONG"]
    assert transport.execute(("CLIENT", "ID")) != [own_id]


def test_a_server_that_cannot_be_reached_is_a_connection_error():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    transport = Transport(f"redis://127.0.0.1:{port}/0", timeout=0.5)

    with pytest.raises(redis.ConnectionError):
        transport.execute(("PING",))


def test_a_server_that_never_answers_is_a_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        transport = Transport(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", timeout=0.2)

        with pytest.raises(redis.TimeoutError):
            transport.execute(("PING",))


def _ping_from_a_child(results) -> None:
    transport = redis_transport()
    results.put((transport.pid, transport.execute(("CLIENT", "ID"))[0]))


def test_a_forked_process_gets_its_own_connection(redis_client):
    parent = redis_transport()
    (parent_id,) = parent.execute(("CLIENT", "ID"))
    context = multiprocessing.get_context("fork")
    results = context.Queue()

    child = context.Process(target=_ping_from_a_child, args=(results,))
    child.start()
    child_pid, child_id = results.get(timeout=10)
    child.join(10)

    assert child_pid == child.pid and child_id != parent_id
    assert parent.execute(("CLIENT", "ID")) == [parent_id]  # the parent's connection is untouched


def test_each_thread_has_its_own_transport(redis_client):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(redis_transport()))
    thread.start()
    thread.join()

    assert seen[0] is not redis_transport()
