"""Observability: the trace of one page load, the hidden slow dependency, and what a
histogram makes of the latencies."""

import pandas as pd
import streamlit as st

from labkit.viz import histogram_vs_exact, trace_waterfall

import controls

PATTERN = "tracing"

st.title("Tracing and metrics")
st.markdown(
    "A client loads an order page; the gateway calls the order, the user and every product "
    "**concurrently**. The page is still slow. Open the trace and find out why: each span is "
    "one piece of work, and `traceparent` headers join them into one tree per request, "
    "across HTTP and a message hop."
)
controls.init_state(PATTERN)

with st.container(border=True):
    shop, pricing = st.columns(2)
    shop.markdown("**The page**")
    controls.widget(PATTERN, "items", label="Products on the order", container=shop)
    controls.widget(PATTERN, "requests", label="Page loads", ui_max=50, container=shop)
    controls.widget(PATTERN, "message_hop", label="Publish orders.viewed", container=shop)
    pricing.markdown("**The product service's pricing database**")
    controls.widget(PATTERN, "pricing_connections", label="Connections in the pool",
                    container=pricing)  # fmt: skip
    controls.widget(PATTERN, "pricing_ms", label="One lookup (ms)", ui_max=200, container=pricing)

params = controls.values(PATTERN)
with st.spinner("Running…"):
    result = controls.run(PATTERN, params)

if result is not None:
    s = result.summary
    m = st.columns(3)
    m[0].metric("Page load", controls.fmt_ms(s["page_ms"]["p50"]))
    m[1].metric("Waiting for a connection", controls.fmt_ms(s["waiting_for_pricing_ms"]),
                help="summed over every page load")  # fmt: skip
    m[2].metric("Traces / spans", f"{s['traces']} / {s['spans']}")
    st.markdown(
        f"**Where the time goes** (the leaf span with the most time in it): "
        f"`{s['where_the_time_goes']}`"
    )

    if s["traces"] > 1:
        which = st.slider("Trace (page load)", 1, s["traces"], 1, key="tracing.trace")
    else:
        which = 1
    st.plotly_chart(trace_waterfall(result, trace=which - 1), key="tracing_waterfall")
    if s["waiting_for_pricing_ms"] > 0:
        st.info(
            "The product calls start together and end one after another: each waits for the "
            "pricing database's only connection. Give the pool as many connections as there are "
            "products and run again.",
            icon=":material/search:",
        )
    else:
        st.success(
            "No waiting: every lookup has its own connection, and the product spans overlap.",
            icon=":material/check_circle:",
        )

    st.subheader("Metrics: the histogram's view")
    st.markdown(
        "The same durations counted in prometheus_client buckets. Percentiles read from "
        "buckets are estimates (interpolated inside a bucket); the exact ones come from the spans."
    )
    st.plotly_chart(histogram_vs_exact(result), key="tracing_histogram")
    leaf = pd.DataFrame([{"span": k, "total ms": v} for k, v in s["time_by_leaf_span_ms"].items()])
    st.dataframe(leaf, hide_index=True)
    with st.expander("What a scraper reads at /metrics"):
        st.code(result.extras["metrics_text"], language="text")
    st.code(controls.cli_command(PATTERN, params), language="bash")
