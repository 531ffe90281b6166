"""Event sourcing: send commands to an event-sourced order service, read its log, travel
through an order's versions, let two writers race; then run the scenario with concurrent
writers and the syllabus' created_at ordering."""

from typing import Any

import pandas as pd
import streamlit as st

from labkit import LabError
from labkit.patterns.event_sourcing import STATUSES
from labkit.scenarios.order_session import OrderSession
from labkit.viz import event_log, stream_steps

import controls

SESSION_KEY = "event_sourcing.session"
ORDER_KEY = "event_sourcing.order"
VERSION_KEY = "event_sourcing.version"
NOTE_KEY = "event_sourcing.note"
KIND_KEY = "event_sourcing.command"
RACE_KEY = "event_sourcing.race"
PATTERN = "event_sourcing"

st.title("Event sourcing")
st.markdown(
    "The order service keeps no order rows: it appends **events** to a stream per order and "
    "gets an order back by replaying them. Send commands, watch the log grow, and move the "
    "slider to see any order **as it was** after any of its events."
)


def session() -> OrderSession:
    return controls.held(SESSION_KEY, OrderSession)


def note(kind: str, text: str) -> None:
    controls.note(NOTE_KEY, kind, text)


def send(command: dict[str, Any]) -> None:
    try:
        order = session().command(command)
    except LabError as exc:
        note("error", f"Refused, nothing appended: {exc}")
        return
    note("success", f"{command['type']}: order {order.order_id} is now at version "
                    f"{order.version} ({order.status}, total {order.total:g}).")  # fmt: skip
    st.session_state[ORDER_KEY] = order.order_id
    st.session_state.pop(VERSION_KEY, None)  # the slider jumps to the new latest version


def reset() -> None:
    for key in (SESSION_KEY, ORDER_KEY, VERSION_KEY, NOTE_KEY, RACE_KEY):
        st.session_state.pop(key, None)


s = session()

# --- the command side ------------------------------------------------------------------------

st.header("Commands")
kind = st.radio("Command", ["CreateOrder", "AddItem", "ChangeStatus"], horizontal=True,
                key=KIND_KEY)  # fmt: skip
with st.form("es_command", border=True):
    left, right = st.columns(2)
    fields: dict[str, Any] = {"type": kind}
    if kind == "CreateOrder":
        fields["user_id"] = left.text_input("User", value="grace")
        fields["order_id"] = right.text_input("Order id (empty: a new id)", value="") or None
    else:
        fields["order_id"] = left.text_input(
            "Order id", value=st.session_state.get(ORDER_KEY, "42")
        )
        if kind == "AddItem":
            fields["product_id"] = left.text_input("Product", value="monitor")
            fields["quantity"] = right.number_input("Quantity", value=1, step=1)
            fields["unit_price"] = right.number_input("Unit price", value=199.0, step=1.0)
        else:
            fields["status"] = right.selectbox("New status", STATUSES, index=1)
    if st.form_submit_button("Send command", icon=":material/send:"):
        send(fields)

controls.show_note(NOTE_KEY)

# --- the log -----------------------------------------------------------------------------------

st.header("The event log")
log = s.log()
st.caption(f"{len(log)} events in {len(s.orders())} streams; newest last.")
st.dataframe(pd.DataFrame(log), hide_index=True, height=240)

# --- time travel -----------------------------------------------------------------------------

st.header("Time travel")
orders = s.orders()
st.session_state.setdefault(ORDER_KEY, orders[0])
if st.session_state[ORDER_KEY] not in orders:
    st.session_state[ORDER_KEY] = orders[0]
order_id = st.selectbox("Order", orders, key=ORDER_KEY)
steps = s.steps(order_id)
latest = steps[-1]["version"]
st.session_state.setdefault(VERSION_KEY, latest)
st.session_state[VERSION_KEY] = min(max(1, st.session_state[VERSION_KEY]), latest)


def step(delta: int) -> None:
    st.session_state[VERSION_KEY] = min(max(1, st.session_state[VERSION_KEY] + delta), latest)


back, slider, forward = st.columns([1, 6, 1], vertical_alignment="bottom")
back.button("Previous event", on_click=step, args=(-1,), icon=":material/skip_previous:",
            disabled=latest == 1)  # fmt: skip
if latest > 1:
    version = slider.slider("Version", 1, latest, key=VERSION_KEY)
else:
    version = 1
    slider.caption("This order has one event so far.")
forward.button("Next event", on_click=step, args=(1,), icon=":material/skip_next:",
               disabled=latest == 1)  # fmt: skip

state = s.state_at(order_id, version)
event = steps[version - 1]
m = st.columns(4)
m[0].metric("Version", f"{version} / {latest}")
m[1].metric("Status", state.status)
m[2].metric("Lines", len(state.items))
m[3].metric("Total", f"{state.total:g}")
st.caption(f"Event {version}: **{event['type']}** {event['data']}")
items, chart = st.columns([2, 3])
items.dataframe(pd.DataFrame(state.items, columns=["product_id", "quantity", "unit_price",
                                                    "currency"]), hide_index=True)  # fmt: skip
chart.plotly_chart(stream_steps(steps, at_version=version), key="es_steps")

# --- two writers -----------------------------------------------------------------------------

st.header("Two writers, one order")
st.markdown(
    "Writers A and B load the order at the same version and both change it (an open order: "
    "each adds an item; a paid one: A ships it while B cancels it), each expecting that "
    "version. The store accepts A's event and refuses B's."
)


def do_race(oid: str) -> None:
    try:
        st.session_state[RACE_KEY] = s.race(oid)
    except LabError as exc:
        st.session_state[RACE_KEY] = {"error": str(exc)}
    st.session_state.pop(VERSION_KEY, None)


st.button("Let two writers race", on_click=do_race, args=(order_id,), icon=":material/group:")
if raced := st.session_state.get(RACE_KEY):
    if "error" in raced:
        st.error(raced["error"])
    else:
        a, b = st.columns(2)
        a.success(f"Writer A {raced['a_did']}: appended version {raced['after_winner']} "
                  f"(expected {raced['loaded_version']}).")  # fmt: skip
        b.error(f"Writer B tried to {raced['b_tried']}: {raced['loser_error']}")

st.button("Start again with order 42 only", on_click=reset, icon=":material/restart_alt:")

# --- the experiment ----------------------------------------------------------------------------

st.header("Experiment: concurrent writers, and ordering by created_at")
controls.init_state(PATTERN)
preset = controls.preset_picker(PATTERN, "Baseline, skewed clocks, equal timestamps, 8 writers…")
with st.container(border=True):
    left, right = st.columns(2)
    controls.widget(PATTERN, "writers", label="Writers", container=left)
    controls.widget(PATTERN, "items_per_order", label="Items per order", container=left)
    controls.widget(PATTERN, "think_ms", label="Think time (ms)", ui_max=50, container=left)
    controls.widget(PATTERN, "ordering", label="Read streams by", container=right)
    controls.widget(PATTERN, "clock_skew_ms", label="Clock skew of the shipping writer (ms)",
                    ui_max=100, container=right)  # fmt: skip
    controls.widget(PATTERN, "snapshot_every", label="Snapshot every N events", ui_max=50,
                    container=right)  # fmt: skip
params = controls.values(PATTERN)
result = controls.run(PATTERN, params)
if result is not None:
    r = result.summary
    m = st.columns(5)
    m[0].metric("Events", r["events"])
    m[1].metric("Conflicts", r["conflicts"], help="appends refused: expected version passed")
    m[2].metric("Replay = live", "yes" if r["replay_equals_live"] else "NO")
    m[3].metric("Orders misread", f"{r['orders_misread']} / {r['orders']}",
                help="rebuilt wrongly when the stream is read in the chosen order")  # fmt: skip
    m[4].metric("Snapshots", r["snapshots"])
    if r["orders_misread"]:
        st.warning(
            f"Read by created_at, {r['orders_misread']} orders come back wrong: skewed clocks "
            "or equal timestamps put events out of order. Read by version, none do.",
            icon=":material/schedule:",
        )
    st.plotly_chart(event_log(result), key="es_log")
    st.code(controls.cli_command(PATTERN, params, preset=preset), language="bash",
            wrap_lines=True)  # fmt: skip
