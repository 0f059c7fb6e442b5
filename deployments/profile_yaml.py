"""Profile documents as YAML text: safe loading with clear errors, stable dumping."""

import yaml

from deployments.spec import FieldError, SpecError, spec_from_profile

MAX_BYTES = 256 * 1024


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
                    None, None, f"the key {key!r} appears twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                              _StrictLoader.construct_mapping)


def load(text):
    """YAML text -> a Python document. Raises SpecError with a readable reason."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise SpecError([FieldError("file", f"is larger than {MAX_BYTES // 1024} KiB")])
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError([FieldError("file", "is not UTF-8 text")]) from None
    if len(text) > MAX_BYTES:
        raise SpecError([FieldError("file", f"is larger than {MAX_BYTES // 1024} KiB")])
    try:
        # SafeLoader builds plain dicts/lists/scalars only; aliases are capped by the size limit.
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ValueError:  # an integer of more than 4300 digits, a date like 2023-02-30
        raise SpecError([FieldError(
            "file", "holds a value YAML cannot convert (a number over 4300 digits or an "
                    "impossible date); quote it to make it text")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        problem = getattr(exc, "problem", None) or "it is not valid YAML"
        raise SpecError([FieldError("file", f"is not valid YAML at {where}: {problem}")]) from None


def dump(profile):
    """The export document of a profile as YAML text (secret values never included)."""
    header = (
        f"# Helmdeck profile {profile.name}. Secrets list their source only; values stored in\n"
        "# Helmdeck are written as {stored: true} and kept when this file is imported again.\n"
    )
    return header + yaml.safe_dump(spec_from_profile(profile), sort_keys=False, allow_unicode=True)
