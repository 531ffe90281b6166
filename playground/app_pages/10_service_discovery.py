"""Service discovery: a Consul-like registry with health checks; an instance dies and comes
back on a timeline; the syllabus' services[0] against a checked lookup."""

import streamlit as st

from labkit import LabError
from labkit.viz import health_timeline

import controls

PATTERN = "discovery"

st.title("Service discovery: a registry with health checks")
st.markdown(
    "Instances of `user-service` register with a registry (Consul's model) and are checked "
    "every few seconds. A client looks the service up twice a second and calls what it gets. "
    "Kill an instance and watch how long the registry takes to notice, and what the client "
    "sees meanwhile. Then switch the client to the syllabus' `services[0]` and kill them all."
)

controls.init_state(PATTERN)
controls.preset_picker(PATTERN, "Or set the controls yourself…")

with st.container(border=True):
    who, checks, client = st.columns(3)
    with who:
        st.markdown("**Instances**")
        controls.widget(PATTERN, "instances", container=who)
        controls.widget(PATTERN, "kill_instance", label="Instance that dies (0: none)",
                        container=who)  # fmt: skip
        controls.widget(PATTERN, "kill_all", label="Every instance dies", container=who)
        controls.widget(PATTERN, "kill_at_s", label="Dies at (s)", ui_max=120, container=who)
        controls.widget(PATTERN, "recover_at_s", label="Comes back at (s); 0: never", ui_max=120,
                        container=who)  # fmt: skip
    with checks:
        st.markdown("**Health check**")
        controls.widget(PATTERN, "check", label="Check", container=checks)
        controls.widget(PATTERN, "interval_s", label="Interval (s)", ui_max=30, step=0.5,
                        container=checks)  # fmt: skip
        controls.widget(PATTERN, "failures_before_critical", label="Failures before critical",
                        container=checks)  # fmt: skip
        controls.widget(PATTERN, "success_before_passing", label="Successes before passing",
                        container=checks)  # fmt: skip
        controls.widget(PATTERN, "deregister_critical_after_s",
                        label="Deregister after critical for (s); 0: never", ui_max=120,
                        container=checks)  # fmt: skip
    with client:
        st.markdown("**Client**")
        controls.widget(PATTERN, "lookup", label="Lookup", container=client)
        controls.widget(PATTERN, "calls_per_s", label="Calls per second", container=client)
        controls.widget(PATTERN, "duration_s", label="Run length (s)", ui_max=300, container=client)

params = controls.values(PATTERN)
try:
    result = controls.run(PATTERN, params)
except LabError as exc:  # a check setting the registry refuses
    controls.show_error(exc)
    result = None

if result is not None:
    s = result.summary
    out = s["outcomes"]
    m = st.columns(5)
    m[0].metric("Calls answered", out.get("ok", 0))
    m[1].metric("Calls failed", out.get("call_failed", 0),
                help="sent to an instance the registry still listed as passing")  # fmt: skip
    m[2].metric("No healthy instance", out.get("no_healthy_instance", 0))
    m[3].metric("Client crashed", "yes" if out.get("crashed") else "no")
    detected = [d["critical_after_s"] for d in s["detection"].values() if d["critical_after_s"]]
    m[4].metric("Noticed after", f"{max(detected):g} s" if detected else "-",
                help="from an instance's death to its critical status")  # fmt: skip
    if "crash" in s["errors"]:
        st.error(
            f"The client crashed: `{s['errors']['crash']}`. `services[0]` of an empty list.",
            icon=":material/dangerous:",
        )
    elif "lookup" in s["errors"]:
        st.warning(f"Lookups failed with: {s['errors']['lookup']}", icon=":material/search_off:")
    st.plotly_chart(health_timeline(result), key="discovery_health")
    left, right = st.columns(2)
    left.markdown("**Calls served per instance**")
    left.dataframe([{"instance": k, "calls": v} for k, v in s["served"].items()], hide_index=True)
    right.markdown("**Health transitions**")
    right.dataframe(s["transitions"] + s["deregistered"], hide_index=True)
    st.code(controls.cli_command(PATTERN, params), language="bash", wrap_lines=True)
