"""Home: what the lab is, where to start, and which backends this machine offers."""

import os

import streamlit as st

from labkit.transport.probe import broker_statuses

from course import BLURBS, PAGES

BROKERS = ("memory", "nats", "rabbitmq")
BROKER_NAMES = {"nats": "NATS", "rabbitmq": "RabbitMQ"}


@st.cache_data(ttl=30, show_spinner="Knocking on the brokers' ports…")
def brokers() -> list:
    return broker_statuses()


st.title("Microservice Patterns Lab")
st.markdown(
    "Run, break and understand how services talk to each other. Every page runs a real "
    "experiment from `labkit`: services, faults and clients, recorded on a timeline. "
    "In-process runs use **virtual time**, so a 30-second timeout plays out instantly and the "
    "same settings always give the same answer."
)

st.header("What to try first")
left, right = st.columns(2)
with left.container(border=True):
    st.page_link("app_pages/01_request_response.py", label="Request-response",
                 icon=":material/swap_horiz:")  # fmt: skip
    st.markdown(
        "Pick the **naive** client and raise the error rate: see what escapes it. Then pick "
        "the **careful** client, add hangs, and watch the timeout cap the longest wait."
    )
with right.container(border=True):
    st.page_link("app_pages/02_api_gateway.py", label="API gateway / BFF", icon=":material/hub:")
    st.markdown(
        "Start from the preset *One product down, whole page down*, then switch to "
        "*page still up*. Compare the **sequential** staircase with the **concurrent** fan-out."
    )

st.header("The course")
sections: dict[str, list[tuple[str, str, str]]] = {}
for section, path, title, icon in PAGES[1:]:
    sections.setdefault(section, []).append((path, title, icon))
for section, pages in sections.items():
    st.markdown(f"**{section}**")
    for path, title, icon in pages:
        link, blurb = st.columns([1, 3])
        link.page_link(path, label=title, icon=icon)
        blurb.caption(BLURBS.get(path, ""))

st.header("Backends")
st.success(
    "**In-process** (default): always works, nothing to install or start.",
    icon=":material/check_circle:",
)
selected = os.environ.get("LABKIT_BROKER", "memory").strip().lower() or "memory"
statuses = brokers()
cols = st.columns(len(statuses))
for col, status in zip(cols, statuses, strict=True):
    with col:
        if status.answers:
            st.success(
                f"**{status.name}** answers at `{status.url}` ({status.detail})",
                icon=":material/check_circle:",
            )
        else:
            st.warning(
                f"**{status.name}** does not answer at `{status.url}` ({status.detail})",
                icon=":material/cloud_off:",
            )
if selected not in BROKERS:
    st.error(
        f"LABKIT_BROKER={selected!r} is not a broker the lab knows "
        f"(choose one of {', '.join(BROKERS)}); messaging patterns use the in-memory broker.",
    )
elif selected == "memory":
    st.info(
        "Messaging backend: **memory** (LABKIT_BROKER is unset or `memory`). "
        "Set `LABKIT_BROKER=nats` or `rabbitmq` before starting the playground to use a real one."
    )
else:
    up = {s.name: s.answers for s in statuses}.get(BROKER_NAMES[selected], False)
    if up:
        st.info(f"Messaging backend: **{selected}** (LABKIT_BROKER={selected}).")
    else:
        st.warning(
            f"Messaging backend: **{selected}** (LABKIT_BROKER={selected}), but "
            f"{BROKER_NAMES[selected]} does not answer. Start it (`labkit broker up` for NATS), "
            "or unset LABKIT_BROKER to use the in-memory broker."
        )
if st.button("Check the brokers again", icon=":material/refresh:"):
    brokers.clear()
    st.rerun()

st.header("The notebooks and the command line")
st.markdown("The same experiments, with the explanations, as a JupyterLab course:")
st.code("uv run jupyter lab notebooks/", language="bash")
st.markdown(
    "Every page shows the `labkit run …` command that reproduces what you see; "
    "`labkit doctor` reports what is installed and which brokers answer."
)
st.code("uv run labkit doctor\nuv run labkit list", language="bash")
