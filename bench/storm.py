"""The flash-sale storm benchmark: the real stack, wrk as the crowd, ratios that matter.

Brings the shop up as `make run` does (gunicorn with the shop's config, a Celery worker and
beat; private PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set), plus the
yardsticks (bench/yardsticks.py) on the same server software, a second shop server on the
database-only path and a third whose purchase endpoint answers a constant. Then wrk (never
Python threads) fires each phase for --duration seconds with --connections in flight:

    z   a bare Django view, constant JSON, no middleware           (yardstick)
    y   a minimal seckill view: one EVALSHA that takes a unit       (yardstick)
    l   GET /livez of the shop
    a   the purchase endpoint answering a constant after auth, limits and validation
    b   purchase accepted (Redis path), three storms in a row (memory is read after each)
    c   purchase refused: the sale is sold out (the gate answers)
    e   purchase refused by the rate limiter (one shopper's token)
    p   purchase refused: the sale requires a purchase pass and this one is forged (1,000
        shoppers, whose tokens each process keeps verified, as it keeps e's one token)
    q   purchase refused: not the shopper's turn in the sale's waiting room (the same 1,000,
        each with their own ticket)
    d   purchase on the database-only path

and measures the order writer: its lag after the first storm of b, its drain rate with
--writer-reservations waiting for one consumer, and two writers draining two sales at once.
Prints the table with ratios to z and y, writes a JSON report (--json), exits non-zero when an
invariant fails.

    make bench
    .venv/bin/python bench/storm.py --duration 20 --connections 96 --json bench.json
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.devstack import RUN_DIR, free_port, services, stop_process, wait_for_http  # noqa: E402

WRK_SCRIPT = ROOT / "bench" / "wrk" / "storm.lua"
PHASES = {
    "z": "z: bare Django view",
    "y": "y: minimal one-EVALSHA view",
    "l": "GET /livez",
    "a": "a: purchase, constant answer",
    "b1": "b: purchase accepted",
    "b2": "b: purchase accepted (2nd)",
    "b3": "b: purchase accepted (3rd)",
    "c": "c: refused, sold out",
    "e": "e: refused, rate limited",
    "p": "p: refused, invalid pass",
    "q": "q: refused, not your turn",
    "d": "d: purchase, database path",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per phase")
    parser.add_argument("--connections", type=int, default=64, help="requests in flight")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--web-workers", type=int, default=3, help="processes of each server")
    parser.add_argument(
        "--server", choices=["gunicorn", "granian"], default="gunicorn",
        help="what serves the shop and the yardsticks (granian: `pip install granian` first)",
    )  # fmt: skip
    parser.add_argument("--users", type=int, default=5000, help="shoppers with tokens")
    parser.add_argument("--phases", default=",".join(PHASES), help="which phases to run, e.g. z,y,b1 (default: all)")
    parser.add_argument("--writer-reservations", type=int, default=20_000, help="reservations for the drain test")
    parser.add_argument("--json", type=Path, default=RUN_DIR / "bench" / "report.json", help="the JSON report")
    parser.add_argument(
        "--profile", action="append", default=[], metavar="PHASE",
        help="py-spy records one web worker during PHASE (repeatable; stacks in .run/bench/profile-PHASE.txt), "
        "or `writer`: pyinstrument profiles the drain (both from requirements-dev.txt)",
    )  # fmt: skip
    return parser.parse_args()


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("Installing wrk (Debian's package) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        return shutil.which("wrk") or "wrk"
    raise SystemExit("wrk is needed: `apt-get install wrk` (Debian/Ubuntu)")


def wrk(args, port: int, method: str, path: str, tokens: Path | None, run: str, header: str = "") -> dict:
    argv = [args.wrk, "-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s",
            "--timeout", "10s", "-s", str(WRK_SCRIPT), f"http://127.0.0.1:{port}",
            "--", method, path, str(tokens or "-"), run, header]  # fmt: skip
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("BENCH "))
    result = json.loads(line.removeprefix("BENCH "))
    result["throughput"] = round(result["requests"] / result["seconds"], 1)
    return result


def rss_mib(pid: int) -> dict[str, float]:
    """Resident memory of a server's master and of each of its children, in MiB."""

    def one(each: int) -> float:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        return 0.0

    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return {"master": one(pid), **{f"worker-{i}": one(child) for i, child in enumerate(sorted(children))}}


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) used so far by a server's master and its children."""

    def one(each: int) -> float:
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return one(pid) + sum(one(child) for child in children)


class Stack:
    """The servers of one run; each logs to .run/bench/<name>.log."""

    def __init__(self, env: dict, logs: Path):
        self.env, self.logs = env, logs
        self.processes: dict[str, subprocess.Popen] = {}
        self.bin = Path(sys.executable).parent

    def start(self, name: str, argv: list, **env: str) -> None:
        with open(self.logs / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def web(self, name: str, app: str, workers: int, server: str = "gunicorn", **env: str) -> int:
        port = free_port()
        if server == "granian":
            argv = [self.bin / "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                    "--workers", str(workers), "--blocking-threads", "1", app]  # fmt: skip
        else:
            argv = [self.bin / "gunicorn", app, "--config", "python:config.gunicorn", "--bind", f"127.0.0.1:{port}",
                    "--workers", str(workers)]  # fmt: skip
        self.start(name, argv, **env)
        wait_for_http(f"http://127.0.0.1:{port}/{'z' if app.startswith('bench') else 'livez'}", self.processes)
        return port

    def stop(self, name: str) -> None:
        stop_process(self.processes.pop(name))

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def main() -> int:
    args = parse_args()
    args.wrk = ensure_wrk()
    logs = RUN_DIR / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    with services("bench") as service_env:
        env = {
            **os.environ,
            **service_env,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or "bench-" + "x" * 50,
            "DEBUG": "0",
            "HTTPS": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RATE_LIMIT_IP_RATE": "0",  # the whole crowd comes from this one address
            "LOG_LEVEL": "WARNING",
            "PROMETHEUS_MULTIPROC_DIR": str(logs / "prometheus"),
        }
        env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
        shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
        os.environ.update(env)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from bench.setup import stage
        from core.redis import redis_client

        print(f"Preparing {args.users} shoppers and the sales ...", flush=True)
        data = stage(users=args.users, folder=logs, writer_reservations=args.writer_reservations)
        redis_client().set("bench:y:units", 10**9)

        stack = Stack(env, logs)
        try:
            stack.start("worker", [stack.bin / "celery", "-A", "config", "worker", "--loglevel", "WARNING",
                                   "--concurrency", "2", "--without-gossip", "--without-mingle",
                                   "--without-heartbeat"])  # fmt: skip
            stack.start("beat", [stack.bin / "celery", "-A", "config", "beat", "--loglevel", "WARNING",
                                 "--schedule", str(logs / "celerybeat-schedule")])  # fmt: skip
            ports = {
                "yardsticks": stack.web("yardsticks", "bench.yardsticks:application", args.web_workers, args.server),
                "shop": stack.web("shop", "config.wsgi:application", args.web_workers, args.server),
                # The full stack with a constant answer: the purchase lane would go round it.
                "constant": stack.web(
                    "constant",
                    "config.wsgi",
                    args.web_workers,
                    DJANGO_SETTINGS_MODULE="bench.constant_answer",
                    PURCHASE_LANE="0",
                ),
                "database": stack.web("database", "config.wsgi", args.web_workers, PURCHASE_ADMISSION="database"),
            }
            results = run_phases(args, data, ports, stack)
            stack.stop("beat")
            stack.stop("worker")
            print(f"Writer: {args.writer_reservations} reservations waiting, one consumer ...", flush=True)
            data.fill_for_the_writer(args.writer_reservations)
            seconds = data.drain_writer_sale(profile="writer" in args.profile)
            results["writer"]["drain_orders_per_second"] = round(args.writer_reservations / seconds, 1)
            # Writers of different sales at once (each sale's batches lock its own row).
            parallel = [data.sales[name] for name in ("writer-2", "writer-3")]
            print(f"Writers: {args.writer_reservations} reservations in each of 2 sales, a writer each ...", flush=True)
            for sale_id in parallel:
                data.fill_for_the_writer(args.writer_reservations, sale_id=sale_id)
            seconds = data.drain_in_parallel([(sale_id, 0, 1) for sale_id in parallel])
            results["writer"]["two_writers_orders_per_second"] = round(2 * args.writer_reservations / seconds, 1)
            # The writers of one sale's two stock shards at once (each shard locks its own row).
            sharded = data.sales["writer-sharded"]
            print(f"Writers: {args.writer_reservations} reservations in each shard of a sale of 2, a writer each ...")
            data.fill_for_the_writer(2 * args.writer_reservations, sale_id=sharded)
            seconds = data.drain_in_parallel([(sharded, 0, 2), (sharded, 1, 2)])
            results["writer"]["two_shard_writers_orders_per_second"] = round(2 * args.writer_reservations / seconds, 1)
            results["invariants"] = data.invariants()
        finally:
            stack.stop_all()
    report(args, results)
    return 0 if results["invariants"]["ok"] else 1


def run_phases(args, data, ports: dict[str, int], stack: Stack) -> dict:
    def purchase(phase: str) -> str:
        return f"/api/v1/flash-sales/{data.sales[phase]}/purchase/"

    plan = {
        "z": (ports["yardsticks"], "GET", "/z", None),
        "y": (ports["yardsticks"], "POST", "/y", None),
        "l": (ports["shop"], "GET", "/livez", None),
        "a": (ports["constant"], "POST", purchase("accepted"), data.tokens_file),
        "b1": (ports["shop"], "POST", purchase("accepted"), data.tokens_file),
        "b2": (ports["shop"], "POST", purchase("accepted"), data.tokens_file),
        "b3": (ports["shop"], "POST", purchase("accepted"), data.tokens_file),
        "c": (ports["shop"], "POST", purchase("sold_out"), data.tokens_file),
        "e": (ports["shop"], "POST", purchase("accepted"), data.one_token_file),
        "p": (ports["shop"], "POST", purchase("pass"), data.few_tokens_file),
        "q": (ports["shop"], "POST", purchase("queued"), data.queued_tokens_file),
        "d": (ports["database"], "POST", purchase("database"), data.tokens_file),
    }
    results: dict = {"phases": {}, "memory_mib": {}, "writer": {}}
    print(f"Each phase: wrk -t{args.threads} -c{args.connections} -d{args.duration}s", flush=True)
    run_id = str(int(time.time()))
    for phase, (port, method, path, tokens) in plan.items():
        if phase not in args.phases.split(","):
            continue
        print(f"  {PHASES[phase]:<32}", end="", flush=True)
        server = next(name for name, known in ports.items() if known == port)
        profiler = profile(args, phase, stack.processes[server].pid) if phase in args.profile else None
        cpu_before = cpu_seconds(stack.processes[server].pid)
        # Signed with another key: the shape of a pass, checked all the way to its signature.
        header = f"Purchase-Pass: {data.sales['pass']}-1-{int(time.time()) + 3600}-0a1b2c3d4e5f-{'0' * 32}"
        result = wrk(args, port, method, path, tokens, f"{run_id}-{phase}", header if phase == "p" else "")
        # The server's own CPU per request: how many a core of it serves (docs/capacity.md).
        used = cpu_seconds(stack.processes[server].pid) - cpu_before
        result["server_cpu_ms_per_request"] = round(1000 * used / max(result["requests"], 1), 3)
        if profiler:
            profiler.wait()
        results["phases"][phase] = result
        print(f"{result['throughput']:>9} req/s  {result['server_cpu_ms_per_request']:.3f} ms CPU/req  "
              f"{result['statuses']}", flush=True)  # fmt: skip
        if phase.startswith("b"):
            results["memory_mib"][phase] = rss_mib(stack.processes["shop"].pid)
        if phase == "b1":
            ended = time.monotonic()
            written = result["statuses"].get("202", 0)
            results["writer"]["lag_after_storm_seconds"] = data.wait_for_orders("accepted", written, since=ended)
    return results


def profile(args, phase: str, master: int) -> subprocess.Popen:
    """py-spy sampling the first worker of a server for the phase; its top lines are printed after."""
    worker = sorted(int(p) for p in Path(f"/proc/{master}/task/{master}/children").read_text().split())[0]
    output = RUN_DIR / "bench" / f"profile-{phase}.txt"
    return subprocess.Popen(
        [Path(sys.executable).parent / "py-spy", "record", "--pid", str(worker), "--duration", str(args.duration),
         "--format", "raw", "--output", str(output), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def profile_top(path: Path, lines: int = 25) -> list[str]:
    """The functions a recorded profile spent its samples in: own time, and time including calls."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        samples = int(count)
        total += samples
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])[:lines]
    return [f"{100 * n / total:5.1f}% incl {100 * own.get(frame, 0) / total:5.1f}% own  {frame}" for frame, n in ranked]


def report(args, results: dict) -> None:
    phases = results["phases"]
    z, y = (phases[name]["throughput"] if name in phases else float("nan") for name in ("z", "y"))
    print()
    print(f"{'phase':<34}{'req/s':>9}{'/ z':>7}{'/ y':>7}{'p50 ms':>9}{'p99 ms':>9}  answers")
    for phase, row in phases.items():
        row["vs_z"], row["vs_y"] = round(row["throughput"] / z, 3), round(row["throughput"] / y, 3)
        print(f"{PHASES[phase]:<34}{row['throughput']:>9}{row['vs_z']:>7}{row['vs_y']:>7}"
              f"{row['p50_us'] / 1000:>9.1f}{row['p99_us'] / 1000:>9.1f}  {row['statuses']}")  # fmt: skip
    if {"b1", "d"} <= phases.keys():
        b, d = phases["b1"]["throughput"], phases["d"]["throughput"]
        results["ratios"] = {"b_vs_z": round(b / z, 3), "b_vs_y": round(b / y, 3), "b_vs_d": round(b / d, 2)}
    if {"e", "p"} <= phases.keys():
        # An invalid pass must be refused as cheaply as a rate-limited purchase (issue 13).
        results.setdefault("ratios", {})["p_vs_e"] = round(phases["p"]["throughput"] / phases["e"]["throughput"], 3)
    if {"e", "q"} <= phases.keys():
        # So must a purchase before its turn in a waiting room.
        results.setdefault("ratios", {})["q_vs_e"] = round(phases["q"]["throughput"] / phases["e"]["throughput"], 3)
    if {"b1", "b3"} <= results["memory_mib"].keys():
        first, last = results["memory_mib"]["b1"], results["memory_mib"]["b3"]
        workers = [name for name in first if name.startswith("worker")]
        results["memory_growth"] = {name: round(last[name] / first[name] - 1, 3) for name in workers if name in last}
    print()
    print(f"  ratios                  {results.get('ratios')}")
    print(f"  writer                  {results['writer']}")
    print(f"  web RSS after storms    {results['memory_mib']}")
    print(f"  RSS growth b1 -> b3     {results.get('memory_growth')}")
    print(f"  invariants              {'ok' if results['invariants']['ok'] else results['invariants']['violations']}")
    for phase in [phase for phase in args.profile if phase in PHASES]:
        print(f"\n  profile of one web worker during {PHASES[phase]} (py-spy, by time including calls):")
        for line in profile_top(RUN_DIR / "bench" / f"profile-{phase}.txt"):
            print(f"    {line}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    arguments = {key: str(value) for key, value in vars(args).items()}
    args.json.write_text(json.dumps({"arguments": arguments, **results}, indent=2))
    print(f"  report                  {args.json}")


if __name__ == "__main__":
    sys.exit(main())
