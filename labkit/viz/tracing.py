"""Figures for the tracing chapter: a trace as a waterfall, a histogram's estimate vs the truth."""

from __future__ import annotations

from typing import Any

from labkit.core.result import Result

SERVICE_COLOURS = {
    "client": "#636EFA",
    "gateway": "#00A0A0",
    "order": "#AB63FA",
    "user": "#FFA15A",
    "product": "#19D3F3",
    "analytics": "#B6E880",
}


def trace_waterfall(result: Result, *, trace: int = 0, title: str | None = None) -> Any:
    """One trace of a ``tracing`` run as a waterfall: a bar per span, indented by depth,
    coloured by service, failed spans in red. ``trace`` picks which request (0: the first)."""
    import plotly.graph_objects as go

    rows = result.extras.get("spans", [])
    trace_ids = list(dict.fromkeys(r["trace_id"] for r in rows))
    if not trace_ids:
        return go.Figure().update_layout(title="no spans recorded")
    chosen = trace_ids[min(trace, len(trace_ids) - 1)]
    spans = [r for r in rows if r["trace_id"] == chosen]
    labels = [f"{'  ' * r['depth']}{r['service']}: {r['name']}" for r in spans]
    colours = [
        "#EF553B" if r["status"] == "ERROR" else SERVICE_COLOURS.get(r["service"], "#999999")
        for r in spans
    ]
    fig = go.Figure(
        go.Bar(
            y=list(range(len(spans))),  # one row per span, even when names repeat
            x=[max(r["duration_ms"], 0.3) for r in spans],
            base=[r["start_ms"] for r in spans],
            orientation="h",
            marker_color=colours,
            text=[f"{r['duration_ms']:g} ms" for r in spans],
            textposition="outside",
            cliponaxis=False,
            customdata=[
                [label, r["kind"], r["span_id"], r["parent_id"] or "-"]
                for label, r in zip(labels, spans, strict=True)
            ],
            hovertemplate="%{customdata[0]}<br>%{base:.1f} → +%{x:.1f} ms<br>%{customdata[1]}"
            "<br>span %{customdata[2]} parent %{customdata[3]}<extra></extra>",
        )
    )
    fig.update_yaxes(
        autorange="reversed",
        tickmode="array",
        tickvals=list(range(len(spans))),
        ticktext=labels,
        tickfont={"family": "monospace", "size": 11},
    )
    end = max(r["end_ms"] for r in spans)
    fig.update_xaxes(range=[0, end * 1.15 + 1])  # room for the labels after the longest bar
    fig.update_layout(
        title=title or f"Trace {trace + 1} of {len(trace_ids)}: one page load, every span",
        xaxis_title="ms since the trace started",
        height=max(320, 22 * len(spans) + 120),
        margin={"l": 10, "r": 40, "t": 60, "b": 40},
        showlegend=False,
    )
    return fig


def histogram_vs_exact(result: Result) -> Any:
    """The gateway's p50/p95/p99 as the histogram estimates them, beside the exact values."""
    import plotly.graph_objects as go

    s = result.summary
    qs = ["p50", "p95", "p99"]
    fig = go.Figure(
        [
            go.Bar(name="exact (every duration)", x=qs, y=[s["gateway_exact_ms"][q] for q in qs]),
            go.Bar(
                name="from histogram buckets",
                x=qs,
                y=[s["gateway_histogram_ms"][q] for q in qs],
            ),
        ]
    )
    fig.update_layout(
        barmode="group",
        title="Gateway latency percentiles: the histogram's estimate vs the truth",
        yaxis_title="ms",
        height=360,
    )
    return fig
