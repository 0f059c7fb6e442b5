"""Image references as Docker reads them: the grammar of github.com/distribution/reference
v0.6.0 (regexp.go, reference.go, normalize.go), the parser behind `docker build -t`,
`docker tag` and the kubelet. The validators (deployments/validators.py) and the containerd
adapter read references through `parse_image_reference`."""

import re
from typing import NamedTuple

# reference := name [":" tag] ["@" digest]; name := [domain "/"] path.
_REF_ALNUM = r"[a-z0-9]+"
_REF_SEPARATOR = r"(?:[._]|__|-+)"  # one '.' or '_', two '_', any number of '-'
_REF_PATH_COMPONENT = rf"{_REF_ALNUM}(?:{_REF_SEPARATOR}{_REF_ALNUM})*"
_REF_PATH = rf"{_REF_PATH_COMPONENT}(?:/{_REF_PATH_COMPONENT})*"
_REF_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"  # uppercase: yes
_REF_HOST = rf"(?:{_REF_DOMAIN_COMPONENT}(?:\.{_REF_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_REF_DOMAIN = rf"{_REF_HOST}(?::[0-9]+)?"
_REF_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"  # Go's \w is ASCII only
_REF_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_REF_DOMAIN}/)?{_REF_PATH})"
    rf"(?::(?P<tag>{_REF_TAG}))?(?:@(?P<digest>{_REF_DIGEST}))?"
)
_REF_NAME = re.compile(rf"(?:(?P<domain>{_REF_DOMAIN})/)?(?P<path>{_REF_PATH})")
_REF_IDENTIFIER = re.compile(r"[a-f0-9]{64}")  # an image ID, never a name
# go-digest: the algorithms Docker registers, and the length of their lowercase hex.
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
IMAGE_PATH_MAX = 255  # reference.RepositoryNameTotalLengthMax: the path after normalizing
IMAGE_TAG = re.compile(_REF_TAG)


class ImageReference(NamedTuple):
    domain: str  # after Docker's normalizing: "docker.io" for a name without a registry
    path: str  # "library/python" for "python"
    tag: str  # "" when absent
    digest: str  # "" when absent


_REPOSITORY_HINT = (
    "lowercase letters and digits, parts joined by one '.' or '_', two '_' or dashes, "
    "separated by '/', optionally after a registry host[:port]"
)


def parse_image_reference(value):
    """A reference as Docker reads it (reference.ParseNormalizedNamed), or ValueError saying
    what is wrong. Docker-Hub names are normalized: "python" -> docker.io, library/python."""
    if not isinstance(value, str) or not value:
        raise ValueError("is required")
    if len(value) > 4 * IMAGE_PATH_MAX:  # bounds the regex work; far past any valid name
        raise ValueError(f"must be at most {IMAGE_PATH_MAX} characters")
    if _REF_IDENTIFIER.fullmatch(value):
        raise ValueError("is 64 hexadecimal characters, which Docker reads as an image ID")
    first, slash, rest = value.partition("/")
    if not slash:
        domain, remainder = "docker.io", "library/" + value
    elif first == "localhost" or ":" in first or "." in first or first.lower() != first:
        # a registry host; Docker Hub's legacy name is Docker Hub
        domain, remainder = ("docker.io" if first == "index.docker.io" else first), rest
    else:
        domain, remainder = "docker.io", value
    if domain == "docker.io" and "/" not in remainder:
        remainder = "library/" + remainder
    if remainder.split(":", 1)[0].lower() != remainder.split(":", 1)[0]:
        raise ValueError("has uppercase letters after the registry host; Docker allows none")
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None:
        raise ValueError(f"is not an image reference: {_REPOSITORY_HINT}")
    name = _REF_NAME.fullmatch(match["name"])
    assert name is not None  # the whole reference matched, so its name part does
    if len(name["path"]) > IMAGE_PATH_MAX:
        raise ValueError(
            f"has a repository path of {len(name['path'])} characters (Docker counts an implied "
            f"'library/' too); at most {IMAGE_PATH_MAX}"
        )
    digest = match["digest"] or ""
    if digest:
        algorithm, _, encoded = digest.partition(":")
        size = _DIGEST_HEX_LENGTHS.get(algorithm)
        if size is None or len(encoded) != size or not re.fullmatch(r"[a-f0-9]+", encoded):
            raise ValueError(
                "has a digest Docker cannot use: sha256 (64), sha384 (96) or sha512 (128) "
                "lowercase hex digits after the algorithm"
            )
    return ImageReference(name["domain"] or "", name["path"], match["tag"] or "", digest)
