"""Charts for the versioning and security chapter, drawn from the scenarios' summaries.

* :func:`gallery_matrix`: attacks down, verifiers across; a red cell is an attack that got
  in, a grey one an attack refused (with its reason written in), green the good token passing.
* :func:`handshakes`: one bar per mTLS client: how long until it had its answer, coloured by
  the answer, labelled with who refused and when.
* :func:`compatibility`: the changes between two versions of a schema, breaking ones in red.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.core.result import Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}
GOOD, REFUSED, LET_IN = "#2ca02c", "#d9d9d9", "#d62728"


def gallery_rows(result: Result) -> tuple[list[dict[str, Any]], list[str]]:
    """(one row per attack, verifier names): the comparison table when the run made one."""
    summary = result.summary
    if "comparison" in summary:
        names = [k for k in summary["comparison"][0] if k not in ("attack", "title", "expected")]
        return summary["comparison"], names
    name = summary["verifier"]
    rows = [{"attack": r["attack"], "expected": r["expected"], name: r["got"]}
            for r in summary["results"]]  # fmt: skip
    return rows, [name]


def gallery_matrix(result: Result, *, title: str | None = None) -> go.Figure:
    """Which verifier let which attack in."""
    import plotly.graph_objects as go

    rows, names = gallery_rows(result)
    attacks = [r["attack"] for r in rows]
    z, text = [], []
    for r in rows:
        good = r["attack"] == "good"
        z.append([_cell_value(good, r[n]) for n in names])
        text.append([r[n].replace("_", " ") for n in names])
    scale = [[0.0, REFUSED], [0.5, GOOD], [1.0, LET_IN]]
    fig = go.Figure(
        go.Heatmap(
            z=z, x=names, y=attacks, text=text, texttemplate="%{text}", colorscale=scale,
            zmin=0, zmax=1, showscale=False, xgap=3, ygap=3,
            hovertemplate="%{y} vs %{x}: %{text}<extra></extra>",
        )
    )  # fmt: skip
    let_in = sum(v == 1 for row in z for v in row)
    fig.update_layout(
        **LAYOUT,
        title=title or f"JWT attack gallery: {let_in} attack(s) got in (red)",
        yaxis={"autorange": "reversed"},
        height=80 + 34 * len(attacks),
    )
    return fig


def _cell_value(good: bool, verdict: str) -> float:
    if verdict == "accepted":
        return 0.5 if good else 1.0
    return 1.0 if good else 0.0  # the good token refused is a failure too


def handshakes(result: Result, *, title: str | None = None) -> go.Figure:
    """Time to an answer for each mTLS client, coloured by that answer."""
    import plotly.graph_objects as go

    rows = result.summary["results"]
    labels = []
    for r in rows:
        if r["accepted"]:
            labels.append(f"{r['status']} OK; server saw {_cn(r['client_seen_by_server'])}")
        else:
            why = f": {r['server_reason']}" if r.get("server_reason") else ""
            labels.append(f"refused by the {r['refused_by']} ({r['stage']}){why}")
    fig = go.Figure(
        go.Bar(
            x=[r["elapsed_ms"] for r in rows], y=[r["case"] for r in rows], orientation="h",
            marker_color=[GOOD if r["accepted"] else LET_IN for r in rows],
            text=labels, textposition="auto",
            hovertext=[r["error"] or "" for r in rows], hoverinfo="text+x",
        )
    )  # fmt: skip
    fig.update_layout(
        **LAYOUT,
        title=title or f"mTLS on loopback (TLS {result.summary['tls']}): who got in",
        xaxis_title="ms until the client had its answer",
        yaxis={"autorange": "reversed"},
        height=120 + 50 * len(rows),
    )
    return fig


def _cn(subject: str | None) -> str:
    if not subject:
        return "nobody"
    parts = dict(p.split("=", 1) for p in subject.split(",") if "=" in p)
    return parts.get("CN", subject)


def compatibility(changes: list[dict[str, Any]], *, title: str = "") -> go.Figure:
    """The changes as a table, breaking rows in red."""
    import plotly.graph_objects as go

    fill = [LET_IN if c["breaking"] else GOOD for c in changes]
    columns = [
        [c["path"] for c in changes],
        [c["change"].replace("_", " ") for c in changes],
        ["breaking" if c["breaking"] else "safe" for c in changes],
        [c["why"] for c in changes],
    ]
    fig = go.Figure(
        go.Table(
            header={"values": ["field", "change", "verdict", "why"], "align": "left"},
            cells={"values": columns, "align": "left",
                   "fill_color": [["white"] * len(changes), ["white"] * len(changes), fill,
                                  ["white"] * len(changes)],
                   "font": {"color": [["black"] * len(changes)] * 2
                            + [["white"] * len(changes)] + [["black"] * len(changes)]}},
            columnwidth=[1, 1.3, 0.8, 3],
        )
    )  # fmt: skip
    breaking = sum(c["breaking"] for c in changes)
    fig.update_layout(
        **LAYOUT,
        title=title or f"{len(changes)} change(s), {breaking} breaking",
        height=120 + 32 * max(1, len(changes)),
    )
    return fig
