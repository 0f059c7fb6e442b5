"""Build sources: where a component's image may be built from.

A build context is a folder inside one of HELMDECK_SOURCE_ROOTS and never
the panel's own checkout, state or key files; its Dockerfile is a regular file inside it.
Both rules hold after every symlink is followed. Profiles are checked when they are saved
(services.profiles) and again right before each build (the filesystem may have changed).
"""

import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from deployments.validators import validate_relative_path


@dataclass(frozen=True)
class BuildSource:
    context: Path  # absolute, symlinks resolved
    dockerfile: str  # relative to `context`, symlinks resolved


def _real(path):
    """`path` with every symlink followed; None when that cannot be done (a loop)."""
    try:
        real = os.path.realpath(path, strict=False)
    except (OSError, ValueError):
        return None
    return None if os.path.islink(real) else Path(real)


def _panel_paths():
    """(paths a build may not contain, paths it may not be inside): the checkout, the state
    folder, the key file and an SQLite database, wherever they are configured."""
    checkout, state = Path(settings.BASE_DIR), Path(settings.STATE_DIR)
    env_file = Path(getattr(settings, "HELMDECK_ENV_FILE", checkout / ".env"))
    files = [env_file]
    database = settings.DATABASES["default"]
    if database.get("ENGINE", "").endswith("sqlite3") and database.get("NAME"):
        files.append(Path(str(database["NAME"])))
    contained = [p for p in map(_real, [checkout, state, *files]) if p is not None]
    inside = [p for p in map(_real, [state, *files]) if p is not None]
    return contained, inside


def _holds_panel_files(path, panel):
    contained, inside = panel
    return any(p.is_relative_to(path) for p in contained) or any(
        path.is_relative_to(p) for p in inside
    )


def source_roots(panel=None):
    """([usable root, ...], [configured roots ignored because they hold the panel's files]);
    `panel` is _panel_paths() when the caller has it already."""
    project, panel = Path(settings.HELMDECK_PROJECT_DIR), panel or _panel_paths()
    usable, ignored = [], []
    for entry in settings.HELMDECK_SOURCE_ROOTS:
        root = _real(project / entry) if entry else None
        if root is None or _holds_panel_files(root, panel):
            ignored.append(str(entry))
        else:
            usable.append(root)
    return usable, ignored


def _source_error(field, message):
    return ValidationError(message, code=field)


def build_source(context, dockerfile, *, must_exist=False):
    """Resolve a component's build context and Dockerfile, or raise ValidationError whose
    `code` is the field at fault ("context" or "dockerfile"). `must_exist` (at build time)
    also requires both to exist; when saving, a path not created yet is accepted if it
    would resolve inside a source root."""
    for field, value in (("context", context), ("dockerfile", dockerfile)):
        try:
            validate_relative_path(
                value,
                example="Dockerfile" if field == "dockerfile" else "examples/todo-app/backend",
            )
        except ValidationError as exc:
            raise _source_error(field, " ".join(exc.messages)) from None
    panel = _panel_paths()
    roots, ignored = source_roots(panel)
    where = ", ".join(settings.HELMDECK_SOURCE_ROOTS) or "none"
    folder = _real(Path(settings.HELMDECK_PROJECT_DIR) / context)
    if folder is None or _holds_panel_files(folder, panel):
        raise _source_error(
            "context",
            "must not be or hold the panel's own files (its checkout, state folder "
            "or key file); build from a folder inside a source root (HELMDECK_SOURCE_ROOTS)",
        )
    if not any(folder.is_relative_to(root) for root in roots):
        note = f"; ignored: {', '.join(ignored)}, which hold the panel's files" if ignored else ""
        raise _source_error(
            "context",
            f"must be a folder inside a source root (HELMDECK_SOURCE_ROOTS: "
            f"{where}{note}), following symlinks, e.g. examples/todo-app/backend",
        )
    if folder.exists() and not folder.is_dir():
        raise _source_error("context", "must be a folder, not a file")
    if must_exist and not folder.is_dir():
        raise _source_error("context", "does not exist (no such folder under the source roots)")
    file = _real(folder / dockerfile)
    if file is None or file == folder or not file.is_relative_to(folder):
        raise _source_error(
            "dockerfile",
            "must be a file inside the build context, following symlinks, e.g. Dockerfile",
        )
    if file.exists() and not file.is_file():
        raise _source_error(
            "dockerfile",
            "must be a regular file inside the build context, "
            "not a folder or a device, e.g. Dockerfile",
        )
    if must_exist and not file.is_file():
        raise _source_error("dockerfile", "does not exist in the build context, e.g. Dockerfile")
    return BuildSource(context=folder, dockerfile=str(file.relative_to(folder)))
