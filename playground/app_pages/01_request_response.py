"""Request-response: one service asks another for a user while things go wrong."""

import pandas as pd
import streamlit as st

from labkit.viz import latency_histogram, outcome_counts, protocol_comparison

import controls

PATTERN = "request_response"
BACKEND_KEY = "request_response.backend"
GRPC_KEY = "request_response.grpc_result"

st.title("Request-response")
st.markdown(
    "A caller looks up a user again and again. Break the user service below and compare the "
    "**careful** client (deadline, status checks, clear errors) with the **naive** first draft."
)
controls.init_state(PATTERN)
st.session_state.setdefault(BACKEND_KEY, "inprocess")
st.session_state.setdefault("request_response.run_id", 0)

with st.container(border=True):
    caller, service, faults = st.columns(3)
    caller.markdown("**Caller**")
    controls.widget(PATTERN, "client", container=caller)
    controls.widget(PATTERN, "timeout_ms", label="Timeout (ms)", container=caller)
    controls.widget(PATTERN, "requests", ui_max=500, container=caller)
    controls.widget(PATTERN, "user_id", label="User id", container=caller)
    caller.radio(
        "Backend", ["inprocess", "live"], key=BACKEND_KEY, horizontal=True,
        help="inprocess: virtual time, instant and repeatable; live: real uvicorn on loopback",
    )  # fmt: skip
    service.markdown("**User service**")
    controls.widget(PATTERN, "latency_ms", label="Latency (ms)", container=service)
    controls.widget(PATTERN, "jitter_ms", label="Jitter (ms)", ui_max=200, container=service)
    controls.widget(PATTERN, "down", label="Service is down", container=service)
    faults.markdown("**Faults (share of calls)**")
    controls.widget(PATTERN, "error_rate", label="503 errors", container=faults)
    controls.widget(PATTERN, "hang_rate", label="Hangs", container=faults)
    controls.widget(PATTERN, "reset_rate", label="Connection resets", container=faults)
    controls.widget(PATTERN, "bad_payload_rate", label="HTML page with a 200", container=faults)

params = controls.values(PATTERN)
params["protocol"] = "http"
backend = st.session_state[BACKEND_KEY]
if backend == "live" and st.button("Measure again", icon=":material/replay:"):
    st.session_state["request_response.run_id"] += 1
run_id = st.session_state["request_response.run_id"] if backend == "live" else 0
busy = "Calling the user service over loopback…" if backend == "live" else "Running…"
with st.spinner(busy, show_time=True):
    result = controls.run(PATTERN, params, backend=backend, run_id=run_id)

if result is not None:
    s = result.summary
    lat = s["latency_ms"]
    m = st.columns(5)
    m[0].metric("Succeeded", f"{s['succeeded']} / {s['requests']}")
    m[1].metric("Failed", s["failed"])
    m[2].metric("p50 wait", controls.fmt_ms(lat["p50"]))
    m[3].metric("p95 wait", controls.fmt_ms(lat["p95"]))
    m[4].metric("Longest wait", controls.fmt_ms(s["longest_wait_ms"]),
                help="how long the caller was stuck on its worst call")  # fmt: skip
    if backend == "inprocess":
        st.caption("Virtual time: the run took milliseconds; these are the waits it simulated.")

    charts = st.columns(2)
    charts[0].plotly_chart(outcome_counts(result), key="rr_outcomes")
    charts[1].plotly_chart(latency_histogram(result, source_actor="caller"), key="rr_latency")

    st.subheader("How each call ended, as the caller saw it")
    st.dataframe(
        pd.DataFrame(
            [
                {"outcome": o, "calls": n, "example": s["examples"].get(o, "")}
                for o, n in s["outcomes"].items()
            ]
        ),
        hide_index=True,
    )
    with st.expander("Timeline: every record of the run"):
        st.dataframe(result.timeline.to_frame(), hide_index=True)
    st.markdown("**The same run from a terminal**")
    st.code(controls.cli_command(PATTERN, params, backend=backend), language="bash",
            wrap_lines=True)  # fmt: skip

st.divider()
st.header("Compare with gRPC")
st.markdown(
    "The same lookup as JSON over HTTP and as protobuf over gRPC, both served for real on "
    "loopback. No faults here: this measures the protocols themselves, in real time."
)
calls = st.slider("Calls per protocol", 10, 2000, 200, step=10, key="request_response.grpc_calls")
grpc_params = {"protocol": "both", "requests": calls, "user_id": params["user_id"],
               "timeout_ms": params["timeout_ms"]}  # fmt: skip
st.session_state.setdefault("request_response.grpc_run_id", 0)
if st.button("Compare with gRPC", type="primary", icon=":material/compare_arrows:"):
    st.session_state["request_response.grpc_run_id"] += 1
    with st.spinner(f"{calls} calls over HTTP, then {calls} over gRPC…", show_time=True):
        st.session_state[GRPC_KEY] = controls.run(
            PATTERN, grpc_params, run_id=st.session_state["request_response.grpc_run_id"]
        )
compared = st.session_state.get(GRPC_KEY)
if compared is not None:
    per = compared.summary["protocols"]
    cols = st.columns(len(per))
    for col, (name, figures) in zip(cols, per.items(), strict=True):
        col.metric(f"{name}: payload", f"{figures['payload_bytes']} bytes")
        col.metric(f"{name}: p50", controls.fmt_ms(figures["latency_ms"]["p50"]))
    st.plotly_chart(protocol_comparison(compared), key="rr_protocols")
    st.code(controls.cli_command(PATTERN, compared.params), language="bash", wrap_lines=True)
