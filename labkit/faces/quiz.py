"""ipywidgets for notebook 13: the pattern chooser and the interview quiz.

Only notebooks import this module. Both widgets are thin: they turn clicks into calls to
:mod:`labkit.patterns.chooser` and :mod:`labkit.patterns.interview` and show the Markdown those
return. A refused answer (empty, too long, not a number) prints as one line, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterable

import ipywidgets as widgets

from labkit.core.errors import LabError
from labkit.patterns.chooser import load_table, rank, ranking_markdown
from labkit.patterns.interview import (
    Question,
    all_questions,
    answer_choice,
    grade_free,
)

_LAYOUT = {"width": "640px"}


def show_markdown(out: widgets.Output, text: str) -> None:
    """Replace what ``out`` shows with ``text`` (works with or without a running kernel)."""
    out.outputs = (
        {
            "output_type": "display_data",
            "data": {"text/markdown": text, "text/plain": text},
            "metadata": {},
        },
    )


def shown(out: widgets.Output) -> str:
    """The Markdown an output area shows (for tests)."""
    return "".join(o["data"]["text/plain"] for o in out.outputs)


def chooser(ticked: Iterable[str] = ()) -> widgets.VBox:
    """Tick requirements; the ranked patterns update below."""
    table = load_table()
    boxes = {
        rid: widgets.Checkbox(value=rid in set(ticked), description=text, indent=False)
        for rid, text in table.requirements.items()
    }
    out = widgets.Output()

    def refresh(_: object = None) -> None:
        chosen = [rid for rid, box in boxes.items() if box.value]
        text = ranking_markdown(rank(chosen)) if chosen else "Tick at least one requirement."
        show_markdown(out, text)

    for box in boxes.values():
        box.observe(refresh, names="value")
    refresh()
    grid = widgets.GridBox(
        list(boxes.values()), layout={"grid_template_columns": "repeat(2, 420px)"}
    )
    box = widgets.VBox([grid, out])
    box.boxes, box.output = boxes, out  # type: ignore[attr-defined]
    return box


def quiz(questions: Iterable[Question] | None = None) -> widgets.VBox:
    """Pick a question, answer, submit: key points found and missed, or every option explained."""
    pool = [q for q in (questions or all_questions()) if q.kind in ("free", "choice")]
    pick = widgets.Dropdown(
        options=[(f"[{q.topic}] {q.prompt[:70]}", q.id) for q in pool],
        description="Question",
        layout=_LAYOUT,
    )
    prompt = widgets.HTML()
    text = widgets.Textarea(placeholder="Your answer, in a few sentences", layout=_LAYOUT)
    options = widgets.RadioButtons(layout=_LAYOUT)
    submit = widgets.Button(description="Submit", button_style="primary")
    out = widgets.Output()
    by_id = {q.id: q for q in pool}

    def show(_: object = None) -> None:
        q = by_id[pick.value]
        prompt.value = f"<b>{q.prompt}</b>"
        text.layout.display = "" if q.kind == "free" else "none"
        options.layout.display = "" if q.kind == "choice" else "none"
        options.options = [o.text for o in q.options]
        out.outputs = ()

    def grade(_: object = None) -> None:
        q = by_id[pick.value]
        try:
            if q.kind == "free":
                result = grade_free(q, text.value).to_markdown()
            else:
                result = answer_choice(q, options.index or 0).to_markdown()
        except LabError as exc:
            result = str(exc)
        show_markdown(out, result)

    pick.observe(show, names="value")
    submit.on_click(grade)
    show()
    box = widgets.VBox([pick, prompt, text, options, submit, out])
    box.pick, box.text, box.options, box.submit, box.output = pick, text, options, submit, out  # type: ignore[attr-defined]
    return box
