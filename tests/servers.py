"""Real web server processes for the tests, on the test database and the test Redis."""

import contextlib
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings

from tests.workers import database_url_for_workers, stop_worker, wait_for

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@contextlib.contextmanager
def running_web_server(tmp_path: Path, name: str = "web", **env: str) -> Iterator[str]:
    """A gunicorn process serving the shop; yields its base URL."""
    port = free_port()
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the server writes to it until stopped
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
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
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base) or server.poll() is not None, timeout=60, what=f"{name} to listen")
        assert server.poll() is None, (tmp_path / f"{name}.log").read_text()
        yield base
    finally:
        stop_worker(server)


def _answers(base: str) -> bool:
    try:
        return http("GET", f"{base}/healthz")[0] in {200, 503}
    except OSError:
        return False
