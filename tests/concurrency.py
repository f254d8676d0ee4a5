"""Run work in real threads, each with its own database connection, released together."""

import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest import mock

from django.db import connections


def run_together(work: Callable[[int], Any], count: int, timeout: float = 60) -> list[Any]:
    """Call `work(i)` for i in range(count) in `count` threads that start at the same moment.

    Returns each call's result, or the exception it raised, in order. Every thread closes
    its own database connections when done.
    """
    barrier = threading.Barrier(count, timeout=timeout)

    def run(index: int):
        try:
            barrier.wait()
            return work(index)
        except Exception as error:
            return error
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(run, range(count), timeout=timeout))


def storm(attempts: list, send: Callable[[Any], Any], threads: int, timeout: float = 300) -> list[tuple[Any, Any]]:
    """Send every attempt through `send`, from `threads` threads released together, each taking
    the next attempt as soon as it has an answer. Returns (attempt, answer) pairs, in the order
    the answers came."""
    lock = threading.Lock()
    waiting = list(reversed(attempts))
    answers: list[tuple[Any, Any]] = []

    def work(_):
        while True:
            with lock:
                if not waiting:
                    return
                attempt = waiting.pop()
            answer = send(attempt)
            with lock:
                answers.append((attempt, answer))

    run_together(work, threads, timeout=timeout)
    return answers


def wait_until_blocked_or_done(thread: threading.Thread, timeout: float = 30) -> None:
    """Wait until `thread` has finished or another connection waits on a row lock.

    Lets a test hold a lock, start a competitor, and go on only once the competitor has
    reached the lock (or, on code without the lock, got past it), whichever happens.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            return
        with connections["default"].cursor() as cursor:
            # Inside a transaction PostgreSQL keeps showing its first snapshot of the activity.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
        time.sleep(0.02)
    raise AssertionError("the competing thread neither finished nor waited on a lock")


def start_thread(work: Callable[[], Any]) -> tuple[threading.Thread, list]:
    """Run `work` in a thread of its own (own database connection); its result or exception
    lands in the returned list."""
    outcome: list = []

    def run():
        try:
            outcome.append(work())
        except Exception as error:
            outcome.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@contextlib.contextmanager
def paused_after(target, name: str, when=lambda arguments, result: True):
    """Patch `target.name` so that its first call for which `when(arguments, result)` holds
    waits, once it has returned, until released. Yields (reached, release) events."""
    real = getattr(target, name)
    reached, release = threading.Event(), threading.Event()

    def pausing(**arguments):
        result = real(**arguments)
        if not reached.is_set() and when(arguments, result):
            reached.set()
            release.wait(30)
        return result

    with mock.patch.object(target, name, pausing):
        yield reached, release
