"""Figures, goals and tables: the part of the suite that is pure (unit-tested).

A benchmark returns a `Result`: rows of figures, each with the bare tool's figure beside it
(when there is one), the ratio, the goal, and PASS / MISS / "-" (no goal). The same rows
print as a text table, go to benchmarks/results/last.json, and become the README table.
"""

import math
import operator
from dataclasses import asdict, dataclass, field

OPS = {"<=": operator.le, ">=": operator.ge, "==": operator.eq, "<": operator.lt}


def percentile(values, pct):
    """The pct-th percentile with linear interpolation between ranks (numpy's default);
    None for no values. Written out to keep numpy out of the benchmark's dependencies."""
    data = sorted(v for v in values if v is not None)
    if not data:
        return None
    rank = (len(data) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return data[low] + (data[high] - data[low]) * (rank - low)


def median(values):
    return percentile(values, 50)


def summary(values):
    """{n, p50, p95, max} of a list of numbers."""
    values = [v for v in values if v is not None]
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else None,
    }


@dataclass
class Goal:
    """`op threshold` applied to the row's value (on="value") or its ratio (on="ratio")."""

    op: str
    threshold: float
    on: str = "value"
    unit: str = ""

    def text(self):
        sign = {"<=": "≤", ">=": "≥", "==": "=", "<": "<"}[self.op]
        if self.on == "ratio":
            return f"ratio {sign} {fmt(self.threshold)}x"
        return f"{sign} {fmt(self.threshold, self.unit)}"

    def met(self, value):
        if value is None:
            return False
        return OPS[self.op](value, self.threshold)


@dataclass
class Row:
    metric: str
    value: float | None
    unit: str = "ms"
    bare: float | None = None
    goal: Goal | None = None
    status: str = ""  # PASS / MISS / "-"; computed in finish()
    note: str = ""
    goal_text: str = ""  # the goal as stored in last.json (rows read back have no Goal)

    @property
    def goal_label(self):
        return self.goal.text() if self.goal else self.goal_text

    @property
    def ratio(self):
        if self.value is None or not self.bare:
            return None
        return self.value / self.bare

    def finish(self):
        if self.status:  # set by the benchmark (e.g. MISS: endpoint missing)
            return self
        if self.goal is None:
            self.status = "-"
        else:
            subject = self.ratio if self.goal.on == "ratio" else self.value
            self.status = "PASS" if self.goal.met(subject) else "MISS"
        return self


@dataclass
class Result:
    name: str
    title: str
    rows: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    bare_label: str = "bare"
    seconds: float = 0.0
    error: str = ""

    def add(self, *args, **kwargs):
        row = Row(*args, **kwargs)
        self.rows.append(row)
        return row

    def finish(self):
        for row in self.rows:
            row.finish()
        return self

    @property
    def verdict(self):
        statuses = {r.status for r in self.rows}
        if self.error or "MISS" in statuses:
            return "MISS"
        return "PASS" if "PASS" in statuses else "-"

    def to_dict(self):
        data = asdict(self)
        for row, raw in zip(self.rows, data["rows"], strict=True):
            raw["ratio"] = row.ratio
            raw["goal"] = row.goal_label
            del raw["goal_text"]
        data["verdict"] = self.verdict
        return data


def fmt(value, unit=""):
    if value is None:
        return "—"
    if isinstance(value, float) and not value.is_integer():
        digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
        text = f"{value:,.{digits}f}"
    else:
        text = f"{int(value):,}"
    return f"{text} {unit}".strip() if unit else text


def _cells(row):
    return [
        row.metric,
        fmt(row.value, row.unit),
        fmt(row.bare, row.unit) if row.bare is not None else "",
        f"{row.ratio:.2f}x" if row.ratio is not None else "",
        row.goal_label,
        row.status,
    ]


def _header(result):
    return ["metric", "Helmdeck", result.bare_label, "ratio", "goal", "result"]


def text_table(result):
    """A fixed-width table for the terminal, with notes and any error under it."""
    rows = [_header(result)] + [_cells(r) for r in result.rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"== {result.title} [{result.verdict}] ({result.seconds:.0f}s)"]
    for i, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if result.error:
        lines.append(f"error: {result.error}")
    lines += [f"note: {n}" for n in result.notes]
    return "\n".join(lines)


def markdown_table(result):
    head = _header(result)
    lines = [
        f"**{result.title}** ({result.verdict})",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in result.rows:
        cells = _cells(row)
        if cells[0].startswith(" "):  # a part of the row above: Markdown drops the indent
            cells[0] = "↳ " + cells[0].lstrip()
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if result.error:
        lines += ["", f"Error: {result.error}"]
    if result.notes:
        lines += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines)


START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def readme_section(results, machine, when):
    """The Markdown between the README's markers: the machine, then one table each."""
    desc = (
        f"Measured {when} on {machine.get('cpu_model', '?')} ({machine.get('cpus', '?')} CPUs), "
        f"{machine.get('ram_gib', '?')} GiB RAM, Linux {machine.get('kernel', '?')}, Python "
        f"{machine.get('python', '?')}, helm {machine.get('helm', '?')}, kubectl "
        f"{machine.get('kubectl', '?')}; sandbox cluster (kwok) Kubernetes "
        f"{machine.get('kubernetes', '?')}; database: {machine.get('database', '?')}."
    )
    parts = [desc, ""]
    for result in results:
        parts += [markdown_table(result), ""]
    return "\n".join(parts).rstrip() + "\n"


def replace_between_markers(text, body):
    """`text` with what lies between START and END replaced by `body` (markers kept)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"README has no {START} ... {END} block")
    return text[: start + len(START)] + "\n" + body + text[end:]
