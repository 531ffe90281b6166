"""Service mesh: edit Istio YAML (checked and linted as you type) and watch where requests go;
compare load balancers with one slow instance; watch outlier detection eject a failing one."""

from typing import Any

import streamlit as st

from labkit import LabError
from labkit.core.paths import data_dir
from labkit.patterns.mesh_lint import analyze
from labkit.scenarios.service_mesh import config_names, shipped_name
from labkit.viz import ejection_timeline, lb_comparison, subset_traffic

import controls

PATTERN = "service_mesh"
YAML_KEY = "service_mesh.yaml"
START_KEY = "service_mesh.start"
VIEW_KEY = "service_mesh.view"
LENGTH_KEY = "service_mesh.run_length_s"
ROUTING, BALANCING, EJECTION = "Routing (YAML)", "Load balancing", "Outlier detection"

st.title("Service mesh: Istio routing without Kubernetes")
st.markdown(
    "Five instances of `order-service` (three labelled `version: v1`, two `v2`) sit behind a "
    "sidecar that reads real Istio YAML. The caller only ever asks for "
    "`http://order-service/...`; the **VirtualService** picks a version (first matching route "
    "wins), the **DestinationRule** picks an instance and ejects failing ones."
)


def shipped(name: str) -> str:
    return (data_dir() / "mesh" / f"{name}.yaml").read_text(encoding="utf-8")


def load_start() -> None:
    st.session_state[YAML_KEY] = shipped(st.session_state[START_KEY])


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def command(params: dict[str, Any], text: str) -> str:
    name = shipped_name(text)
    if name is None:
        return "# save the YAML as mesh.yaml, then:\n" + controls.cli_command(
            PATTERN, {**params, "config": "mesh.yaml"}
        )
    return controls.cli_command(PATTERN, {**params, "config": name})


def routing() -> None:
    st.session_state.setdefault(START_KEY, "syllabus")
    st.session_state.setdefault(YAML_KEY, shipped("syllabus"))
    editor, results = st.columns([5, 6])
    with editor:
        st.selectbox(
            "Start from", config_names(), key=START_KEY, on_change=load_start,
            help="loads a configuration from data/mesh/ into the editor",
        )  # fmt: skip
        text = st.text_area("VirtualService + DestinationRule", key=YAML_KEY, height=520)
        found = analyze(text)
        if not found.ok:
            st.error(found.error, icon=":material/error:")
        elif not found.findings:
            vs, dr = len(found.config.virtual_services), len(found.config.destination_rules)
            st.success(f"Valid: {vs} VirtualService, {dr} DestinationRule; the lint finds nothing.")
        for finding in found.findings:
            st.warning(finding.message, icon=":material/report:")
        for note in found.notes:
            st.info(note, icon=":material/info:")
    with results:
        knobs = st.columns(3)
        controls.widget(PATTERN, "canary_weight", label="Canary: % to v2 (-1: as in the YAML)",
                        container=knobs[0])  # fmt: skip
        controls.widget(PATTERN, "beta_share", label="Share of beta testers", container=knobs[1])
        controls.widget(PATTERN, "requests", ui_max=5000, container=knobs[2])
        if not found.ok:
            st.caption("No run until the YAML is valid.")
            return
        params = {
            k: v for k, v in controls.values(PATTERN).items()
            if k in ("canary_weight", "beta_share", "requests")
        }  # fmt: skip
        result = controls.run(PATTERN, {**params, "config": text})
        if result is None:
            return
        s = result.summary
        beta, rest = s["beta_testers"], s["others"]
        m = st.columns(3)
        m[0].metric("Beta testers on v2", percent(beta.get("v2", 0), sum(beta.values())))
        m[1].metric("Everyone else on v2", percent(rest.get("v2", 0), sum(rest.values())))
        m[2].metric(
            "Routes used", ", ".join(f"http[{k}]" for k in s["routes_used"]),
            help="the VirtualService's HTTP routes that matched at least one request",
        )  # fmt: skip
        st.caption(
            "Requests per route: "
            + ", ".join(f"http[{k}] {v}" for k, v in s["routes_used"].items())
        )
        st.plotly_chart(subset_traffic(result), key="mesh_subsets")
        st.code(command(params, text), language="bash", wrap_lines=True)


def balancing() -> None:
    with st.container(border=True):
        a, b, c = st.columns(3)
        controls.widget(PATTERN, "slow_factor", label="Slow instance is … times slower",
                        ui_max=50, container=a)  # fmt: skip
        controls.widget(PATTERN, "v1_instances", label="v1 instances", container=b)
        controls.widget(PATTERN, "rate_per_s", label="Requests per second", ui_max=3000,
                        container=c)  # fmt: skip
    v = controls.values(PATTERN)
    params = {
        "config": "least_request", "slow_instance": "order-v1-1", "requests": 2000,
        "slow_factor": v["slow_factor"], "v1_instances": v["v1_instances"],
        "rate_per_s": v["rate_per_s"],
    }  # fmt: skip
    runs = {}
    for lb in ("ROUND_ROBIN", "LEAST_REQUEST"):
        result = controls.run(PATTERN, {**params, "lb": lb})
        if result is None:
            return
        runs[lb] = result
    for col, (lb, result) in zip(st.columns(2), runs.items(), strict=True):
        s = result.summary
        col.markdown(f"**{lb}**")
        m = col.columns(3)
        m[0].metric(
            "To the slow instance",
            s["per_instance"]["order-v1-1"],
            help="requests sent to order-v1-1, the slow one",
        )
        m[1].metric("p95", controls.fmt_ms(s["latency_ms"]["p95"]))
        m[2].metric("Mean", controls.fmt_ms(s["latency_ms"]["mean"]))
        col.code(controls.cli_command(PATTERN, {**params, "lb": lb}), language="bash",
                 wrap_lines=True)  # fmt: skip
    st.plotly_chart(lb_comparison(runs), key="mesh_lb")


def ejection() -> None:
    with st.container(border=True):
        a, b = st.columns(2)
        controls.widget(PATTERN, "fail_until_s", label="order-v1-2 is down until (s)",
                        ui_max=120, container=a)  # fmt: skip
        b.slider("Run length (s), 100 requests per second", 10, 120, key=LENGTH_KEY)
    v = controls.values(PATTERN)
    params = {
        "config": "outlier", "failing_instance": "order-v1-2", "rate_per_s": 100.0,
        "fail_until_s": v["fail_until_s"], "requests": 100 * st.session_state[LENGTH_KEY],
    }  # fmt: skip
    result = controls.run(PATTERN, params)
    if result is None:
        return
    s = result.summary
    m = st.columns(4)
    m[0].metric("Ejections", len(s["ejections"]))
    m[1].metric("Returns", len(s["returns"]))
    m[2].metric("Retries", s["retries"])
    m[3].metric(
        "Errors the caller saw", sum(n for k, n in s["status_counts"].items() if k != "200")
    )
    st.plotly_chart(ejection_timeline(result), key="mesh_ejections")
    rows = [{"t (s)": e["t_s"], "event": f"ejected for {e['seconds']:g} s"} for e in s["ejections"]]
    rows += [{"t (s)": r["t_s"], "event": "returned"} for r in s["returns"]]
    st.dataframe(sorted(rows, key=lambda r: r["t (s)"]), hide_index=True)
    st.code(controls.cli_command(PATTERN, params), language="bash", wrap_lines=True)


# page defaults where the balancing experiment needs load to show a difference
st.session_state.setdefault(controls.key_for(PATTERN, "rate_per_s"), 1000.0)
st.session_state.setdefault(controls.key_for(PATTERN, "v1_instances"), 5)
st.session_state.setdefault(LENGTH_KEY, 60)
controls.init_state(PATTERN)
tabs = st.tabs([ROUTING, BALANCING, EJECTION], key=VIEW_KEY, on_change="rerun")
for tab, draw in zip(tabs, (routing, balancing, ejection), strict=True):
    if tab.open:
        with tab:
            try:
                draw()
            except LabError as exc:
                controls.show_error(exc)
