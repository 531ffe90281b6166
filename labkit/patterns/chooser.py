"""The pattern advisor: tick what your system needs, get the patterns ranked, with reasons.

The syllabus closes with a table: for each pattern, when to use it and when to avoid it. The
lab keeps that table in ``data/chooser.yaml``, with every reason tagged by the requirements
that make it apply ("needs an immediate answer", "many services react", ...).

Ranking is deliberately simple and explainable: a pattern earns one point for each of its
"use" reasons that a ticked requirement triggers, and loses two for each "avoid" reason that
one triggers (a reason to avoid a pattern outweighs a reason to like it). The learner sees the
reasons behind every score, and every pattern's "avoid when" list, so the advice can be argued
with. Ties keep the table's order.

When not to use it: real choices mix patterns (a gateway in front, queues behind). The advisor
ranks single patterns; treat the top few as the ones to combine, not a single answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from labkit.core.errors import BadParameter, LabError, UnknownName
from labkit.core.paths import data_dir

USE_POINTS = 1
AVOID_POINTS = -2


@dataclass(frozen=True)
class Reason:
    text: str
    when: tuple[str, ...]


@dataclass(frozen=True)
class PatternRow:
    """One row of the syllabus' table."""

    slug: str
    name: str
    use: tuple[Reason, ...]
    avoid: tuple[Reason, ...]
    links: tuple[str, ...]

    @property
    def use_requirements(self) -> set[str]:
        return {r for reason in self.use for r in reason.when}


@dataclass(frozen=True)
class Table:
    requirements: dict[str, str]  # id -> the sentence a learner ticks
    rows: tuple[PatternRow, ...]


@dataclass(frozen=True)
class Recommendation:
    """A pattern's place in the ranking and why."""

    slug: str
    name: str
    score: int
    reasons: tuple[str, ...]  # "use" reasons the ticked requirements triggered
    warnings: tuple[str, ...]  # "avoid" reasons they triggered
    avoid_when: tuple[str, ...]  # every "avoid" reason, to read before choosing
    links: tuple[str, ...]

    @property
    def recommended(self) -> bool:
        return self.score > 0


def _reasons(raw: Any, where: str, known: Mapping[str, str]) -> tuple[Reason, ...]:
    if not isinstance(raw, list) or not raw:
        raise LabError(f"chooser.yaml: {where} must be a non-empty list of reasons")
    out = []
    for item in raw:
        when = tuple(item.get("when") or ()) if isinstance(item, Mapping) else ()
        if not when or not str(item.get("reason", "")).strip():
            raise LabError(f"chooser.yaml: every reason in {where} needs 'reason' and 'when'")
        extra = sorted(set(item) - {"reason", "when"})
        if extra:
            raise LabError(
                f"chooser.yaml: a reason in {where} has unknown fields {extra} "
                "(quote a reason that contains a comma)"
            )
        for requirement in when:
            if requirement not in known:
                raise LabError(f"chooser.yaml: {where} names unknown requirement {requirement!r}")
        out.append(Reason(str(item["reason"]), when))
    return tuple(out)


@cache
def load_table(path: Path | None = None) -> Table:
    """``data/chooser.yaml``, checked: every reason names requirements that exist."""
    import yaml

    path = path or data_dir() / "chooser.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    requirements = raw.get("requirements")
    if not isinstance(requirements, Mapping) or not requirements:
        raise LabError("chooser.yaml: 'requirements' must map ids to sentences")
    rows = []
    for i, row in enumerate(raw.get("patterns") or []):
        where = f"patterns[{i}] ({row.get('slug', '?')})"
        if not row.get("slug") or not row.get("name"):
            raise LabError(f"chooser.yaml: {where} needs 'slug' and 'name'")
        rows.append(
            PatternRow(
                row["slug"],
                row["name"],
                _reasons(row.get("use"), f"{where}.use", requirements),
                _reasons(row.get("avoid"), f"{where}.avoid", requirements),
                tuple(row.get("links") or ()),
            )
        )
    if not rows:
        raise LabError("chooser.yaml: 'patterns' is empty")
    return Table(dict(requirements), tuple(rows))


def rank(ticked: Iterable[str], table: Table | None = None) -> list[Recommendation]:
    """Every pattern of the table, best first, with the reasons for its score."""
    table = table or load_table()
    chosen = set(ticked)
    if not chosen:
        raise BadParameter("requirements", [], "tick at least one requirement")
    for requirement in sorted(chosen):
        if requirement not in table.requirements:
            raise UnknownName("requirement", requirement, list(table.requirements))
    out = []
    for row in table.rows:
        reasons = tuple(r.text for r in row.use if chosen.intersection(r.when))
        warnings = tuple(r.text for r in row.avoid if chosen.intersection(r.when))
        score = USE_POINTS * len(reasons) + AVOID_POINTS * len(warnings)
        out.append(
            Recommendation(
                row.slug,
                row.name,
                score,
                reasons,
                warnings,
                tuple(r.text for r in row.avoid),
                row.links,
            )
        )
    return sorted(out, key=lambda r: -r.score)  # stable: ties keep the table's order


def ranking_markdown(ranking: Iterable[Recommendation], top: int = 4) -> str:
    """The best ``top`` patterns with the reasons for and against, as Markdown."""
    lines = []
    for r in list(ranking)[:top]:
        lines.append(f"**{r.name}** (score {r.score:+d})")
        lines += [f"- ✅ {reason}" for reason in r.reasons]
        lines += [f"- ⚠️ {warning}" for warning in r.warnings]
        if not r.warnings:
            lines.append(f"- avoid when: {'; '.join(r.avoid_when)}")
        lines.append("")
    return "\n".join(lines)
