"""The question bank is content checked like code; grading is transparent and tested on a table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import labkit
from labkit.core.errors import BadParameter, LabError
from labkit.core.paths import project_root
from labkit.patterns import interview
from labkit.patterns.course_links import unresolved
from labkit.patterns.grading import MAX_ANSWER_CHARS, clean_answer, grade_text, words
from labkit.patterns.interview import (
    all_questions,
    answer_choice,
    broken_links,
    check_lab_answer,
    grade_free,
    load_bank,
    load_topic,
    question,
)

BANK = load_bank()
QUESTIONS = all_questions(BANK)
FREE = [q for q in QUESTIONS if q.kind == "free"]
PATTERN_TOPICS = (
    "request_response",
    "gateway",
    "circuit_breaker",
    "message_queue",
    "pubsub",
    "resilience",
    "service_mesh",
    "event_sourcing",
    "cqrs",
    "versioning_security",
    "service_discovery",
    "observability",
)


# --- schema -----------------------------------------------------------------------------------


def test_the_syllabus_five_questions_are_all_there_as_free_text():
    numbers = sorted(q.syllabus for q in QUESTIONS if q.syllabus)
    assert numbers == [1, 2, 3, 4, 5]
    assert all(q.kind == "free" for q in QUESTIONS if q.syllabus)


@pytest.mark.parametrize("topic", PATTERN_TOPICS)
def test_every_pattern_has_three_more_questions_free_and_choice(topic):
    kinds = [q.kind for q in BANK[topic].questions]
    assert len(kinds) >= 3
    assert "free" in kinds and "choice" in kinds


def test_what_goes_wrong_questions_exist():
    wrong = [q for q in QUESTIONS if "why" in q.prompt.lower() and q.kind != "lab"]
    assert len(wrong) >= 5


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q.id)
def test_every_question_has_links_that_resolve(q):
    assert q.links
    assert broken_links(q) == []


@pytest.mark.parametrize("q", FREE, ids=lambda q: q.id)
def test_every_free_question_has_key_points_its_model_answer_covers(q):
    assert len(q.key_points) >= 3
    grade = grade_free(q, q.model_answer)
    assert [k.id for k in grade.missed] == [], "the model answer must cover its own key points"
    assert grade.score == 1.0


@pytest.mark.parametrize("q", FREE, ids=lambda q: q.id)
def test_an_off_topic_answer_scores_low(q):
    off_topic = "I like to bake bread on Sundays and walk the dog in the park afterwards."
    assert grade_free(q, off_topic).score <= 0.2


@pytest.mark.parametrize("q", [q for q in QUESTIONS if q.kind == "choice"], ids=lambda q: q.id)
def test_every_choice_has_one_right_option_and_an_explanation_per_option(q):
    assert sum(o.correct for o in q.options) == 1 and len(q.options) >= 3
    assert all(len(o.explain) > 15 for o in q.options)
    right = next(i for i, o in enumerate(q.options) if o.correct)
    assert answer_choice(q, right).correct
    assert not answer_choice(q, (right + 1) % len(q.options)).correct


BAD_FILES = {
    "typo": ("- {id: a, kind: free, promt: p, links: [x]}", "field 'promt' is not a question"),
    "no prompt": ("- {id: a, kind: free, links: [x]}", "question 'a': field 'prompt'"),
    "bad kind": (
        "- {id: a, kind: essay, prompt: p, links: [x]}",
        "field 'kind' is 'essay'",
    ),
    "no key points": (
        "- {id: a, kind: free, prompt: p, model_answer: m, links: [x]}",
        "field 'key_points' must be a non-empty list",
    ),
    "two right options": (
        "- {id: a, kind: choice, prompt: p, links: [x], options: "
        "[{text: a, explain: e, correct: true}, {text: b, explain: e, correct: true}]}",
        "exactly one option",
    ),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
def test_a_malformed_file_is_refused_naming_file_and_field(tmp_path: Path, case):
    body, expected = BAD_FILES[case]
    path = tmp_path / "broken.yaml"
    path.write_text(f"topic: t\ntitle: T\nquestions:\n{textwrap.indent(body, '  ')}\n")
    with pytest.raises(LabError) as err:
        load_topic(path)
    assert str(err.value).startswith("broken.yaml") and expected in str(err.value)


def test_a_link_to_a_missing_heading_or_page_is_reported():
    q = question("sync-vs-async", BANK)
    fake = interview.Question(
        **{**q.__dict__, "links": ("notebooks/04_circuit_breaker.ipynb#no-such-part", "x.py")}
    )
    assert [b.split(" ")[0] for b in broken_links(fake)] == [
        "notebooks/04_circuit_breaker.ipynb#no-such-part",
        "x.py",
    ]


# --- grading on a table -----------------------------------------------------------------------

Q3 = question("async-failures", BANK)
ALL_Q3 = {k.id for k in Q3.key_points}
ANSWERS = [
    # (answer, key points expected missing)
    (Q3.model_answer, set()),
    (
        "Use a dead-letter queue for poison messages and make consumers idempotent.",
        ALL_Q3 - {"dlq", "idempotent"},
    ),
    (
        "Retry with exponential backoff, put a circuit breaker in front, and monitor queue depth.",
        ALL_Q3 - {"retry", "breaker", "monitor"},
    ),
    (
        "MESSAGES ARE PERSISTED and acked after the work; deduplicate redeliveries.",
        ALL_Q3 - {"persist-ack", "idempotent"},
    ),
    ("Sagas compensate when one step fails.", ALL_Q3 - {"compensate"}),
    ("I would restart the server.", ALL_Q3),
]


@pytest.mark.parametrize(("answer", "missing"), ANSWERS)
def test_grading_lists_exactly_the_missing_key_points(answer, missing):
    grade = grade_free(Q3, answer)
    assert {k.id for k in grade.missed} == missing
    assert {k.id for k in grade.found} == ALL_Q3 - missing
    assert grade.score == round(1 - len(missing) / len(ALL_Q3), 3)
    assert grade.model_answer == Q3.model_answer


def test_word_forms_and_unicode_variants_meet():
    assert words("Ｒｅｔｒｉｅｓ, retrying; RETRIED!") == ["retri"] * 3
    assert words("idempotent café") == words("IDEMPOTENT cafe")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "is empty"),
        ("   \n\t ", "is empty"),
        ("\u200b\u200b", "is empty"),
        ("🙂🙂 ?!", "no words"),
        ("日本語で答えます", "it reads English"),
        ("\ud800\x00\x07", "is empty"),
        ("x" * (MAX_ANSWER_CHARS + 1), "too long"),
        ("a" * 100_000, "100,000 characters"),
        (None, "must be text"),
    ],
)
def test_bad_answers_are_refused_with_a_clear_message(answer, message):
    with pytest.raises(BadParameter) as err:
        clean_answer(answer)
    assert message in str(err.value)
    assert len(str(err.value)) < 200


def test_odd_unicode_in_a_real_answer_is_graded_not_refused():
    grade = grade_free(Q3, "Dead\u200b-letter queue 🚀 and ｉｄｅｍｐｏｔｅｎｔ consumers ü")
    assert {k.id for k in grade.found} == {"dlq", "idempotent"}


def test_grading_an_empty_key_point_list_scores_zero():
    assert grade_text("anything at all", []).score == 0.0


def test_a_choice_can_be_given_by_text_and_a_bad_choice_is_refused():
    q = next(q for q in QUESTIONS if q.kind == "choice")
    right = next(o for o in q.options if o.correct)
    result = answer_choice(q, right.text)
    assert result.correct and result.right == right and len(result.explanations) == len(q.options)
    with pytest.raises(BadParameter, match="choice=99"):
        answer_choice(q, 99)
    with pytest.raises(BadParameter, match="not free text"):
        grade_free(q, "text")


# --- questions that read the lab's state ------------------------------------------------------

LAB = [q for q in QUESTIONS if q.kind == "lab"]


def test_there_are_lab_questions_for_several_patterns():
    assert len({q.lab.pattern for q in LAB}) >= 10


@pytest.mark.parametrize("q", LAB, ids=lambda q: q.id)
def test_a_lab_question_names_real_parameters_and_summary_fields(q):
    declared = {p.name for p in labkit.params_of(q.lab.pattern)}
    assert set(q.lab.params) <= declared and set(q.lab.vary) <= declared
    assert q.lab.vary, "let the learner change the run"


@pytest.mark.parametrize("q", LAB, ids=lambda q: q.id)
def test_a_lab_question_checks_the_number_against_the_run(q):
    result = labkit.run(q.lab.pattern, **q.lab.params)
    expected = interview.summary_value(result.summary, q.lab.answer)
    assert check_lab_answer(q, expected, result).correct
    assert check_lab_answer(q, str(int(expected)), result).correct
    wrong = check_lab_answer(q, expected + q.lab.tolerance + 7, result)
    assert not wrong.correct and wrong.expected == expected and wrong.explain


def test_a_lab_answer_follows_the_run_the_learner_made_not_a_constant():
    q = question("cb-lab-rejected", BANK)
    short = labkit.run("circuit_breaker", **{**q.lab.params, "open_timeout_s": 5.0})
    long = labkit.run("circuit_breaker", **q.lab.params)
    assert short.summary["rejected"] != long.summary["rejected"]
    assert check_lab_answer(q, short.summary["rejected"], short).correct
    assert not check_lab_answer(q, short.summary["rejected"], long).correct


#: a lab question of each later chapter -> a change the learner may make, and the answer it gives
CHANGED_RUNS = {
    "mesh-lab-beta-v2": ({"config": "fixed"}, 100),  # the route reordered: every beta tester
    "obs-lab-page-ms": ({"pricing_connections": 4}, 50),  # one round of lookups, not four
    "es-lab-conflicts": ({"writers": 2}, 6),
    "disc-lab-failed-calls": ({"interval_s": 1.0}, 1),
    "cqrs-lab-stale": ({"read_after_ms": 60.0}, 0),
    "sec-lab-let-in": ({"require_aud": True}, 10),  # aud back: every attack refused again
}


@pytest.mark.parametrize("qid", CHANGED_RUNS)
def test_a_later_chapters_lab_question_follows_the_changed_run(qid):
    q = question(qid, BANK)
    change, expected = CHANGED_RUNS[qid]
    assert set(change) <= set(q.lab.vary)
    default = labkit.run(q.lab.pattern, **q.lab.params)
    changed = labkit.run(q.lab.pattern, **{**q.lab.params, **change})
    old = interview.summary_value(default.summary, q.lab.answer)
    assert old != expected
    assert check_lab_answer(q, expected, changed).correct
    verdict = check_lab_answer(q, old, changed)
    assert not verdict.correct and verdict.expected == expected


def test_a_lab_answer_that_is_not_a_number_is_refused():
    q = question("cb-lab-rejected", BANK)
    result = labkit.run("circuit_breaker", **q.lab.params)
    with pytest.raises(BadParameter, match="must be a number"):
        check_lab_answer(q, "many", result)
    with pytest.raises(LabError, match="asks about a circuit_breaker run"):
        check_lab_answer(q, 3, labkit.run("gateway"))


CHAPTERS = {
    "request_response": "01_request_response",
    "gateway": "02_api_gateway",
    "circuit_breaker": "04_circuit_breaker",
    "message_queue": "05_message_queue",
    "pubsub": "06_pubsub",
    "resilience": "09_resilience",
    "service_mesh": "03_service_mesh",
    "event_sourcing": "07_event_sourcing",
    "cqrs": "08_cqrs",
    "service_discovery": "10_service_discovery",
    "observability": "11_observability",
    "versioning_security": "12_versioning_and_security",
}


@pytest.mark.parametrize("topic", CHAPTERS)
def test_each_pattern_notebook_points_its_interview_section_to_the_bank(topic):
    path = project_root() / "notebooks" / f"{CHAPTERS[topic]}.ipynb"
    text = path.read_text(encoding="utf-8")
    assert f"the topic **{BANK[topic].title}**" in text
    assert "13_choosing_and_interview.ipynb#The-quiz" in text


def test_links_between_notebooks_resolve():
    """Markdown links from one notebook to another's heading (JupyterLab anchors)."""
    import re

    root = project_root()
    found = []
    for path in sorted((root / "notebooks").rglob("*.ipynb")):
        for target, heading in re.findall(r"\(([\w./]+\.ipynb)#([\w-]+)\)", path.read_text()):
            link = (path.parent / target).resolve().relative_to(root).as_posix()
            found.append(f"{link}#{heading}")
    assert len(found) >= 7
    assert unresolved(found) == []


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.text(alphabet=st.characters(), min_size=1, max_size=40))
def test_any_text_is_graded_or_refused_with_a_bad_parameter(text):
    try:
        grade = grade_free(Q3, text)
    except BadParameter as exc:
        assert str(exc).startswith("answer=")
    else:
        assert 0 <= grade.score <= 1
        assert len(grade.found) + len(grade.missed) == len(Q3.key_points)
