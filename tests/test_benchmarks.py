"""The benchmark suite's own arithmetic and tables (no timing here: figures belong to
`make bench`), that `python -m benchmarks --help` runs, and that the real-node deploy
benchmark runs through in quick mode (whatever its figures)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.__main__ import parse_args
from benchmarks.postgres import PGBIN
from tests.fixtures.infra import NODE_CONTAINERD, missing

ROOT = Path(__file__).resolve().parents[1]


def test_percentiles_interpolate_and_tables_judge_goals():
    assert report.percentile([], 50) is None
    assert report.percentile([3, 1, 2], 50) == 2
    assert report.percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert report.summary([5, None, 1]) == {"n": 2, "p50": 3.0, "p95": 4.8, "max": 5}

    result = report.Result("x", "X bench", bare_label="kubectl")
    result.add("p95", 150.0, bare=50.0, goal=report.Goal("<=", 200, unit="ms"))
    result.add("speed", 70.0, unit="lines/s", bare=100.0, goal=report.Goal(">=", 0.8, on="ratio"))
    result.add("info", None)
    result.finish()
    assert [r.status for r in result.rows] == ["PASS", "MISS", "-"]
    assert result.verdict == "MISS"
    text = report.text_table(result)
    assert "3.00x" in text and "ratio ≥ 0.80x" in text and "≤ 200 ms" in text
    assert result.to_dict()["rows"][1]["ratio"] == pytest.approx(0.7)

    readme = "intro\n<!-- bench:start -->\nold\n<!-- bench:end -->\nrest\n"
    body = report.readme_section([result], {"cpus": 2}, "now")
    once = report.replace_between_markers(readme, body)
    assert "\nold\n" not in once and "| p95 | 150 ms | 50 ms | 3.00x | ≤ 200 ms | PASS |" in once
    assert report.replace_between_markers(once, body) == once  # a rerun rewrites, not appends
    with pytest.raises(ValueError):
        report.replace_between_markers("no markers", body)


def test_cli_help_and_names():
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--only" in done.stdout and "--quick" in done.stdout
    assert parse_args(["--only", "deploy,logs", "--quick"]).names == ["deploy", "logs"]
    assert parse_args(["--only", "deploy_real"]).names == ["deploy_real"]
    assert parse_args(["--only", "deploy_user_real"]).names == ["deploy_user_real"]
    assert parse_args(["--only", "api_deploy"]).names == ["api_deploy"]
    assert parse_args(["--only", "startup"]).names == ["startup"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])


@pytest.mark.integration
def test_it_runs_the_deploy_benchmark_on_the_real_node_in_quick_mode(
    sandbox_cluster, dockerd, redis_url, database_url
):
    if not NODE_CONTAINERD.exists():
        missing(f"the sandbox's real node (no {NODE_CONTAINERD}: scripts/sandbox/node up)")
    if not (PGBIN / "initdb").exists():
        missing(f"PostgreSQL's server binaries in {PGBIN} (scripts/services/postgres)")
    env = {**os.environ, "KUBECONFIG": str(sandbox_cluster.kubeconfig), "REDIS_URL": redis_url}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--only", "deploy_real", "--quick", "--no-write"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    out = done.stdout
    # 1 is a goal missed: the figures are `make bench`'s to judge, not a test's
    assert done.returncode in (0, 1), out[-3000:] + done.stderr[-3000:]
    assert not re.search(r"^error: ", out, re.M), out[-3000:] + done.stderr[-3000:]
    assert "pair 2/2: Helmdeck" in out
    seconds = r"\d[\d.,]* s"
    assert re.search(rf"click -> deployed and Ready, median +{seconds} +{seconds} +\d\.\d\dx", out)
    shared = rf"the cluster's part shared +{seconds} +{seconds} +\d\.\d\dx +ratio ≤ 1\.02x"
    assert re.search(shared, out), out[-3000:]
    assert re.search(r"first pod created -> last pod Ready, median +\d", out), out[-3000:]
    assert re.search(rf"image load into the node .* +{seconds} +{seconds}", out)
    assert re.search(r"pods ran on node \S+ \(containerd://", out), out[-3000:]
    assert re.search(r"^summary: deploy_real (PASS|MISS)$", out, re.M)
    left = [
        ns.metadata.name
        for ns in sandbox_cluster.core.list_namespace().items
        if ns.metadata.name.startswith("bench-realdeploy-") and ns.status.phase != "Terminating"
    ]
    assert not left, f"the benchmark left namespaces behind: {left}"
