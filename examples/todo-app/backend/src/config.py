"""Settings from the environment: the ConfigMap's plain values and the Secret's credentials.

LOG_LEVEL and ENVIRONMENT come from the ConfigMap; DATABASE_URL, JWT_SECRET and
OPENAI_API_KEY from the Secret. Secret values never reach a log line, a repr or a
response: `describe()` says only whether each one is set.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

LEVELS = {"critical", "error", "warning", "info", "debug"}


@dataclass(frozen=True)
class Settings:
    log_level: str = "info"
    environment: str = "development"
    database_url: str = field(default="", repr=False)
    jwt_secret: str = field(default="", repr=False)
    openai_api_key: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        level = env.get("LOG_LEVEL", "info").strip().lower() or "info"
        return cls(
            log_level=level if level in LEVELS else "info",
            environment=env.get("ENVIRONMENT", "development").strip() or "development",
            database_url=env.get("DATABASE_URL", "").strip(),
            jwt_secret=env.get("JWT_SECRET", ""),
            openai_api_key=env.get("OPENAI_API_KEY", ""),
        )

    @property
    def logging_level(self) -> int:
        return getattr(logging, self.log_level.upper())

    def describe(self) -> str:
        """One log line's worth of configuration, with every secret reduced to set/unset."""
        return (
            f"environment={self.environment} log_level={self.log_level} "
            f"database={database_location(self.database_url)} "
            f"jwt_secret={'set' if self.jwt_secret else 'unset'} "
            f"openai_api_key={'set' if self.openai_api_key else 'unset'}"
        )


def database_location(url: str) -> str:
    """host:port/dbname of a PostgreSQL URL: no user, password or query string."""
    if not url:
        return "unset"
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 5432
    except ValueError:
        return "set (unparsable)"
    if parts.scheme not in {"postgres", "postgresql"}:
        return "set (not a postgres:// URL)"
    return f"{host}:{port}{parts.path or '/'}"


def redact(text: str, url: str) -> str:
    """Remove the URL and its password from an error message before it is shown or logged."""
    if not url:
        return text
    text = text.replace(url, "<DATABASE_URL>")
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        text = text.replace(password, "***")
    return text
