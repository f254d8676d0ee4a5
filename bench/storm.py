"""The flash-sale storm benchmark: the real stack, wrk as the crowd, ratios that matter.

Brings the shop up as `make run` does (the Procfile's web line, its logging included, a
Celery worker and beat; private PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set),
plus the yardsticks (bench/yardsticks.py) twice: on gunicorn's sync worker (fixed, so that
figures compare across changes of the shop's server) and on the Procfile's own server line; a
second shop server on the database-only path and a third whose purchase endpoint answers a
constant. Then wrk (never Python threads) fires each phase for --duration seconds with
--connections in flight, the purchases spread over --users shoppers' tokens (more than a
process keeps verified):

    z   a bare Django view, constant JSON, no middleware (gunicorn sync)     (yardstick)
    y   a minimal seckill view: one EVALSHA that takes a unit (gunicorn sync) (yardstick)
    z'  z on the shop's own server (the Procfile's line)                    (yardstick)
    y'  y on the shop's own server                                          (yardstick)
    l   GET /livez of the shop
    s   GET /sales/<id>/state/: what every open sale page polls each second
    g   GET /sales/<id>/: the sale page
    G   the sale page for a signed-in shopper (5,000 sessions, each with its CSRF cookie)
    h   GET /: the home page
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

from bench import instructions  # noqa: E402
from scripts.devstack import (  # noqa: E402
    RUN_DIR,
    free_port,
    procfile_commands,
    services,
    stop_process,
    wait_for_http,
)

WRK_SCRIPT = ROOT / "bench" / "wrk" / "storm.lua"
YARDSTICKS = ("z", "y", "z'", "y'")  # every phase's rate is shown against each of them
SHOP_APP = "config.wsgi:application"  # as the Procfile's web line names it
YARDSTICKS_APP = "bench.yardsticks:application"
PHASES = {
    "z": "z: bare Django view",
    "y": "y: minimal one-EVALSHA view",
    "z'": "z': z on the shop's server",
    "y'": "y': y on the shop's server",
    "l": "GET /livez",
    "s": "s: GET the sale's state",
    "g": "g: GET the sale page",
    "G": "G: the sale page, signed in",
    "h": "h: GET the home page",
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
    parser.add_argument("--users", type=int, default=30_000, help="shoppers with tokens")
    parser.add_argument("--phases", default=",".join(PHASES), help="which phases to run, e.g. z,y,b1 (default: all)")
    parser.add_argument("--writer-reservations", type=int, default=20_000, help="reservations for the drain test")
    parser.add_argument(
        "--instructions", action=argparse.BooleanOptionalAction, default=True,
        help="count CPU instructions per request of z, y, b, c, e, s and g under valgrind's callgrind",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=RUN_DIR / "bench" / "report.json", help="the JSON report")
    parser.add_argument(
        "--profile", action="append", default=[], metavar="PHASE",
        help="py-spy records one web worker during PHASE (repeatable; stacks in .run/bench/profile-PHASE.txt), "
        "or `writer`: pyinstrument profiles the drain (both from requirements-dev.txt)",
    )  # fmt: skip
    return parser.parse_args()


def ensure_program(name: str) -> str:
    """A program from Debian's package of the same name, installed when missing (as root)."""
    found = shutil.which(name)
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"Installing {name} (Debian's package) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", name], check=True, stdout=subprocess.DEVNULL)
        return shutil.which(name) or name
    raise SystemExit(f"{name} is needed: `apt-get install {name}` (Debian/Ubuntu)")


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

    def web(self, name: str, workers: int, *, app: str = SHOP_APP, **env: str) -> int:
        """A server of `app` started by the Procfile's web line, as `make run` starts the shop."""
        port = free_port()
        command = procfile_commands()["web"]
        argv = [*command[:-1], command[-1].replace(SHOP_APP, app, 1)]
        self.start(name, argv, HOST="127.0.0.1", PORT=str(port), WEB_CONCURRENCY=str(workers), **env)
        wait_for_http(f"http://127.0.0.1:{port}/{'z' if app != SHOP_APP else 'livez'}", self.processes)
        return port

    def yardsticks(self, name: str, workers: int) -> int:
        """The yardsticks on gunicorn's sync worker, whatever serves the shop."""
        port = free_port()
        self.start(name, [self.bin / "gunicorn", YARDSTICKS_APP, "--bind", f"127.0.0.1:{port}",
                          "--workers", str(workers)])  # fmt: skip
        wait_for_http(f"http://127.0.0.1:{port}/z", self.processes)
        return port

    def stop(self, name: str) -> None:
        stop_process(self.processes.pop(name))

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.stop(name)


def main() -> int:
    args = parse_args()
    args.wrk = ensure_program("wrk")
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
            # The Procfile's commands are found as `make run` finds them.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
        shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True)
        os.environ.update(env)
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):  # as `make run` does
            subprocess.run([sys.executable, "manage.py", *command, "-v0"], cwd=ROOT, env=env, check=True)

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
                "yardsticks": stack.yardsticks("yardsticks", args.web_workers),
                "yardsticks'": stack.web("yardsticks'", args.web_workers, app=YARDSTICKS_APP),
                "shop": stack.web("shop", args.web_workers),
                # The full stack with a constant answer: the purchase door would go round it.
                "constant": stack.web(
                    "constant", args.web_workers, DJANGO_SETTINGS_MODULE="bench.constant_answer", PURCHASE_DOOR="0"
                ),
                "database": stack.web("database", args.web_workers, PURCHASE_ADMISSION="database"),
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
            if args.instructions:
                print("Instructions per request, under callgrind ...", flush=True)
                results["instructions"] = count_instructions(data, env, logs)
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
        "z'": (ports["yardsticks'"], "GET", "/z", None),
        "y'": (ports["yardsticks'"], "POST", "/y", None),
        "l": (ports["shop"], "GET", "/livez", None),
        "s": (ports["shop"], "GET", f"/sales/{data.sales['accepted']}/state/", None),
        "g": (ports["shop"], "GET", f"/sales/{data.sales['accepted']}/", None),
        "G": (ports["shop"], "GET", f"/sales/{data.sales['accepted']}/", data.sessions_file),
        "h": (ports["shop"], "GET", "/", None),
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


def count_instructions(data, env: dict, logs: Path) -> dict:
    """bench/instructions.py's counts, for the yardsticks and the shop's phases."""
    ensure_program("valgrind")

    def purchase(sale: str) -> str:
        return f"/api/v1/flash-sales/{data.sales[sale]}/purchase/"

    accepted = data.sales["accepted"]
    plans = [
        {"app": "yardsticks", "phases": {"z": ["GET", "/z", None], "y": ["POST", "/y", None]}},
        {
            "app": "shop",
            "tokens": str(data.tokens_file),
            "phases": {
                "b": ["POST", purchase("accepted"), "crowd"],
                "c": ["POST", purchase("sold_out"), "crowd"],
                "e": ["POST", purchase("accepted"), "one"],
                "s": ["GET", f"/sales/{accepted}/state/", None],
                "g": ["GET", f"/sales/{accepted}/", None],
            },
        },
    ]
    # One shopper's tries are refused by the rate limiter after its burst however slowly
    # callgrind runs them (phase e); the crowd's shoppers each buy once. Under callgrind a
    # request takes some 50 times as long, so the writer's drain task, scheduled once per
    # ORDER_WRITER_DRAIN_FLAG_MS for every purchase in between, would be counted for one
    # purchase in a few instead of one in a thousand, and by the clock: it is not scheduled here.
    env = {**env, "RATE_LIMIT_USER_RATE": "0.001", "LOG_LEVEL": "ERROR", "ORDER_WRITER_DRAIN_FLAG_MS": "3600000"}
    counted = {}
    for plan in plans:
        counted |= instructions.count(plan, logs / "callgrind", env)
    return counted


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
    yardsticks = {name: phases[name]["throughput"] if name in phases else float("nan") for name in YARDSTICKS}
    print()
    print(f"{'phase':<34}{'req/s':>9}" + "".join(f"{'/ ' + name:>7}" for name in YARDSTICKS)
          + f"{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>8}  answers")  # fmt: skip
    for phase, row in phases.items():
        row |= {f"vs_{name}": round(row["throughput"] / value, 3) for name, value in yardsticks.items()}
        print(f"{PHASES[phase]:<34}{row['throughput']:>9}" + "".join(f"{row['vs_' + name]:>7}" for name in YARDSTICKS)
              + f"{row['p50_us'] / 1000:>9.1f}{row['p99_us'] / 1000:>9.1f}{row['server_cpu_ms_per_request']:>8.3f}"
              f"  {row['statuses']}")  # fmt: skip
    z, y = yardsticks["z"], yardsticks["y"]
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
    if "instructions" in results:
        counted = results["instructions"]
        print(f"\n{'instructions per request (callgrind)':<40}{'instructions':>14}{'/ z':>7}{'/ y':>7}  answers")
        for name, row in counted.items():
            row["vs_z"] = round(row["instructions"] / counted["z"]["instructions"], 3)
            row["vs_y"] = round(row["instructions"] / counted["y"]["instructions"], 3)
            print(f"  {name:<38}{row['instructions']:>14,}{row['vs_z']:>7}{row['vs_y']:>7}  {row['answers']}")
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
