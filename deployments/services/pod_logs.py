"""Pod logs for the log viewer: one pod, or every pod of a component merged.

Lines are read with kube timestamps (`timestamps=true`), which makes a position in a
container's log expressible: `(ts, k)` = every line stamped before `ts` plus the first `k`
lines stamped exactly `ts` (several lines can share a stamp). A viewer's position is one
such pair per pod, encoded in the SSE `id:` (the resume token). Resuming asks the API for
`sinceTime` (which it truncates to whole seconds) and skips lines at or before the
position, so a reconnect shows no line twice and misses none.

This module reads a tail (the last N lines, or everything after a token) with plain
requests and merges it by timestamp across pods, cut to N; pod_logs_follow.py then
follows each pod from where its cursor is.

Known limit: a container's stdout and stderr are stamped by separate readers, so a line
can be stamped a hair earlier than the one before it; if a reconnect lands between such a
pair, the later-stamped-earlier line is taken as already seen.
"""

import heapq
import html
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.utils.html import escape

DEFAULT_TAIL = 200
MAX_TAIL = 10000
MAX_FILTER = 200
BATCH_LINES = 2000  # lines per SSE event when sending a tail


class PodNotFound(Exception):
    """The pod or component is not one of the profile's (a 404)."""


@dataclass(frozen=True)
class LogTarget:
    """Whose log: one pod, or every pod of a component, of a profile's release."""

    namespace: str
    release: str
    pod: str = ""
    component: str = ""

    @property
    def merged(self):
        return not self.pod

    @property
    def label(self):
        return self.pod or f"{self.component} (all pods)"


# ---- lines and positions -----------------------------------------------------------------


def normalize_ts(stamp):
    """A timestamp as fixed-width UTC RFC3339 with nanoseconds, so strings compare in time
    order (kube's own fixed format passes through untouched)."""
    if len(stamp) == 30 and stamp[19] == "." and stamp[-1] == "Z":
        return stamp
    head, _, rest = stamp.partition(".")
    digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
    zone = rest[len(digits) :]
    if not rest:  # no fraction: the zone follows the seconds
        head, zone = stamp[:19], stamp[19:]
    moment = datetime.fromisoformat(head + (zone or "Z").replace("Z", "+00:00"))
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (digits + "0" * 9)[:9] + "Z"


def split_line(raw):
    """`2026-01-01T00:00:00.000000000Z text` -> (normalized stamp, text); a line without a
    readable stamp (should not happen with timestamps=true) gets an empty stamp."""
    stamp, _, text = raw.partition(" ")
    try:
        return normalize_ts(stamp), text
    except (ValueError, OverflowError):  # OverflowError: a date at the calendar's edge
        return "", raw


def since_time(stamp):
    """The API's sinceTime for a position: whole seconds, as the apiserver truncates it."""
    return stamp[:19] + "Z"


class Cursor:
    """One pod's position, and the skipping of lines at or before it when a read restarts
    from its (whole-second) sinceTime."""

    def __init__(self, ts=None, k=0):
        self.ts, self.k = ts, k
        self._skipping, self._seen = False, 0

    @property
    def position(self):
        return (self.ts, self.k)

    def restart(self):
        """A new read from since_time(self.ts) begins."""
        self._skipping, self._seen = self.ts is not None, 0

    def take(self, ts):
        """True when the line stamped `ts` is new (and advance), False when already seen."""
        if self._skipping:
            if ts < self.ts:
                return False
            if ts == self.ts:
                self._seen += 1
                if self._seen <= self.k:
                    return False
            self._skipping = False
        if self.ts is None or ts > self.ts:
            self.ts, self.k = ts, 1
        elif ts == self.ts:
            self.k += 1
        # an out-of-order (earlier) stamp keeps the position: it is at or before it
        return True

    def take_block(self, stamps):
        """take() for a run of lines at once: the index of the first new one. Skipping only
        ever drops a prefix, and after it the position is the run's latest stamp with how
        many lines carry it, so a chunk of thousands of lines costs a max() and a count()
        instead of a call per line (this is on the follow path's hot loop)."""
        new_from, rest = 0, stamps
        if self._skipping:
            for index, stamp in enumerate(stamps):
                if self.take(stamp):  # counted: the rest starts after it
                    new_from, rest = index, stamps[index + 1 :]
                    break
            else:
                return len(stamps)
        if rest:
            top = max(rest)
            if self.ts is None or top > self.ts:
                self.ts, self.k = top, rest.count(top)
            elif top == self.ts:
                self.k += rest.count(top)
        return new_from


def encode_token(positions):
    """{pod: (ts, k)} -> the SSE id; "-" means "nothing read yet" (not "no token")."""
    parts = [f"{pod}@{ts}#{k}" for pod, (ts, k) in sorted(positions.items()) if ts]
    return ",".join(parts) or "-"


def decode_token(token):
    """The positions in a token, or None when it is missing or unreadable (read a fresh tail)."""
    token = (token or "").strip()
    if not token:
        return None
    if token == "-":
        return {}
    positions = {}
    try:
        for part in token.split(","):
            pod, _, rest = part.partition("@")
            ts, _, k = rest.rpartition("#")
            if not pod or not ts or len(pod) > 253:
                return None
            positions[pod] = (normalize_ts(ts), int(k))
    except (ValueError, OverflowError):  # a hostile token: 0001-01-01T00:00:00+05:00
        return None
    return positions


def line_html(pod, text, *, prefix):
    pod_span = f'<span class="log-pod">{escape(pod)}</span> ' if prefix else ""
    return f'<div class="log-line">{pod_span}{escape(text)}</div>'


FIXED_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (.*)$", re.M)


def split_block(block):
    """[(stamp, text)] of a block of whole lines: one regex pass over the block when every
    line has kube's fixed stamp format (the usual case), else line by line."""
    if not block:
        return []
    pairs = FIXED_LINE.findall(block)
    if len(pairs) == block.count("\n") + 1:
        return pairs
    return [split_line(line) for line in block.split("\n")]


def block_html(pod, texts, *, prefix):
    """line_html() for many lines: escaped in one pass, the divs joined around them."""
    opening = '<div class="log-line">'
    if prefix:
        opening += f'<span class="log-pod">{escape(pod)}</span> '
    body = html.escape("\n".join(texts)).replace("\n", "</div>" + opening)
    return f"{opening}{body}</div>"


def line_text(pod, text, *, prefix):
    return f"[{pod}] {text}" if prefix else text


def _matches(text, needle):
    return not needle or needle in text.lower()


# ---- the tail ------------------------------------------------------------------------------


def resolve_pods(source, target):
    """The target's pods (PodRef), found by the chart's labels; PodNotFound when a named pod
    is not one of the release's."""
    if target.pod:
        pods = [
            p for p in source.log_pods(target.namespace, target.release) if p.name == target.pod
        ]
        if not pods:
            raise PodNotFound(f"no pod {target.pod} in this profile's release")
        return pods
    return source.log_pods(target.namespace, target.release, target.component)


@dataclass
class Tail:
    """What a viewer shows first: (pod, text) lines, and each pod's cursor after them."""

    lines: list = field(default_factory=list)
    cursors: dict = field(default_factory=dict)
    batches: list = field(default_factory=list)  # [(lines, token)] in order


def read_tail(source, target, pods, *, tail=DEFAULT_TAIL, positions=None, previous=False, q=""):
    """The last `tail` lines of the pods merged in time order (fresh), or every line after
    `positions` (a resume token's). Lines filtered out by `q` still move the positions."""
    cursors = {p.name: Cursor(*(positions or {}).get(p.name, (None, 0))) for p in pods}
    running = {name: cursor.position for name, cursor in cursors.items()}
    resume = positions is not None

    def fetch(pod, *, tail=None, since=None):
        raw = source.pod_log(
            target.namespace,
            pod.name,
            container=pod.container,
            previous=previous,
            tail=tail,
            since_time=since,
        )
        # split on "\n" only, as the follow path does (splitlines() would also split a
        # line at \u2028 or \x1c, making a second "line" without a stamp)
        text = raw.decode("utf-8", "replace").replace("\r", "")
        return split_block(text[:-1] if text.endswith("\n") else text)

    def read(pod):
        cursor = cursors[pod.name]
        if cursor.ts:
            lines = fetch(pod, since=since_time(cursor.ts))
        else:
            lines = fetch(pod, tail=MAX_TAIL if resume else tail)
            if len(lines) >= max(tail, 2) and lines[0][0] and lines[0][0] == lines[-1][0]:
                # every line of the window has one stamp, so more lines with it may lie
                # before the window and the position's count would be short: read that
                # whole second instead (the same lines and more, so no race either)
                lines = fetch(pod, since=since_time(lines[-1][0]))
        cursor.restart()
        taken = []
        for ts, text in lines:
            if cursor.take(ts):
                taken.append((ts, cursor.position, pod.name, text))
        return taken

    if len(pods) > 1:
        with ThreadPoolExecutor(max_workers=min(8, len(pods))) as pool:
            per_pod = list(pool.map(read, pods))
    else:
        per_pod = [read(p) for p in pods]
    merged = list(heapq.merge(*per_pod, key=lambda line: line[0]))
    shown_from = 0 if resume else max(0, len(merged) - tail)
    needle = q.lower()
    result = Tail(cursors=cursors)
    batch = []
    for index, (_ts, position, pod, text) in enumerate(merged):
        running[pod] = position
        if index >= shown_from and _matches(text, needle):
            result.lines.append((pod, text))
            batch.append((pod, text))
        if len(batch) >= BATCH_LINES:
            result.batches.append((batch, encode_token(running)))
            batch = []
    # pods already read up to a token keep that position even if nothing new came
    final = {n: c.position for n, c in cursors.items()}
    if batch or not result.batches:
        result.batches.append((batch, encode_token(final)))
    else:
        result.batches[-1] = (result.batches[-1][0], encode_token(final))
    return result
