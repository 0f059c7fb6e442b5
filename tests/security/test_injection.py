"""Shell, YAML and Go-template injection: crafted names, tags, config values, secrets,
annotations and build arguments reach helm and docker only as data.

Names and tags are refused by the validators (asserted below, with the field's message).
Free text (config values, secret values, pod annotation values, build argument values) is
accepted, so for those the proof is end to end: helm is run with an argv list and no shell,
the text travels in a values file, and `helm template` on the real chart renders it back
literally, while the side-effect file the payloads try to create never appears.
"""

import ast
import base64
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from deployments.integrations import docker as docker_adapter
from deployments.integrations import helm as helm_adapter
from deployments.integrations.helm import Helm
from deployments.services.rendering import spec_render
from deployments.spec import SpecError, parse_spec

ROOT = Path(__file__).resolve().parents[2]
MARKER = Path(f"/tmp/helmdeck-pwn-{uuid.uuid4().hex}")
SHELL = [
    f"$(touch {MARKER})",
    f"`touch {MARKER}`",
    f"; touch {MARKER}",
    f"| touch {MARKER}",
    f"&& touch {MARKER} #",
    "${HOME}",
    '\'"; touch x; echo "',
]
YAML = [
    "a: b",
    "\n- injected: true",
    "key: value\nother: 1",
    "{{",
    "}}",
    "&anchor x",
    "*alias",
    "!!python/object/apply:os.system ['id']",
    "--- \nkind: Secret",
    "# comment",
    "'",
    '"',
]
TEMPLATE = [
    '{{ .Files.Get "Chart.yaml" }}',
    '{{ lookup "v1" "Secret" "kube-system" "" }}',
    '{{ include "app.fullname" . }}',
    "{{ .Release.Name }}",
    '{{ required "x" "" }}',
    "{{/* comment */}}",
    '{{ fail "boom" }}',
    "{{ .Values | toYaml }}",
]
PAYLOADS = SHELL + YAML + TEMPLATE


# ---- no shell anywhere ----------------------------------------------------------------------


def _python_files():
    for folder in ("deployments", "controlpanel", "scripts"):
        yield from (ROOT / folder).rglob("*.py")
    yield ROOT / "manage.py"


def _shell_uses(tree):
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "shell" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                yield node.lineno, "shell= other than False"
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("system", "popen", "getoutput", "getstatusoutput", "spawnlp", "execlp"):
            yield node.lineno, f"{name}()"
        owner = getattr(getattr(func, "value", None), "id", "")
        if (
            owner == "subprocess"
            and name in ("run", "Popen", "check_output", "check_call", "call")
            and node.args
        ):
            first = node.args[0]
            if isinstance(first, ast.Constant | ast.JoinedStr | ast.BinOp):
                yield node.lineno, f"{name}() with a command string"


def test_it_starts_no_process_through_a_shell():
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in _python_files()
        for line, what in _shell_uses(ast.parse(path.read_text(), str(path)))
    ]
    assert found == []


def test_the_scan_would_find_a_shell():
    tree = ast.parse("import os, subprocess\nsubprocess.run('ls', shell=True)\nos.system('x')\n")
    assert [what for _, what in _shell_uses(tree)] == [
        "shell= other than False",
        "run() with a command string",
        "system()",
    ]


# ---- names and tags: refused with a field message --------------------------------------------

BASE = {"name": "inj", "components": {"web": {"port": 80}}}


def _with(path, value):
    doc = yaml.safe_load(yaml.safe_dump(BASE))
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    if last == "<key>":
        node.update({value: "x"})
    else:
        node[last] = value
    return doc


NAMED_FIELDS = {
    "name": "name",
    "namespace": "namespace",
    "components.web.image": "components.web.image",
    "components.web.tag": "components.web.tag",
    "components.web.build.context": "components.web.build.context",
    "components.web.build.dockerfile": "components.web.build.dockerfile",
    "components.web.probes.liveness.path": "components.web.probes.liveness.path",
    "config.<key>": "config.",
    "components.web.podAnnotations.<key>": "components.web.podAnnotations.",
    "components.web.build.args.<key>": "components.web.build.",
}


@pytest.mark.parametrize("field", NAMED_FIELDS)
@pytest.mark.parametrize(
    "payload", [p for p in PAYLOADS if p.strip()], ids=lambda p: str(PAYLOADS.index(p))
)
def test_it_refuses_payloads_in_names_tags_keys_and_paths(field, payload):
    doc = _with(field, payload)
    if field == "components.web.build.dockerfile":
        doc["components"]["web"]["build"]["context"] = "examples/todo-app/backend"
    with pytest.raises(SpecError) as info:
        parse_spec(doc, cluster_names={"minikube"})
    prefix = NAMED_FIELDS[field]
    assert any(e.path.startswith(prefix) and e.message for e in info.value.errors), (
        info.value.errors
    )


def test_it_refuses_payloads_as_secret_keys_and_variable_names():
    for payload in PAYLOADS:
        doc = {**BASE, "secrets": {payload: {"value": "x"}, "OK": {"fromEnv": payload}}}
        with pytest.raises(SpecError) as info:
            parse_spec(doc, cluster_names={"minikube"})
        paths = [e.path for e in info.value.errors]
        assert any(p.startswith("secrets.") and p != "secrets.OK.fromEnv" for p in paths)
        assert "secrets.OK.fromEnv" in paths


# ---- free text: data all the way through helm -----------------------------------------------


def free_text_spec():
    """A profile whose every free-text field holds a payload: config values, pod annotation
    values, build argument values, a probe path with the characters its rule allows."""
    config = {f"P{n}": payload for n, payload in enumerate(PAYLOADS)}
    annotations = {f"example.com/p{n}": payload for n, payload in enumerate(PAYLOADS)}
    args = {f"ARG_{n}": payload for n, payload in enumerate(SHELL + TEMPLATE)}  # at most 20
    doc = {
        "name": "inj",
        "description": "\n".join(PAYLOADS),
        "components": {
            "web": {
                "port": 80,
                "build": {"context": "examples/todo-app/backend", "args": args},
                "podAnnotations": annotations,
                "probes": {"liveness": {"path": f"/$(touch{MARKER});x&y*z!'@:,"}},
            }
        },
        "config": config,
        "secrets": {f"S{n}": {"value": payload} for n, payload in enumerate(PAYLOADS)},
    }
    return parse_spec(doc, cluster_names={"minikube"})  # accepted: it is all data


class Spy:
    """Records every process helm's adapter starts (subprocess.run goes through Popen), the
    -f files as they were then, and what `run` returned."""

    def __init__(self, monkeypatch):
        self.calls = []
        popen, run = subprocess.Popen, subprocess.run

        def spy_popen(argv, *args, **kwargs):
            files = {  # the values files (the chart itself may live under /tmp in a clone)
                a: Path(a).read_text()
                for a in argv[1:]
                if str(a).startswith("/tmp/") and Path(a).is_file()
            }
            self.calls.append({"argv": argv, "kwargs": kwargs, "files": files, "stdout": ""})
            return popen(argv, *args, **kwargs)

        def spy_run(argv, *args, **kwargs):
            result = run(argv, *args, **kwargs)
            # lint and template run side by side: find this run's own call
            call = next(c for c in reversed(self.calls) if c["argv"] is argv)
            call["stdout"] = result.stdout
            return result

        monkeypatch.setattr(helm_adapter.subprocess, "Popen", spy_popen)
        monkeypatch.setattr(helm_adapter.subprocess, "run", spy_run)


def _leaves(node):
    if isinstance(node, dict):
        return set().union(*map(_leaves, node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*map(_leaves, node)) if node else set()
    return {node}


@pytest.mark.integration
def test_it_renders_payloads_literally_through_the_real_chart(helm_bin, monkeypatch):
    assert not MARKER.exists()
    spec = free_text_spec()
    secrets = {key: source["value"] for key, source in spec["secrets"].items()}
    spy = Spy(monkeypatch)
    rendered = spec_render(
        spec=spec, keys=list(secrets), helm=Helm(binary=helm_bin), secrets=secrets
    )
    assert rendered.ok, rendered.problems
    assert not MARKER.exists()

    calls = [c for c in spy.calls if c["argv"][1:2] != ["version"]]
    assert sorted(c["argv"][1] for c in calls) == ["lint", "template"]  # run side by side
    for call in calls:
        assert isinstance(call["argv"], list) and all(isinstance(a, str) for a in call["argv"])
        assert not call["kwargs"].get("shell")
        for payload in PAYLOADS:
            assert not any(payload in arg for arg in call["argv"][1:]), (payload, call["argv"])
        leaves = set()
        for text in call["files"].values():
            leaves |= _leaves(yaml.safe_load(text))
        assert set(PAYLOADS) <= leaves  # the values travel in files, as YAML data

    # lint and template run side by side: either may finish last, so pick template by name
    (template,) = [c for c in calls if c["argv"][1] == "template"]
    docs = [d for d in yaml.safe_load_all(template["stdout"]) if d]
    by_kind = {d["kind"]: d for d in docs}
    assert by_kind["ConfigMap"]["data"] == {f"P{n}": p for n, p in enumerate(PAYLOADS)}
    decoded = {k: base64.b64decode(v).decode() for k, v in by_kind["Secret"]["data"].items()}
    assert decoded == {f"S{n}": p for n, p in enumerate(PAYLOADS)}
    pod = by_kind["Deployment"]["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    for n, payload in enumerate(PAYLOADS):
        assert annotations[f"example.com/p{n}"] == payload
    probe = pod["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"]
    assert probe == spec["components"][0]["probes"]["liveness"]["path"]
    text = template["stdout"]
    assert "apiVersion: v2" not in text  # .Files.Get was not evaluated
    assert not any(
        d["kind"] not in ("ConfigMap", "Secret", "Service", "Deployment") for d in docs
    )  # "--- kind: Secret" made no document of its own


def test_it_hands_build_arguments_to_docker_as_a_mapping(monkeypatch, tmp_path):
    spec = free_text_spec()
    args = spec["components"][0]["build"]["args"]
    seen = {}

    class FakeApi:
        def _stream_helper(self, response, decode=False):  # the adapter wraps this one
            return response

        def build(self, **kwargs):
            seen.update(kwargs)
            return iter([{"aux": {"ID": "sha256:abc"}}])

    class FakeClient:
        api = FakeApi()

        def close(self):
            pass

    monkeypatch.setattr(docker_adapter, "docker_client", lambda cluster: FakeClient())
    image = docker_adapter.build_image(
        None,
        context=tmp_path,
        dockerfile="Dockerfile",
        tag="inj-web:1",
        buildargs=args,
        on_line=lambda _: None,
        should_stop=lambda: False,
    )
    assert image == "sha256:abc"
    assert seen["buildargs"] == args and seen["buildargs"] is not None
    assert set(seen) >= {"path", "dockerfile", "tag", "buildargs"}
    assert not MARKER.exists()
