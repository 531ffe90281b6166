"""Grading a free-text answer by the key points it covers, in a way the learner can check.

A model answer is one good way to say it; an interviewer listens for *points*, not words.
Each key point of a question carries a few accepted phrasings ("dead letter queue", "DLQ",
"park the message"). An answer covers a key point when one of those phrasings appears in it,
after both are normalised the same way:

* Unicode folded (NFKC, case-folded, accents removed), so "Idempotent", "IDEMPOTENT" and a
  full-width "ｉｄｅｍｐｏｔｅｎｔ" are one word;
* split into words, with a light stemmer ("retries", "retrying", "retried" -> "retri");
* a phrasing matches when all its words occur close together (within a few words), in any
  order, so "persist the message" matches "messages are persisted".

The result says which points were found and which were missed, plus the score (the share of
points found). Nothing is hidden: the learner sees exactly why they got the score.

When not to use it: this is a study aid, not an examiner. It rewards naming the right ideas;
it cannot tell whether the sentence around them is true.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from labkit.core.errors import BadParameter

#: Longer answers are refused (a pasted essay or an accident), with this limit in the message.
MAX_ANSWER_CHARS = 5000
#: A phrasing's words may be spread over this many extra words.
SLACK_WORDS = 3

_SUFFIXES = ("ations", "ation", "ments", "ment", "ingly", "ing", "ies", "ied", "edly", "ed", "es")
_WORD = re.compile(r"[a-z0-9]+")


def stem(word: str) -> str:
    """A deliberately small stemmer: strips a few English endings so word forms meet.

    >>> [stem(w) for w in ("retries", "retrying", "retried", "messages", "persisted")]
    ['retri', 'retri', 'retri', 'messag', 'persist']
    """
    if len(word) <= 3:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)] + ("i" if suffix in ("ies", "ied") else "")
            break
    else:
        if word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
    if word.endswith("y") and len(word) > 3:
        word = word[:-1] + "i"
    if word.endswith("e") and len(word) > 4:
        word = word[:-1]
    return word


def words(text: str) -> list[str]:
    """Normalised, stemmed words of ``text`` (Unicode folded, accents and symbols dropped)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c))
    return [stem(w) for w in _WORD.findall(plain)]


def clean_answer(answer: object, *, name: str = "answer") -> str:
    """The learner's answer, checked: text, not empty, not huge, with at least one word.

    Control and zero-width characters are removed; everything else (emoji, other scripts) is
    kept and simply matches nothing. Raises :class:`BadParameter` with a plain reason.
    """
    if not isinstance(answer, str):
        raise BadParameter(name, answer, "must be text")
    if len(answer) > MAX_ANSWER_CHARS:
        raise BadParameter(
            name,
            f"<{len(answer):,} characters>",
            f"is too long: keep it under {MAX_ANSWER_CHARS:,} characters (a few sentences)",
        )
    text = "".join(
        c for c in answer if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Cs")
    ).strip()
    if not text:
        raise BadParameter(name, answer, "is empty: write a few sentences, then submit")
    if not words(text):
        raise BadParameter(
            name, text[:40], "has no words the grader can read (it reads English): answer in words"
        )
    return text


def phrase_found(phrase: Sequence[str], answer: Sequence[str]) -> bool:
    """True when every word of ``phrase`` occurs in ``answer`` within a short window."""
    if not phrase:
        return False
    width = len(phrase) + SLACK_WORDS
    needed = set(phrase)
    for start, word in enumerate(answer):
        if word in needed and needed <= set(answer[start : start + width]):
            return True
    return False


@dataclass(frozen=True)
class KeyPoint:
    """One idea a good answer contains, and the phrasings that count as saying it."""

    id: str
    text: str
    phrases: tuple[str, ...]

    def found_in(self, answer_words: Sequence[str]) -> bool:
        return any(phrase_found(words(p), answer_words) for p in self.phrases)


@dataclass(frozen=True)
class Grade:
    """A transparent grade: the points found, the points missed, and the model answer."""

    score: float
    found: tuple[KeyPoint, ...]
    missed: tuple[KeyPoint, ...]
    model_answer: str

    @property
    def passed(self) -> bool:
        """Most of the points: what an interviewer would accept."""
        return self.score >= 0.6

    def to_markdown(self) -> str:
        """The grade as a learner reads it: score, points found, points missed, model answer."""
        lines = [
            f"**Score: {self.score:.0%}** ({len(self.found)} of "
            f"{len(self.found) + len(self.missed)} key points)",
            "",
        ]
        lines += [f"- ✅ found: {k.text}" for k in self.found]
        lines += [f"- ❌ missed: {k.text}" for k in self.missed]
        if self.model_answer:
            lines += ["", f"**Model answer.** {self.model_answer}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "score": self.score,
            "found": [k.text for k in self.found],
            "missed": [k.text for k in self.missed],
            "model_answer": self.model_answer,
        }


def grade_text(answer: str, key_points: Sequence[KeyPoint], model_answer: str = "") -> Grade:
    """Grade ``answer`` by the share of ``key_points`` it covers (see the module docstring)."""
    answer_words = words(clean_answer(answer))
    found = tuple(k for k in key_points if k.found_in(answer_words))
    missed = tuple(k for k in key_points if k not in found)
    score = round(len(found) / len(key_points), 3) if key_points else 0.0
    return Grade(score, found, missed, model_answer)
