"""Declared parameters: one description of each knob, used by every face.

A scenario lists its parameters as :class:`Param` objects. The CLI parses ``--param k=v``
strings with them, the playground and the notebooks build sliders from their bounds, and bad
values are refused here, once, with a message that names the value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from labkit.core.errors import BadParameter, UnknownName

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


_ACRONYMS = {"bff": "BFF", "id": "ID", "lb": "LB", "ttl": "TTL", "url": "URL"}


@dataclass(frozen=True)
class Param:
    """A knob of a scenario: its type, default, bounds and a one-line explanation."""

    name: str
    default: Any
    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: Sequence[str] | None = None
    unit: str = ""

    @property
    def kind(self) -> type:
        return type(self.default)

    @property
    def label(self) -> str:
        """A label for a control: ``product_latency_ms`` -> ``Product latency (ms)``,
        ``interval_s`` -> ``Interval (s)``, ``bff`` -> ``BFF``."""
        name = self.name
        if self.unit and name.endswith(f"_{self.unit}"):
            name = name.removesuffix(f"_{self.unit}")
        words = [_ACRONYMS.get(w, w) for w in name.split("_")]
        text = " ".join(words)
        text = text[:1].upper() + text[1:]
        return f"{text} ({self.unit})" if self.unit else text

    def coerce(self, value: Any) -> Any:
        """Turn ``value`` (a string from the CLI, or a Python value) into a checked value."""
        kind = self.kind
        if kind is bool:
            result: Any = self._to_bool(value)
        elif kind in (int, float):
            result = self._to_number(value, kind)
        else:
            result = str(value).strip() if isinstance(value, str) else value
            if not isinstance(result, str):
                raise BadParameter(self.name, value, "must be text")
        if self.choices is not None and result not in self.choices:
            raise BadParameter(self.name, value, f"must be one of {', '.join(self.choices)}")
        return result

    def _to_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise BadParameter(self.name, value, "must be true or false")

    def _to_number(self, value: Any, kind: type) -> float | int:
        if isinstance(value, bool):
            raise BadParameter(self.name, value, f"must be a number, not {value}")
        try:
            number = kind(value.strip() if isinstance(value, str) else value)
        except (TypeError, ValueError):
            what = "a whole number" if kind is int else "a number"
            raise BadParameter(self.name, value, f"must be {what}") from None
        if isinstance(number, float) and number != number:
            raise BadParameter(self.name, value, "must be a number")
        if self.minimum is not None and number < self.minimum:
            raise BadParameter(self.name, value, self._range_text())
        if self.maximum is not None and number > self.maximum:
            raise BadParameter(self.name, value, self._range_text())
        return number

    def _range_text(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.minimum is not None and self.maximum is not None:
            text = f"must lie between {_fmt(self.minimum)} and {_fmt(self.maximum)}{unit}"
            if self.minimum == 0 and self.maximum == 1 and self.kind is float:
                text += " (it is a probability)"
            return text
        if self.minimum is not None:
            return f"must be at least {_fmt(self.minimum)}{unit}"
        return f"must be at most {_fmt(self.maximum)}{unit}"


def _fmt(x: float | None) -> str:
    return f"{x:g}" if isinstance(x, float) else str(x)


def resolve(spec: Sequence[Param], given: Mapping[str, Any], *, owner: str) -> dict[str, Any]:
    """Defaults overlaid with ``given``, every value checked; unknown names are refused."""
    by_name = {p.name: p for p in spec}
    for name in given:
        if name not in by_name:
            raise UnknownName(f"parameter of {owner}", name, list(by_name))
    return {p.name: p.coerce(given[p.name]) if p.name in given else p.default for p in spec}


def parse_assignments(items: Sequence[str]) -> dict[str, str]:
    """Split CLI ``k=v`` strings into a dict; a malformed item is refused by name."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise BadParameter("--param", item, "must look like name=value")
        out[name.strip()] = value
    return out
