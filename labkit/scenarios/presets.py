"""Named parameter sets for each pattern, from ``data/presets/<slug>.yaml``.

A preset is a starting point with a story: "the syllabus' gateway", "one product down, degrade".
The CLI takes ``--preset NAME``; the playground and notebooks offer them in a menu.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from labkit.core.errors import LabError, UnknownName
from labkit.core.paths import data_dir


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    explain: str
    params: dict[str, Any] = field(default_factory=dict)


def load_presets(pattern: str) -> dict[str, Preset]:
    """The presets of ``pattern`` by name (empty when it has none)."""
    import yaml

    path = data_dir() / "presets" / f"{pattern}.yaml"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    try:
        return {
            name: Preset(name, str(p["title"]), str(p["explain"]), dict(p.get("params") or {}))
            for name, p in (raw.get("presets") or {}).items()
        }
    except (KeyError, TypeError, AttributeError) as exc:
        raise LabError(f"{path.name} is malformed: {exc!r}") from None


def preset(pattern: str, name: str) -> Preset:
    presets = load_presets(pattern)
    if name not in presets:
        raise UnknownName(f"preset of {pattern}", name, list(presets) or ["(none)"])
    return presets[name]
