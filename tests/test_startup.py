"""What a `manage.py` command imports before it does anything: the heavy client libraries
(the kubernetes client ~0.7 s, Celery ~0.4 s, redis-py ~0.3 s, the docker SDK ~0.15 s) are
imported when a command uses them, not by Django's start-up. Time itself is measured in the
benchmarks; this checks the imports, which decide it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
HEAVY = ("kubernetes", "celery", "kombu", "redis", "docker", "kubernetes_validate")


def fresh_python(*argv, env=None):
    """`python ARGV` in a process of its own with this project's settings (and `env`):
    what it imports starts from nothing."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "controlpanel.settings", **(env or {})}
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )


def modules_of(result):
    """Every module a `python -X importtime` run imported."""
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "django" in modules  # the listing is what -X importtime writes
    return modules


def imported_by(*argv):
    """Top-level packages `python -X importtime manage.py ARGV` imported."""
    result = fresh_python("-X", "importtime", str(ROOT / "manage.py"), *argv)
    assert result.returncode == 0, result.stderr[-2000:]
    return {name.split(".")[0] for name in modules_of(result)}


def test_manage_py_help_imports_no_client_library():
    assert set(HEAVY) & imported_by("help") == set()


@pytest.mark.parametrize(
    "argv",
    [
        ("check",),  # the URLconf and every view: what the web process imports to start
        ("help", "deploy"),  # the deploy command's module and the services it uses
    ],
)
def test_the_web_process_and_commands_import_kubernetes_celery_and_docker_on_first_use(argv):
    """The web process uses Redis itself (the pages' live updates) and renders with
    kubernetes-validate; the kubernetes client, Celery and the docker SDK wait for a call
    that needs them (a watch, a sent task, a build)."""
    assert {"kubernetes", "celery", "kombu", "docker"} & imported_by(*argv) == set()


def test_the_deploy_command_leaves_the_stages_to_the_worker():
    """`deploy --wait` with a worker running only queues and follows: the stages' libraries
    (the schema validator, the docker SDK) are imported only by `--here`."""
    assert {"kubernetes_validate", "jsonschema", "docker"} & imported_by("help", "deploy") == set()


def test_the_celery_app_is_the_projects_when_a_task_is_sent():
    """controlpanel/__init__.py no longer imports the Celery app: deployments.tasks does,
    so a task is sent through this project's app and broker, never Celery's default."""
    code = (
        "import django; django.setup();"
        "from deployments import tasks; from controlpanel.celery import app;"
        "assert tasks.build_release.app is app, tasks.build_release.app;"
        "from django.conf import settings;"
        "assert app.conf.broker_url == settings.CELERY_BROKER_URL;"
        "print('ok')"
    )
    result = fresh_python("-c", code)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_sending_a_release_imports_the_celery_app_but_not_the_stages():
    """release_send (the web process's deploy, `deploy --wait`) sends the chain by its tasks'
    names: deployments.tasks, which imports every stage's libraries, stays a worker's."""
    code = (
        "import sys, django; django.setup();"
        "from celery.canvas import _chain;"
        "sent = [];"
        "_chain.apply_async = lambda self, *a, **k: sent.append("
        "[(t['task'], t['options'].get('ignore_result')) for t in self.tasks]);"
        "from deployments.services import release_queue;"
        # no mark in a Redis that other tests' releases use
        "release_queue.broker_client = lambda: type('C', (), {'set': lambda *a, **k: 1})();"
        "release_queue.release_send(7);"
        "print(sent);"
        "print('deployments.tasks' in sys.modules, 'deployments.services.release_stages' in"
        " sys.modules, 'docker' in sys.modules)"
    )
    result = fresh_python("-c", code)
    assert result.returncode == 0, result.stderr[-2000:]
    sent, imported = result.stdout.strip().splitlines()
    stages = ("release_build", "release_render", "release_upgrade", "release_verify")
    assert sent == str([[(f"deployments.tasks.{stage}", True) for stage in stages]])
    assert imported == "False False False", result.stderr[-2000:]


EVERYDAY = ("deploy", "rollback", "render", "export_profile", "import_profile")


@pytest.mark.parametrize("name", EVERYDAY)
def test_the_everyday_commands_run_the_models_checks_only(name):
    from django.core.checks import Tags
    from django.core.management import load_command_class

    assert load_command_class("deployments", name).requires_system_checks == [Tags.models]


def test_deploy_leaves_the_url_check_and_the_api_to_manage_py_check(tmp_path):
    """Django's URL check imports every view and the API's schemas (Ninja, pydantic): ~1.1 s
    of deploy's start, before its release row. Its checks run before handle(), which here
    fails at once on a database without tables: what was imported by then is the start."""
    result = fresh_python(
        "-X", "importtime", str(ROOT / "manage.py"), "deploy", "no-such-profile",
        env={"DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"},
    )  # fmt: skip
    assert "no such table" in result.stderr, result.stderr[-2000:]  # handle() was reached
    modules = modules_of(result)
    assert "deployments.services.releases" in modules  # what the deploy command imports
    assert {"ninja", "pydantic", "deployments.api", "controlpanel.urls"} & modules == set()


def test_the_venvs_packages_and_the_projects_modules_are_compiled():
    """`make venv` compiles them (scripts/dev/venv): where PYTHONDONTWRITEBYTECODE is set,
    nothing else writes .pyc files, and every process compiled Django, Celery and the
    kubernetes client from source again (`manage.py help` 3.0 s instead of 1.0 s). Checked
    on modules no test imports, so only `make venv` can have compiled them."""
    import importlib.util

    import django

    never_imported = [
        Path(django.__file__).parent / "contrib" / "gis" / "geos" / "geometry.py",
        ROOT / "benchmarks" / "startup.py",
    ]
    missing = [
        str(source)
        for source in never_imported
        if not Path(importlib.util.cache_from_source(str(source))).exists()
    ]
    assert missing == []


@pytest.mark.parametrize("skip", [None, ""])
def test_a_worker_starts_without_the_url_check_and_the_api(skip, monkeypatch):
    """Celery's Django fixup sets Django up as a worker starts (validate_models, as the
    worker calls it) without running the system checks, whose findings it dropped: the URL
    check imported every view and the API's schemas (Ninja, pydantic), ~0.3 s of a start,
    for a process that serves no URL. CELERY_SKIP_CHECKS= (empty) runs them again."""
    # this process may have imported the Celery app, which sets the default: the child
    # must start without it, as a worker does
    monkeypatch.delenv("CELERY_SKIP_CHECKS", raising=False)
    code = (
        "from controlpanel.celery import app;"
        "from celery.fixups.django import DjangoWorkerFixup;"
        "DjangoWorkerFixup(app).validate_models();"
        "import sys; print('django.apps' in sys.modules and 'deployments.models' in sys.modules)"
    )
    env = {} if skip is None else {"CELERY_SKIP_CHECKS": skip}
    result = fresh_python("-X", "importtime", "-c", code, env=env)
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]
    url_check = {"ninja", "deployments.api"} & modules_of(result)
    assert url_check == (set() if skip is None else {"ninja", "deployments.api"})
