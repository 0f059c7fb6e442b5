"""Profile documents as YAML text: safe loading with clear errors, stable dumping."""

from dataclasses import dataclass

import yaml

from deployments.spec import FieldError, SpecError
from deployments.spec_rows import spec_from_profile

MAX_BYTES = 256 * 1024
# A profile is about six levels deep; PyYAML's composer and constructor recurse once per
# level, so a file of 100,000 "[" would end in RecursionError (a 500) without this cap.
MAX_DEPTH = 32
# Nodes after expanding every alias: a "billion laughs" file is small but names a few
# anchors that each repeat the last nine times; a real profile has a few hundred nodes.
MAX_NODES = 20_000
# Bytes of text (UTF-8, every scalar, keys included) after expanding every alias: what the
# import would store. One 60,000-character anchor named 400 times is 400 nodes but 24 MB.
# A scalar's value is never longer than its source text, so a file written out plainly
# (no aliases) holds at most MAX_BYTES of scalars and always fits; the seed's todo-app
# profile holds about 1 KiB. Aliases may repeat text, but not past what one file could say.
MAX_EXPANDED_BYTES = MAX_BYTES


@dataclass
class _Count:
    """An open collection's anchor and what it holds once expanded: values, bytes."""

    anchor: str | None
    nodes: int
    size: int


def _line(event):
    return event.start_mark.line + 1 if event.start_mark else "?"


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping with the same key twice (PyYAML keeps the last
    silently, so `port: 80` then `port: 8080` would hide a mistake)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str | int | float | bool):
                continue  # an unhashable key is reported by the spec parser
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _StrictLoader.construct_mapping
)


def load(text):
    """YAML text -> a Python document. Raises SpecError with a readable reason."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError([FieldError("file", f"is larger than {MAX_BYTES // 1024} KiB")])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError([FieldError("file", "is not UTF-8 text")]) from None
    if len(text) > MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise SpecError([FieldError("file", f"is larger than {MAX_BYTES // 1024} KiB")])
    try:
        yaml_shape(text)
        # SafeLoader builds plain dicts/lists/scalars only; yaml_shape capped depth and aliases.
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ValueError:  # an integer of more than 4300 digits, a date like 2023-02-30
        raise SpecError(
            [
                FieldError(
                    "file",
                    "holds a value YAML cannot convert (a number over 4300 digits or an "
                    "impossible date); quote it to make it text",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or "it is not valid YAML"
        raise SpecError([FieldError("file", f"is not valid YAML at {where}: {problem}")]) from None


def yaml_shape(text):
    """Refuse a document nested deeper than MAX_DEPTH, or larger than MAX_NODES values or
    MAX_EXPANDED_BYTES of text once its aliases are expanded, before anything is built.
    Walks PyYAML's event stream (its parser is iterative), counting each anchor's expanded
    size once: work stays linear in the text whatever the aliases name (scalars, nested
    sequences, mappings, merge keys). Returns the document's expanded (nodes, bytes).
    """
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (expanded nodes, expanded bytes)
    stack = [_Count(None, 0, 0)]  # the stream, then each open collection
    for event in yaml.parse(text, Loader=_StrictLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(stack) > MAX_DEPTH:
                raise SpecError(
                    [
                        FieldError(
                            "file",
                            f"nests deeper than {MAX_DEPTH} levels at line "
                            f"{_line(event)}; a profile needs about six",
                        )
                    ]
                )
            stack.append(_Count(event.anchor, 1, 0))
            continue
        anchor: str | None
        if isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            anchor, nodes, size = done.anchor, done.nodes, done.size
        elif isinstance(event, yaml.AliasEvent):
            anchor, (nodes, size) = None, sizes.get(event.anchor or "", (1, 0))
        elif isinstance(event, yaml.ScalarEvent):
            anchor, nodes = event.anchor, 1
            size = len(event.value.encode("utf-8", "surrogatepass"))
        else:
            continue
        if anchor:
            sizes[anchor] = (nodes, size)
        outer = stack[-1]
        outer.nodes += nodes
        outer.size += size
        if outer.nodes > MAX_NODES:
            raise SpecError(
                [
                    FieldError(
                        "file",
                        f"expands to more than {MAX_NODES} values (anchors and aliases "
                        "repeating each other); write the profile out plainly",
                    )
                ]
            )
        if outer.size > MAX_EXPANDED_BYTES:
            raise SpecError(
                [
                    FieldError(
                        "file",
                        f"expands to more than {MAX_EXPANDED_BYTES // 1024} KiB of text "
                        f"(aliases repeating an anchor, at line {_line(event)}); "
                        "a profile may repeat no more text than one file may hold: write "
                        "the repeated values out, or keep them shorter",
                    )
                ]
            )
    return stack[0].nodes, stack[0].size


def dump(profile):
    """The export document of a profile as YAML text (secret values never included)."""
    header = (
        f"# Helmdeck profile {profile.name}. Secrets list their source only; values stored in\n"
        "# Helmdeck are written as {stored: true} and kept when this file is imported again.\n"
    )
    return header + yaml.safe_dump(spec_from_profile(profile), sort_keys=False, allow_unicode=True)
