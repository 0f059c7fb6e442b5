"""The README's two commands on a machine that has never seen Helmdeck: no `uv` on PATH, a HOME
of its own (so nothing an earlier run put in ~/.local/bin or ~/.cache helps), a copy of the
checkout with no .venv. Each command runs twice: the second run finds `.venv/bin` first on the
Makefile's PATH, whose python has no pip (the old way of installing uv broke there)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.faults import free_port
from tests.scripts.make_run import read_until_up, rest_of_output, spawn_read, stop_with_ctrl_c

ROOT = Path(__file__).parents[2]


def _path_without_uv(checkout):
    """PATH minus every folder holding a uv, minus ~/.local/bin and any .venv."""
    keep = []
    for folder in os.environ["PATH"].split(os.pathsep):
        if not folder or (Path(folder) / "uv").exists():
            continue
        if folder.startswith(str(Path.home() / ".local")) or ".venv" in Path(folder).parts:
            continue
        if folder.startswith(str(Path.home() / ".cache/helmdeck")):
            continue
        keep.append(folder)
    assert shutil.which("uv", path=os.pathsep.join(keep)) is None
    return os.pathsep.join(keep)


@pytest.fixture
def fresh_machine(tmp_path):
    checkout = tmp_path / "helmdeck"
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = checkout / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    home = tmp_path / "home"
    home.mkdir()
    dropped = ("HELMDECK_", "DATABASE_URL", "REDIS_URL", "CELERY_", "UV_", "VIRTUAL_ENV", "PYTEST_")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and k not in ("CI", "KUBECONFIG", "HYPOTHESIS_EXAMPLES")
    }
    env.update(HOME=str(home), PATH=_path_without_uv(checkout))
    # its `make test` in one process: no pytest-xdist processes of its own, which would take
    # Redis databases (tests/fixtures/parallel.py) that this run's processes use
    env["HELMDECK_TEST_WORKERS"] = "1"
    # pyenv's interpreters stay findable (they are the machine's, not something we installed)
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    if pyenv.is_dir():
        env["PYENV_ROOT"] = str(pyenv)
    # uv's download cache is only a cache: sharing it keeps this test from fetching every wheel
    real_uv_cache = Path.home() / ".cache/uv"
    if real_uv_cache.is_dir():
        env["UV_CACHE_DIR"] = str(real_uv_cache)
    return checkout, env


def _make_run_once(checkout, env):
    port = free_port()
    run_env = dict(
        env,
        HELMDECK_PORT=str(port),
        HELMDECK_EMBEDDED_REDIS="1",
        HELMDECK_ADMIN_PASSWORD="fresh-machine-pw-1",
    )
    proc = spawn_read(["make", "run"], cwd=checkout, env=run_env)
    try:
        output = read_until_up(proc, 420)
    finally:
        stop_with_ctrl_c(proc, 60)
    return output + rest_of_output(proc)


@pytest.mark.integration
def test_make_run_and_make_test_work_twice_without_uv_on_path(fresh_machine):
    checkout, env = fresh_machine
    uv_home = Path(env["HOME"]) / ".cache/helmdeck/tools/bin/uv"

    first = _make_run_once(checkout, env)
    assert "installing uv" in first, first
    assert uv_home.exists(), first
    assert not (Path(env["HOME"]) / ".local/bin/uv").exists()
    second = _make_run_once(checkout, env)
    assert "Helmdeck is up" in second and "installing uv" not in second, second

    for _ in range(2):
        test = subprocess.run(
            ["make", "test", "PYTEST_ARGS=-q -p no:cacheprovider tests/deployments/test_crypto.py"],
            cwd=checkout,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
        assert " passed" in test.stdout, test.stdout[-3000:]
