"""Progress per learner in SQLite: per-topic best scores, names as data, threads welcome."""

from __future__ import annotations

import threading

import pytest

from labkit.core.errors import BadParameter
from labkit.patterns.progress import PASS_SCORE, Progress


@pytest.fixture
def progress() -> Progress:
    return Progress(":memory:")


def test_best_score_per_question_and_passes_per_topic(progress):
    progress.record("ada", "cb-states", "circuit_breaker", "choice", 0.0)
    progress.record("ada", "cb-states", "circuit_breaker", "choice", 1.0)
    progress.record("ada", "cb-slow", "circuit_breaker", "free", 0.5)
    progress.record("ada", "mq-crash", "message_queue", "free", PASS_SCORE)
    progress.record("bob", "cb-slow", "circuit_breaker", "free", 1.0)
    mine = progress.by_topic("ada")
    assert mine["circuit_breaker"].best == {"cb-slow": 0.5, "cb-states": 1.0}
    assert (mine["circuit_breaker"].tried, mine["circuit_breaker"].passed) == (2, 1)
    assert (mine["message_queue"].tried, mine["message_queue"].passed) == (1, 1)
    assert progress.attempts("ada", "cb-states") == 2
    assert progress.learners() == ["ada", "bob"]


def test_progress_survives_in_a_file(tmp_path):
    path = str(tmp_path / "p.db")
    Progress(path).record("ada", "q", "t", "free", 1.0)
    assert Progress(path).by_topic("ada")["t"].passed == 1


def test_a_name_that_looks_like_sql_is_just_a_name(progress):
    evil = "x'; DROP TABLE answers; --"
    progress.record(evil, "q", "t", "free", 1.0)
    assert progress.learners() == [evil]
    assert progress.by_topic("x") == {}


@pytest.mark.parametrize(
    ("name", "score", "message"),
    [
        ("", 1.0, "type a name"),
        ("   ", 1.0, "type a name"),
        ("a" * 81, 1.0, "up to 80"),
        ("bell\x07", 1.0, "printable"),
        ("ada", 1.5, "between 0 and 1"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(progress, name, score, message):
    with pytest.raises(BadParameter, match=message):
        progress.record(name, "q", "t", "free", score)
    assert progress.learners() == []


def test_answers_from_many_threads_are_all_kept(progress):
    def answer(n: int) -> None:
        for i in range(20):
            progress.record(f"l{n}", f"q{i}", "t", "free", 1.0)

    threads = [threading.Thread(target=answer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [progress.by_topic(f"l{n}")["t"].tried for n in range(4)] == [20] * 4
