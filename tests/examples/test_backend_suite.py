"""The backend's own pytest suite (examples/todo-app/backend/tests), in its own uv venv."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from tests.fixtures.infra import missing

from .conftest import BACKEND

pytestmark = pytest.mark.integration


def test_it_passes_the_backends_own_test_suite(database_url):
    uv = shutil.which("uv")
    if uv is None:
        missing("uv on PATH")
    # Its own project and venv: drop the panel's venv from the environment.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH"}
    }
    env |= {"DATABASE_URL": database_url, "UV_PYTHON_DOWNLOADS": "never"}
    result = subprocess.run(  # noqa: S603
        [uv, "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=BACKEND,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    summary = re.search(r"(\d+) passed", output)
    assert summary and int(summary.group(1)) >= 15, output[-2000:]
    assert not re.search(r"\d+ (failed|error)", output), output[-2000:]
