"""What every scenario run returns: the parameters, a summary and the full timeline."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from labkit.core.timeline import Timeline


@dataclass
class Result:
    """The outcome of ``labkit.run(pattern, ...)``.

    ``summary`` holds the few numbers a person looks at first; ``timeline`` holds every record,
    for charts and for checking anything the summary does not say.
    """

    pattern: str
    params: dict[str, Any]
    seed: int
    backend: str
    summary: dict[str, Any]
    timeline: Timeline
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pattern": self.pattern,
            "params": self.params,
            "seed": self.seed,
            "backend": self.backend,
            "summary": self.summary,
            "timeline": self.timeline.to_dicts(),
        }

    def to_json(self, *, indent: int | None = 2) -> str:
        """One JSON document; the same seed and parameters give the same text."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False, default=str)
