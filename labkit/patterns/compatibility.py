"""Which changes to an API break the clients already out there, and which do not.

A new version of an API is only a *minor* one if every old client keeps working. The rule of
thumb is "add, never remove or change", and it has two sides:

* **responses** (what old clients *read*): adding a field is safe (a tolerant reader ignores
  it); removing one, changing its type, or letting a field that was always there go missing
  breaks someone; a new value in an enum breaks clients that switch over the old set;
* **requests** (what old clients *send*): a new *optional* input is safe; a new *required*
  input, a changed type or fewer allowed enum values break every old client at once.

Schemas here are the JSON Schema subset most APIs use: ``type``, ``properties``, ``required``,
``items`` and ``enum``. :func:`schema_of` infers one from an example payload, so two real
responses can be compared without writing a schema first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from labkit.core.errors import BadParameter

DIRECTIONS = ("response", "request")

#: kind -> (breaking for responses, breaking for requests, why)
RULES: dict[str, tuple[bool, bool, str]] = {
    "removed_field": (True, False, "clients that read it find nothing"),
    "added_field": (False, False, "old clients ignore fields they do not know"),
    "added_required_field": (False, True, "old clients do not send it"),
    "changed_type": (True, True, "the value no longer parses as it did"),
    "became_optional": (True, False, "clients that relied on it being there may find nothing"),
    "became_required": (False, True, "old clients may leave it out"),
    "added_enum_value": (True, False, "old clients do not know the new value"),
    "removed_enum_value": (False, True, "old clients may still send it"),
}


@dataclass(frozen=True)
class Change:
    """One difference between two schemas, at ``path`` (``price``, ``items[].sku``)."""

    path: str
    kind: str
    breaking: bool
    why: str
    old: Any = None
    new: Any = None


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], *, direction: str = "response"
) -> list[Change]:
    """Every change from ``old`` to ``new``, each classified for ``direction``."""
    if direction not in DIRECTIONS:
        raise BadParameter("direction", direction, f"must be one of {', '.join(DIRECTIONS)}")
    _check_schema(old, "old")
    _check_schema(new, "new")
    changes: list[Change] = []
    _walk(old, new, "", direction, changes)
    return changes


def is_compatible(changes: list[Change]) -> bool:
    return not any(c.breaking for c in changes)


def _change(kind: str, path: str, direction: str, old: Any = None, new: Any = None) -> Change:
    on_response, on_request, why = RULES[kind]
    breaking = on_response if direction == "response" else on_request
    return Change(path or "(root)", kind, breaking, why, old, new)


def _walk(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, direction: str, out: list[Change]
) -> None:
    old_type, new_type = old.get("type"), new.get("type")
    if old_type != new_type:
        out.append(_change("changed_type", path, direction, old_type, new_type))
        return
    old_enum, new_enum = old.get("enum"), new.get("enum")
    if new_enum is None and old_enum is not None:  # the set of values was lifted
        out.append(_change("added_enum_value", path, direction, sorted(old_enum, key=str), "any"))
    elif old_enum is None and new_enum is not None:  # a set of values was imposed
        out.append(_change("removed_enum_value", path, direction, "any", sorted(new_enum, key=str)))
    elif old_enum is not None and new_enum is not None:
        for value in sorted(set(new_enum) - set(old_enum), key=str):
            out.append(_change("added_enum_value", path, direction, None, value))
        for value in sorted(set(old_enum) - set(new_enum), key=str):
            out.append(_change("removed_enum_value", path, direction, value, None))
    if old_type == "object":
        _walk_object(old, new, path, direction, out)
    elif old_type == "array" and "items" in old and "items" in new:
        _walk(old["items"], new["items"], f"{path}[]", direction, out)


def _walk_object(
    old: Mapping[str, Any], new: Mapping[str, Any], path: str, direction: str, out: list[Change]
) -> None:
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    old_req, new_req = set(old.get("required", ())), set(new.get("required", ()))
    for name in sorted(set(old_props) | set(new_props)):
        sub = f"{path}.{name}" if path else name
        if name not in new_props:
            out.append(_change("removed_field", sub, direction, old_props[name].get("type")))
        elif name not in old_props:
            required_input = name in new_req and direction == "request"
            kind = "added_required_field" if required_input else "added_field"
            out.append(_change(kind, sub, direction, None, new_props[name].get("type")))
        else:
            if name in old_req and name not in new_req:
                out.append(_change("became_optional", sub, direction))
            elif name not in old_req and name in new_req:
                out.append(_change("became_required", sub, direction))
            _walk(old_props[name], new_props[name], sub, direction, out)


def _check_schema(schema: Any, which: str) -> None:
    if not isinstance(schema, Mapping) or "type" not in schema:
        raise BadParameter(f"{which} schema", schema, "must be an object with a 'type'")


def schema_of(example: Any) -> dict[str, Any]:
    """A schema inferred from one example payload: every field present is taken as required."""
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number"}
    if isinstance(example, str):
        return {"type": "string"}
    if example is None:
        return {"type": "null"}
    if isinstance(example, list):
        return {"type": "array", **({"items": schema_of(example[0])} if example else {})}
    if isinstance(example, Mapping):
        return {
            "type": "object",
            "properties": {k: schema_of(v) for k, v in example.items()},
            "required": sorted(example),
        }
    raise BadParameter("example", example, "must be JSON: object, array, text, number or null")


def report(changes: list[Change]) -> list[dict[str, Any]]:
    """The changes as rows for a table or JSON."""
    return [
        {
            "path": c.path,
            "change": c.kind,
            "breaking": c.breaking,
            "why": c.why,
            "old": c.old,
            "new": c.new,
        }
        for c in changes
    ]
