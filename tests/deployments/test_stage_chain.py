"""The stage tasks' chain walk (tasks._stage_task), with the stages faked: the task that
takes a release runs the next stages itself while it is young (INLINE_WITHIN), and leaves
the rest of its chain to the broker once it is old or holds nothing. The same walk through a
real worker, a retry included, is in services/test_release_worker.py."""

import pytest

from deployments import tasks


@pytest.fixture
def ran(monkeypatch):
    """The stages that ran, in order, with their attempt; each one holds the release
    unless its name is in `ran.unclaimed`."""

    class Calls(list):
        unclaimed = set()

    calls = Calls()

    def attempt(stage, release_id, attempt):
        assert release_id == 7
        calls.append((stage.__name__.removeprefix("release_"), attempt))
        return stage.__name__ not in calls.unclaimed

    monkeypatch.setattr(tasks, "_attempt", attempt)
    return calls


def run_with_chain(task, *following):
    """Run `task` for release 7 as a worker would, with `following` as the rest of its
    chain (Celery keeps it in reverse: the next task last). Returns what is left of it."""
    chain = [dict(t.si(7)) for t in reversed(following)]
    task.push_request(chain=chain, args=(7,), kwargs={})
    try:
        task.run(7)
        return task.request.chain
    finally:
        task.pop_request()


def test_a_young_stage_task_runs_the_rest_of_its_chain_itself(ran):
    left = run_with_chain(tasks.render_release, tasks.upgrade_release, tasks.verify_release)
    assert ran == [("render", 0), ("upgrade", 0), ("verify", 0)]
    assert left == []  # nothing is sent through the broker


def test_an_old_stage_task_leaves_the_next_stages_to_their_own_messages(ran, monkeypatch):
    monkeypatch.setattr(tasks, "INLINE_WITHIN", 0)  # as a build that took its time
    left = run_with_chain(tasks.build_release, tasks.render_release, tasks.upgrade_release)
    assert ran == [("build", 0)]
    # Celery sends the chain's next task with the rest linked after it
    assert [s["task"] for s in reversed(left)] == [
        "deployments.tasks.release_render",
        "deployments.tasks.release_upgrade",
    ]


def test_a_stage_that_holds_nothing_drops_the_rest_of_the_chain(ran):
    ran.unclaimed.add("release_upgrade")  # another run has the release, or it ended here
    left = run_with_chain(tasks.render_release, tasks.upgrade_release, tasks.verify_release)
    assert ran == [("render", 0), ("upgrade", 0)]
    assert not left  # verify must not run beside the run that holds the release


def test_the_chain_walk_stops_at_a_task_that_is_not_a_stage(ran):
    left = run_with_chain(tasks.render_release, tasks.run_doctor)
    assert ran == [("render", 0)]
    assert [s["task"] for s in left] == [tasks.run_doctor.name]


def test_the_chain_is_sent_by_the_names_the_stage_tasks_are_registered_under():
    """release_send builds the chain from release_queue.STAGES by name, without importing
    deployments.tasks: each name is the registered task of that stage, and the module's
    task names follow the stages' order."""
    from deployments.services import release_queue, release_stages

    for stage in release_queue.STAGES:
        name = release_queue.release_stage_task_name(stage)
        assert tasks._STAGE_TASKS[name][0] is getattr(release_stages, stage)
    assert [
        t.name
        for t in (
            tasks.build_release,
            tasks.render_release,
            tasks.upgrade_release,
            tasks.verify_release,
        )
    ] == [f"deployments.tasks.{stage}" for stage in release_queue.STAGES]
