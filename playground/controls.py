"""The small helper every playground page shares: widgets from declared parameters, one
cached way to run a scenario, errors as one line, and the equivalent ``labkit run`` command.

A page stays thin: it asks this module for a widget per parameter (bounds, choices, help text
and defaults all come from ``labkit.params_of(pattern)``), calls :func:`run` with the values,
and shows the result. Widget values live in ``st.session_state`` under ``"<pattern>.<param>"``,
so a preset can set them all at once (see :func:`apply_params`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import streamlit as st

import labkit
from labkit import LabError, Param, Result

#: A slider needs an upper end; parameters without a maximum get one here, per unit.
UI_MAX = {"ms": 1000.0}


def key_for(pattern: str, name: str) -> str:
    """The session-state key of a parameter's widget."""
    return f"{pattern}.{name}"


def params_by_name(pattern: str) -> dict[str, Param]:
    return {p.name: p for p in labkit.params_of(pattern)}


def init_state(pattern: str) -> None:
    """Give every parameter's widget its default, once per session.

    Widgets are then created without ``value=``, so a preset can overwrite session state
    without Streamlit warning about two sources of truth.
    """
    for p in labkit.params_of(pattern):
        st.session_state.setdefault(key_for(pattern, p.name), p.default)


def apply_params(pattern: str, params: Mapping[str, Any]) -> None:
    """Reset every widget of ``pattern`` to its default, then set ``params`` (a preset)."""
    for p in labkit.params_of(pattern):
        value = p.coerce(params[p.name]) if p.name in params else p.default
        st.session_state[key_for(pattern, p.name)] = value


def label_of(param: Param) -> str:
    return param.label


def widget(
    pattern: str,
    name: str,
    *,
    label: str | None = None,
    ui_max: float | None = None,
    step: float | None = None,
    container: Any = None,
) -> Any:
    """One widget for one declared parameter, shaped by its type, bounds and choices.

    * choices: a horizontal radio;  * bool: a toggle;
    * a number with a lower and an upper end (declared, or ``ui_max``): a slider;
    * any other number: a number input bounded below;  * text: a text input.
    """
    p = params_by_name(pattern)[name]
    where = container or st
    key = key_for(pattern, name)
    text = label or label_of(p)
    if p.choices is not None:
        return where.radio(text, list(p.choices), key=key, help=p.help, horizontal=True)
    if p.kind is bool:
        return where.toggle(text, key=key, help=p.help)
    if p.kind in (int, float):
        top = ui_max if ui_max is not None else p.maximum
        if top is None:
            top = UI_MAX.get(p.unit)
        low = p.minimum if p.minimum is not None else 0
        if top is not None:
            top = max(top, st.session_state.get(key, p.default))  # a preset may go past ui_max
            if p.kind is int:
                return where.slider(text, int(low), int(top), key=key, help=p.help,
                                    step=int(step or 1))  # fmt: skip
            probability = p.minimum == 0 and p.maximum == 1
            return where.slider(
                text, float(low), float(top), key=key, help=p.help,
                step=float(step or (0.01 if probability else 1.0)),
                format="%.2f" if probability else "%.0f",
            )  # fmt: skip
        if p.kind is int:
            return where.number_input(text, min_value=int(low), step=1, key=key, help=p.help)
        return where.number_input(text, min_value=float(low), key=key, help=p.help)
    return where.text_input(text, key=key, help=p.help)


def values(pattern: str) -> dict[str, Any]:
    """Current widget values of every parameter (defaults for those not on the page)."""
    return {
        p.name: st.session_state.get(key_for(pattern, p.name), p.default)
        for p in labkit.params_of(pattern)
    }


def show_error(exc: LabError) -> None:
    """A lab error is one plain sentence, never a traceback."""
    st.error(str(exc), icon=":material/error:")


@st.cache_resource(max_entries=48, show_spinner=False)
def _cached_run(
    pattern: str, items: tuple[tuple[str, Any], ...], seed: int, backend: str | None, run_id: int
) -> Result:
    return labkit.run(pattern, seed=seed, backend=backend, **dict(items))


def run(
    pattern: str,
    params: Mapping[str, Any],
    *,
    seed: int = 0,
    backend: str | None = None,
    run_id: int = 0,
) -> Result | None:
    """``labkit.run`` with the page's values, cached; ``None`` (and one error line) on a LabError.

    In-process runs are deterministic, so the cache only saves time. Live runs measure real
    time: pass a new ``run_id`` to measure again. Results are shared; treat them as read-only.
    """
    try:
        return _cached_run(pattern, tuple(sorted(params.items())), seed, backend, run_id)
    except LabError as exc:
        show_error(exc)
        return None


#: The ``labkit run`` command that repeats a run (kept in labkit: notebooks show it too).
cli_command = labkit.scenarios.cli_command


def fmt_ms(value: float) -> str:
    return f"{value:,.1f} ms" if value < 100 else f"{value:,.0f} ms"


# --- which broker (the messaging pages) -------------------------------------------------------

BROKER_BACKENDS = ("memory", "nats", "rabbitmq")
_PROBE_NAME = {"nats": "NATS", "rabbitmq": "RabbitMQ"}


@st.cache_data(ttl=30, show_spinner="Knocking on the brokers' ports…")
def broker_status() -> dict[str, Any]:
    from labkit.transport import probe

    return {s.name: s for s in probe.broker_statuses()}


def choose_backend(key: str, label: str = "Broker") -> str | None:
    """The broker radio; ``None`` (and one error line) when the chosen broker does not answer."""
    statuses = broker_status()

    def caption(name: str) -> str:
        if name == "memory":
            return "in-process, virtual time"
        s = statuses[_PROBE_NAME[name]]
        return f"{'answers' if s.answers else 'does not answer'} at {s.url}"

    st.session_state.setdefault(key, "memory")
    chosen = st.radio(
        label,
        BROKER_BACKENDS,
        key=key,
        horizontal=True,
        captions=[caption(b) for b in BROKER_BACKENDS],
    )
    if chosen == "memory":
        return chosen
    status = statuses[_PROBE_NAME[chosen]]
    if not status.answers:
        st.error(f"{status.line()}: pick memory, or start the broker.", icon=":material/error:")
        st.button(
            "Use the memory broker",
            on_click=st.session_state.update,
            kwargs={key: "memory"},
            icon=":material/memory:",
        )
        return None
    return chosen


# --- presets ----------------------------------------------------------------------------------


def preset_picker(pattern: str, placeholder: str) -> str | None:
    """A preset menu that sets the pattern's controls, and a reset button; the chosen name.

    A preset whose values the lab refuses shows as one error line and leaves the controls at
    their defaults (the menu goes back to "no preset")."""
    from labkit.scenarios.presets import load_presets

    key, error_key = f"{pattern}.preset", f"{pattern}.preset_error"
    try:
        presets = load_presets(pattern)
    except LabError as exc:
        show_error(exc)
        presets = {}

    def apply() -> None:
        name = st.session_state.get(key)
        if name in presets:
            try:
                apply_params(pattern, presets[name].params)
            except LabError as exc:  # a preset file with a value the lab refuses
                st.session_state[error_key] = f"Preset {name!r}: {exc}"
                st.session_state[key] = None  # the controls are back at their defaults
                apply_params(pattern, {})

    def reset() -> None:
        st.session_state[key] = None
        apply_params(pattern, {})

    pick, undo = st.columns([4, 1], vertical_alignment="bottom")
    chosen = pick.selectbox(
        "Start from a preset",
        list(presets),
        index=None,
        key=key,
        on_change=apply,
        format_func=lambda name: presets[name].title,
        placeholder=placeholder,
    )
    undo.button(
        "Reset to defaults", on_click=reset, icon=":material/restart_alt:", key=f"{pattern}.reset"
    )
    if error_key in st.session_state:
        st.error(st.session_state.pop(error_key), icon=":material/error:")
    elif chosen in presets:
        st.info(presets[chosen].explain, icon=":material/lightbulb:")
    return chosen


T = TypeVar("T")


# --- state kept between clicks ----------------------------------------------------------------


def held(key: str, make: Callable[[], T]) -> T:
    """The object this browser session keeps under ``key`` (made by ``make`` on first use)."""
    if key not in st.session_state:
        st.session_state[key] = make()
    return st.session_state[key]


def note(key: str, kind: str, text: str) -> None:
    """Leave a message for the next run of the page: ``kind`` is ``success``, ``info``,
    ``warning`` or ``error``."""
    st.session_state[key] = (kind, text)


def show_note(key: str) -> None:
    if key in st.session_state:
        kind, text = st.session_state[key]
        getattr(st, kind)(text)
