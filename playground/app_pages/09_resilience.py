"""Timeouts, retries and bulkheads: a retry storm per backoff, a deadline kept at the top or
passed down the call chain, and a slow dependency in one shared pool of slots or its own."""

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

import labkit
from labkit import Result
from labkit.viz import retry_storm, waterfall

import controls

VIEW_KEY = "resilience.view"
TABS = ["Retries", "Deadlines", "Bulkheads"]
COMPARED_KEY = "retry.compared"  # the parameters the "every backoff" comparison last ran with
LAYOUT = {"template": "plotly_white", "margin": {"l": 10, "r": 10, "t": 60, "b": 40}}
OUTCOME_COLORS = {"ok": "#2e7d32", "rejected": "#757575", "failed": "#c62828"}

st.title("Timeouts, retries and bulkheads")
st.markdown(
    "Three defences around a remote call. **Retries** with backoff heal transient failures, "
    "unless a crowd of clients retries in lockstep and becomes the outage. A **deadline** "
    "passed down the call chain stops work whose answer nobody is waiting for anymore. "
    "**Bulkheads** keep one slow dependency from taking every call slot. Time is virtual: "
    "a storm of a thousand calls over ten seconds runs in about a second."
)

# Only the open tab is drawn, and Streamlit forgets the value of a widget that a run does not
# draw: writing each value back keeps the other tabs' settings until they are drawn again.
for _pattern in ("retry", "deadline", "bulkhead"):
    _keys = [controls.key_for(_pattern, p.name) for p in labkit.params_of(_pattern)]
    for _key in [*_keys, f"{_pattern}.preset"]:
        if _key in st.session_state:
            st.session_state[_key] = st.session_state[_key]
    controls.init_state(_pattern)


def show_command(pattern: str, params: dict[str, Any], preset: str | None) -> None:
    st.markdown("**The same run from a terminal**")
    st.code(controls.cli_command(pattern, params, preset=preset), language="bash", wrap_lines=True)


# --- retries ---------------------------------------------------------------------------------


def storm_metrics(s: dict[str, Any]) -> None:
    m = st.columns(4)
    m[0].metric("Clients answered", f"{s['successes']} / {s['calls']}")
    m[1].metric(
        "Calls to the service",
        s["downstream_calls"],
        help="every attempt that reached the service, first attempts included",
    )
    m[2].metric("Retries", s["retries"], help="attempts scheduled after a failure")
    done = s["all_done_s"]
    m[3].metric(
        "All answered at",
        f"{done:.1f} s" if done is not None else "never",
        help="when the last client that could be answered was",
    )
    m = st.columns(4)
    m[0].metric("Clients that gave up", s["failures"])
    m[1].metric("400 answers", s["answered_400"], help="malformed requests, answered 400")
    m[2].metric("Retries refused by the budget", s["throttled"])
    m[3].metric(
        "Clients rejected by the breaker",
        s["rejected"],
        help="clients whose last attempt met an open breaker",
    )


def compare_backoffs(params: dict[str, Any], preset: str | None) -> None:
    st.subheader("Every backoff on the same storm")
    wanted = {**params, "compare": True}
    marker = tuple(sorted(wanted.items()))
    clicked = st.button(
        "Compare every backoff",
        icon=":material/compare_arrows:",
        key="retry.compare_button",
        type="primary" if preset == "storm" else "secondary",
        help="runs this storm six times, once per backoff: a few seconds",
    )
    if clicked:
        st.session_state[COMPARED_KEY] = marker
    if st.session_state.get(COMPARED_KEY) != marker:
        st.caption(
            "The same clients, outage and capacity, replayed with each backoff. It takes a few "
            "seconds, so it runs only when you ask (and is kept until the settings change)."
        )
        return
    with st.spinner("Six storms…", show_time=True):
        result = controls.run("retry", wanted)
    if result is None:
        return
    s = result.summary
    exp, full = s["policies"]["exponential"], s["policies"]["full_jitter"]
    m = st.columns(3)
    m[0].metric(
        "Calls, exponential vs full jitter",
        f"{s['calls_exponential_vs_full_jitter']:.2f}×",
        help="calls_exponential_vs_full_jitter: no jitter / full jitter",
    )
    m[1].metric(
        "Exponential (no jitter): calls",
        exp["downstream_calls"],
        delta=f"{exp['successes']} of {exp['calls']} answered",
        delta_color="off",
        delta_arrow="off",
    )
    m[2].metric(
        "Full jitter: calls",
        full["downstream_calls"],
        delta=f"{full['successes']} of {full['calls']} answered",
        delta_color="off",
        delta_arrow="off",
    )
    st.plotly_chart(retry_storm(result), key="retry_compare_chart")
    table = pd.DataFrame.from_dict(
        {
            name: {
                "answered": p["successes"],
                "gave up": p["failures"],
                "calls": p["downstream_calls"],
                "retries": p["retries"],
                "all answered at": "never"
                if p["all_done_s"] is None
                else f"{p['all_done_s']:.1f} s",
            }
            for name, p in s["policies"].items()
        },
        orient="index",
    )
    st.table(table)
    show_command("retry", wanted, preset)


def retries_tab() -> None:
    chosen = controls.preset_picker(
        "retry", "Choose a preset (the storm, a 400, a budget, a breaker…)"
    )
    with st.container(border=True):
        controls.widget("retry", "backoff", label="Backoff between attempts")
        storm, client, limits = st.columns(3)
        storm.markdown("**The storm**")
        controls.widget(
            "retry", "clients", label="Clients, all at t = 0", ui_max=500, container=storm
        )
        controls.widget(
            "retry", "outage_s", label="Service down for (s)", ui_max=10, container=storm
        )
        controls.widget(
            "retry",
            "capacity_per_s",
            label="Capacity once back (calls/s)",
            ui_max=200,
            container=storm,
        )
        client.markdown("**Each client**")
        controls.widget(
            "retry",
            "max_attempts",
            label="Attempts, the first included",
            ui_max=30,
            container=client,
        )
        controls.widget("retry", "base_ms", label="First backoff step (ms)", container=client)
        controls.widget(
            "retry", "cap_ms", label="Longest wait (ms)", ui_max=10000, step=100, container=client
        )
        controls.widget(
            "retry", "timeout_ms", label="Timeout per attempt (ms)", ui_max=3000, container=client
        )
        limits.markdown("**What to retry, and limits**")
        controls.widget("retry", "retry_on", label="Retry on", container=limits)
        controls.widget(
            "retry",
            "bad_request_share",
            label="Share of malformed requests (400)",
            container=limits,
        )
        controls.widget("retry", "budget", label="Retry budget (token bucket)", container=limits)
        controls.widget("retry", "breaker", label="Circuit breaker in front", container=limits)
    params = controls.values("retry")
    single = {**params, "compare": False}
    with st.spinner("Running the storm…", show_time=True):
        result = controls.run("retry", single)
    if result is not None:
        storm_metrics(result.summary)
        st.plotly_chart(retry_storm(result), key="retry_chart")
        if result.summary["transitions"]:
            with st.expander("The breaker's transitions"):
                st.dataframe(pd.DataFrame(result.summary["transitions"]), hide_index=True)
        show_command("retry", single, chosen)
    compare_backoffs(params, chosen)


# --- deadlines -------------------------------------------------------------------------------

DEADLINE_NAMES = {False: "timeout at the gateway only", True: "deadline propagated"}


def deadline_waste(runs: list[Result]) -> go.Figure:
    """Work after the deadline, one bar per setting (labkit.viz has no deadline chart yet)."""
    from plotly.subplots import make_subplots

    names = [DEADLINE_NAMES[r.params["propagate"]] for r in runs]
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[
            "product work after the deadline (ms)",
            "product calls started after the deadline",
        ],
    )
    for col, field in enumerate(("work_after_deadline_ms", "product_calls_started_after_deadline")):
        values = [r.summary[field] for r in runs]
        fig.add_bar(
            x=names,
            y=values,
            text=[f"{v:,.0f}" for v in values],
            textposition="outside",
            cliponaxis=False,
            showlegend=False,
            marker_color=["#c62828", "#2e7d32"],
            row=1,
            col=col + 1,
        )
    budget = runs[0].params["budget_ms"]
    most = max(r.summary["product_calls_started_after_deadline"] for r in runs)
    fig.update_yaxes(rangemode="tozero", tickformat=",d")
    fig.update_yaxes(dtick=max(1, -(-most // 5)), row=1, col=2)  # whole calls only
    return fig.update_layout(
        title=f"Work nobody reads: after the gateway's {budget:,.0f} ms", height=340, **LAYOUT
    )


def deadlines_tab() -> None:
    chosen = controls.preset_picker(
        "deadline", "Choose a preset (budget kept at the top or passed down)"
    )
    with st.container(border=True):
        left, right = st.columns(2)
        left.markdown("**The gateway**")
        controls.widget(
            "deadline", "propagate", label="Pass the remaining budget downstream", container=left
        )
        controls.widget(
            "deadline", "budget_ms", label="Gateway's time budget (ms)", ui_max=3000, container=left
        )
        right.markdown("**The work below it**")
        controls.widget(
            "deadline",
            "product_latency_ms",
            label="Product service, per product (ms)",
            container=right,
        )
        controls.widget("deadline", "requests", label="Client requests", ui_max=20, container=right)
    params = controls.values("deadline")
    result = controls.run("deadline", params)
    other = controls.run("deadline", {**params, "propagate": not params["propagate"]})
    if result is None or other is None:
        return
    s, o = result.summary, other.summary
    versus = "vs no propagation" if params["propagate"] else "vs propagation"
    m = st.columns(4)
    m[0].metric(
        "Work after the deadline",
        f"{s['work_after_deadline_ms']:,.0f} ms",
        delta=f"{s['work_after_deadline_ms'] - o['work_after_deadline_ms']:+,.0f} ms {versus}",
        delta_color="inverse",
        help="time the product service spent on calls whose answer was already too late",
    )
    m[1].metric(
        "Calls started too late",
        s["product_calls_started_after_deadline"],
        help="product calls that started after the gateway's deadline had passed",
    )
    m[2].metric("Client saw", "  ".join(f"{n}×{what}" for what, n in s["client_outcomes"].items()))
    m[3].metric(
        "Stopped early",
        s["abandoned_by_order_service"],
        help="requests where the order service saw the budget spent and stopped working",
    )
    ordered = sorted([result, other], key=lambda r: r.params["propagate"])
    st.plotly_chart(deadline_waste(ordered), key="deadline_waste_chart")
    if st.session_state.get("deadline.request_shown", 1) > s["requests"]:
        st.session_state["deadline.request_shown"] = s["requests"]
    pick, _ = st.columns([1, 3])
    shown = pick.number_input(
        "Waterfall of request number", 1, s["requests"], 1, key="deadline.request_shown"
    )
    st.plotly_chart(waterfall(result, request=shown - 1), key="deadline_waterfall")
    st.caption(
        "The client's bar (gateway → order) ends at the budget either way. Without "
        "propagation the product calls below it go on after it; with it, the call in flight "
        "gets the time left as its timeout and the rest are never made."
    )
    show_command("deadline", params, chosen)


# --- bulkheads -------------------------------------------------------------------------------

OTHER_POOLS = {"shared": "isolated", "isolated": "shared"}
POOLS_NAMES = {"shared": "one shared pool", "isolated": "a pool each"}


def pool_outcomes(runs: list[Result]) -> go.Figure:
    """How user and product calls ended, per pool setting (labkit.viz has no bulkhead chart)."""
    deps = ("user", "product")
    x = [[r.params["pools"] for r in runs for _ in deps], [d for _ in runs for d in deps]]
    fig = go.Figure()
    for outcome, color in OUTCOME_COLORS.items():
        y = [r.summary[d][outcome] for r in runs for d in deps]
        fig.add_bar(x=x, y=y, name=outcome, marker_color=color)
    return fig.update_layout(
        title="How the calls to each dependency ended",
        barmode="stack",
        yaxis_title="calls",
        legend_title="outcome",
        height=380,
        **LAYOUT,
    )


def pool_latency(result: Result) -> go.Figure:
    fig = go.Figure()
    for q, color in (("p50", "#90caf9"), ("p95", "#1565c0"), ("max", "#0d47a1")):
        y = [result.summary[d]["latency_ms"][q] for d in ("user", "product")]
        fig.add_bar(x=["user", "product"], y=y, name=q, marker_color=color)
    return fig.update_layout(
        title=f"Latency of answered calls, {POOLS_NAMES[result.params['pools']]}",
        yaxis={"title": "ms (log scale)", "type": "log", "dtick": 1},
        barmode="group",
        height=380,
        **LAYOUT,
    )


def bulkheads_tab() -> None:
    chosen = controls.preset_picker(
        "bulkhead", "Choose a preset (shared pool, isolated pools, waiting)"
    )
    with st.container(border=True):
        pools, load, slow = st.columns(3)
        pools.markdown("**Call slots**")
        controls.widget("bulkhead", "pools", label="Pools", container=pools)
        controls.widget("bulkhead", "slots", label="Slots in total", ui_max=100, container=pools)
        controls.widget(
            "bulkhead",
            "max_wait_ms",
            label="Wait for a free slot (ms)",
            ui_max=3000,
            container=pools,
        )
        load.markdown("**Traffic**")
        controls.widget(
            "bulkhead", "rate_per_s", label="Requests per second", ui_max=200, container=load
        )
        controls.widget(
            "bulkhead", "duration_s", label="Length of the run (s)", ui_max=60, container=load
        )
        controls.widget(
            "bulkhead",
            "timeout_ms",
            label="Timeout per call (ms)",
            ui_max=10000,
            step=100,
            container=load,
        )
        slow.markdown("**The product service turns slow**")
        controls.widget("bulkhead", "slow_from_s", label="From (s)", ui_max=30, container=slow)
        controls.widget(
            "bulkhead",
            "slow_latency_ms",
            label="Then per call (ms)",
            ui_max=5000,
            step=100,
            container=slow,
        )
        controls.widget(
            "bulkhead", "latency_ms", label="Normal latency (ms)", ui_max=200, container=slow
        )
    params = controls.values("bulkhead")
    with st.spinner("Running…", show_time=True):
        result = controls.run("bulkhead", params)
        other = controls.run("bulkhead", {**params, "pools": OTHER_POOLS[params["pools"]]})
    if result is None or other is None:
        return
    s, o = result.summary, other.summary
    m = st.columns(4)
    m[0].metric(
        "User success rate",
        f"{s['user_success_rate']:.0%}",
        delta=f"{(s['user_success_rate'] - o['user_success_rate']) * 100:+.0f} points vs "
        f"{o['pools']}",
        help="user lookups answered (the user service is healthy)",
    )
    m[1].metric("User lookups refused", s["user"]["rejected"], help="no free slot")
    m[2].metric("User p95", controls.fmt_ms(s["user"]["latency_ms"]["p95"]))
    m[3].metric("Product: ok / refused", f"{s['product']['ok']} / {s['product']['rejected']}")
    st.caption(
        "Peak calls in flight: "
        + ", ".join(f"{name} {peak}" for name, peak in s["peak_in_flight"].items())
        + (" (one pool, shared)" if s["pools"] == "shared" else " (a pool each)")
    )
    ordered = sorted([result, other], key=lambda r: r.params["pools"] != "shared")
    left, right = st.columns([3, 2])
    left.plotly_chart(pool_outcomes(ordered), key="bulkhead_outcomes")
    right.plotly_chart(pool_latency(result), key="bulkhead_latency")
    show_command("bulkhead", params, chosen)


retries, deadlines, bulkheads = st.tabs(TABS, key=VIEW_KEY, on_change="rerun")
if retries.open:
    with retries:
        retries_tab()
if deadlines.open:
    with deadlines:
        deadlines_tab()
if bulkheads.open:
    with bulkheads:
        bulkheads_tab()
