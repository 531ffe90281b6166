"""Notebook 13's widgets: the chooser updates as boxes are ticked; the quiz grades on Submit."""

from labkit.faces.quiz import chooser, quiz, shown
from labkit.patterns.interview import question


def test_the_chooser_ranks_as_boxes_are_ticked():
    box = chooser(ticked=["audit_trail"])
    assert shown(box.output).startswith("**Event sourcing**")
    box.boxes["audit_trail"].value = False
    assert shown(box.output) == "Tick at least one requirement."
    box.boxes["read_heavy"].value = True
    assert shown(box.output).startswith("**CQRS**")


def test_the_quiz_shows_found_and_missed_points_after_submit():
    box = quiz([question("async-failures"), question("cb-states")])
    assert box.output.outputs == ()
    box.text.value = "Use a dead-letter queue and idempotent consumers."
    box.submit.click()
    text = shown(box.output)
    assert "✅ found: Idempotent consumers" in text and "❌ missed: A circuit breaker" in text
    assert "**Model answer.**" in text


def test_the_quiz_explains_every_option_and_refuses_an_empty_answer():
    box = quiz([question("async-failures"), question("cb-states")])
    box.submit.click()
    assert shown(box.output) == "answer='': is empty: write a few sentences, then submit"
    box.pick.value = "cb-states"
    box.options.index = 0
    box.submit.click()
    assert shown(box.output).startswith("**Right.**")
    assert shown(box.output).count("- ") == 3
