"""ipywidgets for the course notebooks: a control per parameter and a Run button.

Only notebooks import this module (``labkit`` itself never does). A cell stays thin::

    from labkit.faces.notebook import controls, experiment

    knobs = controls("gateway", ["mode", "product_latency_ms"])
    experiment("gateway", knobs, show, requests=3)   # show(result) draws the charts

:func:`controls` builds a dropdown, checkbox, slider or text box per parameter; bounds,
choices, help and defaults all come from ``labkit.params_of(pattern)``. :func:`experiment`
lays the controls out above a Run button and an output area, runs once straight away (so a
notebook executed headless still shows a result) and again on every click. A
:class:`~labkit.LabError` (a value the lab cannot use, a broker that does not answer) prints
as one line in the output area; any other exception is a bug and is raised, never hidden.

:func:`table` writes a few rows of numbers as a Markdown table (no pandas import needed).

Not for the playground: Streamlit pages use ``playground/controls.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
from IPython.display import Markdown
from IPython.utils.capture import CapturedIO, capture_output

import labkit
from labkit.core.errors import LabError, UnknownName
from labkit.core.params import Param
from labkit.core.result import Result

# Plotly's notebook renderer imports nbformat, which imports jsonschema, which (when the
# optional ``rfc3987_syntax`` package is installed, as Jupyter's own dependencies make sure it
# is) compiles some forty grammars at import time: measured 2 to 7 s per kernel here, the
# single largest cost of a notebook. It only checks "iri" string formats, which no notebook
# validates, so the course kernels skip it. (JupyterLab's server process is not affected.)
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

#: A slider needs an upper end: parameters without a declared maximum get one, per unit.
UI_MAX: dict[str, float] = {"ms": 1000.0}
#: The upper end for a number with neither a maximum nor a unit.
OPEN_MAX = 100.0
_STYLE = {"description_width": "initial"}
_LAYOUT = {"width": "440px"}

Render = Callable[[Result], None]


#: Words a label writes in capitals.
def label_of(param: Param) -> str:
    """``product_latency_ms`` -> ``Product latency (ms)``; ``bff`` -> ``BFF``."""
    return param.label


def control(
    param: Param, value: Any = None, *, maximum: float | None = None
) -> widgets.ValueWidget:
    """One widget for one parameter, shaped by its type, bounds and choices.

    choices: a dropdown; bool: a checkbox; number: a slider from the declared minimum to the
    declared maximum (else ``maximum``, else :data:`UI_MAX` for its unit); text: a text box.
    ``value`` (checked by the parameter, so a bad one raises a LabError) replaces the default.
    """
    start = param.default if value is None else param.coerce(value)
    common: dict[str, Any] = {
        "value": start,
        "description": label_of(param),
        "tooltip": param.help,
        "style": _STYLE,
        "layout": widgets.Layout(**_LAYOUT),
    }
    if param.choices is not None:
        return widgets.Dropdown(options=list(param.choices), **common)
    if param.kind is bool:
        return widgets.Checkbox(indent=False, **common)
    if param.kind in (int, float):
        low = param.minimum if param.minimum is not None else min(0, start)
        top = param.maximum if param.maximum is not None else maximum
        if top is None:
            top = UI_MAX.get(param.unit, OPEN_MAX)
        top = max(top, start)  # a starting value may lie past the usual range
        if param.kind is int:
            return widgets.IntSlider(
                min=int(low), max=int(top), step=1, continuous_update=False, **common
            )
        probability = param.minimum == 0 and param.maximum == 1
        return widgets.FloatSlider(
            min=float(low),
            max=float(top),
            step=0.01 if probability else 1.0,
            readout_format=".2f" if probability else ".0f",
            continuous_update=False,
            **common,
        )
    return widgets.Text(continuous_update=False, **common)


def controls(
    pattern: str,
    names: Sequence[str],
    *,
    maxima: Mapping[str, float] | None = None,
    **values: Any,
) -> dict[str, widgets.ValueWidget]:
    """A widget per named parameter of ``pattern``, in the order given.

    ``values`` sets starting values (``controls("gateway", ["mode"], mode="concurrent")``);
    ``maxima`` sets a slider's upper end where the parameter declares none.
    """
    spec = {p.name: p for p in labkit.params_of(pattern)}
    for name in [*names, *(maxima or {})]:
        if name not in spec:
            raise UnknownName(f"parameter of {pattern}", name, list(spec))
    for name in values:
        if name not in names:
            raise UnknownName(f"control of this cell ({pattern})", name, list(names))
    return {
        name: control(spec[name], values.get(name), maximum=(maxima or {}).get(name))
        for name in names
    }


def _stream(text: str, name: str = "stdout") -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}


def _outputs_of(captured: CapturedIO) -> tuple[dict[str, Any], ...]:
    """Captured text and displays as notebook outputs, for ``Output.outputs``."""
    outputs = [_stream(text, name) for name, text in
               (("stdout", captured.stdout), ("stderr", captured.stderr)) if text]  # fmt: skip
    for shown in captured.outputs:
        outputs.append(
            {"output_type": "display_data", "data": shown.data, "metadata": shown.metadata or {}}
        )
    return tuple(outputs)


def show_in(area: widgets.Output, *things: object) -> None:
    """Replace what ``area`` shows with ``things`` (figures, tables, text), in one step.

    Writing with ``with area:`` would print into the area from a widget callback, which
    hangs nbmake; setting its outputs does not."""
    from IPython.display import display

    with capture_output() as captured:
        for thing in things:
            display(thing)
    area.outputs = _outputs_of(captured)


def _cell(value: Any) -> str:
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_cell(v)}" for k, v in value.items())
    elif isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Mapping[str, Mapping[str, Any]]) -> Markdown:
    """Rows (row name -> column -> value) as a Markdown table; cheaper than importing pandas.

    Columns appear in first-seen order; a missing value is blank; a dict value (status counts,
    outcomes) is written ``key: value, ...``.
    """
    columns: list[str] = []
    for row in rows.values():
        columns += [c for c in row if c not in columns]
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [_cell(row[c]) if c in row else "" for c in columns]
        lines.append(f"| **{_cell(name)}** | " + " | ".join(cells) + " |")
    return Markdown("\n".join(lines))


def one_line(error: LabError) -> str:
    """How a lab error reads in a notebook: ``labkit: <message>`` on a single line."""
    return "labkit: " + " ".join(str(error).split())


class Experiment(widgets.VBox):
    """Controls, an optional preset menu, a Run button and an output area for one pattern.

    After each run, ``result`` holds the :class:`~labkit.Result` (``None`` after an error) and
    ``error`` the one-line message of a :class:`~labkit.LabError` (``None`` after a success).
    """

    def __init__(
        self,
        pattern: str,
        controls: Mapping[str, widgets.ValueWidget],
        render: Render,
        *,
        seed: int = 0,
        backend: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        presets: bool = False,
    ) -> None:
        super().__init__()
        self.pattern = pattern
        self.controls = dict(controls)
        self.render = render
        self.seed = seed
        self.backend = backend
        self.fixed = dict(fixed or {})
        self.preset_extra: dict[str, Any] = {}
        self.result: Result | None = None
        self.error: str | None = None
        self.button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(lambda _: self.run())
        self.output = widgets.Output()
        self.preset_menu: widgets.Dropdown | None = None
        self.preset_note = widgets.HTML()
        top: list[widgets.Widget] = []
        if presets:
            top = self._preset_widgets()
        grid = widgets.Box(
            list(self.controls.values()), layout=widgets.Layout(flex_flow="row wrap")
        )
        self.children = [*top, grid, self.button, self.output]
        self.run()

    def params(self) -> dict[str, Any]:
        """What the next run will use: fixed values, a preset's extras, then the controls."""
        return {
            **self.fixed,
            **self.preset_extra,
            **{name: w.value for name, w in self.controls.items()},
        }

    def run(self) -> Result | None:
        """Run the pattern with the current values and show the result in the output area.

        What ``render`` prints and displays is captured and then set as the output area's
        content in one step (text first, then figures). Nothing is routed through the Output
        widget's capture mode, which headless executors (nbclient, hence nbmake) emulate with
        shell-channel messages that can stall a run.
        """
        self.button.disabled = True
        try:
            result = labkit.run(self.pattern, seed=self.seed, backend=self.backend, **self.params())
        except LabError as exc:
            self.result, self.error = None, one_line(exc)
            self.output.outputs = (_stream(self.error + "\n"),)
            return None
        finally:
            self.button.disabled = False
        self.result, self.error = result, None
        with capture_output() as captured:  # a bug in render propagates, never hidden
            self.render(result)
        self.output.outputs = _outputs_of(captured)
        return result

    def apply_preset(self, name: str) -> None:
        """Reset every control to its default, then set the preset's values, and run.

        A preset value with no control on this cell is kept in ``preset_extra`` and used by
        every run until another preset is chosen.
        """
        from labkit.scenarios import ALIASES
        from labkit.scenarios.presets import preset

        chosen = preset(ALIASES.get(self.pattern, self.pattern), name)
        spec = {p.name: p for p in labkit.params_of(self.pattern)}
        for key, widget in self.controls.items():
            given = chosen.params.get(key, spec[key].default)
            value = spec[key].coerce(given)
            if isinstance(widget, widgets.IntSlider | widgets.FloatSlider) and value > widget.max:
                widget.max = value
            widget.value = value
        self.preset_extra = {k: v for k, v in chosen.params.items() if k not in self.controls}
        self.preset_note.value = f"<b>{chosen.title}.</b> {chosen.explain}"
        self.run()

    def _preset_widgets(self) -> list[widgets.Widget]:
        from labkit.scenarios import ALIASES
        from labkit.scenarios.presets import load_presets

        found = load_presets(ALIASES.get(self.pattern, self.pattern))
        menu = widgets.Dropdown(
            options=[("(your settings)", ""), *((p.title, n) for n, p in found.items())],
            value="",
            description="Preset",
            style=_STYLE,
            layout=widgets.Layout(**_LAYOUT),
        )

        def chosen(change: dict[str, Any]) -> None:
            if change["new"]:
                self.apply_preset(change["new"])
            else:
                self.preset_extra, self.preset_note.value = {}, ""

        menu.observe(chosen, names="value")
        self.preset_menu = menu
        return [menu, self.preset_note]


def experiment(
    pattern: str,
    controls: Mapping[str, widgets.ValueWidget],
    render: Render,
    *,
    seed: int = 0,
    backend: str | None = None,
    presets: bool = False,
    **fixed: Any,
) -> Experiment:
    """Lay out ``controls`` with a Run button; run ``pattern`` now and on every click.

    ``render(result)`` draws whatever the cell wants to show (``fig.show()`` works inside).
    ``fixed`` parameters apply to every run; a control of the same name wins.
    ``presets=True`` adds a menu of the pattern's presets from ``data/presets/``.
    """
    return Experiment(
        pattern, controls, render, seed=seed, backend=backend, fixed=fixed, presets=presets
    )
