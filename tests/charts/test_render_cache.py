"""A deploy's render is remembered by its inputs (rendering.spec_render_check): the same
chart, values, secret keys, helm and Kubernetes versions reuse the result; any change is
another key (a miss: it renders again); what is kept is the three fields, no manifest."""

import shutil

import pytest
from django.core.cache import cache

from deployments.integrations.helm import Helm
from deployments.services import rendering
from deployments.services.profiles import parse_spec_of
from deployments.services.rendering import spec_render_check

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def spec(todo_app, redis_url):
    """The seed profile's spec; the cache is the real one (Redis, this process's database)."""
    return parse_spec_of(todo_app)


def test_the_same_inputs_reuse_the_render(spec, helm_bin, monkeypatch):
    helm, keys = Helm(binary=helm_bin), list(spec["secrets"])
    first = spec_render_check(spec=spec, keys=keys, helm=helm)
    assert first.resources == 6 and first.problems == [] and "1 chart(s) linted" in first.lint
    # what is kept: the three fields, no manifest (Secret placeholders included)
    kept = cache.get(f"helmdeck:render:{rendering.render_inputs_digest(spec, keys, helm)}")
    assert kept == vars(first)

    rendered_again = []
    monkeypatch.setattr(rendering, "spec_render", lambda **kw: rendered_again.append(kw))
    assert spec_render_check(spec=spec, keys=keys, helm=helm) == first
    assert rendered_again == []


@pytest.mark.parametrize(
    "change",
    [
        lambda spec, keys, chart: spec["components"][0].update(replicas=3),
        lambda spec, keys, chart: spec.update(namespace="elsewhere"),
        lambda spec, keys, chart: spec["config"].update(EXTRA="1"),
        lambda spec, keys, chart: keys.append("NEW_KEY"),
        lambda spec, keys, chart: (chart / "templates" / "service.yaml").open("a").write("\n#\n"),
    ],
    ids=["replicas", "namespace", "config", "secret-key", "chart-file"],
)
def test_any_changed_input_is_another_key(spec, helm_bin, tmp_path, monkeypatch, change):
    chart = tmp_path / "chart"
    shutil.copytree(rendering.CHART_DIR, chart)
    monkeypatch.setattr(rendering, "CHART_DIR", str(chart))
    helm, keys = Helm(binary=helm_bin), list(spec["secrets"])
    before = rendering.render_inputs_digest(spec, keys, helm)
    change(spec, keys, chart)
    assert rendering.render_inputs_digest(spec, keys, helm) != before


@pytest.mark.parametrize(
    "stored",
    [
        "not a dict",
        {"lint": "", "resources": 6},  # a field missing
        {"lint": "", "resources": "6", "problems": []},
        {"lint": "", "resources": 6, "problems": [{"x": 1}]},
    ],
)
def test_a_foreign_cache_value_is_a_miss(spec, helm_bin, stored):
    helm = Helm(binary=helm_bin)
    keys = list(spec["secrets"])
    cache.set(f"helmdeck:render:{rendering.render_inputs_digest(spec, keys, helm)}", stored)
    check = spec_render_check(spec=spec, keys=keys, helm=helm)
    assert check.resources == 6 and check.problems == []
