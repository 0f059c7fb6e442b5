"""YAML alias amplification: a small file whose anchors, repeated by aliases, expand to
far more text than the file holds. A 60 KB file with one 60,000-character
anchor named 400 times used to store a 24 MB profile.

Every shape an attacker would try is refused with the import's field message ("file:
expands to more than ...") through the loader and service, the import page and
`manage.py import_profile`, with nothing written (every row of every table compared) and
nothing composed or constructed: the expansion is counted on PyYAML's event stream,
each anchor's size once, so the refusal is bounded work whatever the aliases would build.
"""

import io
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from deployments import profile_yaml
from deployments.services.profiles import profile_import
from deployments.spec import SpecError
from tests.security.fuzzing import snapshot

HEAD = "name: amplified\ncomponents: {web: {port: 80}}\n"
BIG = "x" * 60_000


def scalar_x400():
    """The reported file: one anchor, 399 aliases, every one a config value of 60,000
    characters (each under the 64 KiB value limit, 400 under the 500-key limit)."""
    lines = [f'  A0: &big "{BIG}"'] + [f"  A{n}: *big" for n in range(1, 400)]
    return HEAD + "config:\n" + "\n".join(lines) + "\n"


def block_scalar_x100():
    body = "\n".join("    " + "y" * 99 for _ in range(300))  # a literal block of 30 KB
    lines = ["  A0: &big |\n" + body] + [f"  A{n}: *big" for n in range(1, 100)]
    return HEAD + "config:\n" + "\n".join(lines) + "\n"


def multibyte_x20():
    """Bytes, not characters: 20,000 three-byte characters are 60 KB stored."""
    lines = [f'  A0: &big "{"€" * 20_000}"'] + [f"  A{n}: *big" for n in range(1, 20)]
    return HEAD + "config:\n" + "\n".join(lines) + "\n"


def nested_sequences():
    """A sequence of two 20 KB scalars, repeated four times, repeated four times: 640 KB
    from 40 KB of text and a few dozen nodes (far under the node limit)."""
    return (
        f'a: &a ["{"p" * 20_000}", "{"q" * 20_000}"]\n'
        "b: &b [*a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b]\n" + HEAD + "description: *c\n"
    )


def component_mapping_x20():
    """A whole component (a mapping with 60 KB of annotations) named by 19 aliases: each
    alias would be stored as a component of its own."""
    comps = [f'  c0: &c {{port: 80, podAnnotations: {{note: "{BIG}"}}}}']
    comps += [f"  c{n}: *c" for n in range(1, 20)]
    return "name: amplified\ncomponents:\n" + "\n".join(comps) + "\n"


def merge_keys():
    """Mapping anchors pulled in through merge keys (`<<: *a`, `<<: [*a, *b]`)."""
    return (
        f'a: &a {{K1: "{BIG}", K2: "{BIG}"}}\n'
        f'b: &b {{K3: "{BIG}"}}\n' + HEAD + "config:\n  <<: [*a, *b]\n"
        "annotations:\n" + "".join(f"  x{n}: {{<<: *a}}\n" for n in range(4))
    )


def merge_key_chain():
    """Merge keys nesting merges: each level merges the one before twice."""
    lines = [f'm0: &m0 {{v: "{"z" * 10_000}"}}']
    lines += [f"m{n}: &m{n} {{<<: [*m{n - 1}, *m{n - 1}], k{n}: v}}" for n in range(1, 8)]
    return "\n".join(lines) + "\n" + HEAD + "config: {<<: *m7}\n"


def laughs(levels=9, leaf="lol"):
    """The billion laughs: each anchor repeats the one before nine times."""
    lines = [f'l0: &l0 "{leaf}"']
    lines += [f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + f"\n{HEAD}config: {{A: *l{levels}}}\n"


AMPLIFIED = {
    "scalar anchor x400 (the report)": scalar_x400(),
    "literal block scalar anchor x100": block_scalar_x100(),
    "multi-byte scalar anchor x20": multibyte_x20(),
    "nested sequence anchors": nested_sequences(),
    "a component mapping anchor x20": component_mapping_x20(),
    "mapping anchors via merge keys": merge_keys(),
    "merge keys merging merges": merge_key_chain(),
    "billion laughs, 9 levels": laughs(),
    "billion laughs, 4 levels of 1,000-byte leaves": laughs(4, "w" * 1000),
}


@pytest.fixture
def nothing_composed(monkeypatch):
    """Records every document PyYAML composes (the node graph) or constructs."""
    built = []
    compose = yaml.composer.Composer.compose_document
    construct = yaml.constructor.BaseConstructor.construct_document
    monkeypatch.setattr(
        yaml.composer.Composer,
        "compose_document",
        lambda self: built.append("compose") or compose(self),
    )
    monkeypatch.setattr(
        yaml.constructor.BaseConstructor,
        "construct_document",
        lambda self, node: built.append("construct") or construct(self, node),
    )
    return built


@pytest.mark.django_db
@pytest.mark.parametrize("what", AMPLIFIED)
def test_it_refuses_alias_amplification_before_building_anything(what, todo_app, nothing_composed):
    text = AMPLIFIED[what]
    assert len(text.encode()) < profile_yaml.MAX_BYTES  # each passes the file size limit
    before = snapshot()
    with pytest.raises(SpecError) as info:
        profile_import(data=profile_yaml.load(text.encode()), actor=None)
    [error] = info.value.errors
    assert error.path == "file"
    assert "expands to more than" in error.message, error.message
    assert nothing_composed == []
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "what",
    [
        "scalar anchor x400 (the report)",
        "nested sequence anchors",
        "mapping anchors via merge keys",
    ],
)
def test_it_refuses_alias_amplification_on_the_import_page(login, what, todo_app):
    client = login("admin")
    before = snapshot()
    upload = io.BytesIO(AMPLIFIED[what].encode())
    upload.name = "amplified.yaml"
    response = client.post("/profiles/import/", {"file": upload})
    assert response.status_code == 200
    page = response.content.decode()
    assert "file: expands to more than 256 KiB of text" in page
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    "what",
    [
        "scalar anchor x400 (the report)",
        "a component mapping anchor x20",
        "merge keys merging merges",
    ],
)
def test_it_refuses_alias_amplification_on_the_command_line(tmp_path, capsys, what, todo_app):
    path = tmp_path / "amplified.yaml"
    path.write_text(AMPLIFIED[what])
    before = snapshot()
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_profile", str(path))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{path}: file: expands to more than 256 KiB of text" in err
    assert snapshot() == before


def test_it_leaves_the_seed_profile_far_inside_the_expansion_cap():
    text = (Path(__file__).parents[2] / "examples/profiles/todo-app.yaml").read_text()
    nodes, size = profile_yaml.yaml_shape(text)
    assert size * 100 < profile_yaml.MAX_EXPANDED_BYTES
    assert nodes * 100 < profile_yaml.MAX_NODES


@pytest.mark.django_db
def test_it_imports_a_plain_file_at_the_size_limit():
    """Without aliases a file's scalars are never longer than the file: anything that
    passes the size limit passes the expansion cap (four 65,400-character values)."""
    values = "".join(f"  V{n}: {'v' * 65_400}\n" for n in range(4))
    text = HEAD + "config:\n" + values
    assert profile_yaml.MAX_BYTES - 2048 < len(text) <= profile_yaml.MAX_BYTES
    profile = profile_import(data=profile_yaml.load(text.encode()), actor=None)
    assert profile.config.count() == 4


@pytest.mark.django_db
def test_it_imports_anchors_a_person_would_write_across_many_components():
    """Shared resources and probes for twenty components, by anchor and merge-free alias."""
    comps = [
        "  c0: {port: 80, resources: &r {requests: {cpu: 250m, memory: 256Mi}}, "
        "probes: &p {liveness: {path: /health}, readiness: {path: /ready}}}"
    ]
    comps += [f"  c{n}: {{port: 80, resources: *r, probes: *p}}" for n in range(1, 20)]
    text = "name: shared\ncomponents:\n" + "\n".join(comps) + "\n"
    profile = profile_import(data=profile_yaml.load(text), actor=None)
    assert profile.components.count() == 20
