"""Build contexts and Dockerfiles as an attacker who edits profiles would aim them: at the
panel's own checkout, state folder and key file, through '..', absolute paths, symlinks and
NUL bytes. Refused when the profile is saved (form, YAML upload, import service and CLI) and
again by the worker right before the build (the filesystem may have changed since); and every
text a release stores (LogLine, step detail, reason) is redacted of secret values and of the
panel's own keys.

The panel here is a copy laid out in tmp_path (settings point at it), so the attacks are aimed
at files whose content the test knows: a key file whose lines are canaries.
"""

import ast
import base64
import contextlib
import inspect
import io
import json
import re
import uuid
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

from deployments import events, profile_yaml
from deployments.integrations.docker import DockerError
from deployments.models import LogLine, Profile, Release, Step
from deployments.services import release_stages
from deployments.services.diagnosis import Problem
from deployments.services.profiles import profile_import
from deployments.services.release_stages import release_build, release_upgrade
from deployments.services.releases import release_request
from deployments.services.stage_run import StageRun
from deployments.spec import SpecError
from tests.deployments.test_views import component_data, form_data
from tests.factories import SecretEntryFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
KEY_CANARY = f"key-file-canary-{uuid.uuid4().hex}"  # only in the fake panel's .env
STATE_CANARY = f"state-canary-{uuid.uuid4().hex}"
OUTSIDE_CANARY = f"outside-canary-{uuid.uuid4().hex}"
SECRET_KEY = f"django-secret-key-{uuid.uuid4().hex}"


@pytest.fixture
def panel(tmp_path, settings, monkeypatch):
    """A panel checkout with its key file and state, a source root `examples/` holding a good
    build context, and the traps an attacker would set inside that root."""
    home = tmp_path / "panel"
    app = home / "examples" / "app"
    (app / "sub").mkdir(parents=True)
    (app / "Dockerfile").write_text("FROM scratch\nUSER 1001\n")
    (app / "Dockerfile.real").write_text("FROM scratch\nUSER 1001\n")
    (app / "alias").symlink_to("Dockerfile.real")  # a link that stays inside: fine
    (home / ".env").write_text(f"# keys\nSECRET_KEY={KEY_CANARY}\nHELMDECK_SECRET_KEYS=x\n")
    (home / ".helmdeck").mkdir()
    (home / ".helmdeck" / "db.sqlite3").write_text(f"FROM scratch\n{STATE_CANARY}\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(f"FROM scratch\n{OUTSIDE_CANARY}\n")
    traps = home / "examples"
    (traps / "escape").symlink_to(home)  # the root's parent: the checkout
    (traps / "out").symlink_to(outside)  # a folder outside every root
    (traps / "state").symlink_to(home / ".helmdeck")
    (app / "leak").symlink_to("../../.env")  # a Dockerfile that is the key file
    (app / "outdf").symlink_to(outside / "Dockerfile")
    (app / "loop").symlink_to("loop")
    settings.BASE_DIR = home
    settings.HELMDECK_PROJECT_DIR = str(home)
    settings.STATE_DIR = home / ".helmdeck"
    settings.HELMDECK_ENV_FILE = str(home / ".env")
    settings.HELMDECK_SOURCE_ROOTS = ["examples"]
    settings.SECRET_KEY = SECRET_KEY
    settings.HELMDECK_SECRET_KEYS = [Fernet.generate_key().decode()]
    monkeypatch.setattr(events, "publish", lambda *args, **kwargs: None)  # no shared Redis
    return home


def doc(context, dockerfile=None, name="attack"):
    build = {"context": context}
    if dockerfile is not None:
        build["dockerfile"] = dockerfile
    return {"name": name, "components": {"web": {"port": 8000, "build": build}}}


# (context, dockerfile, the field that must carry the message)
ATTACKS = {
    "checkout root, key file as Dockerfile": (".", ".env", "context"),
    "checkout root": (".", "Dockerfile", "context"),
    "checkout by its absolute path": ("{home}", ".env", "context"),
    "root's parent via ..": ("examples/..", ".env", "context"),
    "deeper .. escape": ("examples/app/../../..", "etc/passwd", "context"),
    "absolute context": ("/etc", "passwd", "context"),
    "absolute context in tmp": ("{outside}", "Dockerfile", "context"),
    "symlink to the checkout": ("examples/escape", ".env", "context"),
    "symlink to the checkout, nested": ("examples/escape/examples/..", ".env", "context"),
    "symlink out of the root": ("examples/out", "Dockerfile", "context"),
    "state folder": (".helmdeck", "db.sqlite3", "context"),
    "state folder through a symlink": ("examples/state", "db.sqlite3", "context"),
    "NUL byte in the context": ("examples/app\x00", "Dockerfile", "context"),
    "Dockerfile ../.env": ("examples/app", "../../.env", "dockerfile"),
    "Dockerfile ../ into the state": ("examples/app", "../../.helmdeck/db.sqlite3", "dockerfile"),
    "absolute Dockerfile": ("examples/app", "{home}/.env", "dockerfile"),
    "Dockerfile symlink to the key file": ("examples/app", "leak", "dockerfile"),
    "Dockerfile symlink out of the root": ("examples/app", "outdf", "dockerfile"),
    "Dockerfile symlink loop": ("examples/app", "loop", "dockerfile"),
    "Dockerfile is a folder": ("examples/app", "sub", "dockerfile"),
    "Dockerfile is the context": ("examples/app", ".", "dockerfile"),
    "NUL byte in the Dockerfile": ("examples/app", "Dockerfile\x00", "dockerfile"),
}


def _paths(value, home):
    return value.format(home=home, outside=home.parent / "outside")


def _assert_refused(exc, field):
    paths = [e.path for e in exc.errors]
    assert f"components.web.build.{field}" in paths, exc.errors
    for error in exc.errors:  # the message never quotes a file it was pointed at
        for canary in (KEY_CANARY, STATE_CANARY, OUTSIDE_CANARY):
            assert canary not in error.message


# ---- saving: the import service, the YAML upload, the CLI, the form ------------------------


@pytest.mark.parametrize("attack", ATTACKS)
def test_it_refuses_a_build_source_outside_the_roots_on_import(panel, attack):
    context, dockerfile, field = ATTACKS[attack]
    with pytest.raises(SpecError) as info:
        profile_import(data=doc(_paths(context, panel), _paths(dockerfile, panel)), actor=None)
    _assert_refused(info.value, field)
    assert not Profile.objects.filter(name="attack").exists()


@pytest.mark.parametrize(
    ("context", "dockerfile", "resolved"),
    [
        ("examples/app", None, "Dockerfile"),
        ("examples/app/", "Dockerfile", "Dockerfile"),
        ("examples/app", "alias", "Dockerfile.real"),  # a link that stays in the context
        ("examples/escape/examples/app", "Dockerfile", "Dockerfile"),  # resolves into the root
        ("examples/new-service", "Dockerfile", "Dockerfile"),  # not created yet
    ],
)
def test_it_accepts_a_build_source_inside_a_root(panel, context, dockerfile, resolved):
    from deployments.build_sources import build_source

    profile = profile_import(data=doc(context, dockerfile), actor=None)
    assert profile.components.get().build_context == context
    if (panel / context).is_dir():
        source = build_source(context, dockerfile or "Dockerfile", must_exist=True)
        assert source.context == (panel / "examples" / "app").resolve()
        assert source.dockerfile == resolved


def test_it_refuses_the_reported_attack_with_the_real_settings(settings):
    """As reported: the panel's own directory as the context and `.env` as the Dockerfile,
    with nothing configured (HELMDECK_PROJECT_DIR is the checkout)."""
    assert Path(settings.HELMDECK_PROJECT_DIR).resolve() == ROOT
    for context, dockerfile in (
        (".", ".env"),
        (".", "Dockerfile"),
        (".helmdeck", "db.sqlite3"),
        ("deployments", "../.env"),
        ("controlpanel", "settings.py"),
    ):
        with pytest.raises(SpecError) as info:
            profile_import(data=doc(context, dockerfile), actor=None)
        assert any(e.path.startswith("components.web.build.") for e in info.value.errors)
    # the seed's profile still imports: its contexts are under examples/
    text = (ROOT / "examples/profiles/todo-app.yaml").read_bytes()
    profile = profile_import(data=profile_yaml.load(text), actor=None)
    assert set(profile.components.values_list("build_context", flat=True)) == {
        "examples/todo-app/frontend",
        "examples/todo-app/backend",
    }


def test_it_refuses_a_context_holding_the_key_file_or_the_state(panel, settings):
    """Wherever the key file and state are configured, a context may not hold them, nor be
    inside the state folder, even inside a source root."""
    keys = panel / "examples" / "keys"
    keys.mkdir()
    (keys / ".env").write_text(f"SECRET_KEY={KEY_CANARY}\n")
    (keys / "Dockerfile").write_text("FROM scratch\n")
    settings.HELMDECK_ENV_FILE = str(keys / ".env")
    for context, dockerfile in (
        ("examples/keys", ".env"),
        ("examples/keys", "Dockerfile"),
        ("examples", "keys/.env"),
    ):
        with pytest.raises(SpecError) as info:
            profile_import(data=doc(context, dockerfile), actor=None)
        _assert_refused(info.value, "context")
    state = panel / "examples" / "var"
    (state / "cache").mkdir(parents=True)
    settings.STATE_DIR = state
    settings.HELMDECK_ENV_FILE = str(panel / ".env")
    for context in ("examples/var", "examples/var/cache", "examples"):
        with pytest.raises(SpecError) as info:
            profile_import(data=doc(context, "Dockerfile"), actor=None)
        _assert_refused(info.value, "context")


def test_it_ignores_a_root_that_holds_the_panel_and_a_context_that_is_a_roots_parent(
    panel, settings
):
    settings.HELMDECK_SOURCE_ROOTS = [".", str(panel.parent)]  # the checkout, and above it
    for context in ("examples/app", ".", "examples"):
        with pytest.raises(SpecError) as info:
            profile_import(data=doc(context, "Dockerfile"), actor=None)
        _assert_refused(info.value, "context")
        if context == "examples/app":  # inside a root that was configured, but not used
            assert "ignored: ., " in " ".join(e.message for e in info.value.errors)
    settings.HELMDECK_SOURCE_ROOTS = ["examples/app/sub"]
    for context in ("examples/app", "examples", "examples/app/sub/.."):
        with pytest.raises(SpecError) as info:
            profile_import(data=doc(context, "Dockerfile"), actor=None)
        _assert_refused(info.value, "context")
    settings.HELMDECK_SOURCE_ROOTS = [str(panel.parent / "outside")]  # an absolute root
    settings.HELMDECK_PROJECT_DIR = str(panel.parent)
    assert profile_import(data=doc("outside", "Dockerfile"), actor=None).name == "attack"


def _upload(text):
    upload = io.BytesIO(text.encode())
    upload.name = "profile.yaml"
    return upload


@pytest.mark.parametrize(
    "attack",
    [
        "checkout root, key file as Dockerfile",
        "symlink to the checkout",
        "Dockerfile ../.env",
        "Dockerfile symlink to the key file",
        "Dockerfile is a folder",
        "state folder",
    ],
)
def test_it_lists_the_field_on_a_yaml_upload_and_writes_nothing(panel, login, attack):
    context, dockerfile, field = ATTACKS[attack]
    text = yaml.safe_dump(doc(_paths(context, panel), _paths(dockerfile, panel)))
    response = login("admin").post("/profiles/import/", {"file": _upload(text)})
    assert response.status_code == 200
    items = re.findall(r"<li><code>(.*?)</code></li>", response.content.decode())
    assert any(item.startswith(f"components.web.build.{field}:") for item in items), items
    assert KEY_CANARY not in response.content.decode()
    assert not Profile.objects.filter(name="attack").exists()


def test_it_exits_2_from_import_profile_with_one_line_per_bad_field(panel, tmp_path):
    from django.core.management import call_command

    path = tmp_path / "attack.yaml"
    path.write_text(yaml.safe_dump(doc(".", ".env")))
    err = io.StringIO()
    with pytest.raises(SystemExit) as info:
        call_command("import_profile", str(path), stderr=err)
    assert info.value.code == 2
    assert f"{path}: components.web.build.context: must not be" in err.getvalue()
    assert not Profile.objects.filter(name="attack").exists()


@pytest.mark.parametrize(
    "attack",
    [
        "checkout root, key file as Dockerfile",
        "root's parent via ..",
        "symlink out of the root",
        "Dockerfile ../.env",
        "Dockerfile symlink to the key file",
        "Dockerfile is a folder",
        "state folder through a symlink",
    ],
)
def test_it_shows_the_message_under_the_form_field_and_writes_nothing(panel, login, attack):
    from tests.factories import ClusterFactory

    ClusterFactory(name="minikube")
    context, dockerfile, field = ATTACKS[attack]
    data = form_data(
        name="attack",
        components=[
            component_data(
                build_context=_paths(context, panel), dockerfile=_paths(dockerfile, panel)
            )
        ],
    )
    response = login("admin").post("/profiles/new/", data)
    assert response.status_code == 200
    html = response.content.decode()
    name = "build_context" if field == "context" else "dockerfile"
    errors = re.search(rf'id="id_components-0-{name}-errors"[^>]*>(.*?)</div>', html, re.S)
    assert errors and errors.group(1).strip(), f"no message under {name}"
    assert KEY_CANARY not in html
    assert not Profile.objects.filter(name="attack").exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"build_context": ".", "dockerfile": ".env"}, "must not be or hold the panel"),
        ({"build_context": "deployments", "dockerfile": "../.env"}, "must be a relative path"),
        ({"build_context": "controlpanel"}, "must be a folder inside a source root"),
        ({"dockerfile": "src"}, "must be a regular file inside the build context"),
    ],
)
def test_it_shows_the_message_in_the_admin_and_writes_nothing(login, todo_app, changes, message):
    """The admin's inline, with the real settings (the checkout, examples/ as the root)."""
    from tests.deployments.test_admin import CHANGE_URL, change_data

    data = change_data(todo_app, component_changes={"backend": changes})
    response = login("admin").post(CHANGE_URL.format(todo_app.pk), data)
    assert response.status_code == 200
    assert message in response.content.decode()
    backend = todo_app.components.get(name="backend")
    assert (backend.build_context, backend.dockerfile) == (
        "examples/todo-app/backend",
        "Dockerfile",
    )


# ---- building: the worker checks again ------------------------------------------------------


@pytest.fixture
def daemon(monkeypatch):
    """A Docker daemon as the worker sees it: reads the Dockerfile it is sent and, like the
    real one, quotes the line it cannot parse (that is how the key file reached the log)."""
    calls = []

    def build_image(cluster, *, context, dockerfile, tag, buildargs, on_line, should_stop):
        calls.append((Path(context), dockerfile))
        text = (Path(context) / dockerfile).read_text()
        for number, line in enumerate(text.splitlines(), start=1):
            on_line(f"Step {number}: {line}")
            if not line.startswith(("FROM", "USER", "#")) and line:
                raise DockerError(
                    f"docker build of {tag} failed: dockerfile parse error line "
                    f"{number}: unknown instruction: {line}",
                    permanent=True,
                )
        return "sha256:" + "0" * 64

    monkeypatch.setattr(release_stages, "build_image", build_image)
    return calls


def _stored_text(release):
    release.refresh_from_db()
    steps = " ".join(Step.objects.filter(release=release).values_list("detail", flat=True))
    lines = " ".join(LogLine.objects.filter(release=release).values_list("text", flat=True))
    return f"{release.reason} {steps} {lines}"


def _saved_profile():
    return profile_import(data=doc("examples/app", "Dockerfile", name="built"), actor=None)


def _link_dockerfile_to(target):
    def change(app, home):
        (app / "Dockerfile").unlink()
        (app / "Dockerfile").symlink_to(target(home))

    return change


def _swap_context_for(target):
    def change(app, home):
        app.rename(app.with_name("was-app"))
        if target is not None:
            app.symlink_to(target(home))

    return change


def _dockerfile_to_folder(app, home):
    (app / "Dockerfile").unlink()
    (app / "Dockerfile").mkdir()


CHANGES = {
    "Dockerfile swapped for a link to the key file": _link_dockerfile_to(lambda h: h / ".env"),
    "Dockerfile swapped for a relative link out": _link_dockerfile_to(lambda h: "../../.env"),
    "Dockerfile swapped for a link to the state": _link_dockerfile_to(
        lambda h: h / ".helmdeck" / "db.sqlite3"
    ),
    "Dockerfile swapped for a link out of the roots": _link_dockerfile_to(
        lambda h: h.parent / "outside" / "Dockerfile"
    ),
    "context swapped for a link to the checkout": _swap_context_for(lambda h: h),
    "context swapped for a link out of the roots": _swap_context_for(
        lambda h: h.parent / "outside"
    ),
    "Dockerfile replaced by a folder": _dockerfile_to_folder,
    "context removed": _swap_context_for(None),
}


@pytest.mark.parametrize("change", CHANGES)
def test_it_refuses_at_build_time_what_changed_on_disk_since_the_save(panel, daemon, change):
    profile = _saved_profile()
    # the key file the link will point at holds Dockerfile-looking lines around the canary
    (panel / ".env").write_text(f"FROM scratch\nSECRET_KEY={KEY_CANARY}\n")
    CHANGES[change](panel / "examples" / "app", panel)
    release = release_request(profile=profile, actor=None, build=True)
    assert release_build(release.pk) is False
    assert daemon == []  # nothing was sent to the daemon
    release.refresh_from_db()
    assert release.status == Release.Status.FAILED
    assert release.reason.startswith("build web refused: build.")
    stored = _stored_text(release)
    for canary in (KEY_CANARY, STATE_CANARY, OUTSIDE_CANARY):
        assert canary not in stored
    assert release.steps.get(name="build web").status == Step.Status.FAILED


@pytest.mark.parametrize(
    "attack",
    [
        "checkout root, key file as Dockerfile",
        "checkout root",
        "symlink to the checkout",
        "Dockerfile symlink to the key file",
        "Dockerfile symlink out of the root",
        "state folder through a symlink",
        "Dockerfile is a folder",
    ],
)
def test_it_refuses_at_build_time_a_release_saved_before_the_rule(panel, daemon, attack):
    """A release whose snapshot was taken before the rule existed (or written behind the
    services' back) is refused by the worker too."""
    context, dockerfile, _ = ATTACKS[attack]
    (panel / ".env").write_text(f"FROM scratch\nSECRET_KEY={KEY_CANARY}\n")
    profile = _saved_profile()
    snapshot = doc(context, dockerfile, name="built")
    snapshot.update(namespace="built", cluster="minikube", environment="dev", config={}, secrets={})
    release = release_request(profile=profile, actor=None, build=True, snapshot=snapshot)
    assert release_build(release.pk) is False
    assert daemon == []
    release.refresh_from_db()
    assert release.status == Release.Status.FAILED and "refused" in release.reason
    stored = _stored_text(release)
    assert KEY_CANARY not in stored and STATE_CANARY not in stored
    assert OUTSIDE_CANARY not in stored


def test_it_builds_a_good_context_with_its_resolved_paths(panel, daemon):
    profile = profile_import(data=doc("examples/app", "alias", name="built"), actor=None)
    release = release_request(profile=profile, actor=None, build=True)
    assert release_build(release.pk) is True
    assert daemon == [((panel / "examples" / "app").resolve(), "Dockerfile.real")]


@pytest.mark.integration
def test_the_reported_attack_never_reaches_a_real_daemon_and_a_good_build_does(panel, dockerd):
    """As reported, on a real Docker daemon: a release aimed at the panel's directory with
    `.env` as its Dockerfile (the daemon would quote the key file's line 2 in its parse
    error) fails before the build with a reason and no key; a context inside the root, its
    Dockerfile a link within it, builds."""
    from deployments.models import Cluster

    Cluster.objects.filter(name="minikube").update(
        docker_host=dockerd.base_url, minikube_profile=""
    )
    tag = f"helmdeck-buildctx-{uuid.uuid4().hex[:12]}"
    profile = profile_import(data=doc("examples/app", "alias", name="built"), actor=None)
    snapshot = doc(".", ".env", name="built")
    snapshot.update(namespace="built", cluster="minikube", environment="dev", config={}, secrets={})
    snapshot["components"]["web"]["image"] = tag
    attack = release_request(profile=profile, actor=None, build=True, snapshot=snapshot)
    assert release_build(attack.pk) is False
    attack.refresh_from_db()
    assert attack.status == Release.Status.FAILED
    assert "build web refused: build.context '.'" in attack.reason
    assert KEY_CANARY not in _stored_text(attack)
    assert "unknown instruction" not in _stored_text(attack)
    snapshot["components"]["web"]["build"] = {"context": "examples/app", "dockerfile": "alias"}
    good = release_request(profile=profile, actor=None, build=True, snapshot=snapshot)
    try:
        assert release_build(good.pk) is True, _stored_text(good)
        good.refresh_from_db()
        assert good.images["web"]["id"].startswith("sha256:")
    finally:
        with contextlib.suppress(Exception):
            dockerd.images.remove(f"{tag}:latest", force=True)


# ---- redaction: every text a release stores ---------------------------------------------------

MULTILINE = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----"
QUOTED = 'pa"ss\\word-1234'


@pytest.fixture
def secret_profile(panel, settings, monkeypatch):
    settings.REDIS_URL = "redis://:redis-pass-7c1e@127.0.0.1:1/0"
    settings.CELERY_BROKER_URL = "redis://default:broker%40pass-99@127.0.0.1:1/0"
    monkeypatch.setenv("TEST_FROM_ENV_SECRET", "from-env-value-5a2b")
    profile = _saved_profile()
    SecretEntryFactory(profile=profile, key="DB_PASSWORD", value="stored-value-3f9d")
    SecretEntryFactory(profile=profile, key="PEM", value=MULTILINE)
    SecretEntryFactory(profile=profile, key="QUOTED", value=QUOTED)
    SecretEntryFactory(profile=profile, key="FROM_ENV", from_env="TEST_FROM_ENV_SECRET")
    return profile


def leaks(settings):
    """Every secret and the forms in which a tool might print it."""
    b64 = base64.b64encode(b"stored-value-3f9d").decode()
    return {
        "stored secret": "stored-value-3f9d",
        "fromEnv secret": "from-env-value-5a2b",
        "secret base64 (a Secret's data)": b64,
        "secret, one line of a multi-line value": "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        "secret JSON-escaped": json.dumps(QUOTED)[1:-1],
        "SECRET_KEY": settings.SECRET_KEY,
        "HELMDECK_SECRET_KEYS": settings.HELMDECK_SECRET_KEYS[0],
        "Redis password": "redis-pass-7c1e",
        "broker password, URL-decoded": "broker@pass-99",
        "broker password, as written": "broker%40pass-99",
    }


def _assert_redacted(text, settings):
    for what, value in leaks(settings).items():
        assert value not in text, f"{what} was stored"


@pytest.mark.parametrize(
    "what",
    [
        "stored secret",
        "fromEnv secret",
        "secret base64 (a Secret's data)",
        "secret, one line of a multi-line value",
        "secret JSON-escaped",
        "SECRET_KEY",
        "HELMDECK_SECRET_KEYS",
        "Redis password",
        "broker password, URL-decoded",
        "broker password, as written",
    ],
)
def test_it_stores_log_lines_redacted(secret_profile, settings, monkeypatch, what):
    published = []
    monkeypatch.setattr(events, "publish", lambda *a, **k: published.append(json.dumps(a)))
    release = release_request(profile=secret_profile, actor=None, build=True)
    value = leaks(settings)[what]
    StageRun(release).log(f"error: env {what}={value}; again:{value}")
    line = LogLine.objects.get(release=release)
    assert value not in line.text
    assert line.text == f"error: env {what}=<redacted>; again:<redacted>"
    assert published and value not in published[-1]


def test_it_leaves_lines_without_secrets_alone(secret_profile):
    release = release_request(profile=secret_profile, actor=None, build=True)
    text = "Step 3/9 : RUN pip install uv==0.13.9 && echo ok"
    StageRun(release).log(text)
    assert LogLine.objects.get(release=release).text == text


def test_it_redacts_build_output_step_details_and_the_reason(secret_profile, settings, monkeypatch):
    leaked = list(leaks(settings).values())

    def build_image(cluster, *, context, dockerfile, tag, buildargs, on_line, should_stop):
        for value in leaked:
            on_line(f"#7 0.412 {value}")
        raise DockerError(
            f"docker build of {tag} failed: RUN echo {' '.join(leaked)}", permanent=True
        )

    monkeypatch.setattr(release_stages, "build_image", build_image)
    release = release_request(profile=secret_profile, actor=None, build=True)
    assert release_build(release.pk) is False
    stored = _stored_text(release)
    _assert_redacted(stored, settings)
    assert stored.count("<redacted>") >= 2 * len(leaked)


class FakeHelm:
    """helm as release_upgrade drives it, printing what a chart's failing hook might."""

    major = 3
    lines = []

    def __init__(self, **kwargs):
        pass

    def rollback_flags(self):
        return ["--rollback-on-failure"]

    def upgrade_install(self, *args, timeout, on_line, should_stop, on_tick):
        for line in self.lines:
            on_line(line)
        on_tick()
        return 0

    def status(self, name, namespace):
        return {"version": 1, "info": {"status": "deployed", "notes": ""}}


def test_it_redacts_helm_and_diagnosis_lines(secret_profile, settings, monkeypatch):
    leaked = leaks(settings)
    FakeHelm.lines = [f"Error: secret {key} is {value}" for key, value in leaked.items()]
    from deployments.services import stage_run
    from deployments.services import upgrade_pod_watch as pod_watch

    monkeypatch.setattr(stage_run, "Helm", FakeHelm)

    class FakeKube:
        def __init__(self, cluster, *, shared=False):
            pass

        def release_pods(self, namespace, name):
            return []

        def events(self, namespace):
            return []

        def close(self):
            pass

    problems = [
        Problem("crash", "web-1", f"CrashLoopBackOff: {value}") for value in leaked.values()
    ]
    monkeypatch.setattr(pod_watch, "Kube", FakeKube)
    monkeypatch.setattr(pod_watch, "pod_problems", lambda pods, events: problems)
    monkeypatch.setattr(pod_watch.PodWatcher, "EVERY", 0.0)  # the fake's one tick looks
    release = release_request(profile=secret_profile, actor=None, build=False)
    Release.objects.filter(pk=release.pk).update(status=Release.Status.RENDERING)
    assert release_upgrade(release.pk) is True
    lines = list(LogLine.objects.filter(release=release).values_list("text", flat=True))
    assert sum(line == "pod problem: web-1: CrashLoopBackOff: <redacted>" for line in lines) == len(
        problems
    )
    assert sum(line.startswith("Error: secret ") for line in lines) == len(leaked)
    _assert_redacted(_stored_text(release), settings)


def _log_line_writes(tree):
    """Calls that create LogLine rows: LogLine(...) and LogLine.objects.<create...>(...)."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "LogLine"
            or (
                isinstance(func, ast.Attribute)
                and func.attr in ("create", "bulk_create", "get_or_create", "update_or_create")
                and isinstance(func.value, ast.Attribute)
                and isinstance(func.value.value, ast.Name)
                and func.value.value.id == "LogLine"
            )
        ):
            yield node.lineno


def test_every_log_line_is_written_through_the_one_redacting_writer():
    """LogLine rows are created in one place, StageRun.log, and it redacts before it writes."""
    writers = [
        f"{path.relative_to(ROOT)}"
        for path in sorted((ROOT / "deployments").rglob("*.py"))
        for _ in _log_line_writes(ast.parse(path.read_text(), str(path)))
    ]
    assert writers == ["deployments/services/stage_run.py"]
    source = inspect.getsource(StageRun.log)
    assert "self.redact(text)" in source and "LogLine.objects.create" in source
