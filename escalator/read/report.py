"""`escalator report`: how the on-call answered, from the store.

Per alert name and per person: how many alerts, time to acknowledge and to resolve
(median and 90th percentile), response-time SLA breaches and pages sent; per week, the
same time to acknowledge and the escalation levels reached, also as a chart for people
who would rather look than read.

`build` is pure (records in, report out); `load` reads the records; `chart` draws.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from escalator.store.tables import AlertRow, AlertSlaRow, OutboxRow, TimelineRow


@dataclass(frozen=True)
class AlertRecord:
    id: int
    alertname: str
    severity: str | None
    opened_at: datetime
    level: int
    acked_at: datetime | None  # the first acknowledgement
    acked_by: str | None
    resolved_at: datetime | None
    sla_breached: bool
    pages: int  # pages sent for this alert (any recipient)


@dataclass(frozen=True)
class PageRecord:
    alert_id: int | None
    person: str


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _stats(values: list[float]) -> dict[str, float | None]:
    return {
        "median_seconds": statistics.median(values) if values else None,
        "p90_seconds": percentile(values, 90),
    }


def _tta(r: AlertRecord) -> float | None:
    return None if r.acked_at is None else (r.acked_at - r.opened_at).total_seconds()


def _ttr(r: AlertRecord) -> float | None:
    return None if r.resolved_at is None else (r.resolved_at - r.opened_at).total_seconds()


def _summary(records: Sequence[AlertRecord]) -> dict[str, Any]:
    ttas = [v for r in records if (v := _tta(r)) is not None]
    ttrs = [v for r in records if (v := _ttr(r)) is not None]
    return {
        "count": len(records),
        "acknowledged": len(ttas),
        "resolved": len(ttrs),
        "time_to_acknowledge": _stats(ttas),
        "time_to_resolve": _stats(ttrs),
        "sla_breaches": sum(1 for r in records if r.sla_breached),
        "max_level": max((r.level for r in records), default=-1),
    }


def week_of(when: datetime) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


def build(
    records: Sequence[AlertRecord],
    pages: Sequence[PageRecord],
    since: datetime,
    until: datetime,
) -> dict[str, Any]:
    """The report as data (what `-o json` prints)."""
    by_name: dict[str, list[AlertRecord]] = defaultdict(list)
    for r in records:
        by_name[r.alertname].append(r)
    alertnames = []
    for name, group in sorted(by_name.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        alertnames.append(
            {"alertname": name, **_summary(group), "pages_sent": sum(r.pages for r in group)}
        )
    paged = Counter(p.person for p in pages)
    by_acker: dict[str, list[AlertRecord]] = defaultdict(list)
    for r in records:
        if r.acked_by:
            by_acker[r.acked_by].append(r)
    people = []
    for person in sorted(set(paged) | set(by_acker)):
        group = by_acker.get(person, [])
        summary = _summary(group)
        people.append(
            {
                "person": person,
                # Alerts this person acknowledged first, and how fast.
                "acknowledged": summary["acknowledged"],
                "time_to_acknowledge": summary["time_to_acknowledge"],
                "time_to_resolve": summary["time_to_resolve"],
                # Of those, acknowledged after the response-time SLA had run out.
                "sla_breaches": summary["sla_breaches"],
                "pages_received": paged.get(person, 0),
            }
        )
    by_week: dict[str, list[AlertRecord]] = defaultdict(list)
    for r in records:
        by_week[week_of(r.opened_at)].append(r)
    weeks = []
    for week, group in sorted(by_week.items()):
        levels = Counter(str(r.level) for r in group)
        weeks.append(
            {
                "week": week,
                "count": len(group),
                "time_to_acknowledge": _summary(group)["time_to_acknowledge"],
                "levels_reached": dict(sorted(levels.items())),
            }
        )
    return {
        "since": since.isoformat().replace("+00:00", "Z"),
        "until": until.isoformat().replace("+00:00", "Z"),
        "totals": {**_summary(records), "pages_sent": sum(r.pages for r in records)},
        "by_alertname": alertnames,
        "by_person": people,
        "by_week": weeks,
    }


def load(
    session: Session, since: datetime, until: datetime
) -> tuple[list[AlertRecord], list[PageRecord]]:
    """Alerts opened in [since, until), their first ack, SLA and the pages sent for them."""
    # The columns the report uses, not whole rows: decoding every alert's labels and
    # annotations (JSON) was most of the time with thousands of alerts in the window.
    alerts = session.execute(
        select(
            AlertRow.id,
            AlertRow.alertname,
            AlertRow.severity,
            AlertRow.opened_at,
            AlertRow.level,
            AlertRow.resolved_at,
        )
        .where(AlertRow.opened_at >= since, AlertRow.opened_at < until)
        .order_by(AlertRow.id)
    ).all()
    # One query per table, joined to the same window, rather than IN lists of ids in
    # chunks: with 10,000 alerts the chunks were 60 statements of 500 parameters each.
    window = (
        AlertRow.opened_at >= since,
        AlertRow.opened_at < until,
    )
    first_ack: dict[int, tuple[datetime, str | None]] = {}
    breached: set[int] = set()
    page_count: Counter[int] = Counter()
    pages: list[PageRecord] = []
    for alert_id, at, actor in session.execute(
        select(TimelineRow.alert_id, TimelineRow.at, TimelineRow.actor)
        .join(AlertRow, AlertRow.id == TimelineRow.alert_id)
        .where(*window, TimelineRow.kind == "acknowledged")
        .order_by(TimelineRow.id)
    ):
        first_ack.setdefault(alert_id, (at, actor))
    breached.update(
        session.scalars(
            select(AlertSlaRow.alert_id)
            .join(AlertRow, AlertRow.id == AlertSlaRow.alert_id)
            .where(*window, AlertSlaRow.breached_at.is_not(None))
        )
    )
    for alert_id, kind, recipient, n in session.execute(  # type: ignore[assignment]
        select(
            OutboxRow.alert_id,
            OutboxRow.recipient_kind,
            OutboxRow.recipient,
            func.count(),
        )
        .join(AlertRow, AlertRow.id == OutboxRow.alert_id)
        .where(*window, OutboxRow.status == "sent", OutboxRow.urgency == "page")
        .group_by(OutboxRow.alert_id, OutboxRow.recipient_kind, OutboxRow.recipient)
        .order_by(OutboxRow.alert_id)
    ):
        page_count[alert_id] += n
        if kind == "person":
            pages.extend(PageRecord(alert_id, recipient) for _ in range(n))
    records = []
    for a in alerts:
        ack = first_ack.get(a.id)
        records.append(
            AlertRecord(
                id=a.id,
                alertname=a.alertname,
                severity=a.severity,
                opened_at=a.opened_at,
                level=a.level,
                acked_at=ack[0] if ack else None,
                acked_by=ack[1] if ack else None,
                resolved_at=a.resolved_at,
                sla_breached=a.id in breached,
                pages=page_count.get(a.id, 0),
            )
        )
    return records, pages


def human(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def table_rows(items: Iterable[dict[str, Any]], key: str) -> list[list[str]]:
    rows = []
    for item in items:
        tta, ttr = item["time_to_acknowledge"], item["time_to_resolve"]
        rows.append(
            [
                str(item[key]),
                str(item.get("count", item.get("acknowledged"))),
                human(tta["median_seconds"]),
                human(tta["p90_seconds"]),
                human(ttr["median_seconds"]),
                human(ttr["p90_seconds"]),
                str(item["sla_breaches"]),
                str(item.get("pages_sent", item.get("pages_received"))),
            ]
        )
    return rows


CHART_MISSING = (
    "--chart needs matplotlib, which is an optional extra: "
    "pip install 'escalator[chart]' (or pip install matplotlib)"
)


class ChartUnavailable(RuntimeError):
    """matplotlib is not installed: the daemon does not need it, only `report --chart`."""


def require_chart() -> None:
    """Raise ChartUnavailable (with the install command) unless matplotlib can be imported;
    called before any work so a missing extra costs nothing but the message."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ChartUnavailable(CHART_MISSING) from exc


def chart(report: dict[str, Any], path: Path) -> None:
    """Time to acknowledge per week (median and p90) above the escalation levels reached
    per week (stacked); PNG or SVG by the file's suffix."""
    require_chart()
    import matplotlib

    matplotlib.use("Agg")  # no display: the daemon's host and CI have none
    import matplotlib.pyplot as plt

    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("png", "svg"):
        raise ValueError(f"{path}: the chart is written as .png or .svg")
    weeks = [w["week"] for w in report["by_week"]]
    x = list(range(len(weeks)))

    def minutes(value: float | None) -> float:
        return 0.0 if value is None else value / 60

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True)
    try:
        medians = [minutes(w["time_to_acknowledge"]["median_seconds"]) for w in report["by_week"]]
        p90s = [minutes(w["time_to_acknowledge"]["p90_seconds"]) for w in report["by_week"]]
        top.plot(x, medians, marker="o", label="median")
        top.plot(x, p90s, marker="s", linestyle="--", label="p90")
        top.set_ylabel("minutes")
        top.set_title("Time to acknowledge per week")
        top.legend()
        top.grid(alpha=0.3)
        levels = sorted({int(lv) for w in report["by_week"] for lv in w["levels_reached"]}, key=int)
        base = [0] * len(weeks)
        for level in levels:
            counts = [w["levels_reached"].get(str(level), 0) for w in report["by_week"]]
            label = "no page" if level < 0 else f"level {level}"
            bottom.bar(x, counts, bottom=base, label=label)
            base = [b + c for b, c in zip(base, counts, strict=True)]
        bottom.set_ylabel("alerts")
        bottom.set_title("Escalation level reached")
        bottom.set_xticks(x, weeks)
        if levels:
            bottom.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(path, format=suffix)
    finally:
        plt.close(fig)


def parse_since(value: str, now: datetime) -> datetime:
    """`30d`, `2w`, `12h` before now (the duration grammar of the config)."""
    from escalator.config.durations import parse_duration

    delta = parse_duration(value)
    if delta <= timedelta(0):
        raise ValueError(f"--since {value!r} must be longer than zero")
    return now - delta
