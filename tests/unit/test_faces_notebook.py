"""The notebooks' widget helper: controls from parameters, a Run button, one-line errors."""

import ipywidgets as widgets
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from traitlets.config import Config

import labkit
from labkit import BadParameter, LabError, Result, UnknownName
from labkit.faces import notebook
from labkit.faces.notebook import control, controls, experiment, label_of, table
from labkit.patterns.gateway import MODES


@pytest.fixture
def shell():
    """An IPython shell, so that ``display()`` calls can be captured as in a notebook."""
    config = Config()
    config.HistoryManager.enabled = False  # no history file in the home directory
    yield InteractiveShell.instance(config=config)
    InteractiveShell.clear_instance()


def test_int_parameter_becomes_an_int_slider_with_its_declared_bounds():
    w = controls("gateway", ["items", "requests"])
    assert list(w) == ["items", "requests"]
    assert isinstance(w["items"], widgets.IntSlider)
    assert (w["items"].min, w["items"].max, w["items"].value) == (1, 12, 5)
    assert (w["requests"].min, w["requests"].max) == (1, 500)


def test_probability_is_a_float_slider_from_0_to_1_in_hundredths():
    w = controls("gateway", ["product_error_rate"])["product_error_rate"]
    assert isinstance(w, widgets.FloatSlider)
    assert (w.min, w.max, w.step, w.value) == (0.0, 1.0, 0.01, 0.0)


def test_milliseconds_without_a_maximum_get_the_ui_maximum_or_the_one_asked_for():
    w = controls(
        "gateway", ["product_latency_ms", "call_timeout_ms"], maxima={"call_timeout_ms": 5000}
    )
    assert (w["product_latency_ms"].min, w["product_latency_ms"].max) == (0.0, 1000.0)
    assert w["call_timeout_ms"].max == 5000.0
    assert w["product_latency_ms"].description == "Product latency (ms)"


def test_a_starting_value_past_the_usual_range_widens_the_slider():
    w = controls("gateway", ["product_latency_ms"], product_latency_ms=2500)["product_latency_ms"]
    assert (w.value, w.max) == (2500.0, 2500.0)


def test_choices_become_a_dropdown_bool_a_checkbox_text_a_text_box():
    w = controls("request_response", ["client", "down", "user_id"])
    assert isinstance(w["client"], widgets.Dropdown)
    assert list(w["client"].options) == ["careful", "naive"]
    assert isinstance(w["down"], widgets.Checkbox) and w["down"].value is False
    assert isinstance(w["user_id"], widgets.Text) and w["user_id"].value == "u-1"
    mode = controls("gateway", ["mode"], mode="concurrent")["mode"]
    assert list(mode.options) == list(MODES) and mode.value == "concurrent"


def test_help_text_becomes_the_tooltip():
    param = next(p for p in labkit.params_of("gateway") if p.name == "items")
    assert control(param).tooltip == param.help
    assert label_of(param) == "Items"
    labels = {p.name: label_of(p) for p in labkit.params_of("request_response")}
    assert labels["user_id"] == "User ID" and labels["timeout_ms"] == "Timeout (ms)"
    assert label_of(next(p for p in labkit.params_of("gateway") if p.name == "bff")) == "BFF"


def test_bad_names_and_values_are_refused_as_lab_errors():
    with pytest.raises(UnknownName, match="nope"):
        controls("gateway", ["nope"])
    with pytest.raises(UnknownName, match="items"):
        controls("gateway", ["mode"], items=3)
    with pytest.raises(BadParameter, match="items=99"):
        controls("gateway", ["items"], items=99)


def test_experiment_renders_once_at_once_with_a_result_of_the_control_values():
    seen: list[Result] = []
    knobs = controls("gateway", ["mode"], mode="concurrent")
    exp = experiment("gateway", knobs, seen.append, requests=1, seed=3)
    assert len(seen) == 1 and isinstance(seen[0], Result)
    assert exp.result is seen[0] and exp.error is None
    assert seen[0].params["mode"] == "concurrent" and seen[0].params["requests"] == 1
    assert seen[0].seed == 3
    assert exp.output in exp.children and exp.button in exp.children


def test_clicking_run_uses_the_new_values():
    seen: list[Result] = []
    knobs = controls("gateway", ["mode"])
    exp = experiment("gateway", knobs, seen.append, requests=1)
    knobs["mode"].value = "concurrent"
    exp.button.click()
    assert [r.params["mode"] for r in seen] == ["sequential", "concurrent"]
    assert not exp.button.disabled


def test_a_lab_error_shows_as_one_line_and_nothing_is_rendered():
    seen: list[Result] = []
    exp = experiment("gateway", controls("gateway", ["mode"]), seen.append, failing_product=99)
    assert seen == [] and exp.result is None
    assert exp.error == "labkit: failing_product=99: must lie between 0 and 12"
    assert exp.output.outputs == (
        {"output_type": "stream", "name": "stdout", "text": exp.error + "\n"},
    )


def test_what_render_prints_and_displays_lands_in_the_output_area(shell):
    def render(result: Result) -> None:
        print(f"p50 {result.summary['latency_ms']['p50']:.0f} ms")
        display({"text/plain": "a chart"}, raw=True)

    exp = experiment("gateway", {}, render, requests=1, mode="concurrent")
    assert exp.output.outputs == (
        {"output_type": "stream", "name": "stdout", "text": "p50 60 ms\n"},
        {"output_type": "display_data", "data": {"text/plain": "a chart"}, "metadata": {}},
    )
    exp.fixed["failing_product"] = 99  # the next run fails: its line replaces the old output
    exp.button.click()
    assert [o["text"] for o in exp.output.outputs] == [exp.error + "\n"]


def test_a_multi_line_lab_error_is_still_one_line(monkeypatch):
    def broken(*args, **kwargs):
        raise LabError(
            "nats at nats://127.0.0.1:4222 does not answer\n(start one with labkit broker up)"
        )

    monkeypatch.setattr(notebook.labkit, "run", broken)
    exp = experiment("gateway", {}, lambda result: None)
    assert exp.error is not None and "\n" not in exp.error
    assert exp.error.endswith("does not answer (start one with labkit broker up)")


def test_a_bug_in_render_is_raised_not_hidden():
    def render(result: Result) -> None:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        experiment("gateway", {}, render, requests=1)


def test_a_preset_resets_the_controls_and_keeps_its_other_values():
    seen: list[Result] = []
    knobs = controls("gateway", ["mode", "partial", "requests"], requests=2)
    exp = experiment("gateway", knobs, seen.append, presets=True)
    assert exp.preset_menu is not None
    exp.preset_menu.value = "degrade"
    assert (knobs["mode"].value, knobs["partial"].value) == ("concurrent", "degrade")
    assert knobs["requests"].value == 5  # back to the default: the preset does not set it
    assert exp.preset_extra == {"failing_product": 3}
    assert seen[-1].summary["degraded"] == 5 and seen[-1].params["failing_product"] == 3
    assert "degrade" in exp.preset_note.value.lower()
    exp.preset_menu.value = ""
    assert exp.preset_extra == {} and exp.preset_note.value == ""


def test_table_writes_rows_as_markdown_with_readable_numbers():
    shown = table({
        "careful": {"answers": "0/20", "p50 (ms)": 250.0, "outcomes": {"timeout": 20}},
        "naive": {"answers": "20/20", "p50 (ms)": 0.918, "note": "a | b"},
    })  # fmt: skip
    assert shown.data.splitlines() == [
        "| | answers | p50 (ms) | outcomes | note |",
        "|---|---|---|---|---|",
        "| **careful** | 0/20 | 250.0 | timeout: 20 |  |",
        "| **naive** | 20/20 | 0.92 |  | a \\| b |",
    ]


def test_show_in_replaces_an_output_area_in_one_step(shell):
    import ipywidgets as widgets
    from IPython.display import Markdown

    from labkit.faces.notebook import show_in

    area = widgets.Output()
    show_in(area, Markdown("**first**"))
    show_in(area, Markdown("second"), Markdown("third"))
    shown = [o["data"]["text/markdown"] for o in area.outputs]
    assert shown == ["second", "third"]  # replaced, not appended
