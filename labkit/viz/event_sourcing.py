"""Charts for the event-sourcing and CQRS chapters, drawn from a run's records.

* :func:`event_log`: every appended event as a dot, by global position (x) and stream (y),
  coloured by type, with concurrency conflicts marked where they happened. Read a row left to
  right and you read one aggregate's history; read the chart left to right and you read the log.
* :func:`projection_lag`: the log's head and the projection's checkpoint over time. The gap
  between the two lines is the projection lag; stale reads are marked on the time axis.
* :func:`stream_steps`: one stream's events as a step chart of the order total, with the
  version the time-travel slider points at highlighted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from labkit.core.result import Result
from labkit.core.timeline import Timeline

if TYPE_CHECKING:
    import plotly.graph_objects as go

LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}
_COLORS = {
    "OrderCreated": "#2e7d32",
    "OrderItemAdded": "#1565c0",
    "OrderStatusChanged": "#ef6c00",
}


def _timeline(source: Result | Timeline) -> Timeline:
    return source.timeline if isinstance(source, Result) else source


def event_log(source: Result | Timeline, *, max_streams: int = 30) -> go.Figure:
    """Appended events by position and stream; conflicts as red crosses."""
    import plotly.graph_objects as go

    tl = _timeline(source)
    appended = [r.fields for r in tl.of_kind("event.appended")]
    streams = sorted({f["stream"] for f in appended})[:max_streams]
    keep = set(streams)
    fig = go.Figure()
    for kind in sorted({f["type"] for f in appended}):
        rows = [f for f in appended if f["type"] == kind and f["stream"] in keep]
        fig.add_trace(
            go.Scatter(
                x=[f["position"] for f in rows],
                y=[f["stream"] for f in rows],
                mode="markers",
                name=kind,
                marker={"color": _COLORS.get(kind, "#6a1b9a"), "size": 8},
                text=[f"v{f['version']}" for f in rows],
                hovertemplate="%{y} %{text} at position %{x}<extra>" + kind + "</extra>",
            )
        )
    head = 0
    conflicts_x, conflicts_y = [], []
    for r in tl.records:
        if r.kind == "event.appended":
            head = r.fields["position"]
        elif r.kind == "event.conflict" and r.fields["stream"] in keep:
            conflicts_x.append(head + 0.5)
            conflicts_y.append(r.fields["stream"])
    if conflicts_x:
        fig.add_trace(
            go.Scatter(
                x=conflicts_x,
                y=conflicts_y,
                mode="markers",
                name="conflict (refused)",
                marker={"color": "#c62828", "symbol": "x", "size": 11},
            )
        )
    fig.update_layout(
        title=f"The event log: {len(appended)} events, {len(conflicts_x)} conflicts shown",
        xaxis_title="global position",
        yaxis_title="stream",
        height=max(300, 22 * len(streams) + 120),
        **LAYOUT,
    )
    return fig


def lag_series(source: Result | Timeline) -> list[dict[str, float]]:
    """(t_ms, head, checkpoint) after every append and every projection step."""
    head = checkpoint = 0
    out = [{"t_ms": 0.0, "head": 0, "checkpoint": 0}]
    for r in _timeline(source).records:
        if r.kind == "event.appended":
            head = max(head, r.fields["position"])
        elif r.kind == "projection.applied":
            checkpoint = r.fields["checkpoint"]
        else:
            continue
        out.append({"t_ms": round(r.t * 1000, 3), "head": head, "checkpoint": checkpoint})
    return out


def projection_lag(source: Result | Timeline) -> go.Figure:
    """The write side's head against the read side's checkpoint, over time."""
    import plotly.graph_objects as go

    tl = _timeline(source)
    series = lag_series(tl)
    fig = go.Figure()
    for key, name, color in (
        ("head", "events written (log head)", "#1565c0"),
        ("checkpoint", "events projected (checkpoint)", "#2e7d32"),
    ):
        fig.add_trace(
            go.Scatter(
                x=[p["t_ms"] for p in series],
                y=[p[key] for p in series],
                name=name,
                mode="lines",
                line_shape="hv",
                line_color=color,
            )
        )
    for kind, name, color, symbol in (
        ("query.stale", "stale read", "#ef6c00", "triangle-down"),
        ("projection.crashed", "projection crashed", "#c62828", "x"),
        ("publish.failed", "publish failed (logged)", "#6a1b9a", "square"),
    ):
        recs = tl.of_kind(kind)
        if recs:
            fig.add_trace(
                go.Scatter(
                    x=[r.t * 1000 for r in recs],
                    y=[0] * len(recs),
                    mode="markers",
                    name=f"{name} ({len(recs)})",
                    marker={"color": color, "symbol": symbol, "size": 9},
                )
            )
    fig.update_layout(
        title="Projection lag: the gap between what was written and what can be read",
        xaxis_title="time (ms)",
        yaxis_title="log position",
        **LAYOUT,
    )
    return fig


def stream_steps(events: Sequence[dict[str, Any]], at_version: int | None = None) -> go.Figure:
    """One order's running total after each of its events; ``at_version`` is highlighted.

    ``events`` are plain dicts with ``version``, ``type`` and ``total`` (the order total after
    that event), which is what the faces get from replaying the stream step by step.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[e["version"] for e in events],
            y=[e["total"] for e in events],
            mode="lines+markers",
            line_shape="hv",
            name="order total",
            marker={"color": [_COLORS.get(e["type"], "#6a1b9a") for e in events], "size": 10},
            text=[e["type"] for e in events],
            hovertemplate="v%{x}: %{text}, total %{y}<extra></extra>",
        )
    )
    if at_version is not None:
        fig.add_vline(x=at_version, line_dash="dash", line_color="#c62828")
    fig.update_layout(
        title="The order, event by event"
        + (f" (showing version {at_version})" if at_version else ""),
        xaxis_title="version",
        yaxis_title="total",
        **LAYOUT,
    )
    return fig
