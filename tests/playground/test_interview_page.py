"""The interview-prep page, driven through the real app with AppTest: answer a question and see
the key points found and missed; multiple choice explained; a question about a run; the chooser;
progress per learner; bad input as one line."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

import labkit
from labkit.patterns.interview import all_questions, question, summary_value

PAGE = "app_pages/13_choosing_and_interview.py"


@pytest.fixture
def page(open_page, monkeypatch, tmp_path) -> AppTest:
    monkeypatch.setenv("LABKIT_PROGRESS", str(tmp_path / "progress.db"))
    return open_page(PAGE)


def pick(at: AppTest, topic: str, qid: str) -> AppTest:
    at.selectbox(key="interview.topic").set_value(topic).run()
    at.selectbox(key="interview.question").set_value(qid).run()
    assert not at.exception, at.exception
    return at


def submit(at: AppTest, qid: str) -> AppTest:
    at.button(key=f"interview.submit.{qid}").click().run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_a_partial_answer_shows_the_points_found_and_missed_and_the_model_answer(page):
    at = pick(page, "syllabus", "async-failures")
    at.text_area(key="interview.answer.async-failures").input(
        "Put poison messages in a dead-letter queue and make consumers idempotent."
    ).run()
    submit(at, "async-failures")
    text = shown(at)
    assert "✅ found: A delivery limit and a dead-letter queue" in text
    assert "✅ found: Idempotent consumers" in text
    assert text.count("❌ missed:") == 5
    assert "❌ missed: Retries with exponential backoff" in text
    assert question("async-failures").model_answer in text
    assert at.metric[0].value == "29%"


def test_an_empty_or_huge_answer_is_one_clear_line(page):
    at = pick(page, "syllabus", "sync-vs-async")
    submit(at, "sync-vs-async")
    assert [e.value for e in at.error] == [
        "answer='': is empty: write a few sentences, then submit"
    ]
    at.text_area(key="interview.answer.sync-vs-async").input("é" * 100_000).run()
    submit(at, "sync-vs-async")
    assert "100,000 characters" in at.error[0].value and "too long" in at.error[0].value
    assert not at.metric


def test_multiple_choice_explains_every_option(page):
    at = pick(page, "circuit_breaker", "cb-states")
    submit(at, "cb-states")
    assert at.warning[0].value == "Pick one option, then submit."
    at.radio(key="interview.choice.cb-states").set_value(
        "It closes, because one failure is below the failure threshold."
    ).run()
    submit(at, "cb-states")
    text = shown(at)
    assert "**Not quite.** The answer is: It opens again and waits another open timeout." in text
    assert text.count("- ❌") == 2 and text.count("- ✅") == 1
    assert at.metric[0].value == "0%"


def test_a_question_about_a_run_checks_the_number_against_that_run(page):
    at = pick(page, "circuit_breaker", "cb-lab-rejected")
    assert "rejected" not in at.json[0].value
    at.text_input(key="interview.number.cb-lab-rejected").input("lots").run()
    submit(at, "cb-lab-rejected")
    assert "must be a number" in at.error[0].value
    at.text_input(key="interview.number.cb-lab-rejected").input("149").run()
    submit(at, "cb-lab-rejected")
    assert "**Right: 149.**" in shown(at)


def test_changing_the_run_changes_the_right_answer(page):
    at = pick(page, "circuit_breaker", "cb-lab-rejected")
    at.number_input(key="circuit_breaker.open_timeout_s").set_value(5.0).run()
    assert "--param open_timeout_s=5" in "".join(c.value for c in at.caption)
    expected = labkit.run("circuit_breaker", open_timeout_s=5.0).summary["rejected"]
    assert expected != 149
    at.text_input(key="interview.number.cb-lab-rejected").input("149").run()
    submit(at, "cb-lab-rejected")
    assert f"You said 149; the run says {expected}." in shown(at)
    at.text_input(key="interview.number.cb-lab-rejected").input(str(expected)).run()
    submit(at, "cb-lab-rejected")
    assert f"**Right: {expected}.**" in shown(at)


def test_the_chooser_ranks_the_patterns_with_reasons(page):
    at = page
    assert at.info[0].value == "Tick at least one requirement."
    at.multiselect(key="interview.requirements").set_value(["audit_trail", "past_states"]).run()
    assert not at.exception, at.exception
    rows = at.dataframe[0].value.to_dict("records")
    assert rows[0] == {"pattern": "Event sourcing", "score": 2, "recommended": True}
    assert "- ✅ The events are the audit trail, by construction" in shown(at)


def test_progress_is_kept_per_learner(page):
    at = page
    at.text_input(key="interview.learner").input("ada").run()
    pick(at, "circuit_breaker", "cb-states")
    at.radio(key="interview.choice.cb-states").set_value(
        "It opens again and waits another open timeout."
    ).run()
    submit(at, "cb-states")
    rows = {r["topic"]: r for r in at.dataframe[-1].value.to_dict("records")}
    assert rows["Circuit breaker"]["tried"] == 1 and rows["Circuit breaker"]["passed"] == 1
    assert rows["Message queues"]["tried"] == 0


@pytest.mark.parametrize("q", [q for q in all_questions() if q.kind == "lab"], ids=lambda q: q.id)
def test_every_lab_question_renders_its_controls_and_accepts_the_runs_number(page, q):
    at = pick(page, q.topic, q.id)
    assert len(at.caption) >= 2  # "change these" and the command
    result = labkit.run(q.lab.pattern, **q.lab.params)
    expected = summary_value(result.summary, q.lab.answer)
    at.text_input(key=f"interview.number.{q.id}").input(f"{expected:g}").run()
    submit(at, q.id)
    assert "**Right:" in shown(at)


def test_a_broken_question_file_is_one_error_line_not_a_traceback(open_page, monkeypatch, tmp_path):
    from labkit.patterns.interview import load_bank

    (tmp_path / "data" / "interview").mkdir(parents=True)
    (tmp_path / "data" / "interview" / "x.yaml").write_text("topic: x\ntitle: X\nquestions: []\n")
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path))
    load_bank.cache_clear()
    try:
        at = open_page(PAGE)
        assert "x.yaml: field 'questions' must be a non-empty list" in at.error[0].value
    finally:
        load_bank.cache_clear()


def test_a_mesh_question_follows_the_yaml_the_learner_loads(page):
    at = pick(page, "service_mesh", "mesh-lab-beta-v2")
    at.text_input(key="interview.number.mesh-lab-beta-v2").input("100").run()
    submit(at, "mesh-lab-beta-v2")
    assert "You said 100; the run says 9." in shown(at)  # the syllabus' YAML: route never taken
    at.text_input(key="service_mesh.config").input("fixed").run()
    assert "--param config=fixed" in "".join(c.value for c in at.caption)
    submit(at, "mesh-lab-beta-v2")
    assert "**Right: 100.**" in shown(at)
