"""Charts for the resilience chapter: breaker states over time, and retry storms.

* :func:`breaker_timeline`: a band per breaker state (closed, open, half-open) across the run,
  each call as a dot (success, failure, rejected), and the counters at every transition in the
  hover text: the inside of the breaker that Hystrix's dashboard never drew.
* :func:`retry_storm`: total calls per backoff, and calls over time, where retries without
  jitter show up as synchronized waves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.core.result import Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

STATE_COLORS = {"closed": "#c8e6c9", "open": "#ffcdd2", "half-open": "#ffe0b2"}
OUTCOME_STYLE = {
    "succeeded": ("success", "#2e7d32", 0.0),
    "failed": ("failure", "#c62828", 1.0),
    "rejected": ("rejected (breaker open)", "#757575", 2.0),
}
LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}


def state_spans(result: Result, breaker: str | None = None) -> list[dict[str, Any]]:
    """Consecutive (start, end, state) spans of one breaker over the run, from its transitions."""
    records = [r for r in result.timeline.of_kind("breaker.") if "to_state" in r.fields]
    if breaker:
        records = [r for r in records if r.fields.get("breaker") == breaker]
    end = max((r.t for r in result.timeline.records), default=0.0)
    spans, start, state = [], 0.0, "closed"
    for rec in records:
        if rec.t > start:
            spans.append({"start": start, "end": rec.t, "state": state})
        start, state = rec.t, rec.fields["to_state"]
    spans.append({"start": start, "end": max(end, start), "state": state})
    return spans


def breaker_timeline(result: Result, *, title: str | None = None) -> go.Figure:
    """State band plus one dot per call, on the run's time axis (seconds)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for span in state_spans(result):
        fig.add_vrect(
            x0=span["start"],
            x1=max(span["end"], span["start"] + 0.05),
            fillcolor=STATE_COLORS[span["state"]],
            opacity=0.8,
            line_width=0,
            layer="below",
        )
    for state, color in STATE_COLORS.items():
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"state: {state}",
                marker={"color": color, "size": 14, "symbol": "square"},
            )
        )
    calls = result.timeline.of_kind("call.succeeded", "call.failed", "call.rejected")
    for suffix, (label, color, y) in OUTCOME_STYLE.items():
        points = [r for r in calls if r.kind == f"call.{suffix}"]
        if not points:
            continue
        fig.add_trace(
            go.Scatter(
                x=[r.t for r in points],
                y=[y] * len(points),
                mode="markers",
                name=label,
                marker={"color": color, "size": 6, "opacity": 0.8},
                hovertemplate="t=%{x:.2f}s<extra>" + label + "</extra>",
            )
        )
    transitions = [r for r in result.timeline.of_kind("breaker.") if "to_state" in r.fields]
    if transitions:
        fig.add_trace(
            go.Scatter(
                x=[r.t for r in transitions],
                y=[2.55 + 0.35 * (i % 2) for i in range(len(transitions))],
                mode="markers+text",
                marker={"symbol": "triangle-down", "size": 11, "color": "#263238"},
                text=[r.fields["to_state"] for r in transitions],
                textposition="top center",
                name="transition",
                hovertext=[
                    f"{r.fields['from_state']} → {r.fields['to_state']} ({r.fields['reason']})<br>"
                    f"previous state lasted {r.fields['previous_lasted_s']:.2f} s<br>"
                    + "<br>".join(f"{k}: {v}" for k, v in r.fields["counts"].items())
                    for r in transitions
                ],
                hoverinfo="text",
            )
        )
    summary = result.summary
    fig.update_layout(
        title=title
        or (
            f"Breaker ({summary.get('policy', '')}): {summary.get('successes', 0)} ok, "
            f"{summary.get('failures', 0)} failed, {summary.get('rejected', 0)} rejected"
        ),
        xaxis_title="time (s)",
        height=380,
        legend={"orientation": "h", "y": -0.25},
        yaxis={
            "tickvals": [0, 1, 2],
            "ticktext": ["success", "failure", "rejected"],
            "range": [-0.5, 3.4],
        },
        **LAYOUT,
    )
    return fig


def retry_storm(result: Result, *, bin_s: float = 0.1) -> go.Figure:
    """Calls per backoff (left) and calls over time per backoff (right)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    policies: dict[str, Any] = result.summary.get("policies") or {
        result.summary["backoff"]: result.summary
    }
    names = list(policies)
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.35, 0.65],
        subplot_titles=["calls made to the service", "calls over time: waves mean no jitter"],
    )
    fig.add_trace(
        go.Bar(
            x=names,
            y=[policies[n]["downstream_calls"] for n in names],
            showlegend=False,
            marker_color="#1565c0",
            text=[_done_text(policies[n]) for n in names],
            textposition="outside",
        ),
        row=1,
        col=1,
    )
    sent = result.timeline.of_kind("request.sent")
    for name in names:
        times = [r.t for r in sent if r.fields.get("backoff", name) == name]
        if not times:
            continue
        bins = [0] * (int(max(times) / bin_s) + 1)
        for t in times:
            bins[int(t / bin_s)] += 1
        fig.add_trace(
            go.Scatter(
                x=[i * bin_s for i in range(len(bins))],
                y=[b or None for b in bins],
                name=name,
                mode="lines+markers",
                line_shape="hv",
                marker={"size": 4},
                connectgaps=False,
            ),
            row=1,
            col=2,
        )
    fig.update_yaxes(type="log", title_text=f"calls per {bin_s * 1000:.0f} ms", row=1, col=2)
    fig.update_layout(
        barmode="overlay",
        height=440,
        legend_title="backoff",
        **{**LAYOUT, "margin": {**LAYOUT["margin"], "t": 100}},
        title=f"{result.params.get('clients')} clients, service down for "
        f"{result.params.get('outage_s')} s",
    )
    fig.update_xaxes(title_text="time (s)", row=1, col=2)
    fig.update_xaxes(tickangle=-30, row=1, col=1)
    return fig


def _done_text(summary: dict[str, Any]) -> str:
    done = summary.get("all_done_s")
    return f"all ok at {done:.1f}s" if done is not None else f"{summary['successes']} ok"
