"""The interview question bank: questions as data, checked when loaded, graded transparently.

``data/interview/<topic>.yaml`` holds one topic's questions. Three kinds:

* ``free``: answer in your own words; graded by key-point coverage
  (:mod:`labkit.patterns.grading`), then the found and missed points and the model answer are
  shown;
* ``choice``: pick one option; every option carries an explanation, right or wrong;
* ``lab``: a question about a run you just made ("how many calls did the breaker reject?").
  The question names the experiment (pattern and parameters) and where in the run's summary the
  answer is; the learner's number is checked against *that run*, not against a constant.

Every question links to the notebook sections (``notebooks/NN_x.ipynb#heading``) and
playground pages (``playground/app_pages/NN_x.py``) that show its points running;
:func:`broken_links` resolves them against the real files.

A malformed file is refused with one line naming the file, the question and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from labkit.core.errors import BadParameter, LabError, UnknownName
from labkit.core.paths import data_dir
from labkit.core.result import Result
from labkit.patterns.course_links import unresolved
from labkit.patterns.grading import Grade, KeyPoint, clean_answer, grade_text

KINDS = ("free", "choice", "lab")
FIELDS = {
    "id",
    "kind",
    "prompt",
    "links",
    "explain",
    "syllabus",
    "model_answer",
    "key_points",
    "options",
    "run",
}


@dataclass(frozen=True)
class Option:
    text: str
    correct: bool
    explain: str


@dataclass(frozen=True)
class LabRun:
    """The experiment a lab question asks about, and where its answer sits in the summary."""

    pattern: str
    params: dict[str, Any]
    answer: str  # a dotted path into ``Result.summary``, e.g. ``rejected``
    tolerance: float = 0.0
    vary: tuple[str, ...] = ()  # parameters the learner may change before running it


@dataclass(frozen=True)
class Question:
    id: str
    topic: str
    kind: str
    prompt: str
    links: tuple[str, ...]
    explain: str = ""
    model_answer: str = ""
    key_points: tuple[KeyPoint, ...] = ()
    options: tuple[Option, ...] = ()
    lab: LabRun | None = None
    syllabus: int | None = None  # the number of the syllabus' own interview question


@dataclass(frozen=True)
class Topic:
    slug: str
    title: str
    questions: tuple[Question, ...]


@dataclass(frozen=True)
class ChoiceResult:
    correct: bool
    chosen: Option
    right: Option
    explanations: tuple[Option, ...] = field(default=())

    def to_markdown(self) -> str:
        """The verdict, then every option with its explanation."""
        head = "**Right.**" if self.correct else f"**Not quite.** The answer is: {self.right.text}"
        lines = [head, ""]
        for o in self.explanations:
            mark = "✅" if o.correct else "❌"
            lines.append(f"- {mark} *{o.text}* {o.explain}")
        return "\n".join(lines)


@dataclass(frozen=True)
class LabResult:
    correct: bool
    expected: float
    given: float
    explain: str

    def to_markdown(self) -> str:
        head = (
            f"**Right: {self.expected:g}.**"
            if self.correct
            else f"**Not quite.** You said {self.given:g}; the run says {self.expected:g}."
        )
        return f"{head} {self.explain}"


class _Reader:
    """Reads one YAML mapping and says exactly where a field is missing or wrong."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field_name: str, problem: str) -> LabError:
        return LabError(f"{self.where}: field {field_name!r} {problem}")

    def text(self, raw: Mapping[str, Any], name: str, *, required: bool = True) -> str:
        value = raw.get(name)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(name, "must be non-empty text")
        return value.strip()

    def items(self, raw: Mapping[str, Any], name: str, *, required: bool = True) -> list[Any]:
        value = raw.get(name)
        if value is None and not required:
            return []
        if not isinstance(value, list) or not value:
            raise self.fail(name, "must be a non-empty list")
        return value


def _key_point(reader: _Reader, raw: Any, i: int) -> KeyPoint:
    if not isinstance(raw, Mapping):
        raise reader.fail(f"key_points[{i}]", "must be a mapping with id, text, phrases")
    phrases = reader.items(raw, "phrases")
    if not all(isinstance(p, str) and p.strip() for p in phrases):
        raise reader.fail(f"key_points[{i}].phrases", "must be a list of non-empty texts")
    return KeyPoint(reader.text(raw, "id"), reader.text(raw, "text"), tuple(phrases))


def _option(reader: _Reader, raw: Any, i: int) -> Option:
    if not isinstance(raw, Mapping):
        raise reader.fail(f"options[{i}]", "must be a mapping with text, explain, correct")
    return Option(reader.text(raw, "text"), bool(raw.get("correct")), reader.text(raw, "explain"))


def _question(topic: str, raw: Any, where: str) -> Question:
    if not isinstance(raw, Mapping):
        raise LabError(f"{where}: each question must be a mapping")
    qid = raw.get("id", "?")
    reader = _Reader(f"{where}, question {qid!r}")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise reader.fail(unknown[0], "is not a question field (a typo?)")
    kind = reader.text(raw, "kind")
    if kind not in KINDS:
        raise reader.fail("kind", f"is {kind!r}; use one of {', '.join(KINDS)}")
    links = reader.items(raw, "links")
    base = {
        "id": reader.text(raw, "id"),
        "topic": topic,
        "kind": kind,
        "prompt": reader.text(raw, "prompt"),
        "links": tuple(str(link) for link in links),
        "explain": reader.text(raw, "explain", required=kind == "lab"),
        "syllabus": raw.get("syllabus"),
    }
    if kind == "free":
        points = reader.items(raw, "key_points")
        key_points = tuple(_key_point(reader, p, i) for i, p in enumerate(points))
        return Question(
            **base, model_answer=reader.text(raw, "model_answer"), key_points=key_points
        )
    if kind == "choice":
        options = tuple(_option(reader, o, i) for i, o in enumerate(reader.items(raw, "options")))
        if sum(o.correct for o in options) != 1:
            raise reader.fail("options", "must have exactly one option marked correct: true")
        return Question(**base, options=options)
    run = raw.get("run")
    if not isinstance(run, Mapping):
        raise reader.fail("run", "must name the experiment: pattern, params, answer")
    vary = run.get("vary") or []
    if not isinstance(vary, list) or not all(isinstance(v, str) for v in vary):
        raise reader.fail("run.vary", "must be a list of parameter names")
    lab = LabRun(
        reader.text(run, "pattern"),
        dict(run.get("params") or {}),
        reader.text(run, "answer"),
        float(run.get("tolerance", 0)),
        tuple(vary),
    )
    return Question(**base, lab=lab)


def load_topic(path: Path) -> Topic:
    """One topic file, validated; raises :class:`LabError` naming file and field."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LabError(f"{path.name} is not valid YAML: {exc}") from None
    reader = _Reader(path.name)
    if not isinstance(raw, Mapping):
        raise LabError(f"{path.name}: must be a mapping with topic, title, questions")
    slug = reader.text(raw, "topic")
    questions = tuple(_question(slug, q, path.name) for q in reader.items(raw, "questions"))
    return Topic(slug, reader.text(raw, "title"), questions)


@cache
def load_bank(folder: Path | None = None) -> dict[str, Topic]:
    """Every topic in ``data/interview/``, by slug; question ids must be unique across topics."""
    folder = folder or data_dir() / "interview"
    topics: dict[str, Topic] = {}
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        topic = load_topic(path)
        if topic.slug in topics:
            raise LabError(f"{path.name}: topic {topic.slug!r} is already defined")
        for q in topic.questions:
            if q.id in seen:
                raise LabError(f"{path.name}: question id {q.id!r} is also in {seen[q.id]}")
            seen[q.id] = path.name
        topics[topic.slug] = topic
    if not topics:
        raise LabError(f"no question files in {folder}")
    return topics


def all_questions(bank: Mapping[str, Topic] | None = None) -> list[Question]:
    bank = bank if bank is not None else load_bank()
    return [q for t in bank.values() for q in t.questions]


def question(qid: str, bank: Mapping[str, Topic] | None = None) -> Question:
    found = {q.id: q for q in all_questions(bank)}
    if qid not in found:
        raise UnknownName("question", qid, list(found))
    return found[qid]


# --- answering ------------------------------------------------------------------------------


def grade_free(q: Question, answer: str) -> Grade:
    """Key points found and missed, score and model answer (see :mod:`grading`)."""
    if q.kind != "free":
        raise BadParameter("question", q.id, f"is a {q.kind} question, not free text")
    return grade_text(answer, q.key_points, q.model_answer)


def answer_choice(q: Question, chosen: int | str) -> ChoiceResult:
    """Check a choice by its index or its text; every option comes back with its explanation."""
    if q.kind != "choice":
        raise BadParameter("question", q.id, f"is a {q.kind} question, not multiple choice")
    texts = [o.text for o in q.options]
    if isinstance(chosen, str):
        if chosen not in texts:
            raise BadParameter("choice", chosen, "is not one of this question's options")
        chosen = texts.index(chosen)
    if not 0 <= chosen < len(q.options):
        raise BadParameter("choice", chosen, f"must be between 0 and {len(q.options) - 1}")
    right = next(o for o in q.options if o.correct)
    picked = q.options[chosen]
    return ChoiceResult(picked.correct, picked, right, q.options)


def summary_value(summary: Mapping[str, Any], path: str) -> float:
    """``summary["a"]["b"]`` for ``path="a.b"``, as a number."""
    value: Any = summary
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise LabError(f"the run's summary has no {path!r}")
        value = value[part]
    return float(value)


def check_lab_answer(q: Question, answer: object, result: Result) -> LabResult:
    """Compare the learner's number with what ``result`` (the run they watched) says."""
    if q.kind != "lab" or q.lab is None:
        raise BadParameter("question", q.id, f"is a {q.kind} question, not about a run")
    if result.pattern != q.lab.pattern:
        raise LabError(f"{q.id} asks about a {q.lab.pattern} run, not {result.pattern}")
    text = clean_answer(str(answer) if isinstance(answer, int | float) else answer)
    try:
        given = float(text.replace(",", ""))
    except ValueError:
        raise BadParameter("answer", text[:40], "must be a number, e.g. 42") from None
    expected = summary_value(result.summary, q.lab.answer)
    correct = abs(given - expected) <= q.lab.tolerance
    return LabResult(correct, expected, given, q.explain)


def broken_links(q: Question, root: Path | None = None) -> list[str]:
    """The links of ``q`` that do not resolve to an existing page or notebook heading."""
    return unresolved(q.links, root)
