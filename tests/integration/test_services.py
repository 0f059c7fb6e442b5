"""Docker builds from the local base images, and the other services the fixtures hand out."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

TWOSTAGE = Path(__file__).parent / "images" / "twostage"


@pytest.fixture
def image_tag(dockerd):
    tag = f"helmdeck-test/twostage:{uuid.uuid4().hex[:8]}"
    yield tag
    dockerd.images.remove(tag, force=True, noprune=False)


def test_it_builds_a_two_stage_image_that_runs_as_uid_1001(dockerd, image_tag):
    image, _ = dockerd.images.build(
        path=str(TWOSTAGE),
        tag=image_tag,
        buildargs={"BASE_IMAGE": dockerd.python_base},
        rm=True,
        forcerm=True,
    )

    uid = dockerd.containers.run(image_tag, ["id", "-u"], remove=True)
    default_cmd = dockerd.containers.run(image_tag, remove=True)

    assert uid.decode().strip() == "1001"
    assert default_cmd.decode().strip() == "twostage uid=1001"
    assert image.attrs["Config"]["User"] == "appuser"


def test_it_builds_with_buildkit_through_the_debian_cli(dockerd, image_tag):
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": dockerd.base_url}
    build = subprocess.run(
        [
            dockerd.docker,
            "build",
            "--build-arg",
            f"BASE_IMAGE={dockerd.python_base}",
            "-t",
            image_tag,
            str(TWOSTAGE),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert build.returncode == 0, build.stderr

    run = subprocess.run(
        [dockerd.docker, "run", "--rm", image_tag, "id", "-u"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )

    assert run.stdout.strip() == "1001", run.stderr


def test_it_has_a_node_20_base_image_with_npm(dockerd):
    out = dockerd.containers.run(
        dockerd.node_base,
        [
            "sh",
            "-c",
            "node --version && npm --version >/dev/null"
            " && addgroup -g 1001 -S nodejs && adduser -S nextjs -u 1001 && id -u nextjs",
        ],
        remove=True,
    )

    lines = out.decode().split()
    assert lines[0].startswith("v20.")
    assert lines[-1] == "1001"


def test_it_serves_redis(redis_url):
    import redis

    r = redis.Redis.from_url(redis_url)
    key = f"helmdeck-test:{uuid.uuid4().hex}"

    r.set(key, "ok", ex=30)

    assert r.get(key) == b"ok"
    r.delete(key)


def test_it_serves_postgres_with_createdb(database_url):
    # psql is the client both PostgreSQL and the Django app's CI use; no driver needed here
    result = subprocess.run(
        [
            "psql",
            database_url,
            "-tAc",
            "select rolcreatedb from pg_roles where rolname = current_user",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "t"


def test_it_renders_a_page_in_chromium(browser):
    page = browser.new_page()
    try:
        page.set_content("<button id=b onclick=\"this.textContent='clicked'\">go</button>")
        page.click("#b")

        assert page.text_content("#b") == "clicked"
    finally:
        page.close()
