"""Interview prep: the quiz (free text graded by key points, multiple choice explained, questions
about a run), the pattern chooser, and each learner's progress. All grading, ranking and
storage lives in labkit; this page only wires widgets to it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from labkit import LabError
from labkit.patterns.chooser import load_table, rank, ranking_markdown
from labkit.patterns.interview import (
    Question,
    answer_choice,
    check_lab_answer,
    grade_free,
    load_bank,
)
from labkit.patterns.progress import Progress

import controls

LEARNER = "interview.learner"
TOPIC = "interview.topic"
QUESTION = "interview.question"
RESULT = "interview.result"
REQUIREMENTS = "interview.requirements"


@st.cache_resource(show_spinner=False)
def progress_store() -> Progress:
    return Progress()


def record(q: Question, score: float) -> None:
    learner = st.session_state.get(LEARNER, "").strip()
    if learner:
        try:
            progress_store().record(learner, q.id, q.topic, q.kind, score)
        except LabError as exc:
            controls.show_error(exc)


def link_list(q: Question) -> str:
    return " · ".join(f"`{link}`" for link in q.links)


def submitted(q: Question, markdown: str, score: float) -> None:
    st.session_state[RESULT] = (q.id, markdown, score)
    record(q, score)


def free_text(q: Question) -> None:
    answer = st.text_area("Your answer", key=f"interview.answer.{q.id}", height=160)
    if st.button("Submit", type="primary", key=f"interview.submit.{q.id}"):
        try:
            grade = grade_free(q, answer)
        except LabError as exc:
            controls.show_error(exc)
            return
        submitted(q, grade.to_markdown(), grade.score)


def multiple_choice(q: Question) -> None:
    texts = [o.text for o in q.options]
    picked = st.radio("Your answer", texts, index=None, key=f"interview.choice.{q.id}")
    if st.button("Submit", type="primary", key=f"interview.submit.{q.id}"):
        if picked is None:
            st.warning("Pick one option, then submit.", icon=":material/warning:")
            return
        result = answer_choice(q, picked)
        submitted(q, result.to_markdown(), 1.0 if result.correct else 0.0)


def about_a_run(q: Question) -> None:
    """Run the question's experiment with the learner's settings; check their number against it."""
    assert q.lab is not None
    pattern, params = q.lab.pattern, dict(q.lab.params)
    if q.lab.vary:
        st.caption("Change these and the right answer changes with them:")
        columns = st.columns(len(q.lab.vary))
        for name, column in zip(q.lab.vary, columns, strict=True):
            default = controls.params_by_name(pattern)[name].default
            st.session_state.setdefault(controls.key_for(pattern, name), params.get(name, default))
            params[name] = controls.widget(pattern, name, container=column)
    st.caption(f"The experiment: `{controls.cli_command(pattern, params)}`")
    result = controls.run(pattern, params)
    if result is None:
        return
    hidden = q.lab.answer.split(".")[0]
    shown = {
        k: v for k, v in result.summary.items() if k != hidden and isinstance(v, int | float | str)
    }
    st.json(shown, expanded=False)
    answer = st.text_input("Your number", key=f"interview.number.{q.id}")
    if st.button("Check", type="primary", key=f"interview.submit.{q.id}"):
        try:
            verdict = check_lab_answer(q, answer, result)
        except LabError as exc:
            controls.show_error(exc)
            return
        submitted(q, verdict.to_markdown(), 1.0 if verdict.correct else 0.0)


def quiz_tab() -> None:
    bank = load_bank()
    topic = st.selectbox("Topic", list(bank), format_func=lambda slug: bank[slug].title, key=TOPIC)
    questions = {q.id: q for q in bank[topic].questions}
    qid = st.selectbox(
        "Question",
        list(questions),
        format_func=lambda i: f"{questions[i].prompt[:90]} ({questions[i].kind})",
        key=QUESTION,
    )
    q = questions[qid]
    st.markdown(f"#### {q.prompt}")
    {"free": free_text, "choice": multiple_choice, "lab": about_a_run}[q.kind](q)
    result = st.session_state.get(RESULT)
    if result and result[0] == q.id:
        st.metric("Score", f"{result[2]:.0%}")
        st.markdown(result[1])
        st.caption(f"See it run: {link_list(q)}")


def chooser_tab() -> None:
    table = load_table()
    ticked = st.multiselect(
        "What does your system need?",
        list(table.requirements),
        format_func=lambda r: table.requirements[r],
        key=REQUIREMENTS,
    )
    if not ticked:
        st.info("Tick at least one requirement.", icon=":material/checklist:")
        return
    ranking = rank(ticked)
    st.dataframe(
        [{"pattern": r.name, "score": r.score, "recommended": r.recommended} for r in ranking],
        hide_index=True,
    )
    st.markdown(ranking_markdown(ranking, top=3))


def progress_tab() -> None:
    learner = st.session_state.get(LEARNER, "").strip()
    if not learner:
        st.info("Type your name at the top to keep your progress.", icon=":material/person:")
        return
    try:
        mine = progress_store().by_topic(learner)
    except LabError as exc:
        controls.show_error(exc)
        return
    bank = load_bank()
    rows: list[dict[str, Any]] = [
        {
            "topic": topic.title,
            "questions": len(topic.questions),
            "tried": mine[slug].tried if slug in mine else 0,
            "passed": mine[slug].passed if slug in mine else 0,
        }
        for slug, topic in bank.items()
    ]
    st.dataframe(rows, hide_index=True)


st.title("Interview prep")
st.markdown(
    "Answer the course's interview questions in your own words and see which key points you "
    "covered; ask the chooser which pattern fits your needs; keep track of your progress."
)
st.text_input("Your name (to keep your progress)", key=LEARNER, max_chars=80)
quiz, chooser, mine = st.tabs(["Quiz", "Pattern chooser", "My progress"])
for tab, show in ((quiz, quiz_tab), (chooser, chooser_tab), (mine, progress_tab)):
    with tab:
        try:
            show()
        except LabError as exc:  # an edited question file or table with a mistake: one line
            controls.show_error(exc)
