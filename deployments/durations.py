"""Durations computed in the database: a time span as an SQL expression, and the seconds of
what such an expression (or its Sum) gives back. The metrics (metrics/collector.py) and the
history charts (selectors_history.py) both sum step and release times this way."""

from django.db.models import DurationField, ExpressionWrapper, F


def duration(start, end):
    """`end - start` as a DurationField expression; each a field path or an expression."""
    start = F(start) if isinstance(start, str) else start
    end = F(end) if isinstance(end, str) else end
    return ExpressionWrapper(end - start, output_field=DurationField())


def seconds(value):
    """A timedelta's seconds (a float), None for None (an empty Sum, a span not ended)."""
    return value.total_seconds() if value is not None else None
