"""Publish-subscribe and the transactional outbox: one payment event to two services while one
of them is offline (core vs durable), and an order service that crashes between saving an
order and publishing its event (dual write vs outbox)."""

from typing import Any

import streamlit as st

from labkit import LabError, Result
from labkit.viz import fanout_receipts, message_fate

import controls

BACKEND_KEY = "pubsub.backend"
VIEW_KEY = "pubsub.view"
RUN_ID_KEY = "pubsub.run_id"
SEED_KEY = "outbox.seed"
FANOUT, OUTBOX = "Fan-out and an offline subscriber", "Outbox vs the dual write"
REQUEST_REPLY = "Request-reply through the broker"
SIDES = {
    "core": ("Core pub/sub", "receives only what is published while it is subscribed"),
    "durable": ("Durable queues", "one durable queue per service: events wait for it"),
    "dual_write": ("Dual write (the syllabus)", "save the order, then publish its event"),
    "outbox": ("Transactional outbox", "order and event in one transaction; a relay publishes"),
}

st.title("Publish-subscribe and the outbox")
st.markdown(
    "The payment service publishes `payments.processed`; the order service and the "
    "notification service both subscribe (**fan-out**: each gets every event). Take the "
    "notification service offline for a while and compare plain pub/sub with durable queues. "
    "Then step back to the publisher: the order service saves an order and publishes "
    "`orders.created`, and sometimes dies in between."
)


# --- which broker ---------------------------------------------------------------------------


def choose_backend() -> str | None:
    return controls.choose_backend(BACKEND_KEY, "Broker")


def run_pair(
    pattern: str, switch: str, params: dict[str, Any], backend: str, **kw: Any
) -> dict[str, Result] | None:
    """Each value of ``switch`` with the same parameters; stops at the first failure, so a
    broker that fails shows one error line, not two."""
    out: dict[str, Result] = {}
    run_id = st.session_state.get(RUN_ID_KEY, 0)
    for value in controls.params_by_name(pattern)[switch].choices or ():
        try:
            result = controls.run(
                pattern, {**params, switch: value}, backend=backend, run_id=run_id, **kw
            )
        except (ImportError, OSError, TimeoutError) as exc:
            st.error(
                f"The {backend} backend failed: {' '.join(str(exc).split())}",
                icon=":material/error:",
            )
            return None
        if result is None:
            return None
        out[value] = result
    return out


def side_header(where: Any, value: str) -> None:
    title, explain = SIDES[value]
    where.markdown(f"**{title}**")
    where.caption(explain)


def show_command(where: Any, pattern: str, params: dict[str, Any], backend: str, **kw: Any) -> None:
    where.code(
        controls.cli_command(pattern, params, backend=backend, **kw),
        language="bash",
        wrap_lines=True,
    )


backend = choose_backend()
if backend not in (None, "memory") and st.button(
    "Run again", icon=":material/refresh:", help="real brokers run in real time"
):
    st.session_state[RUN_ID_KEY] = st.session_state.get(RUN_ID_KEY, 0) + 1


# --- tab 1: fan-out, core vs durable -------------------------------------------------------


def fanout(backend: str) -> None:
    pattern = "pubsub"
    controls.init_state(pattern)
    with st.container(border=True):
        load, away = st.columns(2)
        controls.widget(pattern, "payments", label="Payment events", ui_max=500, container=load)
        controls.widget(
            pattern, "rate_per_s", label="Events per second", ui_max=100, container=load
        )
        controls.widget(
            pattern,
            "offline_from_s",
            label="Notification service goes offline at (s)",
            ui_max=60,
            container=away,
        )
        controls.widget(
            pattern, "offline_to_s", label="… and comes back at (s)", ui_max=60, container=away
        )
    params = controls.values(pattern)
    with st.spinner(f"Running both on {backend}…", show_time=True):
        runs = run_pair(pattern, "delivery", params, backend)
    if runs is None:
        return
    for col, (value, result) in zip(st.columns(2), runs.items(), strict=True):
        s = result.summary
        side_header(col, value)
        m = col.columns(2)
        m[0].metric(
            "Order service received", f"{s['received']['order-service']} / {s['published']}"
        )
        m[1].metric(
            "Notification service received",
            f"{s['received']['notification-service']} / {s['published']}",
        )
        m = col.columns(2)
        m[0].metric(
            "Missed",
            s["missed_by_notification_service"],
            help="published while it was offline, and never delivered to it",
        )
        m[1].metric(
            "Caught up",
            s["caught_up_after_return"],
            help="published while it was offline, delivered once it was back",
        )
        title = "what was published while away is gone" if value == "core" else "it catches up"
        col.plotly_chart(fanout_receipts(result, f"{value}: {title}"), key=f"ps_{value}")
        show_command(col, pattern, {**params, "delivery": value}, backend)


# --- tab 2: dual write vs outbox -----------------------------------------------------------


def outbox(backend: str) -> None:
    pattern = "outbox"
    controls.init_state(pattern)
    st.session_state.setdefault(SEED_KEY, 0)
    with st.container(border=True):
        load, crashes = st.columns(2)
        controls.widget(pattern, "orders", label="Orders created", ui_max=1000, container=load)
        load.number_input("Seed (where the crashes fall)", 0, 10_000, step=1, key=SEED_KEY)
        controls.widget(
            pattern,
            "crash_share",
            label="Share of orders after which the service dies",
            container=crashes,
        )
        controls.widget(
            pattern,
            "relay_crash_share",
            label="Outbox: share of rows after which the relay dies",
            container=crashes,
        )
        controls.widget(pattern, "idempotent", label="Idempotent consumer", container=crashes)
    params = controls.values(pattern)
    seed = int(st.session_state[SEED_KEY])
    with st.spinner(f"Running both on {backend}…", show_time=True):
        runs = run_pair(pattern, "mode", params, backend, seed=seed)
    if runs is None:
        return
    for col, (value, result) in zip(st.columns(2), runs.items(), strict=True):
        s = result.summary
        side_header(col, value)
        m = col.columns(3)
        m[0].metric("Orders saved", s["orders_saved"])
        m[1].metric(
            "Events missing",
            s["events_missing"],
            help="orders saved whose event never reached the inventory service",
        )
        m[2].metric(
            "Stock taken",
            s["stock_taken"],
            help="one unit per order: it should equal the orders saved",
        )
        m = col.columns(3)
        m[0].metric("Events published", s["published"])
        m[1].metric("Deliveries", s["delivered"])
        m[2].metric(
            "Repeats skipped",
            s["duplicates_suppressed"],
            help="duplicates the idempotent consumer recognised and did not apply again",
        )
        m = col.columns(3)
        m[0].metric("Service crashes", s["service_crashes"])
        m[1].metric("Relay crashes", s["relay_crashes"])
        col.plotly_chart(message_fate(result), key=f"ob_{value}")
        show_command(col, pattern, {**params, "mode": value}, backend, seed=seed)
    dual, box = runs["dual_write"].summary, runs["outbox"].summary
    if dual["events_missing"]:
        st.info(
            f"The dual write's diagram says **lost 0**, yet {dual['events_missing']} orders "
            "have no event: they were never published, so the broker never saw them. Count "
            "from the source (orders saved against events applied) to find them.",
            icon=":material/lightbulb:",
        )
    if box["stock_taken"] > box["orders_saved"]:
        st.warning(
            f"The outbox took {box['stock_taken'] - box['orders_saved']} units of stock twice: "
            "the relay republished after its crashes, and the consumer is not idempotent.",
            icon=":material/content_copy:",
        )


def request_reply(backend: str) -> None:
    pattern = "request_reply"
    controls.init_state(pattern)
    st.markdown(
        "Publishing tells; a **request** asks. The client asks `users.lookup` and waits for one "
        "answer; the copies of the user service listen as one group, so each request is "
        "answered once. Take them all away, or make some lookups fail inside the service."
    )
    chosen = controls.preset_picker(pattern, "Or set the controls yourself…")
    with st.container(border=True):
        service, client = st.columns(2)
        controls.widget(pattern, "responders", label="Copies of the user service",
                        container=service)  # fmt: skip
        controls.widget(pattern, "failing_share", label="Share of lookups that fail inside it",
                        container=service)  # fmt: skip
        controls.widget(pattern, "responder_latency_ms", label="One lookup (ms)", ui_max=500,
                        container=service)  # fmt: skip
        controls.widget(pattern, "requests", label="Lookups", ui_max=200, container=client)
        controls.widget(pattern, "timeout_ms", label="Client timeout (ms)", ui_max=2000,
                        container=client)  # fmt: skip
    params = controls.values(pattern)
    run_id = st.session_state.get(RUN_ID_KEY, 0)
    with st.spinner(f"Asking through {backend}…"):
        result = controls.run(pattern, params, backend=backend, run_id=run_id)
    if result is None:
        return
    s = result.summary
    m = st.columns(4)
    m[0].metric("Answered", f"{s['answered']} / {s['requests']}")
    m[1].metric("Timed out", s["timed_out"], help="a responder that fails sends nothing back")
    m[2].metric("No responders", s["no_responders"], help="the broker says so at once")
    m[3].metric("Slowest wait", controls.fmt_ms(s["latency_ms"]["max"]))
    if s["answered_by"]:
        st.markdown("**Who answered** (each request once, shared by the group)")
        st.dataframe(
            [{"responder": k, "requests answered": v} for k, v in s["answered_by"].items()],
            hide_index=True,
        )
    if s["no_responders"]:
        st.info(
            "Nobody listens on `users.lookup`: every request failed at once, without waiting "
            "for its timeout, so the client can fall back immediately.",
            icon=":material/person_off:",
        )
    if s["timed_out"]:
        st.warning(
            f"{s['timed_out']} requests waited their whole timeout: a failed responder sends "
            "no error back unless it is written to.",
            icon=":material/hourglass_bottom:",
        )
    show_command(st, pattern, params, backend, preset=chosen)


fan, box_tab, rr_tab = st.tabs([FANOUT, OUTBOX, REQUEST_REPLY], key=VIEW_KEY, on_change="rerun")
for tab, draw in ((fan, fanout), (box_tab, outbox), (rr_tab, request_reply)):
    if tab.open:
        with tab:
            if backend is None:
                st.caption("No run: the chosen broker does not answer (see above).")
            else:
                try:
                    draw(backend)
                except LabError as exc:
                    controls.show_error(exc)
