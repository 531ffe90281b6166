"""Exercise: configure a circuit breaker that survives a fault plan.

The learner fills in ``settings``, a dict of the circuit-breaker scenario's breaker parameters
(``policy``, ``fail_max``, ``open_timeout_s``, ``half_open_calls``, ``failure_ratio``,
``minimum_calls``, ``window``, ``window_size``, ``interval_s``). The check runs the lab's breaker
experiment under two fault plans, 60 s at 5 calls a second each:

* **noise**: 10% of calls fail at random the whole time. A good breaker stays closed: a
  couple of failures in a row happen by chance and are not an outage.
* **outage**: the user service is down from 10 s to 30 s. A good breaker opens within 2 s
  (by 12 s) and is closed again by 35 s, 5 s after the service came back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labkit.core.errors import LabError
from labkit.exercises import Report
from labkit.scenarios import run

#: the parameters a learner may set; the fault plans set the rest
BREAKER_SETTINGS = (
    "policy",
    "fail_max",
    "open_timeout_s",
    "half_open_calls",
    "failure_ratio",
    "minimum_calls",
    "window",
    "window_size",
    "interval_s",
    "slow_call_ms",
)
NOISE = {"failure": "errors", "error_rate": 0.1, "outage_start_s": 0.0, "outage_end_s": 60.0}
OUTAGE = {"failure": "down", "outage_start_s": 10.0, "outage_end_s": 30.0}
OPEN_BY_S = 12.0
CLOSED_BY_S = 35.0


def check(settings: Mapping[str, Any], *, seed: int = 0) -> Report:
    """Run the breaker with ``settings`` under noise and under an outage; report the misses."""
    report = Report("A breaker that survives the fault plan")
    if not isinstance(settings, Mapping):
        report.problem("settings must be a dict, e.g. {'policy': 'consecutive', 'fail_max': 5}.")
        return report
    unknown = sorted(set(settings) - set(BREAKER_SETTINGS))
    if unknown:
        report.problem(
            f"{', '.join(unknown)}: not a breaker setting; use {', '.join(BREAKER_SETTINGS)}."
        )
        return report
    try:
        noise = run("circuit_breaker", seed=seed, **{**settings, **NOISE})
        outage = run("circuit_breaker", seed=seed, **{**settings, **OUTAGE})
    except LabError as exc:
        report.problem(f"the lab refused these settings: {exc}")
        return report
    opened = [t["t_s"] for t in outage.summary["transitions"] if t["to"] == "open"]
    closed = [t["t_s"] for t in outage.summary["transitions"] if t["to"] == "closed"]
    noise_trips = sum(t["to"] == "open" for t in noise.summary["transitions"])
    report.facts = {
        "noise_trips": noise_trips,
        "noise_rejected": noise.summary["rejected"],
        "outage_first_open_s": opened[0] if opened else None,
        "outage_closed_again_s": next((t for t in closed if opened and t > opened[0]), None),
        "outage_rejected": outage.summary["rejected"],
    }
    if noise_trips:
        report.problem(
            f"with only 10% random failures your breaker opened {noise_trips} times and "
            f"rejected {noise.summary['rejected']} calls to a service that mostly works. A few "
            "failures in a row happen by chance: trip on more of them (fail_max) or on a "
            "failure ratio over enough calls (minimum_calls)."
        )
    first_open = report.facts["outage_first_open_s"]
    if first_open is None or first_open > OPEN_BY_S:
        when = "never opened" if first_open is None else f"opened only at {first_open:.1f} s"
        report.problem(
            f"the service went down at 10 s and your breaker {when}; until it opens every call "
            f"waits on a dead service. It should open by {OPEN_BY_S:.0f} s."
        )
    back = report.facts["outage_closed_again_s"]
    if first_open is not None and (back is None or back > CLOSED_BY_S):
        when = "was still open at the end" if back is None else f"closed only at {back:.1f} s"
        report.problem(
            f"the service was back at 30 s but your breaker {when}: an open breaker waits "
            f"open_timeout_s before it tries a call. Make it close by {CLOSED_BY_S:.0f} s."
        )
    return report
