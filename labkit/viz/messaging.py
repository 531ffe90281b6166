"""Charts for the messaging chapters, drawn from the broker's records.

* :func:`queue_depth`: messages waiting and messages handed out but not yet settled, over
  time, with crashes and dead letters marked. A spike shows as a hill that the consumers wear
  down; a poison loop as a flat line that never drains.
* :func:`message_fate`: a Sankey diagram of where every published message ended: acked (first
  time or after redelivery), dead-lettered (by reason), still queued, or lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.core.result import Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}
_READY, _HELD, _DONE = "ready", "in_flight", "done"


def depth_series(result: Result, queue: str | None = None) -> list[dict[str, Any]]:
    """(t, ready, in_flight) after every change, from per-message states in the records."""
    state: dict[tuple[str, str], str] = {}  # (queue, id): a fanned-out message has one per queue
    ready = held = 0
    series = [{"t": 0.0, "ready": 0, "in_flight": 0}]

    def move(key: tuple[str, str], new: str) -> None:
        nonlocal ready, held
        old = state.get(key)
        if old == new:
            return
        ready -= old == _READY
        held -= old == _HELD
        ready += new == _READY
        held += new == _HELD
        state[key] = new

    for rec in result.timeline.records:
        f = rec.fields
        kind, mid = rec.kind, f.get("id")
        if kind == "message.published":
            targets = [q for q in f.get("queues", ()) if not queue or q == queue]
            for q in targets:
                move((q, mid), _READY)
            if not targets:
                continue
        elif queue and f.get("queue") != queue:
            continue
        elif kind == "message.delivered":
            move((f.get("queue", ""), mid), _HELD)
        elif kind in ("message.acked", "message.rejected", "message.dead_lettered"):
            move((f.get("queue", ""), mid), _DONE)
        elif kind in ("message.requeued", "message.replayed") or (
            kind == "message.nacked" and f.get("requeue")
        ):
            move((f.get("queue", ""), mid), _READY)
        else:
            continue
        series.append({"t": rec.t, "ready": ready, "in_flight": held})
    return series


def queue_depth(result: Result, *, queue: str | None = None) -> go.Figure:
    """Waiting and in-flight messages over time, with crashes and dead letters marked."""
    import plotly.graph_objects as go

    series = depth_series(result, queue)
    fig = go.Figure()
    for key, color in (("ready", "#1565c0"), ("in_flight", "#ef6c00")):
        fig.add_trace(
            go.Scatter(
                x=[p["t"] for p in series],
                y=[p[key] for p in series],
                name="waiting" if key == "ready" else "handed out, not settled",
                mode="lines",
                line_shape="hv",
                line_color=color,
            )
        )
    marks = (
        ("consumer.crashed", "consumer crashed", "x", "#c62828"),
        ("message.dead_lettered", "dead-lettered", "triangle-down", "#6a1b9a"),
    )
    for kind, label, symbol, color in marks:
        recs = result.timeline.of_kind(kind)
        if recs:
            fig.add_trace(
                go.Scatter(
                    x=[r.t for r in recs],
                    y=[0] * len(recs),
                    mode="markers",
                    name=label,
                    marker={"symbol": symbol, "size": 10, "color": color},
                )
            )
    fig.update_layout(
        title="Queue depth over time",
        xaxis_title="time (s)",
        yaxis_title="messages",
        height=360,
        **LAYOUT,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def message_fate(result: Result) -> go.Figure:
    """Sankey: published → (first delivery | redelivered) → acked / DLQ reason / queued / lost."""
    import plotly.graph_objects as go

    s = result.summary.get("accounting", result.summary)
    if "acked" not in s:  # a run without queues (core pub/sub): count from the records
        from labkit.core.accounting import message_accounting

        s = message_accounting(result.timeline)
    reasons = result.summary.get("dead_letter_reasons") or (
        {"dead-lettered": s["dead_lettered"]} if s.get("dead_lettered") else {}
    )
    redelivered_ids = {
        r.fields["id"]
        for r in result.timeline.of_kind("message.delivered")
        if r.fields.get("redelivered")
    }
    acked_ids = {r.fields["id"] for r in result.timeline.of_kind("message.acked")}
    acked_after_retry = len(acked_ids & redelivered_ids)
    labels = [
        "published",
        "acked first time",
        "acked after redelivery",
        *[f"DLQ: {r}" for r in reasons],
        "still queued",
        "lost",
    ]
    values = [
        s["acked"] - acked_after_retry,
        acked_after_retry,
        *reasons.values(),
        s.get("still_queued", 0),
        max(s.get("lost", 0), 0),
    ]
    targets = list(range(1, len(labels)))
    keep = [(t, v) for t, v in zip(targets, values, strict=True) if v > 0]
    fig = go.Figure(
        go.Sankey(
            node={
                "label": labels,
                "pad": 18,
                "thickness": 16,
                "color": [
                    "#1565c0",
                    "#2e7d32",
                    "#66bb6a",
                    *["#6a1b9a"] * len(reasons),
                    "#f9a825",
                    "#c62828",
                ],
            },
            link={
                "source": [0] * len(keep),
                "target": [t for t, _ in keep],
                "value": [v for _, v in keep],
            },
        )
    )
    fig.update_layout(
        title=f"Where {s['published']} messages went (lost: {s.get('lost', 0)})",
        height=360,
        **LAYOUT,
    )
    return fig


def fanout_receipts(result: Result, title: str | None = None) -> go.Figure:
    """A pub/sub run as dots: one per event published and one per event each subscriber
    handled, with the time the notification service was offline shaded. Missed events show
    as a gap in its row; a durable queue's catch-up as a column of dots when it returns."""
    import plotly.graph_objects as go

    rows = {
        "payment service: published": [r.t for r in result.timeline.of_kind("message.published")]
    }
    for r in result.timeline.of_kind("event.handled"):
        rows.setdefault(f"{r.actor}: handled", []).append(r.t)
    fig = go.Figure(
        [go.Scatter(x=ts, y=[who] * len(ts), mode="markers", name=who) for who, ts in rows.items()]
    )
    p = result.params
    fig.add_vrect(
        x0=p["offline_from_s"],
        x1=p["offline_to_s"],
        fillcolor="#9e9e9e",
        opacity=0.2,
        line_width=0,
        annotation_text="notification service offline",
    )
    fig.update_yaxes(range=[-0.5, len(rows) - 0.2])  # room above the top row for the label
    return fig.update_layout(
        title=title or f"{p['delivery']} delivery: who handled what, when",
        template="plotly_white",
        height=300,
        showlegend=False,
        xaxis_title="t (s)",
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
