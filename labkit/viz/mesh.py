"""Charts for the service mesh and service discovery chapters.

* :func:`subset_traffic`: where requests went, per subset, beta testers beside everyone else;
* :func:`lb_comparison`: requests per instance and latency by percentile, one colour per
  load balancer, with the p95 marked;
* :func:`ejection_timeline`: requests each instance answered over time, with the spans during
  which outlier detection had ejected it shaded;
* :func:`health_timeline`: one row per registered instance, coloured by its health status over
  time, failed checks and the client's failed lookups marked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from labkit.core.result import Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}
SUBSET_COLORS = {"v1": "#1565c0", "v2": "#ef6c00", "None": "#757575"}
LB_COLORS = ["#1565c0", "#ef6c00", "#2e7d32", "#6a1b9a"]
HEALTH_COLORS = {"passing": "#66bb6a", "critical": "#ef5350", "deregistered": "#bdbdbd"}


def subset_traffic(result: Result, *, title: str | None = None) -> go.Figure:
    """Requests per subset, beta testers and the others side by side, with shares in %."""
    import plotly.graph_objects as go

    groups: dict[str, Counter[str]] = {"beta testers": Counter(), "everyone else": Counter()}
    for r in result.timeline.of_kind("route.matched"):
        who = "beta testers" if r.fields.get("end_user") == "beta-tester" else "everyone else"
        groups[who][str(r.fields["subset"])] += 1
    subsets = sorted({s for c in groups.values() for s in c})
    fig = go.Figure()
    for subset in subsets:
        counts = [groups[g][subset] for g in groups]
        shares = [
            f"{100 * n / max(1, sum(groups[g].values())):.1f}%"
            for n, g in zip(counts, groups, strict=True)
        ]
        fig.add_trace(
            go.Bar(
                x=list(groups),
                y=counts,
                name=f"subset {subset}",
                text=shares,
                textposition="auto",
                marker_color=SUBSET_COLORS.get(subset, "#9e9e9e"),
            )
        )
    fig.update_layout(
        barmode="stack",
        title=title or "Where requests went, by subset",
        yaxis_title="requests",
        **LAYOUT,
    )
    return fig


def _answered(result: Result) -> list[Any]:
    return result.timeline.of_kind("mesh.answered")


def lb_comparison(results: Mapping[str, Result], *, title: str | None = None) -> go.Figure:
    """Requests per instance (left) and latency by percentile (right) for each balancer.

    The right panel plots each request's latency against its rank: a flat line that jumps at
    the end is a fast service with a slow tail; where the jump starts says which percentile
    the slow instance reaches (left of the p95 line: the p95 is slow)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.45, 0.55],
        subplot_titles=("requests per instance", "latency by percentile"),
    )
    for k, (name, result) in enumerate(results.items()):
        color = LB_COLORS[k % len(LB_COLORS)]
        per = result.summary.get("per_instance") or {}
        used = {i: n for i, n in per.items() if n} or per
        fig.add_trace(
            go.Bar(x=list(used), y=list(used.values()), name=name, marker_color=color,
                   legendgroup=name),
            row=1, col=1,
        )  # fmt: skip
        latencies = sorted(r.fields["latency_ms"] for r in _answered(result))
        n = len(latencies)
        fig.add_trace(
            go.Scatter(
                x=[100 * (i + 1) / n for i in range(n)], y=latencies, name=name, mode="lines",
                line={"color": color, "shape": "hv"}, legendgroup=name, showlegend=False,
                hovertemplate="p%{x:.1f}: %{y:g} ms<extra>" + name + "</extra>",
            ),
            row=1, col=2,
        )  # fmt: skip
    fig.add_vline(x=95, line_dash="dot", line_color="#616161", row=1, col=2,
                  annotation_text="p95", annotation_position="top left")  # fmt: skip
    fig.update_xaxes(title_text="percentile of requests", range=[0, 100.5], row=1, col=2)
    fig.update_yaxes(title_text="requests", row=1, col=1)
    fig.update_yaxes(title_text="latency (ms)", rangemode="tozero", row=1, col=2)
    fig.update_layout(
        barmode="group", title=title or "One slow instance: who gets the requests, and the tail",
        **LAYOUT,
    )  # fmt: skip
    return fig


def ejection_spans(result: Result) -> list[dict[str, Any]]:
    """(instance, start, end) of every ejection; an ejection still on at the end runs to it."""
    end = max((r.t for r in result.timeline.records), default=0.0)
    spans, open_ = [], {}
    for r in result.timeline.of_kind("instance.ejected", "instance.returned"):
        name = r.fields["instance"]
        if r.kind == "instance.ejected":
            open_[name] = r.t
        elif name in open_:
            spans.append({"instance": name, "start": open_.pop(name), "end": r.t})
    spans += [{"instance": n, "start": t, "end": end} for n, t in open_.items()]
    return spans


def ejection_timeline(result: Result, *, bin_s: float = 1.0, title: str | None = None) -> go.Figure:
    """Answers per instance per ``bin_s`` seconds; shaded where the instance was ejected."""
    import plotly.graph_objects as go

    counts: dict[str, Counter[int]] = {}
    for r in result.timeline.of_kind("response.received", "request.failed"):
        if r.actor != "sidecar":
            continue
        ok = r.kind == "response.received" and r.fields.get("status", 500) < 500
        key = f"{r.fields['target']}{'' if ok else ' (failed)'}"
        counts.setdefault(key, Counter())[int(r.t // bin_s)] += 1
    fig = go.Figure()
    last = max((b for c in counts.values() for b in c), default=0)
    for name in sorted(counts):
        series = counts[name]
        fig.add_trace(
            go.Scatter(
                x=[b * bin_s for b in range(last + 1)],
                y=[series.get(b, 0) for b in range(last + 1)],
                name=name,
                mode="lines",
                line={"dash": "dot"} if "failed" in name else {},
            )
        )
    for span in ejection_spans(result):
        fig.add_vrect(
            x0=span["start"], x1=span["end"], fillcolor="#ffcdd2", opacity=0.5, line_width=0,
            layer="below", annotation_text=f"{span['instance']} ejected",
            annotation_position="top left",
        )  # fmt: skip
    fig.update_layout(
        title=title or "Outlier detection: answers per instance, ejections shaded",
        xaxis_title="time (s)",
        yaxis_title=f"calls per {bin_s:g} s",
        **LAYOUT,
    )
    return fig


def health_spans(result: Result) -> list[dict[str, Any]]:
    """(instance, start, end, status) spans of every registered instance's health."""
    end = max((r.t for r in result.timeline.records), default=0.0)
    spans: list[dict[str, Any]] = []
    current: dict[str, tuple[float, str]] = {}
    kinds = ("instance.registered", "health.passing", "health.critical", "instance.deregistered")
    for r in result.timeline.of_kind(*kinds):
        name = r.fields["instance"]
        status = {"instance.registered": "critical", "instance.deregistered": "deregistered"}.get(
            r.kind, r.kind.split(".")[-1]
        )
        if name in current:
            start, was = current[name]
            spans.append({"instance": name, "start": start, "end": r.t, "status": was})
        current[name] = (r.t, status)
    for name, (start, status) in current.items():
        spans.append({"instance": name, "start": start, "end": end, "status": status})
    return [s for s in spans if s["end"] > s["start"] or s["status"] == "deregistered"]


def health_timeline(result: Result, *, title: str | None = None) -> go.Figure:
    """One row per instance coloured by health; x marks failed checks and failed lookups."""
    import plotly.graph_objects as go

    fig = go.Figure()
    shown: set[str] = set()
    for span in health_spans(result):
        status = span["status"]
        fig.add_trace(
            go.Bar(
                base=[span["start"]], x=[max(span["end"] - span["start"], 0.2)],
                y=[span["instance"]], orientation="h", name=status,
                marker_color=HEALTH_COLORS[status], legendgroup=status,
                showlegend=status not in shown,
                hovertemplate=f"{status} %{{base:.1f}}s for %{{x:.1f}}s<extra></extra>",
            )
        )  # fmt: skip
        shown.add(status)
    failed = [r for r in result.timeline.of_kind("check.ran") if not r.fields["ok"]]
    if failed:
        fig.add_trace(
            go.Scatter(
                x=[r.t for r in failed], y=[r.fields["instance"] for r in failed],
                mode="markers", name="failed check", marker={"symbol": "x", "color": "#000"},
            )
        )  # fmt: skip
    misses = result.timeline.of_kind("lookup.failed", "client.crashed")
    if misses:
        fig.add_trace(
            go.Scatter(
                x=[r.t for r in misses], y=["client lookup"] * len(misses), mode="markers",
                name="lookup failed / client crashed",
                marker={"symbol": "diamond", "color": "#6a1b9a"},
            )
        )  # fmt: skip
    fig.update_layout(
        barmode="overlay",
        title=title or "Registry view: each instance's health over time",
        xaxis_title="time (s)",
        **LAYOUT,
    )
    fig.update_yaxes(autorange="reversed")
    return fig
