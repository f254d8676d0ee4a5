"""Real web server and Celery worker processes for the tests, on the test database and Redis."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from django.conf import settings
from django.db import connection

from scripts.devstack import free_port, procfile_commands

ROOT = Path(__file__).resolve().parent.parent


def database_url_for_processes() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def start_shop_process(argv: list, tmp_path: Path, name: str, **env: str) -> subprocess.Popen:
    """A process of the shop, as production runs it (tasks go to the broker), logging to tmp_path."""
    log = open(tmp_path / f"{name}.log", "ab")  # noqa: SIM115 - the process writes to it until stopped
    return subprocess.Popen(
        argv,
        cwd=ROOT,
        env={
            **os.environ,
            # The Procfile's programs are found as `make run` finds them.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": database_url_for_processes(),
            "REDIS_URL": settings.REDIS_URL,
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            **env,
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_shop_process(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_worker(tmp_path: Path, name: str, *, beat: bool = False, **env: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--pool", "solo",
            "--without-mingle", "--without-gossip", "--hostname", f"{name}@%h"]  # fmt: skip
    if beat:
        argv += ["--beat", "--schedule", str(tmp_path / f"{name}-beat")]
    return start_shop_process(argv, tmp_path, name, **env)


@contextlib.contextmanager
def running_worker(tmp_path: Path, name: str = "worker", **options) -> Iterator[subprocess.Popen]:
    worker = start_worker(tmp_path, name, **options)
    try:
        yield worker
    finally:
        stop_shop_process(worker)


@contextlib.contextmanager
def running_web_server(tmp_path: Path, name: str = "web", **env: str) -> Iterator[str]:
    """The shop's web server as the Procfile starts it, with one worker; yields its base URL."""
    port = free_port()
    server = start_shop_process(
        procfile_commands()["web"], tmp_path, name, HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY="1", **env
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(base) or server.poll() is not None, timeout=60, what=f"{name} to listen")
        assert server.poll() is None, (tmp_path / f"{name}.log").read_text()
        yield base
    finally:
        stop_shop_process(server)


def http(method: str, url: str, headers: dict | None = None, body: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _answers(base: str) -> bool:
    try:
        return http("GET", f"{base}/livez")[0] == 200
    except OSError:
        return False


def wait_for(condition: Callable[[], bool], timeout: float = 90, what: str = "condition") -> None:
    """Poll until `condition()` holds; a bound on waiting, not a claim about speed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
