"""The helm adapter's streaming and its reading of helm's summary. A stand-in `helm` (a shell
script) prints what a test needs; that real helm 3 and 4 print the summary this module
reads is proven against `helm status` in tests/deployments/services/test_releases_sandbox.py."""

import time

import pytest

from deployments.integrations.helm import Helm, release_summary

SUMMARY = [
    'Release "todo-app" has been upgraded. Happy Helming!',
    "NAME: todo-app",
    "LAST DEPLOYED: Thu Dec  3 22:40:01 2026",
    "NAMESPACE: team-a",
    "STATUS: deployed",
    "REVISION: 7",
    "TEST SUITE: None",
    "NOTES:",
    "Open the frontend:",
    "",
    "  http://$(minikube ip):30000",
    "NAME: todo-app",
]


def stand_in(tmp_path, body):
    path = tmp_path / "helm"
    # it answers `helm version --short` as helm 4 does (the flags depend on it), then `body`
    path.write_text('#!/bin/sh\n[ "$1" = version ] && { echo v4.3.1+gc0d08d0; exit 0; }\n' + body)
    path.chmod(0o755)
    return Helm(binary=str(path))


def test_it_reads_revision_and_notes_from_helms_summary():
    revision, notes = release_summary(["waiting for 2 resources", *SUMMARY], "todo-app", "team-a")
    assert revision == 7
    assert notes == "Open the frontend:\n\n  http://$(minikube ip):30000\nNAME: todo-app"


def test_a_summary_echoed_earlier_does_not_count():
    """Output before helm's own summary (a warning quoting a profile's text) cannot pass
    for it: the last summary is helm's."""
    forged = ["NAME: todo-app", "NAMESPACE: team-a", "STATUS: deployed", "REVISION: 99"]
    assert release_summary([*forged, *SUMMARY], "todo-app", "team-a")[0] == 7


def test_an_install_without_notes_has_empty_notes():
    lines = [
        "NAME: api",
        "LAST DEPLOYED: x",
        "NAMESPACE: ns",
        "STATUS: deployed",
        "REVISION: 1",
        "TEST SUITE: None",
    ]
    assert release_summary(lines, "api", "ns") == (1, "")


@pytest.mark.parametrize(
    "lines",
    [
        [],
        ["Error: UPGRADE FAILED: context deadline exceeded"],
        # another release's or namespace's summary, a failed status: not ours to trust
        [line.replace("todo-app", "other") for line in SUMMARY],
        [line.replace("team-a", "team-b") for line in SUMMARY],
        [line.replace("STATUS: deployed", "STATUS: failed") for line in SUMMARY],
        [line for line in SUMMARY if not line.startswith("REVISION")],
    ],
    ids=["empty", "error", "other-release", "other-namespace", "failed", "no-revision"],
)
def test_output_without_our_summary_gives_none(lines):
    assert release_summary(lines, "todo-app", "team-a") is None


def upgrade(helm, **streaming):
    return helm.upgrade_install("todo-app", "team-a", "chart", [], **streaming)


def test_upgrade_streams_every_line_blank_ones_too_and_returns_the_exit_code(tmp_path):
    helm = stand_in(tmp_path, 'echo one; echo; echo "  three"; exit 3\n')
    lines = []
    code = upgrade(helm, on_line=lines.append)
    assert code == 3
    assert lines == ["one", "", "  three"]


def test_upgrade_asks_should_stop_on_a_timer_not_per_line(tmp_path):
    """20,000 lines in well under a second: asking the database per line would be 20,000
    queries; a timer asks a handful of times."""
    helm = stand_in(tmp_path, "seq 1 20000\n")
    asked, ticks, lines = [], [], []
    started = time.monotonic()
    code = upgrade(
        helm,
        on_line=lines.append,
        should_stop=lambda: asked.append(1) or False,
        on_tick=lambda: ticks.append(1),
        poll=0.5,
    )
    took = time.monotonic() - started
    assert code == 0 and len(lines) == 20000 and lines[-1] == "20000"
    assert 1 <= len(asked) <= took / 0.5 + 2, (len(asked), took)
    assert len(ticks) == len(asked)


def test_upgrade_stops_a_chatty_helm_when_asked(tmp_path):
    """A helm that prints without pause is still stopped (SIGTERM to its group) once
    should_stop says so: the poll does not wait for a quiet moment."""
    helm = stand_in(tmp_path, "while :; do echo line; done\n")
    started = time.monotonic()
    code = upgrade(
        helm,
        on_line=lambda line: None,
        should_stop=lambda: time.monotonic() - started > 1.0,
        poll=0.2,
    )
    assert code == -15  # SIGTERM
    assert time.monotonic() - started < 10
