"""`make bench`: Helmdeck measured against bare helm and kubectl on the sandbox cluster.

    uv run --no-sync python -m benchmarks [--only NAME[,NAME]] [--quick] [--no-write]

Prints one table per benchmark (figures, the bare tool's figure, ratio, goal, PASS/MISS),
then writes benchmarks/results/last.json (results + the machine's description) and the
README's "Benchmarks" table between its marker comments. With --only, the other
benchmarks' last results are kept. Exit status: 0 when every goal was met, 1 otherwise.
"""

import argparse
import importlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from datetime import UTC, datetime

from benchmarks import report

BENCHMARKS = {
    "deploy_user": "Deploy as a user runs it: browser Confirm, manage.py deploy --wait and the "
    "remote CLI's helmdeck deploy --wait",
    "deploy_user_real": "The same on the real node (kubelet, containerd, real probes)",
    "deploy": "Deploy overhead: todo-app through Helmdeck vs bare helm upgrade --install",
    "deploy_real": "Deploy overhead on the real node (kubelet, containerd, real probes)",
    "status_latency": "Status latency: pod change -> SSE event, vs kubectl get pods -w",
    "status_page": "Status page at scale: server time and queries",
    "logs": "Log streaming: lines/s and first line, vs kubectl logs -f",
    "connections": "Connections: idle SSE clients on one uvicorn process",
    "render": "Chart render + validation per profile, vs bare helm template",
    "api_deploy": "API deploy call: POST -> release row and 202, vs GET /health",
    "startup": "Start-up: manage.py, the web process and a worker, vs the interpreter alone",
}
RESULTS = report.__file__.rsplit("/", 1)[0] + "/results/last.json"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmarks of Helmdeck against bare helm and kubectl (sandbox cluster, "
        "loopback only). Names: " + ", ".join(BENCHMARKS),
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these benchmarks (repeat or comma-separate)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer repetitions and scales (a smoke run)"
    )
    parser.add_argument(
        "--shared-db",
        action="store_true",
        help="use $DATABASE_URL instead of a private PostgreSQL (the SSE benchmarks open a "
        "database connection per client: 500 of them exhaust a shared server)",
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave last.json and README alone"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for part in args.only for n in part.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
    args.names = names or list(BENCHMARKS)
    return args


# Each benchmark's own waits are bounded; this is the backstop (seconds, full runs).
LIMITS = {"deploy": 1200, "deploy_real": 1200, "deploy_user": 1500, "deploy_user_real": 1800}
LIMIT = 420


def _too_long(signum, frame):
    raise TimeoutError("the benchmark ran past its time limit; stopped")


def run_one(name, quick):
    module = importlib.import_module(f"benchmarks.{name}")
    load = os.getloadavg()[0]
    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _too_long)
    signal.alarm(LIMITS.get(name, LIMIT))
    try:
        result = module.run(quick=quick)
    except Exception as exc:  # noqa: BLE001 - one failed benchmark must not hide the others
        traceback.print_exc()
        result = report.Result(
            name=name, title=BENCHMARKS[name], error=f"{type(exc).__name__}: {exc}"
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    result.seconds = time.monotonic() - started
    result.notes.append(
        f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, on "
        f"{os.cpu_count()} CPUs (other work on the machine shows up in the figures)"
    )
    return result.finish()


def write(results, machine, quick):
    from pathlib import Path

    from benchmarks.harness import ROOT

    path = Path(RESULTS)
    previous = {}
    if path.exists():
        previous = {r["name"]: r for r in json.loads(path.read_text()).get("results", [])}
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for result in results:
        entry = result.to_dict()
        entry.update(measured_at=when, quick=quick)
        previous[result.name] = entry
    ordered = [previous[n] for n in BENCHMARKS if n in previous]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "results": ordered}, indent=2) + "\n")
    readme = ROOT / "README.md"
    section = report.readme_section([_from_dict(r) for r in ordered], machine, when)
    readme.write_text(report.replace_between_markers(readme.read_text(), section))
    return path


def _from_dict(raw):
    """A Result back from last.json (for the README, which shows every last result)."""
    rows = []
    for r in raw["rows"]:
        rows.append(
            report.Row(
                r["metric"],
                r["value"],
                r["unit"],
                r["bare"],
                None,
                r["status"],
                r["note"],
                goal_text=r["goal"],
            )
        )
    result = report.Result(
        raw["name"],
        raw["title"],
        rows,
        raw["notes"],
        raw["bare_label"],
        raw["seconds"],
        raw["error"],
    )
    if raw.get("quick"):
        result.notes = [*result.notes, "a --quick run (fewer repetitions)"]
    return result


def main(argv=None):
    args = parse_args(argv)
    import contextlib

    from benchmarks import harness

    harness.raise_open_files()
    # SIGTERM unwinds like Ctrl-C: servers, namespaces and the database are cleaned up.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with contextlib.ExitStack() as stack:
        if not args.shared_db:
            from benchmarks.postgres import private_postgres

            os.environ["DATABASE_URL"] = stack.enter_context(private_postgres())
        return _run(
            args,
            harness,
            "shared ($DATABASE_URL)"
            if args.shared_db
            else "private PostgreSQL 15 started by the harness (max_connections 1200)",
        )


def _run(args, harness, database):
    from benchmarks import cluster
    from benchmarks.machine import machine as describe

    harness.setup_django()
    cluster.remove_leftover_namespaces(cluster.kube()[0])
    machine = {**describe(), "database": database}
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), flush=True)
    results = []
    for name in args.names:
        print(f"\n-- {name}: {BENCHMARKS[name]}", flush=True)
        result = run_one(name, args.quick)
        print(report.text_table(result), flush=True)
        results.append(result)
    print("\nsummary: " + ", ".join(f"{r.name} {r.verdict}" for r in results))
    if any(r.error for r in results):
        print(f"the child processes' output is kept in {harness.LOG_DIR}")
    else:
        shutil.rmtree(harness.LOG_DIR, ignore_errors=True)
    if not args.no_write:
        print(f"wrote {write(results, machine, args.quick)} and README.md (Benchmarks)")
    return 0 if all(r.verdict != "MISS" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
