"""CQRS: the write side (event store) beside the read side (order read models) with the
projection lag between them; run, crash and rebuild the projection by hand, then run the
scenario with a dialled-up lag and the syllabus' lost publish."""

import pandas as pd
import streamlit as st

from labkit.scenarios.order_session import OrderSession
from labkit.viz import projection_lag

import controls

SESSION_KEY = "cqrs.session"
NOTE_KEY = "cqrs.note"
BATCH_KEY = "cqrs.batch"
PATTERN = "cqrs"

st.title("CQRS: write side, read side, and the lag between them")
st.markdown(
    "Commands append events to the **event store** (left). A **projection** reads the log "
    "after its checkpoint and updates the **read models** (right) that queries use. Until it "
    "runs, the read side shows the past: that gap is the projection lag."
)


def session() -> OrderSession:
    return controls.held(SESSION_KEY, OrderSession)


def note(kind: str, text: str) -> None:
    controls.note(NOTE_KEY, kind, text)


def send() -> None:
    done = session().send_random(5)
    note("info", f"{done} commands accepted; the read side has not seen them yet.")


def project() -> None:
    applied = session().project(int(st.session_state[BATCH_KEY]))
    note("success", f"The projection applied {applied} events; checkpoint "
                    f"{session().read.checkpoint}.")  # fmt: skip


def crash() -> None:
    s = session()
    before = s.read.checkpoint
    if s.lag() < 2:
        note("warning", "Send some commands first: there is no batch to crash in.")
        return
    s.project(int(st.session_state[BATCH_KEY]), crash_after=1)
    note("error", f"The projection died after 1 event of its batch. The batch and its "
                  f"checkpoint rolled back together: checkpoint still {before}, nothing "
                  "half-applied. Run it again: it resumes from there.")  # fmt: skip


def rebuild() -> None:
    equal = session().rebuild()
    note("success", "Read models dropped and rebuilt from the log: "
         + ("row for row equal to the incremental ones." if equal
            else "now caught up with the log."))  # fmt: skip


def reset() -> None:
    for key in (SESSION_KEY, NOTE_KEY):
        st.session_state.pop(key, None)


s = session()
st.session_state.setdefault(BATCH_KEY, 10)
buttons = st.columns(5)
buttons[0].button("Send 5 commands", on_click=send, icon=":material/send:")
buttons[1].button("Run the projection", on_click=project, icon=":material/play_arrow:")
buttons[2].button("Crash it mid-batch", on_click=crash, icon=":material/bolt:")
buttons[3].button("Rebuild the read model", on_click=rebuild, icon=":material/autorenew:")
buttons[4].button("Start again", on_click=reset, icon=":material/restart_alt:")
st.number_input("Projection batch size", 2, 500, step=1, key=BATCH_KEY)
controls.show_note(NOTE_KEY)

write, read = st.columns(2)
with write:
    st.subheader("Write side: the event store")
    write.metric("Log head (position)", s.store.head())
    st.dataframe(pd.DataFrame(s.log(limit=12)), hide_index=True, height=300)
with read:
    st.subheader("Read side: order_view")
    m = read.columns(2)
    m[0].metric("Checkpoint", s.read.checkpoint)
    m[1].metric("Lag (events)", s.lag(), help="events written that the read side has not applied")
    st.dataframe(pd.DataFrame(s.read.table("order_view")), hide_index=True, height=300)
    users = sorted({r["user_id"] for r in s.read.table("orders_by_user")})
    if users:
        user = st.selectbox("Orders of user", users, key="cqrs.user")
        st.dataframe(pd.DataFrame(s.read.orders_by_user(user)), hide_index=True)

# --- the experiment ----------------------------------------------------------------------------

st.header("Experiment: eventual consistency and the lost publish")
st.markdown(
    "Here every event also goes through a message broker, as in the syllabus: one message per "
    "event on `orders.<event type>`, into a durable queue the projection consumes and acks "
    "after applying. A share of publishes never reach the broker (a network blip). With "
    "**fix = none** the command service only logs that, as the syllabus does; "
    "**project_from_store** reads the events from the store instead; **outbox** commits each "
    "event with an outbox row and lets a relay publish and retry."
)
BACKEND_KEY = "cqrs.backend"
RUN_ID_KEY = "cqrs.run_id"
backend = controls.choose_backend(BACKEND_KEY, "Broker")
if backend not in (None, "memory") and st.button(
    "Run again", icon=":material/refresh:", help="real brokers run in real time"
):
    st.session_state[RUN_ID_KEY] = st.session_state.get(RUN_ID_KEY, 0) + 1
controls.init_state(PATTERN)
preset = controls.preset_picker(PATTERN, "Read right after, lost publish, the fixes, a crash…")
with st.container(border=True):
    left, right = st.columns(2)
    controls.widget(PATTERN, "projection_lag_ms", label="The projection runs every (ms)",
                    ui_max=500, container=left)  # fmt: skip
    controls.widget(PATTERN, "read_after_ms", label="The client reads back after (ms)",
                    ui_max=500, container=left)  # fmt: skip
    controls.widget(PATTERN, "crash_at", label="Projection crash at log position (0: never)",
                    ui_max=200, container=left)  # fmt: skip
    controls.widget(PATTERN, "fix", label="Fix for the lost publish", container=right)
    controls.widget(PATTERN, "publish_failure_share", label="Share of publishes failing",
                    container=right)  # fmt: skip
    controls.widget(PATTERN, "relay_crash_share", label="Outbox: relay dies after a row (share)",
                    container=right)  # fmt: skip
    controls.widget(PATTERN, "commands", label="Commands", ui_max=1000, container=right)
params = controls.values(PATTERN)
run_id = st.session_state.get(RUN_ID_KEY, 0)
result = None if backend is None else controls.run(PATTERN, params, backend=backend, run_id=run_id)
if result is not None:
    r = result.summary
    m = st.columns(4)
    m[0].metric("Stale reads", f"{r['stale_reads']} ({r['stale_read_share']:.0%})")
    m[1].metric("Visible after (p50)", controls.fmt_ms(r["visible_after_ms"]["p50"]))
    m[2].metric("Projection crashes", r["projection_crashes"])
    m[3].metric("Duplicates suppressed", r["duplicates_suppressed"],
                help="events delivered again and applied once (by event id)")  # fmt: skip
    m = st.columns(4)
    m[0].metric("Publishes failed", r["publish_failures"],
                help="publishes that never reached the broker")  # fmt: skip
    m[1].metric("Published", f"{r['published']} of {r['events']}",
                help="events the broker received (each counted once)")  # fmt: skip
    m[2].metric("Orders missing", r["read_model_missing"],
                help="orders the write side has and the read model never heard of")  # fmt: skip
    m[3].metric("Orders diverged", r["diverged_orders"],
                help="orders whose read-model rows differ from a rebuild from the log")  # fmt: skip
    if r["diverged_orders"]:
        st.warning(
            f"{r['publish_failures']} publishes failed and were only logged; the broker lost "
            f"none of the {r['published']} it received ({r['lost']} lost), yet "
            f"{r['diverged_orders']} orders on the read side will never catch up "
            f"({r['read_model_missing']} missing entirely). A rebuild from the store repairs "
            f"them ({r['diverged_after_rebuild']} left after it); fix = project_from_store or "
            "outbox avoids the loss in the first place.",
            icon=":material/sync_problem:",
        )
    st.plotly_chart(projection_lag(result), key="cqrs_lag")
    st.code(controls.cli_command(PATTERN, params, backend=backend, preset=preset),
            language="bash", wrap_lines=True)  # fmt: skip
