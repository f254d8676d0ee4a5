"""CPU instructions per request, counted by valgrind's callgrind: figures that the noise of a
shared machine does not move, so that an A/B of the code compares like with like.

Each application (the yardsticks, the shop) runs in one process under callgrind, called as a
WSGI server calls it, without a server or a network. For each phase it serves some requests to
warm up, then COUNTED requests, and callgrind dumps its counters before and after those
(`--dump-before=getppid`: the process calls getppid(2) at each mark, and nothing else of it
does). A phase's figure is its dump's instructions over COUNTED. Every counted request is a
new one: a new Idempotency-Key, and for purchases a shopper whose token the process has not
seen, so that the crowd is larger than any cache.

    .venv/bin/python bench/storm.py --phases ...   (runs this last, with the storm's data)
"""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 30
COUNTED = 200


def environ(method: str, path: str, token: str | None = None, key: str | None = None) -> dict:
    """A request as a WSGI server hands it over."""
    body = b'{"quantity": 1}' if method == "POST" else b""
    request = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if method == "POST":
        request |= {"CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body))}
    if token:
        request["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if key:
        request["HTTP_IDEMPOTENCY_KEY"] = key
    return request


def serve(application, request: dict) -> int:
    status = []
    chunks = application(request, lambda line, headers, exc_info=None: status.append(line))
    try:
        b"".join(chunks)
    finally:
        if hasattr(chunks, "close"):
            chunks.close()
    return int(status[0].split()[0])


def worker(plan: dict) -> None:
    """Under callgrind: serve each phase of the plan, marking the counted requests."""
    # Imported here: each application configures Django its own way, one per process.
    if plan["app"] == "yardsticks":
        from bench.yardsticks import application
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
        from config.wsgi import application
    tokens = Path(plan["tokens"]).read_text().split() if plan.get("tokens") else []
    served = 0
    for name, (method, path, crowd) in plan["phases"].items():
        requests = []
        for i in range(WARM_UP + COUNTED):
            token = tokens[served % len(tokens)] if crowd == "crowd" else (tokens[0] if crowd == "one" else None)
            requests.append(environ(method, path, token, f"instructions-{name}-{i}" if method == "POST" else None))
            served += 1
        statuses = [serve(application, request) for request in requests[:WARM_UP]]
        os.getppid()  # callgrind dumps what came before: start-up and the warm-up
        statuses += [serve(application, request) for request in requests[WARM_UP:]]
        os.getppid()  # callgrind dumps the counted requests
        print(f"INSTRUCTIONS {name} {json.dumps(sorted(set(statuses)))}", flush=True)


def count(plan: dict, folder: Path, env: dict) -> dict[str, dict]:
    """Run the plan under callgrind; each phase's instructions per request and the answers it got."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"callgrind-{plan['app']}.out*"):
        old.unlink()
    output = folder / f"callgrind-{plan['app']}.out"
    argv = ["valgrind", "--tool=callgrind", "--dump-before=getppid", f"--callgrind-out-file={output}",
            sys.executable, __file__, json.dumps(plan)]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, env={**env, "PYTHONHASHSEED": "0"}, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"callgrind run failed: {done.stderr[-2000:]}")
    marked = [line.split(None, 2) for line in done.stdout.splitlines() if line.startswith("INSTRUCTIONS ")]
    answers = {name: statuses for _, name, statuses in marked}
    dumps = sorted(folder.glob(f"{output.name}.*"), key=lambda path: int(path.suffix.lstrip(".")))
    results = {}
    # Dumps 1, 3, 5...: start-up and warm-ups; 2, 4, 6...: each phase's counted requests.
    for name, dump in zip(plan["phases"], dumps[1::2], strict=True):
        results[name] = {"instructions": round(_total(dump) / COUNTED), "answers": answers.get(name)}
    return results


def _total(dump: Path) -> int:
    for line in dump.read_text().splitlines():
        if line.startswith(("totals:", "summary:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {dump}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    worker(json.loads(sys.argv[1]))
