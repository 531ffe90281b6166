"""Each learner's progress through the question bank, kept in SQLite.

Every submitted answer is one row: who, which question, the score (0..1) and when. Progress is
read back per topic: how many questions were tried, how many passed (best score at least
:data:`PASS_SCORE`), and the best score per question. Learner names are data, never SQL: every
query is parameterised, so a learner called ``'; DROP TABLE answers; --`` is just a name.

The database is a file (``~/.labkit/progress.db`` by default, ``LABKIT_PROGRESS`` to move it) or
``:memory:`` for tests. One connection is shared across threads (Streamlit reruns a page on
another thread) behind a lock.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labkit.core.errors import BadParameter

PASS_SCORE = 0.6
MAX_NAME = 80


def default_path() -> str:
    env = os.environ.get("LABKIT_PROGRESS")
    if env:
        return env
    folder = Path.home() / ".labkit"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "progress.db")


def check_learner(name: object) -> str:
    """A learner name: 1 to 80 printable characters, stripped."""
    if not isinstance(name, str) or not name.strip():
        raise BadParameter("learner", name, "type a name (any text, up to 80 characters)")
    name = name.strip()
    if len(name) > MAX_NAME or not name.isprintable():
        raise BadParameter("learner", name[:20], f"use up to {MAX_NAME} printable characters")
    return name


@dataclass(frozen=True)
class TopicProgress:
    topic: str
    tried: int
    passed: int
    best: dict[str, float]  # question id -> best score


class Progress:
    """Answers per learner, in one SQLite table."""

    def __init__(self, path: str | None = None) -> None:
        import sqlite_utils

        self._lock = threading.Lock()
        conn = sqlite3.connect(path or default_path(), check_same_thread=False)
        self.db = sqlite_utils.Database(conn)
        self.db["answers"].create(
            {
                "id": int,
                "learner": str,
                "question": str,
                "topic": str,
                "kind": str,
                "score": float,
                "at": float,
            },
            pk="id",
            if_not_exists=True,
        )
        self.db["answers"].create_index(["learner", "question"], if_not_exists=True)

    def record(
        self, learner: str, question: str, topic: str, kind: str, score: float, *, at: float = 0
    ) -> None:
        """Store one answer's score (0..1)."""
        learner = check_learner(learner)
        if not 0 <= score <= 1:
            raise BadParameter("score", score, "must be between 0 and 1")
        row = {
            "learner": learner,
            "question": question,
            "topic": topic,
            "kind": kind,
            "score": float(score),
            "at": at or time.time(),
        }
        with self._lock, self.db.conn:
            self.db["answers"].insert(row)

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.db.conn.execute(sql, params).fetchall()

    def by_topic(self, learner: str) -> dict[str, TopicProgress]:
        """Tried, passed and best score per question, for each topic the learner touched."""
        learner = check_learner(learner)
        rows = self._rows(
            "SELECT topic, question, MAX(score) FROM answers WHERE learner = ? "
            "GROUP BY topic, question ORDER BY topic, question",
            (learner,),
        )
        best: dict[str, dict[str, float]] = {}
        for topic, qid, score in rows:
            best.setdefault(topic, {})[qid] = score
        return {
            topic: TopicProgress(
                topic, len(scores), sum(s >= PASS_SCORE for s in scores.values()), scores
            )
            for topic, scores in best.items()
        }

    def attempts(self, learner: str, question: str) -> int:
        learner = check_learner(learner)
        rows = self._rows(
            "SELECT COUNT(*) FROM answers WHERE learner = ? AND question = ?", (learner, question)
        )
        return int(rows[0][0])

    def learners(self) -> list[str]:
        return [r[0] for r in self._rows("SELECT DISTINCT learner FROM answers ORDER BY 1", ())]
