"""The benchmark suite's own arithmetic and tables (no timing here: figures belong to
`make bench`), and that `python -m benchmarks --help` runs."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.__main__ import parse_args


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
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--only" in done.stdout and "--quick" in done.stdout
    assert parse_args(["--only", "deploy,logs", "--quick"]).names == ["deploy", "logs"]
    with pytest.raises(SystemExit):
        parse_args(["--only", "nope"])
