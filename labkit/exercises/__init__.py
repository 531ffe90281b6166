"""Classroom exercises that check themselves.

Each exercise is a notebook in ``notebooks/exercises/`` with a task and a starting point; its
check lives here. A check runs the learner's code *against the lab* (the same brokers, services
and fault plans as the lessons, in virtual time) and returns a :class:`Report` that says, in
plain words, what is still wrong. A check never raises for a wrong solution: it reports.

This package is the top layer of labkit: it may import scenarios, patterns, transport and core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Report:
    """What a check found: passed, the problems still open (plain sentences) and the facts."""

    exercise: str
    problems: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.problems

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def __str__(self) -> str:
        if self.passed:
            return f"{self.exercise}: all checks pass. Well done."
        lines = [f"{self.exercise}: not yet. What is still wrong:"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        if self.passed:
            return f"**{self.exercise}: all checks pass.** Well done."
        items = "\n".join(f"- {p}" for p in self.problems)
        return f"**{self.exercise}: not yet.** What is still wrong:\n\n{items}"


#: name -> (title, minutes a learner usually needs, notebook)
EXERCISES: dict[str, tuple[str, int, str]] = {
    "poison_loop": ("Fix the poison-message loop", 15, "notebooks/exercises/poison_loop.ipynb"),
    "gateway": (
        "Make the gateway concurrent and degrade on failure",
        25,
        "notebooks/exercises/gateway.ipynb",
    ),
    "breaker": (
        "Configure a breaker that survives a fault plan",
        20,
        "notebooks/exercises/breaker.ipynb",
    ),
    "mesh_route": ("Fix the unreachable mesh route", 15, "notebooks/exercises/mesh_route.ipynb"),
    "projection": (
        "Write a projection that rebuilds to the same read model",
        25,
        "notebooks/exercises/projection.ipynb",
    ),
    "forged_jwt": ("Reject the forged JWT", 20, "notebooks/exercises/forged_jwt.ipynb"),
}
