"""Circuit breaker: break the user service by hand (or let a load generator call it) and watch
the breaker open, wait, try again and close; or replay a whole minute with an outage in it."""

import time
from typing import Any

import pandas as pd
import streamlit as st

import labkit
from labkit import LabError, Result
from labkit.scenarios.breaker_session import BreakerSession
from labkit.viz import breaker_timeline

import controls

PATTERN = "circuit_breaker"
SESSION_KEY = "circuit_breaker.session"
LIVE_KEY = "circuit_breaker.live"
TICK_KEY = "circuit_breaker.last_tick"
NOTE_KEY = "circuit_breaker.note"
VIEW_KEY = "circuit_breaker.view"
ERROR_RATE_KEY = "circuit_breaker.session.error_rate"
LATENCY_KEY = "circuit_breaker.session.latency_ms"

#: The settings that make a breaker, per policy; a change builds a fresh session.
POLICY_SETTINGS = {
    "consecutive": ["fail_max"],
    "gobreaker": ["minimum_calls", "failure_ratio", "interval_s"],
    "sliding_window": ["window", "window_size", "minimum_calls", "failure_ratio", "slow_call_ms"],
}
COMMON_SETTINGS = ["open_timeout_s", "half_open_calls", "timeout_ms"]
BREAKER_SETTINGS = ["policy", *COMMON_SETTINGS, *{n for v in POLICY_SETTINGS.values() for n in v}]
LABELS = {
    "open_timeout_s": "Open timeout (s)",
    "half_open_calls": "Half-open trial calls",
    "timeout_ms": "Caller's deadline (ms)",
    "fail_max": "Failures in a row that trip",
    "minimum_calls": "Minimum calls before the ratio counts",
    "failure_ratio": "Failure ratio that trips",
    "interval_s": "Interval: clear counts every (s, 0 = never)",
    "window": "Window",
    "window_size": "Window size (calls or s)",
    "slow_call_ms": "Slow call above (ms, 0 = off)",
}
BADGE = {
    "closed": ("green", ":material/check_circle:"),
    "open": ("red", ":material/block:"),
    "half-open": ("orange", ":material/hourglass_top:"),
}
LIVE_PERIOD_S = 1.0
LIVE_CALLS = 5  # one call every 0.2 s of virtual time: one tick is one second of traffic

st.title("Circuit breaker")
st.markdown(
    "A caller looks up a user through a circuit breaker. While **closed**, calls go through "
    "and the breaker counts failures. When its policy has seen enough, it **opens**: calls "
    "are rejected at once and the user service is left alone. After the open timeout it goes "
    "**half-open** and lets a few trial calls through: successes close it, a failure opens it "
    "again. Time is virtual: a 30 s timeout passes in a click."
)

# Streamlit forgets the value of a widget that a run does not draw (the other tab's, another
# policy's settings); writing each value back keeps it until its widget is drawn again.
for _key in [controls.key_for(PATTERN, p.name) for p in labkit.params_of(PATTERN)] + [
    ERROR_RATE_KEY,
    LATENCY_KEY,
]:
    if _key in st.session_state:
        st.session_state[_key] = st.session_state[_key]
controls.init_state(PATTERN)
st.session_state.setdefault(ERROR_RATE_KEY, 0.0)
st.session_state.setdefault(LATENCY_KEY, controls.params_by_name(PATTERN)["latency_ms"].default)


chosen = controls.preset_picker(
    PATTERN, "Choose a preset (it sets the breaker and the full run's outage)"
)

with st.container(border=True):
    left, middle, right = st.columns(3)
    left.markdown("**The breaker**")
    policy = controls.widget(PATTERN, "policy", label="Trip policy", container=left)
    controls.widget(PATTERN, "open_timeout_s", label=LABELS["open_timeout_s"], container=left)
    middle.markdown("**Half-open and the caller**")
    controls.widget(PATTERN, "half_open_calls", label=LABELS["half_open_calls"], ui_max=10,
                    container=middle)  # fmt: skip
    controls.widget(PATTERN, "timeout_ms", label=LABELS["timeout_ms"], container=middle)
    right.markdown(f"**Settings of the `{policy}` policy**")
    for name in POLICY_SETTINGS[policy]:
        controls.widget(PATTERN, name, label=LABELS[name], container=right,
                        ui_max={"fail_max": 30, "minimum_calls": 50}.get(name))  # fmt: skip

params = controls.values(PATTERN)
settings = {name: params[name] for name in BREAKER_SETTINGS}


# --- shared by both tabs ---------------------------------------------------------------------


def transitions_frame(result: Result) -> pd.DataFrame:
    """One row per transition, with how long the previous state lasted and the counters."""
    rows = [
        {
            "t (s)": round(r.t, 3),
            "from": r.fields["from_state"],
            "to": r.fields["to_state"],
            "reason": r.fields["reason"],
            "lasted (s)": round(r.fields["previous_lasted_s"], 3),
            "counters": ", ".join(f"{k} {v}" for k, v in r.fields["counts"].items()),
        }
        for r in result.timeline.of_kind("breaker.")
        if "to_state" in r.fields
    ]
    columns = ["t (s)", "from", "to", "reason", "lasted (s)", "counters"]
    return pd.DataFrame(rows, columns=columns)


TRANSITION_COLUMNS = {
    "reason": st.column_config.TextColumn(width="medium"),
    "lasted (s)": st.column_config.NumberColumn(help="how long the 'from' state lasted"),
    "counters": st.column_config.TextColumn(help="what the policy counted at that moment",
                                            width="large"),
}  # fmt: skip


def show_counts(summary: dict[str, Any]) -> None:
    m = st.columns(5)
    m[0].metric("Calls", summary["calls"])
    m[1].metric("Succeeded", summary["successes"])
    m[2].metric("Failed", summary["failures"], help="reached the service, or timed out on it")
    m[3].metric("Rejected by the breaker", summary["rejected"],
                help="failed at once, without touching the service")  # fmt: skip
    m[4].metric("Reached the service", summary["downstream_calls"])


def mark_service(fig: Any, spans: list[tuple[float, float | None]]) -> Any:
    """Dashed lines where the service went down and came back."""
    for start, end in spans:
        fig.add_vline(
            x=start,
            line_dash="dash",
            line_color="#b71c1c",
            annotation_text="service down",
            annotation_position="bottom right",
        )
        if end is not None:
            fig.add_vline(
                x=end,
                line_dash="dash",
                line_color="#1b5e20",
                annotation_text="back up",
                annotation_position="bottom right",
            )
    return fig


# --- tab 1: a session kept between clicks ----------------------------------------------------


def current_session(settings: dict[str, Any]) -> BreakerSession | None:
    """This browser session's breaker lab; a fresh one when the breaker settings change."""
    key = tuple(sorted(settings.items()))
    held = st.session_state.get(SESSION_KEY)
    if held is None or held["key"] != key:
        try:
            session = BreakerSession(**settings)
        except LabError as exc:
            controls.show_error(exc)
            return None
        fresh = held is not None
        held = {"key": key, "session": session}
        st.session_state[SESSION_KEY] = held
        if fresh:
            st.session_state[NOTE_KEY] = "New settings: a fresh breaker, closed, time back at 0."
    return held["session"]


def outage_spans(session: BreakerSession) -> list[tuple[float, float | None]]:
    spans: list[tuple[float, float | None]] = []
    for r in session.timeline.of_kind("service."):
        if r.kind == "service.taken_down":
            spans.append((r.t, None))
        elif r.kind == "service.brought_back" and spans and spans[-1][1] is None:
            spans[-1] = (spans[-1][0], r.t)
    return spans


def _sent(session: BreakerSession, calls: int) -> str:
    ended = session.send(calls)
    parts = [f"{n} {what}" for what, n in sorted(ended.items())]
    return f"Sent {calls} call{'s' * (calls > 1)}: " + ", ".join(parts) + "."


def _live_tick(session: BreakerSession) -> None:
    """The load generator: at most one second of traffic per second of wall time."""
    now = time.monotonic()
    if now - st.session_state.get(TICK_KEY, -1e9) >= 0.8 * LIVE_PERIOD_S:
        st.session_state[TICK_KEY] = now
        session.send(LIVE_CALLS)


def _act(action: str) -> None:
    """A button's callback: it runs before the panel is drawn, so the panel shows its effect."""
    held = st.session_state.get(SESSION_KEY)
    if held is None:
        return
    session: BreakerSession = held["session"]
    if action == "down":
        session.take_down()
        note = "The user service is down: every call fails."
    elif action == "up":
        session.bring_back()
        note = "The user service is back up."
    elif action in ("1", "20"):
        note = _sent(session, int(action))
    elif action == "skip":
        skipped = session.skip_past_open_timeout()
        note = (
            f"Skipped {skipped:.1f} s: the next call is a trial."
            if session.state == "half-open"
            else "The breaker is not open: there is no timeout to skip."
        )
    else:  # reset: a fresh breaker in front of a healthy service
        del st.session_state[SESSION_KEY]
        st.session_state[ERROR_RATE_KEY] = 0.0
        st.session_state[LATENCY_KEY] = controls.params_by_name(PATTERN)["latency_ms"].default
        note = "Reset: a fresh breaker, closed, time back at 0."
    st.session_state[NOTE_KEY] = note


def session_panel(settings: dict[str, Any], live: bool) -> None:
    session = current_session(settings)
    if session is None:
        return
    service, actions = st.columns([2, 3])
    with service:
        st.markdown("**The user service**")
        rate = st.slider("Share of calls failing (503)", 0.0, 1.0, step=0.05, key=ERROR_RATE_KEY,
                         help="the service is up, but this share of calls answer 503")  # fmt: skip
        latency = st.slider("Latency (ms)", 0.0, 1000.0, step=10.0, key=LATENCY_KEY,
                            help="typical latency, give or take 25%; a call slower than "
                                 "the caller's deadline fails")  # fmt: skip
        session.set_health(error_rate=rate, latency_ms=latency)
    with actions:
        st.markdown("**Do something**")
        row = st.columns(2)
        row[0].button("Take the service down", icon=":material/power_off:", on_click=_act,
                      args=("down",), disabled=session.down, width="stretch")  # fmt: skip
        row[1].button("Bring it back", icon=":material/power:", on_click=_act, args=("up",),
                      disabled=not session.down, width="stretch")  # fmt: skip
        row = st.columns(2)
        row[0].button("Send 1 call", icon=":material/call_made:", on_click=_act, args=("1",),
                      width="stretch")  # fmt: skip
        row[1].button("Send 20 calls", icon=":material/double_arrow:", on_click=_act,
                      args=("20",), width="stretch")  # fmt: skip
        row = st.columns(2)
        row[0].button("Skip past the open timeout", icon=":material/fast_forward:",
                      on_click=_act, args=("skip",), width="stretch")  # fmt: skip
        row[1].button("Reset", icon=":material/restart_alt:", on_click=_act, args=("reset",),
                      width="stretch",
                      help="a fresh breaker and a healthy service, time back at 0")  # fmt: skip
    if live:
        _live_tick(session)

    state = session.state
    color, icon = BADGE[state]
    result = session.result()
    badge, where = st.columns([1, 4], vertical_alignment="center")
    with badge:
        st.badge(f"Breaker {state}", color=color, icon=icon, width="stretch")
    where.caption(
        f"t = {session.clock.now():.1f} s (virtual) · service "
        f"{'**down**' if session.down else 'up'} · {explain(state, session)}"
    )
    counts = ", ".join(f"{k} {v}" for k, v in session.breaker.counts.items())
    st.caption(f"The `{session.params['policy']}` policy counts now: {counts}")
    note = st.session_state.pop(NOTE_KEY, None)
    if note:
        st.caption(note)
    show_counts(result.summary)
    fig = mark_service(breaker_timeline(result), outage_spans(session))
    st.plotly_chart(fig, key="cb_session_chart")
    st.markdown("**Transitions**")
    st.dataframe(transitions_frame(result), hide_index=True, column_config=TRANSITION_COLUMNS)


def explain(state: str, session: BreakerSession) -> str:
    if state == "closed":
        return "calls go through and the policy counts how they end"
    if state == "half-open":
        return (
            f"the next calls are trials: {session.params['half_open_calls']} success(es) "
            "close it, one failure opens it again"
        )
    opened = next(t.t for t in reversed(session.breaker.transitions) if t.to_state == "open")
    until = opened + session.params["open_timeout_s"]
    return f"calls are rejected at once; trials start at t = {until:.1f} s"


# --- tab 2: a whole minute at once ------------------------------------------------------------


def seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 1 or value == 0 else f"{value:.3f} s"


def full_run(preset: str | None) -> None:
    with st.container(border=True):
        trouble, traffic = st.columns(2)
        trouble.markdown("**The trouble**")
        controls.widget(PATTERN, "failure", label="What goes wrong", container=trouble)
        start, end = trouble.columns(2)
        controls.widget(PATTERN, "outage_start_s", label="From (s)", container=start)
        controls.widget(PATTERN, "outage_end_s", label="Until (s)", container=end)
        controls.widget(PATTERN, "error_rate", label="Share failing (failure=errors)",
                        container=trouble)  # fmt: skip
        controls.widget(PATTERN, "latency_ms", label="Normal latency (ms)", container=trouble)
        traffic.markdown("**Traffic and answers**")
        controls.widget(PATTERN, "duration_s", label="Length of the run (s)", ui_max=300,
                        container=traffic)  # fmt: skip
        controls.widget(PATTERN, "rate_per_s", label="Calls per second", ui_max=50,
                        container=traffic)  # fmt: skip
        controls.widget(PATTERN, "fallback", label="Fallback", container=traffic)
        controls.widget(PATTERN, "breaker", label="Breaker in front of the calls",
                        container=traffic)  # fmt: skip
    params = controls.values(PATTERN)
    if params["outage_end_s"] <= params["outage_start_s"]:
        st.warning("*Until* is not after *From*: the service never has trouble in this run.",
                   icon=":material/warning:")  # fmt: skip
    with st.spinner("Running…", show_time=True):
        result = controls.run(PATTERN, params)
        bare = controls.run(PATTERN, {**params, "breaker": False, "fallback": "none"})
    if result is None or bare is None:
        return
    s = result.summary
    show_counts(s)
    m = st.columns(5)
    m[0].metric("Answered by the fallback", s["served_by_fallback"])
    m[1].metric("Reached it, no breaker", bare.summary["downstream_calls"],
                help="the same run with no breaker in front of the calls")  # fmt: skip
    for i, state in enumerate(("closed", "open", "half-open"), start=2):
        m[i].metric(f"Time {state}", seconds(s["time_in_state_s"].get(state, 0.0)))
    fig = breaker_timeline(result)
    if params["outage_end_s"] > params["outage_start_s"]:
        fig = mark_service(fig, [(params["outage_start_s"], params["outage_end_s"])])
    st.plotly_chart(fig, key="cb_run_chart")
    st.markdown("**Transitions**")
    st.dataframe(transitions_frame(result), hide_index=True, column_config=TRANSITION_COLUMNS,
                 key="cb_run_transitions")  # fmt: skip
    st.markdown("**The same run from a terminal**")
    st.code(controls.cli_command(PATTERN, params, preset=preset), language="bash",
            wrap_lines=True)  # fmt: skip


# Only the open tab runs: the full run is not computed while you poke, and its chart is drawn
# when it is visible (plotly lays out a legend in a hidden tab wrongly).
by_hand, minute = st.tabs(["Poke it by hand", "Full 60 s run"], key=VIEW_KEY, on_change="rerun")
if by_hand.open:
    with by_hand:
        live = st.toggle(
            "Live: a load generator sends 5 calls a second", key=LIVE_KEY,
            help="the badge, counts and chart update by themselves; the buttons still work",
        )  # fmt: skip
        st.fragment(session_panel, run_every=LIVE_PERIOD_S if live else None)(settings, live)
if minute.open:
    with minute:
        full_run(chosen)
