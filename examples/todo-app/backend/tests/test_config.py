import logging

from fastapi.testclient import TestClient

from src.config import Settings, database_location, redact
from src.main import create_app


def test_it_reads_the_configmap_and_secret_keys_from_the_environment():
    settings = Settings.from_env(
        {
            "LOG_LEVEL": "DEBUG",
            "ENVIRONMENT": "staging",
            "DATABASE_URL": "postgres://u:p@db:5432/todo",
            "JWT_SECRET": "j",
            "OPENAI_API_KEY": "k",
        }
    )
    assert settings.log_level == "debug"
    assert settings.logging_level == logging.DEBUG
    assert settings.environment == "staging"
    assert (settings.database_url, settings.jwt_secret, settings.openai_api_key) == (
        "postgres://u:p@db:5432/todo",
        "j",
        "k",
    )


def test_it_defaults_and_ignores_an_unknown_log_level():
    settings = Settings.from_env({"LOG_LEVEL": "chatty"})
    assert (settings.log_level, settings.environment, settings.database_url) == (
        "info",
        "development",
        "",
    )


def test_it_keeps_secrets_out_of_repr_and_describe():
    settings = Settings(
        database_url="postgres://u:pw-123@db/todo", jwt_secret="jwt-abc", openai_api_key="sk-xyz"
    )
    for text in (repr(settings), settings.describe()):
        for secret in ("pw-123", "jwt-abc", "sk-xyz", "postgres://u:"):
            assert secret not in text
    assert "database=db:5432/todo" in settings.describe()
    assert "jwt_secret=set" in settings.describe()


def test_it_never_logs_secret_values(settings, caplog):
    caplog.set_level(logging.DEBUG)
    with TestClient(create_app(settings)) as client:
        client.get("/ready")
        client.post("/todos", json={"title": "x"})
    with TestClient(
        create_app(Settings(database_url="postgresql://u:pw-789@127.0.0.1:1/x"))
    ) as client:
        client.get("/ready")
        client.get("/todos")
    logged = caplog.text
    assert "todo-backend starting" in logged
    for secret in (settings.jwt_secret, settings.openai_api_key, "helmdeck:helmdeck", "pw-789"):
        assert secret not in logged


def test_it_describes_database_locations_without_credentials():
    assert database_location("") == "unset"
    assert database_location("postgresql://a:b@h:6543/d?sslmode=require") == "h:6543/d"
    assert database_location("mysql://a:b@h/d") == "set (not a postgres:// URL)"
    assert (
        redact("bad URL postgres://a:s3cret@h/d here", "postgres://a:s3cret@h/d")
        == "bad URL <DATABASE_URL> here"
    )
    assert redact("password s3cret rejected", "postgres://a:s3cret@h/d") == "password *** rejected"
