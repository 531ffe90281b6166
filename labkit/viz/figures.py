"""The lab's standard charts. Each takes a Result (or a Timeline) and returns a plotly Figure.

* :func:`waterfall`: one bar per call on a time axis, nested under the request it served.
  Calls one after another form a staircase (latency adds up); calls side by side overlap
  (latency is the slowest one).
* :func:`latency_histogram`: how long calls took, per target service.
* :func:`outcome_counts`: how calls ended (ok, 503, timeout, refused, ...), per target.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.core.result import Result
from labkit.core.timeline import Timeline
from labkit.viz.frames import call_rows, descendants

if TYPE_CHECKING:
    import plotly.graph_objects as go

OUTCOME_COLORS = {
    "ok": "#2e7d32",
    "timeout": "#ef6c00",
    "refused": "#6d4c41",
    "reset": "#8e24aa",
    "cancelled": "#9e9e9e",
    "pending": "#bdbdbd",
}
ERROR_COLOR = "#c62828"
#: distinct shades per HTTP status, so "500" and "503" are two different entries in a legend
STATUS_COLORS = {
    "400": "#f9a825",
    "404": "#fbc02d",
    "429": "#ff8f00",
    "500": "#b71c1c",
    "502": "#e53935",
    "503": "#c62828",
    "504": "#ad1457",
}
LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 50, "b": 40}}


def _color(outcome: str) -> str:
    return OUTCOME_COLORS.get(outcome) or STATUS_COLORS.get(outcome, ERROR_COLOR)


def _root_calls(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    known = {r["call"] for r in rows}
    return [r for r in rows if r["parent"] not in known]


def _waterfall_traces(rows: list[dict[str, Any]], seen: set[str] | None = None) -> list[Any]:
    """One bar per call; ``seen`` collects outcomes already in the legend (shared by subplots)."""
    import plotly.graph_objects as go

    labels = [
        f"{'   ' if r['parent'] else ''}{r['source']} → {r['target']} {r['path']}  [{r['call']}]"
        for r in rows
    ]
    traces = []
    seen = set() if seen is None else seen
    for label, row in zip(labels, rows, strict=True):
        end = row["end_ms"] if row["end_ms"] is not None else row["start_ms"]
        outcome = row["outcome"]
        traces.append(
            go.Bar(
                y=[label],
                x=[max(end - row["start_ms"], 0.3)],
                base=[row["start_ms"]],
                orientation="h",
                marker_color=_color(outcome),
                name=outcome,
                legendgroup=outcome,
                showlegend=outcome not in seen,
                hovertemplate=(
                    f"{row['source']} → {row['target']} {row['path']}<br>start %{{base:.1f}} ms"
                    f"<br>took {end - row['start_ms']:.1f} ms<br>outcome {outcome}<extra></extra>"
                ),
            )
        )
        seen.add(outcome)
    return traces


def waterfall(
    source: Result | Timeline, *, request: int = 0, title: str | None = None
) -> go.Figure:
    """Calls of one top-level request (the ``request``-th) as bars on a time axis."""
    import plotly.graph_objects as go

    rows = call_rows(source)
    roots = _root_calls(rows)
    if roots:
        root = roots[min(request, len(roots) - 1)]
        rows = descendants(rows, root["call"])
        offset = root["start_ms"]
        rows = [
            {
                **r,
                "start_ms": r["start_ms"] - offset,
                "end_ms": None if r["end_ms"] is None else r["end_ms"] - offset,
            }
            for r in rows
        ]
    fig = go.Figure(_waterfall_traces(rows))
    total = max((r["end_ms"] or 0) for r in rows) if rows else 0
    fig.update_layout(
        title=title or f"Waterfall of one request ({total:.0f} ms end to end)",
        xaxis_title="time since the request started (ms)",
        yaxis={"autorange": "reversed"},
        barmode="overlay",
        height=120 + 28 * len(rows),
        legend_title="outcome",
        **LAYOUT,
    )
    return fig


def compare_waterfalls(
    left: Result, right: Result, *, titles: tuple[str, str] | None = None
) -> go.Figure:
    """Two waterfalls on one shared time axis: the classic "sum vs max" picture."""
    from plotly.subplots import make_subplots

    sides = [
        descendants(rows, _root_calls(rows)[0]["call"]) if rows else rows
        for rows in (call_rows(left), call_rows(right))
    ]
    names = titles or (left.params.get("mode", "left"), right.params.get("mode", "right"))
    totals = [max((r["end_ms"] or 0) - s[0]["start_ms"] for r in s) if s else 0 for s in sides]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=[f"{n}: {t:.0f} ms" for n, t in zip(names, totals, strict=True)],
        row_heights=[len(s) or 1 for s in sides],
    )
    legend_seen: set[str] = set()
    for i, rows in enumerate(sides, start=1):
        if not rows:
            continue
        offset = rows[0]["start_ms"]
        shifted = [
            {
                **r,
                "start_ms": r["start_ms"] - offset,
                "end_ms": None if r["end_ms"] is None else r["end_ms"] - offset,
            }
            for r in rows
        ]
        for trace in _waterfall_traces(shifted, legend_seen):
            fig.add_trace(trace, row=i, col=1)
        fig.update_yaxes(autorange="reversed", row=i, col=1)
    fig.update_layout(
        barmode="overlay",
        height=160 + 26 * sum(len(s) for s in sides),
        **LAYOUT,
        title="Same request, two ways",
        legend_title="outcome",
    )
    fig.update_xaxes(title_text="time since the request started (ms)", row=2, col=1)
    return fig


def latency_histogram(source: Result | Timeline, *, source_actor: str | None = None) -> go.Figure:
    """Distribution of call latencies per target (optionally only calls made by one actor)."""
    import plotly.graph_objects as go

    rows = [r for r in call_rows(source) if r["latency_ms"] is not None]
    if source_actor:
        rows = [r for r in rows if r["source"] == source_actor]
    fig = go.Figure()
    for target in sorted({r["target"] for r in rows}):
        fig.add_trace(
            go.Histogram(
                x=[r["latency_ms"] for r in rows if r["target"] == target],
                name=target,
                opacity=0.75,
                nbinsx=40,
            )
        )
    fig.update_layout(
        title="How long calls took",
        xaxis_title="latency (ms)",
        yaxis_title="calls",
        barmode="overlay",
        legend_title="target",
        height=360,
        **LAYOUT,
    )
    return fig


def outcome_counts(source: Result | Timeline) -> go.Figure:
    """How calls ended, stacked per target service."""
    import plotly.graph_objects as go

    rows = call_rows(source)
    targets = sorted({r["target"] for r in rows})
    outcomes = sorted({r["outcome"] for r in rows}, key=lambda o: (o != "ok", o))
    fig = go.Figure()
    for outcome in outcomes:
        counts = [
            sum(1 for r in rows if r["target"] == t and r["outcome"] == outcome) for t in targets
        ]
        fig.add_trace(go.Bar(x=targets, y=counts, name=outcome, marker_color=_color(outcome)))
    fig.update_layout(
        title="How calls ended",
        barmode="stack",
        xaxis_title="target",
        yaxis_title="calls",
        legend_title="outcome",
        height=360,
        **LAYOUT,
    )
    return fig


def protocol_comparison(result: Result) -> go.Figure:
    """JSON over HTTP vs protobuf over gRPC: payload bytes and latency percentiles."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    per = result.summary.get("protocols", {})
    names = list(per)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["payload (bytes)", "latency (ms)"])
    fig.add_trace(
        go.Bar(
            x=names,
            y=[per[n]["payload_bytes"] for n in names],
            name="payload",
            marker_color=["#1565c0", "#00897b"][: len(names)],
            showlegend=False,
        ),
        row=1,
        col=1,
    )
    for q, color in (("p50", "#90caf9"), ("p95", "#1565c0"), ("p99", "#0d47a1")):
        fig.add_trace(
            go.Bar(x=names, y=[per[n]["latency_ms"][q] for n in names], name=q, marker_color=color),
            row=1,
            col=2,
        )
    fig.update_layout(title="The same user lookup, two protocols", height=380, **LAYOUT)
    return fig
