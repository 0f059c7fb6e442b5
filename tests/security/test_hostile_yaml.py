"""Hostile profile YAML: each kind of attack is refused with a message naming the file or
the field, before anything is built or written, through the loader, the import page and
`manage.py import_profile`.

"Fast" is bounded work, not a stopwatch: the size limit is checked before the file is
decoded, depth and alias expansion are counted on PyYAML's event stream before any object
is constructed (deployments/profile_yaml.py), and unsafe tags have no constructor at all.
"""

import io

import pytest
from django.core.management import call_command

from deployments import profile_yaml
from deployments.models import AuditEvent, Profile
from deployments.services.profiles import profile_import
from deployments.spec import SpecError

VALID = "name: hostile\ncomponents: {web: {port: 80}}\n"


def laughs(levels=9):
    """The billion laughs: each anchor repeats the one before nine times (9**9 leaves)."""
    lines = ['l0: &l0 "lol"']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + f"\n{VALID}config: {{A: *l{levels}}}\n"


HOSTILE = {
    # what -> (YAML text, a part of the message that says why)
    "billion laughs": (laughs(), "expands to more than"),
    "anchor bomb as a value": (
        "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d]\n" + VALID + "description: *e\n",
        "expands to more than",
    ),
    "a self-referencing mapping": ("&a {name: *a}", "recursive"),
    "huge file": (VALID + "description: " + "x" * (300 * 1024) + "\n", "larger than 256 KiB"),
    "deep flow nesting": (VALID + "config: " + "[" * 100_000 + "]" * 100_000, "nests deeper"),
    "deep mapping nesting": ("a: " + "{a: " * 5_000 + "1" + "}" * 5_000, "nests deeper"),
    "deep block nesting": (
        "".join(" " * i + "a:\n" for i in range(600)) + " " * 600 + "1\n",
        "nests deeper",
    ),
    "python object tag": (
        "name: !!python/object/apply:os.system ['touch /tmp/pwn']\n",
        "could not determine a constructor",
    ),
    "python name tag": ("name: !!python/name:os.system\n", "could not determine a constructor"),
    "python module tag": ("name: !!python/module:os\n", "could not determine a constructor"),
    "custom tag": (VALID + "config: {A: !Ref x}\n", "could not determine a constructor"),
    "duplicate top-level key": (VALID + "name: other\n", "the key 'name' appears twice"),
    "duplicate nested key": (
        "name: a\ncomponents: {web: {port: 80, port: 8080}}\n",
        "the key 'port' appears twice",
    ),
    "merge key": (
        "b: &b {port: 80}\nname: a\ncomponents: {web: {<<: *b}}\n",
        "could not determine a constructor",
    ),
    "not UTF-8": (b"name: \xff\xfe\n", "is not UTF-8 text"),
    "number of 5000 digits": ("name: a\nreplicas: " + "9" * 5000 + "\n", "cannot convert"),
    "impossible date": ("name: 2023-02-30\n", "cannot convert"),
    "broken YAML": ("name: [unclosed\n", "is not valid YAML at line"),
    "a list, not a mapping": ("- name: a\n", "must be a mapping"),
    "an empty file": ("", "is empty"),
    "unknown top-level key": (VALID + "replicas: 3\n", "replicas: is not a known key"),
    "unknown component key": (
        "name: a\ncomponents: {web: {port: 80, command: [sh]}}\n",
        "command: is not a known key",
    ),
    "wrong type: components a list": (
        "name: a\ncomponents: [web]\n",
        "components: must be a mapping",
    ),
    "wrong type: port text": (
        "name: a\ncomponents: {web: {port: eighty}}\n",
        "components.web.port:",
    ),
    "wrong type: replicas a mapping": (
        "name: a\ncomponents: {web: {port: 80, replicas: {n: 1}}}\n",
        "components.web.replicas:",
    ),
    "wrong type: config value a list": (VALID + "config: {A: [1, 2]}\n", "config.A:"),
    "wrong type: secret inline": (VALID + "secrets: {S: hunter2}\n", "secrets.S: must be one of"),
    "wrong type: name a number": ("name: 12\ncomponents: {web: {port: 80}}\n", "name:"),
    "a key that is not text": (VALID + "config: {1: x}\n", "has a key that is not text"),
}


def _load_and_parse(text):
    return profile_import(data=profile_yaml.load(text), actor=None)


@pytest.mark.django_db
@pytest.mark.parametrize("what", HOSTILE)
def test_it_refuses_hostile_yaml_with_a_message(what):
    text, reason = HOSTILE[what]
    with pytest.raises(SpecError) as info:
        _load_and_parse(text.encode() if isinstance(text, str) else text)
    assert reason in str(info.value)
    assert all(error.path and error.message for error in info.value.errors)
    assert not Profile.objects.exists() and not AuditEvent.objects.exists()


@pytest.mark.parametrize("what", ["billion laughs", "deep flow nesting", "python object tag"])
def test_it_refuses_before_building_anything(what, monkeypatch):
    """Bounded work: the shape check stops these before PyYAML constructs an object."""
    import yaml

    built = []
    original = yaml.SafeLoader.construct_document
    monkeypatch.setattr(
        yaml.SafeLoader,
        "construct_document",
        lambda self, node: built.append(node) or original(self, node),
    )
    with pytest.raises(SpecError):
        profile_yaml.load(HOSTILE[what][0])
    assert built == [] or what == "python object tag"  # a tag fails in its constructor


def test_it_checks_the_size_before_decoding(monkeypatch):
    big = b"\xff" * (profile_yaml.MAX_BYTES + 1)  # not UTF-8 either: size is said first
    with pytest.raises(SpecError, match="larger than 256 KiB"):
        profile_yaml.load(big)


def test_it_still_loads_anchors_a_person_would_write():
    text = (
        "name: anchored\ncomponents:\n  web: {port: 80, resources: {requests: &r {cpu: 250m},"
        " limits: *r}}\n  api: {port: 81, resources: {requests: *r, limits: *r}}\n"
    )
    doc = profile_yaml.load(text)
    assert doc["components"]["api"]["resources"]["limits"] == {"cpu": "250m"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "what",
    [
        "billion laughs",
        "deep flow nesting",
        "duplicate nested key",
        "python object tag",
        "huge file",
        "unknown component key",
    ],
)
def test_it_refuses_hostile_uploads_on_the_import_page(login, what):
    text, reason = HOSTILE[what]
    upload = io.BytesIO(text.encode())
    upload.name = "hostile.yaml"
    response = login("admin").post("/profiles/import/", {"file": upload})
    assert response.status_code == 200
    assert reason.replace("'", "&#x27;") in response.content.decode()
    assert not Profile.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("what", ["billion laughs", "deep mapping nesting", "merge key"])
def test_it_refuses_hostile_files_on_the_command_line(tmp_path, capsys, what):
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE[what][0])
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_profile", str(path))
    assert exit_info.value.code == 2
    assert HOSTILE[what][1] in capsys.readouterr().err
    assert not Profile.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 50_000, "9" * 5000])
def test_it_reports_hostile_json_in_the_mapping_fields(login, text):
    """Build arguments and pod annotations are JSON in the forms; the json module recurses
    per level (RecursionError was a 500) and refuses huge integers (ValueError)."""
    from tests.deployments.test_views import component_data, form_data

    data = form_data(name="deep", components=[component_data()])
    data["components-0-build_args"] = text
    data["components-0-pod_annotations"] = text
    response = login("admin").post("/profiles/new/", data)
    assert response.status_code == 200
    assert response.content.count(b"Enter a valid JSON") >= 2
    assert not Profile.objects.filter(name="deep").exists()
