"""Tests run on real PostgreSQL: a throwaway database per session, made from DATABASE_URL.

DATABASE_URL (default postgres://helmdeck:helmdeck@127.0.0.1:5432/helmdeck) must name a
role with CREATEDB; the session creates todo_test_<pid> next to it and drops it afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from src.config import Settings
from src.main import create_app

ADMIN_URL = os.environ.get("DATABASE_URL", "postgres://helmdeck:helmdeck@127.0.0.1:5432/helmdeck")


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"todo_test_{os.getpid()}"
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL at DATABASE_URL is not answering: {error}", pytrace=False)
    with admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(ADMIN_URL, name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        jwt_secret="jwt-secret-value-never-logged",
        openai_api_key="sk-openai-value-never-logged",
    )


@pytest.fixture
def client(settings: Settings, database_url: str) -> Iterator[TestClient]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS todos")
    with TestClient(create_app(settings)) as test_client:
        yield test_client
