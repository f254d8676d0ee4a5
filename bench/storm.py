"""The flash-sale storm benchmark: the real stack, a crowd, and the numbers that matter.

Starts PostgreSQL and Redis (private ones unless DATABASE_URL / REDIS_URL are set), gunicorn
with --web-workers processes for the Redis purchase path and another for the database-only
path, and a Celery worker; then, from this separate process, fires the crowd in three phases:

1. `GET /livez`: a trivial JSON answer from the same server, the framework's ceiling;
2. `POST /api/v1/flash-sales/{id}/purchase/` on the Redis path;
3. the same on the database-only path (PURCHASE_ADMISSION=database), another sale.

It prints throughput and latency percentiles of each, their ratios, the writer's lag (from
the last accepted purchase until every order is in PostgreSQL), the servers' memory, and the
invariants. Ratios, not absolute times, are what to compare from run to run.

    .venv/bin/python bench/storm.py                    # defaults: 3,000 attempts, 1,000 users
    .venv/bin/python bench/storm.py --attempts 10000 --users 4000 --concurrency 96
"""

import argparse
import contextlib
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.devstack import free_port, services, stop_process, wait_for_http  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--attempts", type=int, default=3000, help="purchase attempts per phase")
    parser.add_argument("--users", type=int, default=1000, help="distinct shoppers in the crowd")
    parser.add_argument("--quantity", type=int, default=500, help="units in each sale")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at once")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn processes per server")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


# --- Load ---------------------------------------------------------------------------------------


class Phase:
    """Fire `requests` (method, path, headers, body) at a server from `concurrency` threads."""

    def __init__(self, name: str, port: int, requests: list[tuple], concurrency: int):
        self.name, self.port, self.requests, self.concurrency = name, port, requests, concurrency
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.bodies: list[tuple[int, bytes]] = []
        self._next = 0
        self._lock = threading.Lock()

    def _take(self) -> tuple | None:
        with self._lock:
            if self._next >= len(self.requests):
                return None
            request = self.requests[self._next]
            self._next += 1
            return request

    def _worker(self, start: threading.Barrier) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start.wait()
        while (request := self._take()) is not None:
            method, path, headers, body = request
            began = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, payload = 0, b""
            elapsed = time.perf_counter() - began
            with self._lock:
                self.latencies.append(elapsed)
                self.statuses[status] = self.statuses.get(status, 0) + 1
                self.bodies.append((status, payload))
        conn.close()

    def run(self) -> dict:
        start = threading.Barrier(self.concurrency + 1)
        threads = [threading.Thread(target=self._worker, args=(start,)) for _ in range(self.concurrency)]
        for thread in threads:
            thread.start()
        start.wait()
        began = time.perf_counter()
        while any(thread.is_alive() for thread in threads):
            if sys.stdout.isatty():
                print(f"\r  {self.name:<28} {len(self.latencies):>6}/{len(self.requests)}", end="", flush=True)
            time.sleep(0.2)
        wall = time.perf_counter() - began
        print(f"\r  {self.name:<28} {len(self.requests):>6}/{len(self.requests)} in {wall:.2f}s", flush=True)
        ordered = sorted(self.latencies)

        def pct(p: float) -> float:
            return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

        return {
            "requests": len(ordered),
            "seconds": round(wall, 3),
            "throughput": round(len(ordered) / wall, 1),
            "p50_ms": round(pct(0.50), 2),
            "p90_ms": round(pct(0.90), 2),
            "p99_ms": round(pct(0.99), 2),
            "max_ms": round(ordered[-1] * 1000, 2),
            "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


# --- The stack ----------------------------------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of a process and its children, in MiB."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def start(argv: list, env: dict, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> int:
    args = parse_args()
    logs = ROOT / ".run" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    with services("bench") as service_env:
        env = {
            **os.environ,
            **service_env,
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50),
            "DEBUG": "0",
            "HTTPS": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "RATE_LIMIT_IP_RATE": "0",  # the whole crowd comes from this one address
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from bench.setup import crowd_and_sales

        print(f"Preparing {args.users} shoppers and two sales of {args.quantity} units ...", flush=True)
        crowd = crowd_and_sales(users=args.users, quantity=args.quantity)

        bin_dir = Path(sys.executable).parent
        ports = {"redis": free_port(), "database": free_port()}
        processes: dict[str, subprocess.Popen] = {}
        try:
            for path, port in ports.items():
                processes[f"web-{path}"] = start(
                    [bin_dir / "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
                     "--workers", str(args.web_workers), "--keep-alive", "30"],
                    {**env, "PURCHASE_ADMISSION": path},
                    logs / f"web-{path}.log",
                )  # fmt: skip
            processes["worker"] = start(
                [bin_dir / "celery", "-A", "config", "worker", "--concurrency", "1", "--loglevel", "WARNING"],
                env,
                logs / "worker.log",
            )
            for port in ports.values():
                wait_for_http(f"http://127.0.0.1:{port}/livez", {})
            results = run_phases(args, crowd, ports)
            results["memory_mib"] = {name: rss_mib(proc.pid) for name, proc in processes.items()}
            results["invariants"] = crowd.invariants()
        finally:
            for proc in processes.values():
                stop_process(proc)
    report(args, results)
    return 0 if results["invariants"]["ok"] else 1


def run_phases(args, crowd, ports: dict[str, int]) -> dict:
    def purchases(sale_id: int) -> list[tuple]:
        path = f"/api/v1/flash-sales/{sale_id}/purchase/"
        return [
            ("POST", path, {**crowd.headers(i % args.users), "Idempotency-Key": f"bench-{i}",
                            "Content-Type": "application/json"}, b'{"quantity": 1}')
            for i in range(args.attempts)
        ]  # fmt: skip

    print(f"Firing {args.attempts} requests per phase, {args.concurrency} at a time:", flush=True)
    ceiling = Phase("GET /livez", ports["redis"], [("GET", "/livez", {}, None)] * args.attempts, args.concurrency)
    results = {"ceiling": ceiling.run()}
    redis_phase = Phase("purchase (Redis path)", ports["redis"], purchases(crowd.redis_sale), args.concurrency)
    results["purchase_redis"] = redis_phase.run()
    crowd.storm_ended = time.monotonic()
    crowd.accepted = [json.loads(body)["reservation_id"] for status, body in redis_phase.bodies if status == 202]
    results["writer_lag_seconds"] = crowd.wait_for_writer(timeout=300)
    database_phase = Phase("purchase (database path)", ports["database"], purchases(crowd.database_sale),
                           args.concurrency)  # fmt: skip
    results["purchase_database"] = database_phase.run()
    refusals = {}
    for status, body in database_phase.bodies + redis_phase.bodies:
        if status == 409:
            code = json.loads(body)["code"]
            refusals[code] = refusals.get(code, 0) + 1
    results["refusals"] = refusals
    return results


def report(args, results: dict) -> None:
    ceiling, fast, slow = results["ceiling"], results["purchase_redis"], results["purchase_database"]
    print()
    print(f"{'':<26}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}  statuses")
    for name, row in (("GET /livez (ceiling)", ceiling), ("purchase, Redis path", fast),
                      ("purchase, database path", slow)):  # fmt: skip
        print(f"{name:<26}{row['throughput']:>9}{row['p50_ms']:>9}{row['p90_ms']:>9}{row['p99_ms']:>9}"
              f"{row['max_ms']:>9}  {row['statuses']}")  # fmt: skip
    results["ratios"] = {
        "redis_path_vs_ceiling": round(fast["throughput"] / ceiling["throughput"], 3),
        "database_path_vs_ceiling": round(slow["throughput"] / ceiling["throughput"], 3),
        "redis_path_vs_database_path": round(fast["throughput"] / slow["throughput"], 2),
    }
    print()
    for name, value in results["ratios"].items():
        print(f"  {name:<32} {value}")
    print(f"  {'refusals':<32} {results['refusals']}")
    print(f"  {'writer lag (s)':<32} {results['writer_lag_seconds']}")
    print(f"  {'memory (MiB RSS)':<32} {results['memory_mib']}")
    print(f"  {'invariants':<32} {'ok' if results['invariants']['ok'] else results['invariants']['violations']}")
    if args.json:
        args.json.write_text(json.dumps({"arguments": vars(args) | {"json": str(args.json)}, **results}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
