"""Errors the lab reports to a person in one clear line.

A ``LabError`` is a *user* mistake or an environment problem (a bad parameter, an unknown
pattern, a broker that does not answer). The faces (CLI, notebooks, playground) catch it and
show ``str(error)``: one line that names the bad value, never a traceback.
"""

from __future__ import annotations


class LabError(Exception):
    """Base class for every error that should reach a learner as one plain sentence."""


class BadParameter(LabError, ValueError):
    """A parameter, setting or option has a value the lab cannot use.

    The message always names the parameter and the value that was given, then says what
    would be accepted, e.g. ``product_latency_ms=-5: must be at least 0``.
    """

    def __init__(self, name: str, value: object, expected: str) -> None:
        self.name = name
        self.value = value
        self.expected = expected
        super().__init__(f"{name}={value!r}: {expected}")


class UnknownName(LabError, LookupError):
    """A name (pattern, backend, preset, service) the lab does not know."""

    def __init__(self, what: str, name: str, known: list[str] | tuple[str, ...]) -> None:
        self.what = what
        self.name = name
        self.known = sorted(known)
        super().__init__(f"unknown {what}: {name!r} (choose one of {', '.join(self.known)})")
