"""API gateway / backend for frontend: one request fans out to the order, user and products."""

import streamlit as st

from labkit.viz import calls_frame, compare_waterfalls, outcome_counts, waterfall

import controls

PATTERN = "gateway"
OTHER = {"sequential": "concurrent", "concurrent": "sequential"}

st.title("API gateway / backend for frontend")
st.markdown(
    "A client asks the gateway for one order. The gateway asks the order service, then the "
    "user service and one product service call per item, and answers with one document. "
    "Watch how the end-to-end wait follows the **sum** of the calls (sequential) or the "
    "**slowest** one (concurrent), and what one failing product does to the whole answer."
)

controls.init_state(PATTERN)


chosen = controls.preset_picker(PATTERN, "Choose a preset (it sets the controls below)")

with st.container(border=True):
    gw, order, services, faults = st.columns(4)
    gw.markdown("**Gateway**")
    controls.widget(PATTERN, "mode", container=gw)
    controls.widget(PATTERN, "partial", label="When a part fails", container=gw)
    controls.widget(PATTERN, "bff", label="Front end (BFF)", container=gw)
    controls.widget(PATTERN, "call_timeout_ms", label="Call timeout (ms)", ui_max=2000,
                    container=gw)  # fmt: skip
    order.markdown("**Order and load**")
    controls.widget(PATTERN, "items", label="Items in the order", container=order)
    controls.widget(PATTERN, "requests", label="Client requests", ui_max=50, container=order)
    services.markdown("**Service latency**")
    controls.widget(PATTERN, "order_latency_ms", label="Order service (ms)", ui_max=500,
                    container=services)  # fmt: skip
    controls.widget(PATTERN, "user_latency_ms", label="User service (ms)", ui_max=500,
                    container=services)  # fmt: skip
    controls.widget(PATTERN, "product_latency_ms", label="Product service (ms)", ui_max=500,
                    container=services)  # fmt: skip
    controls.widget(PATTERN, "product_jitter_ms", label="Product jitter (ms)", ui_max=200,
                    container=services)  # fmt: skip
    faults.markdown("**Product faults**")
    controls.widget(PATTERN, "product_error_rate", label="Share of product calls with 503",
                    container=faults)  # fmt: skip
    controls.widget(PATTERN, "failing_product", label="Item whose product always fails (0: none)",
                    container=faults)  # fmt: skip

params = controls.values(PATTERN)
mode = params["mode"]
with st.spinner("Running…", show_time=True):
    result = controls.run(PATTERN, params)
    other = controls.run(PATTERN, {**params, "mode": OTHER[mode]})

if result is not None and other is not None:
    s, o = result.summary, other.summary
    m = st.columns(3)
    m[0].metric(
        "End-to-end p50", controls.fmt_ms(s["latency_ms"]["p50"]),
        delta=f"{s['latency_ms']['p50'] - o['latency_ms']['p50']:+.0f} ms vs {OTHER[mode]}",
        delta_color="inverse", help="what the client waited (median over its requests)",
    )  # fmt: skip
    m[1].metric("Downstream time per request", controls.fmt_ms(s["downstream_ms_per_request"]),
                help=f"the sum of the {s['downstream_calls'] // s['requests']} calls the gateway "
                     "made for one request")  # fmt: skip
    m[2].metric("Response size", f"{s['response_bytes']:.0f} bytes", help="mean per answer")
    m = st.columns(3)
    m[0].metric("OK answers", f"{s['ok']} / {s['requests']}")
    m[1].metric("Degraded answers", s["degraded"], help="200, with the failed part marked")
    m[2].metric("Status codes", "  ".join(f"{n}×{code}" for code, n in s["status_counts"].items()))

    seq, conc = (result, other) if mode == "sequential" else (other, result)
    st.plotly_chart(compare_waterfalls(seq, conc), key="gw_compare")

    left, right = st.columns([3, 2])
    with left:
        shown = st.number_input("Waterfall of request number", 1, s["requests"], 1,
                                key="gateway.request_shown")  # fmt: skip
        st.plotly_chart(waterfall(result, request=shown - 1, title=None), key="gw_waterfall")
    right.plotly_chart(outcome_counts(result), key="gw_outcomes")

    with st.expander("Every call of the run, one row each"):
        st.dataframe(calls_frame(result), hide_index=True)
    st.markdown("**The same run from a terminal**")
    st.code(controls.cli_command(PATTERN, params, preset=chosen), language="bash",
            wrap_lines=True)  # fmt: skip
