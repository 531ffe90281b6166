"""Message queue: orders flow to the inventory service through a queue. Send a poison message,
crash the consumer, deploy a fixed one and replay the dead-letter queue, click by click; or run
a whole experiment on the memory broker, NATS or RabbitMQ."""

import inspect
from typing import Any

import streamlit as st

import labkit
from labkit import LabError, Result
from labkit.scenarios.presets import load_presets
from labkit.scenarios.queue_session import CONSUMERS, QueueSession
from labkit.viz import message_fate, queue_depth

import controls

PATTERN = "message_queue"
BACKEND_KEY = "message_queue.backend"
VIEW_KEY = "message_queue.view"
PRESET_KEY = "message_queue.preset"
RUN_ID_KEY = "message_queue.run_id"
SESSION_KEY = "message_queue.session"
LIMIT_KEY = "message_queue.session.max_deliveries"
SPEED_KEY = "message_queue.session.processing_ms"
CONSUMER_KEY = "message_queue.session.consumer"
NOTE_KEY = "message_queue.session.note"
BEFORE_KEY = "message_queue.session.before"
BY_HAND, FULL_RUN = "Drive the queue by hand", "Full run"
CONSUMER_HELP = {
    "syllabus": "requeues what it cannot parse (the syllabus' consumer)",
    "fixed": "rejects what it cannot parse into the DLQ",
    "v2": "fixed, and also reads the newer order format",
}
BUTTONS = [  # label, icon, action, help
    ("Publish 10 orders", ":material/add_shopping_cart:", "publish", None),
    ("Send a poison message", ":material/skull:", "poison", "a body that is not JSON"),
    ("Send a new-format order", ":material/fiber_new:", "new_format", "only v2 reads it"),
    ("Crash the consumer", ":material/dangerous:", "crash", "it dies with what it holds"),
    ("Let 1 s pass", ":material/timer:", "wait", None),
    ("Replay the DLQ", ":material/replay:", "replay", "move every dead letter back"),
    ("Reset", ":material/restart_alt:", "reset", "a fresh queue, time back at 0"),
]
COUNTS = [
    ("Published", "published", "messages the order service handed to the broker"),
    ("Acked", "acked", "processed and acknowledged: done"),
    ("Redelivered", "redelivered", "deliveries of a message that had been handed out before"),
    ("Dead-lettered", "dead_lettered", "in the dead-letter queue now"),
    ("Lost", "lost", "published − acked − dead-lettered − still queued"),
    ("Still queued", "still_queued", "waiting, or handed out and not yet settled"),
    (
        "Max deliveries",
        "highest_delivery_count",
        "the delivery count of the message handed out most often",
    ),
]

st.title("Message queue")
st.markdown(
    "The order service publishes `orders.created`; the inventory service consumes them from "
    "`inventory_queue` and takes the items out of stock. A consumer **acks** what it has done, "
    "**nacks** what should be tried again and **rejects** what can never work (into the "
    "dead-letter queue, the DLQ). Send a poison message to the syllabus' consumer and watch "
    "it go round and round; crash the consumer and see that nothing is lost."
)


# --- which broker ---------------------------------------------------------------------------


def choose_backend() -> str | None:
    return controls.choose_backend(BACKEND_KEY, "Broker for the full run")


def run_on(backend: str, params: dict[str, Any], run_id: int = 0) -> Result | None:
    """``labkit.run`` through the page's cache; a failing backend becomes one error line."""
    try:
        return controls.run(PATTERN, params, backend=backend, run_id=run_id)
    except (ImportError, OSError, TimeoutError) as exc:
        st.error(
            f"The {backend} backend failed: {' '.join(str(exc).split())}", icon=":material/error:"
        )
        return None


backend = choose_backend()


# --- shared by both tabs ---------------------------------------------------------------------


def show_counts(summary: dict[str, Any], before: dict[str, Any] | None = None) -> None:
    cols = st.columns(len(COUNTS))
    for col, (label, key, help_text) in zip(cols, COUNTS, strict=True):
        delta = None
        if before is not None and summary[key] != before[key]:
            delta = summary[key] - before[key]
        inverse = key in ("lost", "still_queued", "redelivered", "highest_delivery_count")
        col.metric(
            label,
            summary[key],
            delta=delta,
            help=help_text,
            delta_color="inverse" if inverse else "normal",
        )


def show_charts(result: Result, key: str) -> None:
    left, right = st.columns(2)
    left.plotly_chart(queue_depth(result), key=f"{key}_depth")
    right.plotly_chart(message_fate(result), key=f"{key}_fate")


# --- tab 1: a queue kept between clicks -------------------------------------------------------


st.session_state.setdefault(LIMIT_KEY, 0)
st.session_state.setdefault(SPEED_KEY, 200)
st.session_state.setdefault(CONSUMER_KEY, "syllabus")
for _key in (LIMIT_KEY, SPEED_KEY, CONSUMER_KEY):  # keep values while the other tab is open
    st.session_state[_key] = st.session_state[_key]


def current_session() -> QueueSession | None:
    """This browser session's queue; a fresh one when the queue's settings change."""
    settings = {
        "max_deliveries": st.session_state[LIMIT_KEY],
        "processing_ms": float(st.session_state[SPEED_KEY]),
    }
    key = tuple(sorted(settings.items()))
    held = st.session_state.get(SESSION_KEY)
    if held is None or held["key"] != key:
        if held is not None:
            held["session"].close()
            st.session_state[NOTE_KEY] = "New queue settings: a fresh queue, time back at 0."
        try:
            session = QueueSession(consumer=st.session_state[CONSUMER_KEY], **settings)
        except LabError as exc:
            controls.show_error(exc)
            return None
        held = {"key": key, "session": session}
        st.session_state[SESSION_KEY] = held
        st.session_state.pop(BEFORE_KEY, None)
    return held["session"]


def _deploy() -> None:
    held = st.session_state.get(SESSION_KEY)
    if held is not None:
        kind = st.session_state[CONSUMER_KEY]
        st.session_state[BEFORE_KEY] = held["session"].summary()
        held["session"].use_consumer(kind)
        st.session_state[NOTE_KEY] = f"Deployed the `{kind}` consumer: it {CONSUMER_HELP[kind]}."


def _act(action: str) -> None:
    """A button's callback: it runs before the panel is drawn, so the panel shows its effect."""
    held = st.session_state.get(SESSION_KEY)
    if held is None:
        return
    session: QueueSession = held["session"]
    before = session.summary()
    if action == "publish":
        ids = session.publish_orders(10)
        note = f"Published 10 orders ({ids[0]} to {ids[-1]})."
    elif action == "poison":
        note = f"Sent {session.send_poison()}: `<order corrupted>` is not JSON."
    elif action == "new_format":
        mid = session.send_new_format_order()
        note = f"Sent {mid}, an order whose items are called `lines`: only `v2` reads it."
    elif action == "crash":
        in_hand = before["still_queued"] - session.depth()
        session.crash_consumer()
        note = (
            f"The consumer crashed holding {in_hand} unacknowledged message(s); the broker "
            "handed them out again to the new consumer, flagged redelivered."
            if in_hand
            else "The consumer crashed holding nothing: publish orders first, then crash it "
            "while it works."
        )
    elif action == "wait":
        session.wait(1.0)
        note = "One second passed."
    elif action == "replay":
        note = f"Moved {session.replay_dead_letters()} dead letter(s) back into the queue."
    else:  # reset
        session.close()
        del st.session_state[SESSION_KEY]
        st.session_state.pop(BEFORE_KEY, None)
        st.session_state[NOTE_KEY] = "Reset: a fresh queue, time back at 0."
        return
    st.session_state[BEFORE_KEY] = before
    st.session_state[NOTE_KEY] = note


def session_panel() -> None:
    if backend not in (None, "memory"):
        st.info(
            f"This tab always uses the in-memory broker; the full run uses {backend}.",
            icon=":material/info:",
        )
    with st.container(border=True):
        queue_col, consumer_col = st.columns([2, 3])
        queue_col.slider(
            "Delivery limit (0: none, as in the syllabus)",
            0,
            20,
            key=LIMIT_KEY,
            help="past this many deliveries the broker dead-letters a message "
            "(reason delivery_limit); changing it starts a fresh queue",
        )
        queue_col.slider(
            "Time to process one order (ms)",
            10,
            1000,
            step=10,
            key=SPEED_KEY,
            help="slow on purpose, so that a crash can catch the consumer at work; "
            "changing it starts a fresh queue",
        )
        consumer_col.radio(
            "Consumer",
            CONSUMERS,
            key=CONSUMER_KEY,
            horizontal=True,
            on_change=_deploy,
            captions=[CONSUMER_HELP[c] for c in CONSUMERS],
        )
        for start in (0, 4):
            row = BUTTONS[start : start + 4]
            for col, (label, icon, action, tip) in zip(st.columns(4), row, strict=False):
                col.button(label, icon=icon, on_click=_act, args=(action,), help=tip,
                           width="stretch")  # fmt: skip
    session = current_session()
    if session is None:
        return
    s = session.summary()
    limit = st.session_state[LIMIT_KEY]
    st.caption(
        f"t = {session.timeline.clock.now():.1f} s (virtual) · consumer `{s['consumer']}` · "
        f"delivery limit {limit or 'none'} · every click lets one second pass"
    )
    note = st.session_state.pop(NOTE_KEY, None)
    if note:
        st.caption(note)
    show_counts(s, st.session_state.get(BEFORE_KEY))
    if s["consumer"] == "syllabus" and s["still_queued"] and s["highest_delivery_count"] >= 3:
        st.warning(
            f"A message has gone out {s['highest_delivery_count']} times and the queue is not "
            "draining: the syllabus' consumer puts back what it cannot parse, for ever. Deploy "
            "`fixed`, or set a delivery limit.",
            icon=":material/loop:",
        )
    show_charts(session.result(), "mq_session")
    st.markdown("**Dead-letter queue**: why each message died")
    rows = session.dead_letter_rows()
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            column_config={
                "reason": st.column_config.TextColumn(help="rejected, delivery_limit or expired"),
                "deliveries": st.column_config.NumberColumn(help="times it was handed out"),
                "body": st.column_config.TextColumn(width="large"),
            },
        )
    else:
        st.caption("The DLQ is empty.")
    with st.expander("The inventory consumer's code (all three versions)"):
        st.code(inspect.getsource(QueueSession._handle), language="python")


# --- tab 2: a whole run --------------------------------------------------------------------


try:
    presets = load_presets(PATTERN)
except LabError as exc:
    controls.show_error(exc)
    presets = {}
for _key in [controls.key_for(PATTERN, p.name) for p in labkit.params_of(PATTERN)]:
    if _key in st.session_state:
        st.session_state[_key] = st.session_state[_key]
controls.init_state(PATTERN)


def _apply_preset() -> None:
    name = st.session_state.get(PRESET_KEY)
    if name in presets:
        controls.apply_params(PATTERN, presets[name].params)


def _reset_controls() -> None:
    st.session_state[PRESET_KEY] = None
    controls.apply_params(PATTERN, {})


def full_run() -> None:
    pick, reset = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox(
        "Start from a preset",
        list(presets),
        index=None,
        key=PRESET_KEY,
        format_func=lambda name: presets[name].title,
        on_change=_apply_preset,
        placeholder="Choose a preset (it sets the controls below)",
    )
    reset.button("Reset to defaults", on_click=_reset_controls, icon=":material/restart_alt:")
    if chosen in presets:
        st.info(presets[chosen].explain, icon=":material/lightbulb:")
    with st.container(border=True):
        traffic, consumer, trouble = st.columns(3)
        traffic.markdown("**Traffic**")
        controls.widget(
            PATTERN, "messages", label="Orders published", ui_max=5000, container=traffic
        )
        controls.widget(
            PATTERN,
            "publish_per_s",
            label="Publish rate (per s, 0: all at once)",
            ui_max=2000,
            container=traffic,
        )
        controls.widget(
            PATTERN, "poison_share", label="Share of poison messages", container=traffic
        )
        consumer.markdown("**Consumers**")
        controls.widget(PATTERN, "consumer", label="Consumer", container=consumer)
        controls.widget(
            PATTERN, "consumers", label="Competing consumers", ui_max=10, container=consumer
        )
        controls.widget(PATTERN, "prefetch", label="Prefetch", ui_max=50, container=consumer)
        controls.widget(
            PATTERN, "processing_ms", label="Time per order (ms)", ui_max=200, container=consumer
        )
        trouble.markdown("**Crashes and fixes**")
        controls.widget(
            PATTERN,
            "crash_every",
            label="Crash every N messages (0: never)",
            ui_max=500,
            container=trouble,
        )
        controls.widget(
            PATTERN,
            "max_deliveries",
            label="Delivery limit (0: none)",
            ui_max=20,
            container=trouble,
        )
        controls.widget(PATTERN, "idempotent", label="Idempotent consumer", container=trouble)
        controls.widget(
            PATTERN,
            "loop_cap",
            label="Stop a poison loop after (deliveries)",
            ui_max=200,
            container=trouble,
        )
    if backend is None:
        st.caption("No run: the chosen broker does not answer (see above).")
        return
    params = controls.values(PATTERN)
    run_id = st.session_state.setdefault(RUN_ID_KEY, 0)
    if backend != "memory" and st.button("Run again", icon=":material/refresh:"):
        run_id = st.session_state[RUN_ID_KEY] = run_id + 1
    with st.spinner(f"Running on {backend}…", show_time=True):
        result = run_on(backend, params, run_id)
    if result is None:
        return
    s = result.summary
    show_counts(s)
    m = st.columns(5)
    m[0].metric("Poison messages in the DLQ", f"{s['poison_in_dlq']} / {s['poison_published']}")
    m[1].metric(
        "DLQ reasons", ", ".join(f"{k} {v}" for k, v in s["dead_letter_reasons"].items()) or "none"
    )
    m[2].metric("Consumer crashes", s["crashes"])
    m[3].metric("Duplicates suppressed", s["duplicates_suppressed"])
    m[4].metric(
        "Units taken twice",
        max(s["double_applied_units"], 0),
        help="stock taken beyond what the acked orders asked for",
    )
    if s["stopped_poison_loop"]:
        st.warning(
            f"The run was stopped: one message went out {s['highest_delivery_count']} times "
            f"and {s['still_queued']} messages were stuck behind it.",
            icon=":material/loop:",
        )
    show_charts(result, "mq_run")
    st.markdown("**The same run from a terminal**")
    st.code(
        controls.cli_command(PATTERN, params, preset=chosen, backend=backend),
        language="bash",
        wrap_lines=True,
    )


by_hand, whole = st.tabs([BY_HAND, FULL_RUN], key=VIEW_KEY, on_change="rerun")
if by_hand.open:
    with by_hand:
        session_panel()
if whole.open:
    with whole:
        full_run()
