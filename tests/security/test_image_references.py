"""Image references as Docker reads them: a repository Docker's
reference grammar refuses used to import fine and fail only at `docker build`.

The tables come from github.com/distribution/reference v0.6.0 (reference_test.go,
normalize_test.go, regexp.go) and from `docker build -t` of Docker CLI 28: what it refuses
before reaching the daemon. deployments/validators.py is the one implementation; the YAML
import, the profile form and the admin reach it through the model and the spec parser.
The property at the end checks the validators against a separate transcription of the
grammar's EBNF (reference.go's package comment) and of normalize.go's rules.
"""

import io
import re

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from deployments import profile_yaml
from deployments import validators as v
from deployments.models import Component
from deployments.services.profiles import profile_import
from deployments.spec import SpecError
from tests.security.fuzzing import budget, snapshot

SHA256 = "sha256:" + "f" * 64

VALID_REPOSITORIES = [
    "todo-backend",
    "team/app",
    "test_com",
    "localhost/app",
    "localhost:5000/a/b",
    "test:5000/repo",
    "test.com/repo",
    "sub-dom1.foo.com/bar/baz/quux",
    "b.gcr.io/test.example.com/my-app",
    "xn--n3h.com/myimage",
    "foo/foo_bar.com",
    "192.168.1.1/repo",
    "192.168.1.1:5000/repo",
    "[2001:db8::1]/repo",
    "[2001:db8:1:2:3:4:5:6]/repo",
    "[2001:db8::1]:5000/repo",
    "[::1]:5000/repo",
    "Registry.Local:5000/team/app",  # a domain may hold uppercase letters
    "MyTeam/app",  # uppercase first part: Docker reads a registry host
    "index.docker.io/app",
    "a__b",
    "a---b",
    "a.b_c-d/e__f",
    "a" * 247,  # docker.io/library/ + 247: the path is exactly 255
    "reg.io/" + "a" * 248,  # 255 characters in all (Helmdeck's column)
    "a/" * 100 + "a",
]

INVALID_REPOSITORIES = {
    # value -> a fragment of the message
    "App": "uppercase",
    "UPPER": "uppercase",
    "team/App": "uppercase",
    "test:5000/Uppercase/lowercase": "uppercase",
    "reg.io/Team/app": "uppercase",
    "a//b": "not an image reference",
    "a/": "not an image reference",
    "/a": "not an image reference",
    "a-": "not an image reference",
    "-a": "not an image reference",
    "a..b": "not an image reference",
    "a___b": "not an image reference",
    "a.-b": "not an image reference",
    "a_-b": "not an image reference",
    "a._b": "not an image reference",
    "a/.b": "not an image reference",
    "aa/asdf$$^/aa": "not an image reference",
    "reg.io:port/app": "not an image reference",
    "reg.io:/app": "not an image reference",
    "-reg.io/app": "not an image reference",
    "reg-.io/app": "not an image reference",
    "reg..io/app": "not an image reference",
    "reg_io.com:5000/app": "not an image reference",
    "[2001:db8::1]": "not an image reference",
    "[fe80::1%eth0]:5000/repo": "not an image reference",
    "[::1/app": "not an image reference",
    "[::g]/app": "not an image reference",
    "ａpp": "not an image reference",  # fullwidth letter
    "café": "not an image reference",
    "app:1.0": "repository only",
    "test.com:5000": "repository only",  # Docker reads library/test.com, tag 5000
    "app@" + SHA256: "repository only",
    "0123456789abcdef" * 4: "image ID",
    "a" * 248: "at most 255",  # docker.io/library/ + 248 = 256
    "a/" * 127 + "aa": "at most 255",
    "reg.io/" + "a" * 249: "at most 255",  # the column holds 255
    "x" * 10_000: "at most 255",
}

VALID_TAGS = ["1.0.0", "latest", "v2_rc-1", "_x", "Uppercase", "A" * 128, "0"]
INVALID_TAGS = [".1", "-x", "A" * 129, "1.0:0", "a/b", "a@b", "ä", "１", "a b", "a\n"]

VALID_REFERENCES = [
    "test:5000/repo@" + SHA256,
    "test:5000/repo:tag@" + SHA256,
    "[2001:db8::1]:5000/repo:tag@" + SHA256,
    "xn--7o8h.com/myimage:xn--7o8h.com@sha512:" + "f" * 128,
    "a@sha384:" + "0" * 96,
    "lowercase:Uppercase",
    "test.com:tag",
    "192.168.1.1:5000/repo:5050",
    "a/" * 127 + "a:tag-puts-this-over-max",  # the tag does not count
    "example.com/" + "a" * 255 + ":tag",  # the domain does not count (v0.6.0)
]

INVALID_REFERENCES = {
    ":justtag": "not an image reference",
    "@" + SHA256: "not an image reference",
    "repo@sha256:" + "f" * 34: "digest",
    "repo@sha256:" + "f" * 63: "digest",
    "repo@sha256:" + "F" * 64: "digest",
    "validname@invaliddigest:" + "f" * 64: "digest",
    "repo@md5:" + "f" * 32: "digest",
    "repo@sha256:" + "f" * 31: "not an image reference",
    "repo@sha256+b64:" + "f" * 64: "digest",
    "Uppercase:tag": "uppercase",
    "domain/" + "a" * 256 + ":tag": "at most 255",
    "repo:" + "t" * 129: "not an image reference",
    "repo:.tag": "not an image reference",
    "": "is required",
}


@pytest.mark.parametrize("value", VALID_REPOSITORIES)
def test_it_accepts_repositories_docker_accepts(value):
    v.validate_image_repository(value)


@pytest.mark.parametrize("value", INVALID_REPOSITORIES)
def test_it_refuses_repositories_docker_refuses_saying_why(value):
    with pytest.raises(ValidationError) as info:
        v.validate_image_repository(value)
    message = " ".join(info.value.messages)
    assert INVALID_REPOSITORIES[value] in message, message
    assert "e.g." in message or "at most" in message


@pytest.mark.parametrize("value", VALID_TAGS)
def test_it_accepts_tags_docker_accepts(value):
    v.validate_image_tag(value)


@pytest.mark.parametrize("value", INVALID_TAGS)
def test_it_refuses_tags_docker_refuses(value):
    with pytest.raises(ValidationError):
        v.validate_image_tag(value)


@pytest.mark.parametrize("value", VALID_REFERENCES)
def test_it_accepts_whole_references_docker_accepts(value):
    v.validate_image_reference(value)


@pytest.mark.parametrize("value", INVALID_REFERENCES)
def test_it_refuses_whole_references_docker_refuses(value):
    with pytest.raises(ValidationError) as info:
        v.validate_image_reference(value)
    assert INVALID_REFERENCES[value] in " ".join(info.value.messages)


@pytest.mark.parametrize(
    ("value", "domain", "path"),
    [
        ("python", "docker.io", "library/python"),
        ("team/app", "docker.io", "team/app"),
        ("index.docker.io/app", "docker.io", "library/app"),
        ("MyTeam/app", "MyTeam", "app"),
        ("localhost/app", "localhost", "app"),
        ("[::1]:5000/a/b", "[::1]:5000", "a/b"),
    ],
)
def test_it_normalizes_names_as_docker_does(value, domain, path):
    reference = v.parse_image_reference(value)
    assert (reference.domain, reference.path) == (domain, path)


BAD_THROUGH_THE_PRODUCT = ["a" * 248, "0123456789abcdef" * 4, "team/App", "a//b", "app:1.0"]


@pytest.mark.django_db
@pytest.mark.parametrize("image", BAD_THROUGH_THE_PRODUCT)
def test_it_refuses_the_image_on_yaml_import_and_stores_nothing(image, todo_app):
    text = f"name: imaged\ncomponents: {{web: {{port: 80, image: '{image}'}}}}\n"
    before = snapshot()
    with pytest.raises(SpecError) as info:
        profile_import(data=profile_yaml.load(text), actor=None)
    assert [error.path for error in info.value.errors] == ["components.web.image"]
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("image", BAD_THROUGH_THE_PRODUCT[:3])
def test_it_refuses_the_image_on_the_import_page(login, image, todo_app):
    client = login("admin")
    before = snapshot()
    upload = io.BytesIO(
        f"name: imaged\ncomponents: {{web: {{port: 80, image: '{image}'}}}}\n".encode()
    )
    upload.name = "imaged.yaml"
    response = client.post("/profiles/import/", {"file": upload})
    assert response.status_code == 200
    assert "components.web.image:" in response.content.decode()
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("image", BAD_THROUGH_THE_PRODUCT[:3])
def test_it_refuses_the_image_in_the_profile_form(login, image, todo_app):
    from tests.deployments.test_views import component_data, form_data

    client = login("admin")
    before = snapshot()
    data = form_data(name="imaged", components=[component_data(image=image)])
    response = client.post("/profiles/new/", data)
    assert response.status_code == 200
    assert "The profile was not saved" in response.content.decode()
    assert snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("image", BAD_THROUGH_THE_PRODUCT[:3])
def test_it_refuses_the_image_on_the_model_the_admin_saves(image, todo_app):
    component = todo_app.components.first()
    component.image = image
    with pytest.raises(ValidationError) as info:
        component.full_clean()
    assert "image" in info.value.message_dict
    assert Component.objects.get(pk=component.pk).image != image


@pytest.mark.django_db
def test_it_imports_an_ipv6_registry_host():
    text = "name: six\ncomponents: {web: {port: 80, image: '[::1]:5000/team/web'}}\n"
    profile = profile_import(data=profile_yaml.load(text), actor=None)
    assert profile.components.get().image == "[::1]:5000/team/web"


# --- the property: a separate transcription of the grammar -----------------------------
# reference.go's EBNF, written out again from the comment (not from validators.py).
_ALPHA_NUMERIC = "[a-z0-9]+"
_SEP = "(?:[_.]|__|[-]+)"
_COMPONENT = f"{_ALPHA_NUMERIC}(?:{_SEP}{_ALPHA_NUMERIC})*"
_DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
SPEC_NAME = re.compile(rf"(?:({_DOMAIN})/)?({_COMPONENT}(?:/{_COMPONENT})*)", re.ASCII)
SPEC_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}", re.ASCII)


def spec_accepts_repository(value):
    """normalize.go's ParseNormalizedNamed for a name alone, then reference.go's Parse."""
    if re.fullmatch("[a-f0-9]{64}", value):
        return False
    if "/" in value:
        head = value.split("/", 1)[0]
        is_domain = head == "localhost" or any(c in head for c in ".:") or head.lower() != head
        name = value if is_domain else "docker.io/" + value
    else:
        name = "docker.io/library/" + value
    if name.startswith("index.docker.io/"):
        name = "docker.io/" + name[len("index.docker.io/") :]
        if name.count("/") == 1:
            name = "docker.io/library/" + name[len("docker.io/") :]
    match = SPEC_NAME.fullmatch(name)
    return bool(match) and len(match[2]) <= 255


ATOMS = ["a", "b1", "z", "0", "Q", "xn--n3h", "localhost", "[::1]", "[fe80::a]", "[g::1]"]
SEPARATORS = [".", "_", "__", "___", "-", "--", "/", "//", ":", ":5000", "@", ":x", "..", "%"]
candidates = st.lists(st.sampled_from(ATOMS + SEPARATORS), min_size=1, max_size=12).map("".join)
candidates |= st.text(alphabet="aZ09._-/:[]@", min_size=1, max_size=20)
candidates |= st.integers(230, 262).map(lambda n: "a" * n)


def _accepted(validator, value):
    try:
        validator(value)
    except ValidationError:
        return False
    return True


@budget(0.25)
@given(repository=candidates, tag=st.sampled_from(VALID_TAGS + INVALID_TAGS))
def test_it_accepts_exactly_what_the_grammar_accepts(repository, tag):
    accepted = _accepted(v.validate_image_repository, repository)
    spec = spec_accepts_repository(repository) and len(repository) <= v.IMAGE_REPOSITORY_MAX
    assert accepted == spec, repository
    assert _accepted(v.validate_image_tag, tag) == bool(SPEC_TAG.fullmatch(tag))
    if accepted and _accepted(v.validate_image_tag, tag):
        # what the build stage hands Docker: repository:tag
        v.validate_image_reference(f"{repository}:{tag}")
