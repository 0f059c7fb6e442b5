"""Where the CLI keeps the panel's URL and the token: $HELMDECK_CONFIG, else
$XDG_CONFIG_HOME/helmdeck/config.json (~/.config/helmdeck/config.json), written 0600 in a
0700 folder and refused when others can read it. HELMDECK_URL and HELMDECK_TOKEN (a CI
job's secrets) take precedence over the file."""

import json
import os
import stat
import tempfile
import urllib.parse
from pathlib import Path


class ConfigError(Exception):
    pass


def plain_http_elsewhere(url):
    """Whether a token sent to `url` crosses a network unencrypted (http, not loopback)."""
    parts = urllib.parse.urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    return parts.scheme == "http" and not local


def path():
    if os.environ.get("HELMDECK_CONFIG"):
        return Path(os.environ["HELMDECK_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(Path.home(), ".config")
    return Path(base) / "helmdeck" / "config.json"


def check_url(url):
    """The panel's base URL, or ConfigError saying what is wrong with it."""
    try:
        parts = urllib.parse.urlsplit(url or "")
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError as exc:
        raise ConfigError(f"{url!r} is not a URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL, e.g. https://helmdeck.example.org")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError("the URL takes no query, fragment or user:password part")
    return url.rstrip("/")


def load():
    """(url, token) from the environment or from the file, never one from each (a token
    saved for one panel must not travel to the address of another); ConfigError when
    neither has them."""
    url, token = os.environ.get("HELMDECK_URL"), os.environ.get("HELMDECK_TOKEN")
    if bool(url) != bool(token):
        raise ConfigError("set both HELMDECK_URL and HELMDECK_TOKEN, or neither")
    if not url:
        file = path()
        if file.exists():
            mode = file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigError(
                    f"{file} can be read by other users (mode {stat.S_IMODE(mode):o}); "
                    f"chmod 600 {file}, or log in again"
                )
            try:
                saved = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"{file} cannot be read ({exc}); log in again") from None
            url, token = saved.get("url"), saved.get("token")
    if not (url and token):
        raise ConfigError(
            "not logged in: run `helmdeck login URL` (or set HELMDECK_URL and HELMDECK_TOKEN)"
        )
    return check_url(url), token


def save(url, token):
    """Write the file 0600 (created so, never wider for a moment), replacing it at once."""
    file = path()
    file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(file.parent, 0o700)  # a folder that was there already, maybe wider
    fd, temporary = tempfile.mkstemp(dir=file.parent, prefix=".config-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"url": url, "token": token}, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, file)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    return file
