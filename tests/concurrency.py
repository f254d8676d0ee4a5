"""Run work in real threads, each with its own database connection, released together."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
