"""`{% digested %}` and its use by the live regions: the page and its stream mark the same
HTML with the same `data-digest`, so the browser (static/streams.js) does not replace a
region the stream sends again unchanged on connect; a change gives another digest."""

import re

import pytest
from django.template import Context, Template, TemplateSyntaxError

from tests.deployments.views.test_streams import parse
from tests.factories import pod_state

DIGEST = re.compile(r'^<(\w+) data-digest="([0-9a-f]{24})"')


def render(body, **context):
    return Template("{% load streams %}" + body).render(Context(context))


def test_it_marks_the_first_element_with_a_digest_of_what_it_encloses():
    html = render("{% digested %}\n <section id='x'>{{ n }}</section>\n{% enddigested %}", n=1)
    assert DIGEST.match(html).group(1) == "section"
    assert html.endswith(" id='x'>1</section>")  # the rest as it was, stripped
    assert render("{% digested %}<section id='x'>{{ n }}</section>{% enddigested %}", n=1) == html
    other = render("{% digested %}<section id='x'>{{ n }}</section>{% enddigested %}", n=2)
    assert DIGEST.match(other).group(2) != DIGEST.match(html).group(2)


def test_text_that_is_not_an_element_is_left_as_it_is():
    assert render("{% digested %} plain {{ n }} {% enddigested %}", n="<b>") == "plain &lt;b&gt;"


def test_it_takes_no_arguments():
    with pytest.raises(TemplateSyntaxError):
        render("{% digested 1 %}<p></p>{% enddigested %}")


def opens_region(html, element_id):
    """Whether `html` is the live region `element_id` as its partial renders it: its
    element first, marked with a digest."""
    return re.match(rf'<section data-digest="[0-9a-f]{{24}}" id="{element_id}"', html) is not None


def digest_of(html, element_id):
    match = re.search(rf'<\w+ data-digest="([0-9a-f]+)" id="{element_id}"', html)
    assert match, f"no digested #{element_id}"
    return match.group(1)


def first_event(client, url):
    body = b"".join(client.get(url)).decode()  # under WSGI: the region, then a retry hint
    (event, _, data), *_ = parse([body.rsplit("retry:", 1)[0]])
    return event, data


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "admin"])
def test_the_pods_stream_sends_what_the_profile_page_shows_with_the_same_digest(
    login, todo_app, role
):
    pod_state(todo_app, "backend-1", ready=False, last_event="Unhealthy: Readiness probe failed")
    client = login(role)
    page = digest_of(client.get("/profiles/todo-app/").content.decode(), "pods")
    event, data = first_event(client, "/profiles/todo-app/stream/")
    assert event == "pods" and digest_of(data, "pods") == page

    pod_state(todo_app, "backend-2")  # a change: the page's copy is stale, it is replaced
    assert digest_of(first_event(client, "/profiles/todo-app/stream/")[1], "pods") != page


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "admin"])
@pytest.mark.parametrize("query", ["", "?q=todo", "?health=degraded"])
def test_the_status_stream_sends_what_the_status_page_shows_with_the_same_digest(
    login, todo_app, query, role
):
    pod_state(todo_app, "backend-oom", ready=False, ready_containers=0, reason="OOMKilled")
    client = login(role)
    page = digest_of(client.get(f"/{query}").content.decode(), "status-profiles")
    event, data = first_event(client, f"/status/stream/{query}")
    assert event == "table" and digest_of(data, "status-profiles") == page

    pod_state(todo_app, "backend-2")  # the row says 1/2 pods ready now
    fresh = first_event(client, f"/status/stream/{query}")[1]
    assert digest_of(fresh, "status-profiles") != page
