"""Deploy as a user runs it: the browser's Confirm click, `manage.py deploy --wait` and the
remote CLI's `helmdeck deploy --wait`, each against bare `helm upgrade --install --wait` of
the same chart, values and flags.

The `deploy` benchmark times the pipeline from inside (a release row queued in-process ->
its finished_at). A user pays more than that: the browser's POST, the redirect and the
release page's live stream until it shows the result; the CLI's process start (Python,
Django, the imports a deploy needs), then the stages in that process and the exit. Here:

- browser: real Chromium (Playwright) signed in to the panel (uvicorn, one Celery worker);
  the deploy page is opened and its preview computed (untimed: the user reads it), Build
  unticked (the run is `--no-build`, as the bare run deploys existing images); the time is
  the Confirm form's submit -> the release page showing "succeeded" (its live status badge,
  after verify saw every pod Ready), both times taken in the page by the browser's clock;
- CLI: `python manage.py deploy todo-app --wait --no-build` from its start to its exit: the
  running worker takes the release and the command follows its stream (its log lines live);
- remote: `helmdeck deploy todo-app --no-build --wait` (cli/, through the API with a token)
  from its start to its exit: the API queues the release, the same worker runs it, the
  command follows the API's event stream;
- bare: helm with the values Helmdeck writes and Helm.upgrade_install_argv's flags.

Fresh installs, the four alternated in a rotating order, uninstalled untimed between runs;
kwok nodes (pods Ready after the profile's 10 s readiness delay); `deploy_user_real` runs
the same measurement (measure_user) on the real node. As in `deploy`, a watch of
the namespace times the cluster's part (first pod created -> last pod Ready) and the goal's
rows put the median of all runs' cluster parts in place of each run's own.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import cluster, harness
from benchmarks.deploy import KWOK, RELEASE, bare_argv, bare_once, fresh_install, own_part
from benchmarks.report import Goal, Result, median

NAME = "deploy_user"
TITLE = (
    "Deploy as a user runs it: browser Confirm -> succeeded shown, manage.py deploy --wait "
    "and helmdeck deploy --wait (remote CLI), vs bare helm upgrade --install"
)
BROWSER_GOAL = Goal("<=", 1.02, on="ratio")
CLI_GOAL = Goal("<=", 1.05, on="ratio")
REMOTE_GOAL = Goal("<=", 1.05, on="ratio")  # vs manage.py deploy --wait (issue: API + CLI)
CHROMIUM = "/usr/bin/chromium"  # Debian's; never a downloaded browser
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-sync"]
TOOLS = ("browser", "cli", "remote", "bare")
HELMDECK = Path(sys.executable).with_name("helmdeck")  # the remote CLI's console script
# Marks, in the page, the moment the Confirm form is submitted (kept in sessionStorage: the
# page navigates) and the moment the succeeded badge appears: Playwright's click waits for
# the button to be actionable and its wait polls (at up to 500 ms intervals once a wait is
# long), which would add delays of their own.
BADGE_WATCH = """
(() => {
  document.addEventListener("submit", () => {
    sessionStorage.setItem("helmdeckSubmittedAt", String(Date.now()));
  }, true);
  const look = () => {
    if (!window.helmdeckSucceededAt
        && document.querySelector("#release-status .badge-succeeded")) {
      window.helmdeckSucceededAt = Date.now();
    }
  };
  new MutationObserver(look).observe(document, {subtree: true, childList: true, attributes: true});
})();
"""
UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


def _release_figures(release, started, ended):
    """Where a Helmdeck run's time went, from its rows: before the release row existed
    (the browser's POST, or the CLI's process start), the steps, after finished_at (the
    page's stream showing it, or the CLI's report and exit)."""
    from deployments.models import Release

    release.refresh_from_db()
    if release.status != Release.Status.SUCCEEDED:
        raise harness.BenchError(f"release #{release.pk} {release.status}: {release.reason}")
    steps = {s.name: s for s in release.steps.all() if s.started_at and s.finished_at}
    took = {n: (s.finished_at - s.started_at).total_seconds() for n, s in steps.items()}
    return {
        "total": ended - started,
        "before": release.created_at.timestamp() - started,
        "after": ended - release.finished_at.timestamp(),
        "to_helm": steps["upgrade"].started_at.timestamp() - started,
        **took,
    }


def _new_release(profile, after):
    """The one release of `profile` newer than the pk `after`."""
    from deployments.models import Release

    return Release.objects.filter(profile=profile, pk__gt=after).get()


def _last_pk(profile):
    from deployments.models import Release

    return (
        Release.objects.filter(profile=profile).order_by("-pk").values_list("pk", flat=True).first()
        or 0
    )


def _cli_once(profile):
    after = _last_pk(profile)
    argv = [harness.PY, "manage.py", "deploy", profile.name, "--wait", "--no-build"]
    started = time.time()
    done = subprocess.run(  # noqa: S603 - our own argv
        argv,
        cwd=harness.ROOT,
        env={k: v for k, v in harness.child_env().items() if k != UNSAFE},
        capture_output=True,
        text=True,
        timeout=420,
    )
    ended = time.time()
    if done.returncode != 0:
        raise harness.BenchError(f"manage.py deploy exited {done.returncode}: {done.stderr[-800:]}")
    return _release_figures(_new_release(profile, after), started, ended)


def _remote_once(profile, url, token):
    after = _last_pk(profile)
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/")}
    env.update(HELMDECK_URL=url, HELMDECK_TOKEN=token)
    argv = [str(HELMDECK), "deploy", profile.name, "--no-build", "--wait"]
    started = time.time()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=420)  # noqa: S603
    ended = time.time()
    if done.returncode != 0:
        raise harness.BenchError(f"helmdeck deploy exited {done.returncode}: {done.stderr[-800:]}")
    return _release_figures(_new_release(profile, after), started, ended)


class Browser:
    """One signed-in Chromium page on the panel."""

    def __init__(self, url):
        from playwright.sync_api import sync_playwright

        # Playwright's sync API keeps an event loop running in this thread: Django would
        # refuse the benchmark's own ORM reads (the Release rows) without this.
        self._unsafe = os.environ.get(UNSAFE)
        os.environ[UNSAFE] = "true"
        self.url = url
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        context = self._browser.new_context()
        context.add_init_script(BADGE_WATCH)
        context.add_cookies(
            [{"name": k, "value": v, "url": url} for k, v in harness.session_cookie().items()]
        )
        self.page = context.new_page()

    def deploy_once(self, profile):
        page = self.page
        after = _last_pk(profile)
        page.goto(f"{self.url}/profiles/{profile.name}/deploy/")
        # The preview (computed by the worker) is read before the click: untimed.
        page.locator('#preview[aria-busy="false"]').wait_for(timeout=120_000)
        page.get_by_label("Build images").uncheck()
        button = page.get_by_role("button", name=f"Confirm deploy of {profile.name}")
        started = time.time()
        button.click()
        page.locator("#release-status .badge-succeeded").wait_for(timeout=420_000)
        seen = page.evaluate("window.helmdeckSucceededAt")  # ms, this machine's clock
        ended = seen / 1000 if seen else time.time()
        submitted = page.evaluate("Number(sessionStorage.getItem('helmdeckSubmittedAt'))")
        started = submitted / 1000 if submitted else started
        return _release_figures(_new_release(profile, after), started, ended)

    def close(self):
        self._browser.close()
        self._playwright.stop()
        if self._unsafe is None:
            os.environ.pop(UNSAFE, None)
        else:
            os.environ[UNSAFE] = self._unsafe


def run(*, quick=False):
    return measure_user(Result(NAME, TITLE, bare_label="bare helm"), KWOK, quick=quick)


def measure_user(result, variant, *, quick=False):
    """Rounds of the four (browser, CLI, remote CLI, bare) on `variant`'s nodes and
    profile; the rows and notes go into `result`, which is returned."""
    rounds = 2 if quick else 5
    core, _ = cluster.kube()
    runs = {tool: [] for tool in TOOLS}
    cleanups, checks = [], set()
    kind = f"user{variant.kind}"
    with (
        cluster.namespace(core, f"{kind}-hd", simulated=variant.simulated) as hd_ns,
        cluster.namespace(core, f"{kind}-helm", simulated=variant.simulated) as bare_ns,
        tempfile.TemporaryDirectory(prefix="helmdeck-bench-user-") as tmp,
    ):
        node_port = cluster.free_node_port(core)
        profile = harness.import_profile(
            variant.spec(name=RELEASE, namespace=hd_ns, node_port=node_port)
        )
        argv = bare_argv(profile, bare_ns, Path(tmp))
        try:
            with (
                harness.celery_worker(),
                harness.web_server() as (url, _server),
            ):
                browser = Browser(url)
                token = harness.api_token()
                try:
                    deploys = {
                        "browser": lambda: browser.deploy_once(profile),
                        "cli": lambda: _cli_once(profile),
                        "remote": lambda: _remote_once(profile, url, token),
                        "bare": lambda: bare_once(argv),
                    }

                    def once(tool, timed=True):
                        ns = bare_ns if tool == "bare" else hd_ns
                        figures = fresh_install(
                            core, ns, deploys[tool], cleanups, check=variant.check, checks=checks
                        )
                        if timed:
                            runs[tool].append(figures)
                        return figures

                    # Untimed first round: the worker's and the page's first imports and
                    # schemas, and the render the timed runs reuse (as in `deploy`).
                    first = [f"{tool} {once(tool, timed=False)['total']:.2f}s" for tool in TOOLS]
                    print(f"   untimed round: {', '.join(first)}", flush=True)
                    for i in range(rounds):
                        order = TOOLS[i % len(TOOLS) :] + TOOLS[: i % len(TOOLS)]
                        for tool in order:
                            once(tool)
                        print(
                            f"   round {i + 1}/{rounds}: "
                            + ", ".join(f"{t} {runs[t][-1]['total']:.2f}s" for t in TOOLS),
                            flush=True,
                        )
                finally:
                    browser.close()
        finally:
            harness.delete_profiles(pk=profile.pk)
    _report(result, runs, cleanups, rounds, variant)
    result.notes.extend(sorted(c for c in checks if c))
    return result


def _report(result, runs, cleanups, rounds, variant):
    def med(tool, key):
        return median([r.get(key) for r in runs[tool]])

    shared = median([r["cluster"] for tool in TOOLS for r in runs[tool]])
    own = {tool: own_part(runs[tool]) for tool in TOOLS}
    bare, bare_shared = med("bare", "total"), own["bare"] + shared
    for tool, label, goal in (
        ("browser", "browser: Confirm click -> succeeded shown", BROWSER_GOAL),
        ("cli", "CLI: manage.py deploy --wait, start -> exit", CLI_GOAL),
        ("remote", "remote CLI: helmdeck deploy --wait, start -> exit", CLI_GOAL),
    ):
        result.add(
            f"{label}, the cluster's part shared",
            own[tool] + shared,
            unit="s",
            bare=bare_shared,
            goal=goal,
        )
        result.add(f"{label}, median", med(tool, "total"), unit="s", bare=bare)
        result.add(
            f"  {tool}: overhead, the cluster's part shared", own[tool] - own["bare"], unit="s"
        )
        if tool == "browser":
            before, after = "click -> release row (POST)", "finished -> shown on the page (SSE)"
        elif tool == "remote":
            before, after = "start -> release row (the API call)", "finished -> exit (SSE)"
        else:
            before, after = "start -> release row (Python, Django, imports)", "finished -> exit"
        result.add(f"  {tool}: {before}", med(tool, "before") * 1000)
        result.add(f"  {tool}: start -> helm upgrade starts", med(tool, "to_helm") * 1000)
        result.add(
            f"  {tool}: render step (checks; template reused)", med(tool, "render"), unit="s"
        )
        result.add(
            f"  {tool}: upgrade step (helm --wait)", med(tool, "upgrade"), unit="s", bare=bare
        )
        result.add(f"  {tool}: verify step", med(tool, "verify"), unit="s")
        result.add(f"  {tool}: {after}", med(tool, "after") * 1000)
    result.add(
        "remote CLI ÷ manage.py deploy --wait (its 'bare' is manage.py), the cluster's part shared",
        own["remote"] + shared,
        unit="s",
        bare=own["cli"] + shared,
        goal=REMOTE_GOAL,
    )
    where = "kwok nodes" if variant.simulated else "the real node"
    result.notes.append(
        f"{rounds} rounds of the four (browser, CLI, remote CLI, bare) in a rotating order "
        f"after one untimed round, fresh install each (uninstalled untimed between runs, "
        f"{median(cleanups):.1f} s each); {where}, {variant.pods}; browser: Chromium "
        "(Playwright) on uvicorn with one Celery worker (solo pool), the times taken in the "
        "page (the form's submit event -> a MutationObserver seeing the badge); CLI: that "
        "worker runs the release, the command follows the release's stream (`--wait`) and "
        "prints its log; remote CLI: the same through the API and its event stream, with a "
        "token"
    )
    result.notes.append(
        "runs (s): "
        + "; ".join(
            f"{tool} " + ", ".join(f"{r['total']:.2f}" for r in runs[tool]) for tool in TOOLS
        )
    )
    result.notes.append(
        "the cluster's part of each run (s): "
        + "; ".join(
            f"{tool} " + ", ".join(f"{r['cluster']:.2f}" for r in runs[tool]) for tool in TOOLS
        )
        + f"; the goal's rows add their median ({shared:.2f} s) to each tool's own part"
    )
