"""helmdeck: log in, list profiles, show a profile's status, deploy (with tag overrides,
following the release live), roll back, read pod logs, restart or scale a component, delete
a pod, put a profile to sleep, wake it, tear it down. Exit 0 when done, 1 when the release
failed, the action was refused or the panel could not be reached, 2 for bad input (one
line per problem), 130 when interrupted (the release goes on in the panel)."""

import argparse
import getpass
import json
import os
import re
import sys
import time

from helmdeck_cli import __version__, config
from helmdeck_cli.client import ApiError, Client

# what a log line may not carry to a terminal: control characters (an escape sequence in a
# build log could rewrite the screen or the window title), except tab
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
BAD_INPUT = (400, 401, 403, 404, 422)
FOLLOW_EVERY = 2.0  # seconds between two reads of `logs -f`
# A release's statuses once it has ended: the panel's TERMINAL_RELEASE_STATUSES
# (tests/cli/test_main.py keeps the two the same).
ENDED = ("succeeded", "failed", "rolled_back", "cancelled")
WAKE_EVERY = 1.0  # seconds between two reads of the status by `wake --wait`


class Output:
    """stdout for results, stderr for progress and problems; colour and the progress bar
    only where stderr is a terminal and the output is text."""

    def __init__(self, json_output):
        self.json = json_output
        self.tty = sys.stderr.isatty() and not json_output
        self._bar = False

    def line(self, text="", *, err=False):
        self.clear_bar()
        print(text, file=sys.stderr if err else sys.stdout, flush=True)

    def data(self, value):
        print(json.dumps(value, indent=2, sort_keys=True), flush=True)

    def bar(self, done, total, label):
        if not self.tty or not total:
            return
        width = 24
        filled = round(width * done / total)
        text = f"\r[{'#' * filled}{'-' * (width - filled)}] {done}/{total} {label}"
        sys.stderr.write(text[:100] + "\x1b[K")
        sys.stderr.flush()
        self._bar = True

    def clear_bar(self):
        if self._bar:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self._bar = False

    def colour(self, text, code):
        return f"\x1b[{code}m{text}\x1b[0m" if self.tty else text


def safe(text):
    return _CONTROL.sub("?", text)


# ---- commands -----------------------------------------------------------------------------


def cmd_login(args, out):
    url = config.check_url(args.url)
    if config.plain_http_elsewhere(url):
        out.line(
            f"helmdeck: warning: {url} is plain http: the token crosses the network "
            "unencrypted; use https",
            err=True,
        )
    if args.token_stdin:
        token = sys.stdin.readline().strip()
    else:
        token = getpass.getpass(f"API token for {url} (from its Tokens page): ").strip()
    if not token:
        raise config.ConfigError("no token given")
    Client(url, token).call("GET", "/profiles", params={"page_size": 1})  # it works
    file = config.save(url, token)
    out.line(f"logged in to {url}; token saved in {file} (mode 600)")
    return 0


def cmd_profiles(args, out, client):
    params = {"page_size": 200}
    if args.query:
        params["q"] = args.query
    body = client.call("GET", "/profiles", params=params)
    if out.json:
        out.data(body)
        return 0
    rows = [
        (
            p["name"],
            p["health"],
            f"{p['ready']}/{p['total']}",
            p["cluster"],
            f"#{p['last_release']['id']} {p['last_release']['status']}"
            if p["last_release"]
            else "-",
        )
        for p in body["items"]
    ]
    if not rows:
        out.line("no profiles yet" + (f" matching {args.query!r}" if args.query else ""))
        return 0
    _table(out, ("NAME", "HEALTH", "READY", "CLUSTER", "LAST RELEASE"), rows)
    if body["count"] > len(rows):
        out.line(f"({body['count'] - len(rows)} more: narrow with a query)", err=True)
    return 0


def cmd_status(args, out, client):
    if not args.name:
        return cmd_profiles(argparse.Namespace(query=None), out, client)
    body = client.call("GET", f"/profiles/{_path(args.name)}/status")
    if out.json:
        out.data(body)
        return 0
    current = body["current_release"]
    out.line(
        f"{body['name']}: {body['health']}, {body['ready']}/{body['total']} pods ready"
        + (f", release #{current['id']} running" if current else "")
    )
    active = body["active_release"]
    if active:
        out.line(f"release #{active['id']} is {active['status']}")
    rows = [
        (
            p["name"],
            p["component"],
            p["phase"],
            "yes" if p["ready"] else "no",
            str(p["restarts"]),
            safe(p["problem"]["message"]) if p["problem"] else "",
        )
        for p in body["pods"]
    ]
    if rows:
        _table(out, ("POD", "COMPONENT", "PHASE", "READY", "RESTARTS", "PROBLEM"), rows)
    return 0


def cmd_deploy(args, out, client):
    tags, problems = {}, []
    for given in args.tag or []:
        component, sep, tag = given.partition("=")
        if not sep or not component or not tag:
            problems.append(f"--tag {given}: expected COMPONENT=TAG, e.g. backend=1.2.3")
        else:
            tags[component] = tag
    if problems:
        for problem in problems:
            out.line(f"helmdeck: {problem}", err=True)
        return 2
    body = {"build": not args.no_build, "tags": tags}
    release = client.call("POST", f"/profiles/{_path(args.name)}/releases", body)
    return _started(args, out, client, release)


def cmd_rollback(args, out, client):
    body = {"revision": args.revision} if args.revision is not None else {}
    release = client.call("POST", f"/profiles/{_path(args.name)}/rollback", body)
    return _started(args, out, client, release)


def _started(args, out, client, release):
    url = client.base.rsplit("/api/v1", 1)[0] + release["url"]
    if not args.wait:
        if out.json:
            out.data(release)
        else:
            out.line(f"release #{release['id']} of {release['profile']} queued: {url}")
        return 0
    if not out.json:
        out.line(f"release #{release['id']} of {release['profile']} queued: {url}", err=True)
    try:
        final = _follow(out, client, release)
    except KeyboardInterrupt:
        out.line(
            f"\nstopped following; release #{release['id']} goes on in the panel: {url} "
            f"(helmdeck status {release['profile']}; its page can cancel it)",
            err=True,
        )
        return 130
    if out.json:
        out.data(final)
    took = ""
    if final["started_at"] and final["finished_at"]:
        took = f" in {_seconds(final['started_at'], final['finished_at']):.0f}s"
    if final["status"] == "succeeded":
        if not out.json:
            what = (
                "uninstalled"
                if final.get("kind") == "teardown"
                else f"helm revision {final['helm_revision']}, every pod Ready"
            )
            headline = f"release #{final['id']} of {final['profile']} succeeded{took}"
            out.line(out.colour(headline, "32") + f": {what}")
        return 0
    ended = final["status"].replace("_", " ")
    headline = f"release #{final['id']} of {final['profile']} {ended}{took}"
    out.line(out.colour(headline, "31") + f": {safe(final['reason'])}", err=True)
    return 1


def _follow(out, client, release):
    """Print the release's log as it comes, with a progress bar of its steps; its final
    state once it ends. Each `status` event carries the release (steps, final state); from
    a panel whose events do not, they are read with a call."""
    steps, final = release["steps"], None
    for event, _id, data in client.events(release["id"]):
        if event == "log":
            line = _event_data(client, data, ("step", "text"))
            prefix = f"[{line['step']}] " if line["step"] else ""
            out.line(safe(prefix + line["text"]), err=out.json)
        elif event == "status":
            status = _event_data(client, data, ("status",))
            current = status.get("release")
            if _is_release(current):
                steps = current["steps"]
                final = current if current["status"] in ENDED else None
            elif status["status"] not in ENDED:
                steps = client.call("GET", f"/releases/{release['id']}")["steps"]
            # else its final state is read once, after the stream's `done` (one call less)
        elif event == "login-required":
            raise ApiError(401, [("", "the token was revoked or expired while following")])
        done = sum(1 for s in steps if s["status"] in ("done", "skipped"))
        running = next((s["name"] for s in steps if s["status"] == "running"), "")
        out.bar(done, len(steps), running)
    out.clear_bar()
    return final or client.call("GET", f"/releases/{release['id']}")


# what the CLI reads of a release (its report, its progress bar's steps)
RELEASE_KEYS = (
    "id",
    "profile",
    "kind",
    "status",
    "reason",
    "helm_revision",
    "started_at",
    "finished_at",
)


def _is_release(value):
    """A release as the API gives it, with everything the CLI reads; anything else in a
    stream's event is not used (the release is read with a call instead)."""
    return (
        isinstance(value, dict)
        and all(key in value for key in RELEASE_KEYS)
        and isinstance(value.get("steps"), list)
        and all(
            isinstance(s, dict)
            and isinstance(s.get("name"), str)
            and isinstance(s.get("status"), str)
            for s in value["steps"]
        )
    )


def _event_data(client, data, keys):
    """An event's JSON data with `keys`, or the one-line error of an answer that is not
    Helmdeck's (never a traceback)."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in keys):
        raise ApiError(0, [("", f"{client.base} did not answer as Helmdeck's API does")])
    return body


def cmd_logs(args, out, client):
    """The log (a component's pods merged, or one pod); -f asks again every FOLLOW_EVERY
    seconds for what came after the last answer, until Ctrl-C."""
    params = {"tail": args.tail}
    if args.component:
        params["component"] = args.component
    if args.pod:
        params["pod"] = args.pod
    if args.previous:
        params["previous"] = "true"
    path = f"/profiles/{_path(args.name)}/logs"
    try:
        while True:
            body = client.call("GET", path, params=params)
            for line in body["lines"]:
                if out.json:
                    print(json.dumps(line), flush=True)
                else:
                    merged = not args.pod
                    out.line(safe(f"{line['pod']} {line['text']}" if merged else line["text"]))
            if not args.follow:
                return 0
            params["after"] = body["after"]
            time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        return 130


def cmd_restart(args, out, client):
    path = f"/profiles/{_path(args.name)}/components/{_path(args.component)}/restart"
    return _acted(out, client.call("POST", path))


def cmd_scale(args, out, client):
    path = f"/profiles/{_path(args.name)}/components/{_path(args.component)}/scale"
    return _acted(out, client.call("POST", path, {"replicas": args.replicas}))


def cmd_delete_pod(args, out, client):
    path = f"/profiles/{_path(args.name)}/pods/{_path(args.pod)}"
    return _acted(out, client.call("DELETE", path))


def cmd_sleep(args, out, client):
    if args.after is not None:  # the schedule, not a sleep now
        hours = None if args.after == "never" else args.after
        path = f"/profiles/{_path(args.name)}/sleep-schedule"
        return _acted(out, client.call("PUT", path, {"hours": hours}))
    return _acted(out, client.call("POST", f"/profiles/{_path(args.name)}/sleep"))


def _hours_or_never(text):
    if text in ("never", "off"):
        return "never"
    if not text.isdigit() or not 1 <= int(text) <= 720:
        raise argparse.ArgumentTypeError(f"{text!r}: hours from 1 to 720, or never")
    return int(text)


def cmd_wake(args, out, client):
    done = client.call("POST", f"/profiles/{_path(args.name)}/wake")
    wanted = sum(done["replicas"].values())
    if not args.wait or not wanted:  # nothing to wait for: every component ran 0 pods
        return _acted(out, done)
    if not out.json:
        out.line(safe(done["message"]), err=True)
    deadline = time.monotonic() + args.timeout
    try:
        while True:
            status = client.call("GET", f"/profiles/{_path(args.name)}/status")
            out.bar(min(status["ready"], wanted), wanted, "pods Ready")
            if status["ready"] >= wanted and status["health"] == "healthy":
                break
            if time.monotonic() > deadline:
                out.clear_bar()
                out.line(
                    f"helmdeck: {args.name}: {status['ready']} of {wanted} pods Ready after "
                    f"{args.timeout}s ({status['health']}); helmdeck status {args.name} says why",
                    err=True,
                )
                return 1
            time.sleep(WAKE_EVERY)
    except KeyboardInterrupt:
        return 130
    out.clear_bar()
    if out.json:
        out.data({**done, "ready": status["ready"]})
    else:
        out.line(f"{args.name} is awake: {status['ready']} pods Ready")
    return 0


def cmd_teardown(args, out, client):
    if args.confirm != args.name:
        out.line(
            f"helmdeck: --confirm: type the profile's name ({args.name}) to tear it down",
            err=True,
        )
        return 2
    body = {"confirm": args.confirm}
    release = client.call("POST", f"/profiles/{_path(args.name)}/teardown", body)
    return _started(args, out, client, release)


def _acted(out, done):
    if out.json:
        out.data(done)
    else:
        out.line(safe(done["message"]))
    return 0


# ---- plumbing -------------------------------------------------------------------------------


def _path(name):
    from urllib.parse import quote

    return quote(name, safe="")


def _seconds(start, end):
    from datetime import datetime

    def parse(stamp):
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def _table(out, header, rows):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.line("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


def parser():
    # --output before or after the command: absent, it is absent (SUPPRESS), so a
    # command's default cannot undo the one given before it; main() reads "text" then.
    # (One action object, shared by every parser through `parents`: no set_defaults.)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--output",
        "-o",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="json: for scripts (default text)",
    )
    top = argparse.ArgumentParser(
        prog="helmdeck", description=__doc__.split("\n\n")[0], parents=[common]
    )
    top.add_argument("--version", action="version", version=f"helmdeck {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    login = sub.add_parser("login", parents=[common], help="save the panel's URL and a token")
    login.add_argument("url", help="the panel's address, e.g. https://helmdeck.example.org")
    login.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    profiles = sub.add_parser("profiles", parents=[common], help="list profiles and their health")
    profiles.add_argument("query", nargs="?", help="name, namespace, cluster or image contains")
    status = sub.add_parser("status", parents=[common], help="a profile's health and pods")
    status.add_argument("name", nargs="?")
    deploy = sub.add_parser("deploy", parents=[common], help="deploy a profile")
    deploy.add_argument("name")
    deploy.add_argument(
        "--tag", action="append", metavar="COMPONENT=TAG", help="this release's tag (repeatable)"
    )
    deploy.add_argument("--no-build", action="store_true", help="deploy existing images")
    deploy.add_argument(
        "--wait", action="store_true", help="follow it; exit 0 only when deployed and Ready"
    )
    rollback = sub.add_parser("rollback", parents=[common], help="roll back a profile")
    rollback.add_argument("name")
    rollback.add_argument(
        "--revision", type=int, help="the helm revision (default: the one before)"
    )
    rollback.add_argument("--wait", action="store_true", help="follow it until it ends")
    logs = sub.add_parser("logs", parents=[common], help="pod logs of a profile")
    logs.add_argument("name")
    logs.add_argument("--component", "-c", help="every pod of it (default: the first)")
    logs.add_argument("--pod", help="one pod")
    logs.add_argument("--tail", type=int, default=200, help="lines to start with (1-10000)")
    logs.add_argument("--previous", action="store_true", help="before the last restart")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines")
    restart = sub.add_parser("restart", parents=[common], help="rolling restart of a component")
    restart.add_argument("name")
    restart.add_argument("component")
    scale = sub.add_parser("scale", parents=[common], help="scale a component until next deploy")
    scale.add_argument("name")
    scale.add_argument("component")
    scale.add_argument("replicas", type=int, help="0-50")
    delete_pod = sub.add_parser("delete-pod", parents=[common], help="delete one pod")
    delete_pod.add_argument("name")
    delete_pod.add_argument("pod")
    sleep = sub.add_parser("sleep", parents=[common], help="scale every component to 0")
    sleep.add_argument("name")
    sleep.add_argument(
        "--after",
        type=_hours_or_never,
        metavar="HOURS|never",
        help="instead: sleep on its own after HOURS without a deploy, action or visit",
    )
    teardown = sub.add_parser(
        "teardown", parents=[common], help="helm uninstall (admins); the profile stays"
    )
    teardown.add_argument("name")
    teardown.add_argument(
        "--confirm", required=True, metavar="NAME", help="the profile's name again, to confirm"
    )
    teardown.add_argument("--wait", action="store_true", help="follow it until it ends")
    wake = sub.add_parser("wake", parents=[common], help="bring a sleeping profile back")
    wake.add_argument("name")
    wake.add_argument("--wait", action="store_true", help="until every pod is Ready")
    wake.add_argument("--timeout", type=int, default=300, help="seconds --wait waits (default 300)")
    return top


COMMANDS = {
    "logs": cmd_logs,
    "profiles": cmd_profiles,
    "status": cmd_status,
    "deploy": cmd_deploy,
    "rollback": cmd_rollback,
    "restart": cmd_restart,
    "scale": cmd_scale,
    "delete-pod": cmd_delete_pod,
    "sleep": cmd_sleep,
    "wake": cmd_wake,
    "teardown": cmd_teardown,
}


def main(argv=None):
    args = parser().parse_args(argv)
    out = Output(getattr(args, "output", "text") == "json")
    try:
        if args.command == "login":
            return cmd_login(args, out)
        url, token = config.load()
        return COMMANDS[args.command](args, out, Client(url, token))
    except config.ConfigError as exc:
        out.line(f"helmdeck: {exc}", err=True)
        return 2
    except ApiError as exc:
        for path, message in exc.problems:
            out.line(f"helmdeck: {path + ': ' if path else ''}{safe(message)}", err=True)
        if exc.status == 401:
            out.line("helmdeck: log in again with a valid token (helmdeck login URL)", err=True)
        return 2 if exc.status in BAD_INPUT else 1
    except KeyboardInterrupt:
        out.line("", err=True)
        return 130
    except BrokenPipeError:  # `helmdeck logs x | head`: the reader is gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
