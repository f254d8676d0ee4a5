"""Real Celery worker processes for the tests, on the test database and the test Redis."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_workers() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_worker(tmp_path: Path, name: str, *, beat: bool = False, **env: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--pool", "solo",
            "--without-mingle", "--without-gossip", "--hostname", f"{name}@%h"]  # fmt: skip
    if beat:
        argv += ["--beat", "--schedule", str(tmp_path / f"{name}-beat")]
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the worker writes to it until stopped
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_for_workers(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(worker: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, sig)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


@contextlib.contextmanager
def running_worker(tmp_path: Path, name: str = "worker", **options) -> Iterator[subprocess.Popen]:
    worker = start_worker(tmp_path, name, **options)
    try:
        yield worker
    finally:
        stop_worker(worker)


def wait_for(condition: Callable[[], bool], timeout: float = 90, what: str = "condition") -> None:
    """Poll until `condition()` holds; a bound on waiting, not a claim about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
