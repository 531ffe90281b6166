"""Exercise: write a projection that rebuilds to the same read model.

The learner writes ``project(view, event)``: it updates ``view``, a dict from order id to a row
(a dict with at least ``user_id``, ``status`` and ``total``), with one
:class:`~labkit.patterns.events.StoredEvent` from the order log (``OrderCreated``,
``OrderItemAdded``, ``OrderStatusChanged``; old item events already upcast). The order id is
``event.stream.removeprefix("order-")``.

The check takes the log of the lab's event-sourcing experiment (ten orders, seventy events)
and builds the read model three times:

* **live**, as a subscription would: in batches of eight, and every third batch is delivered
  twice, because the consumer died after applying it and before storing its checkpoint
  (at-least-once delivery);
* **rebuilt**, later, from an empty view, every event once;
* **rebuilt again**, the same way.

It asks that each rebuild agrees with the orders themselves (replayed from their streams), that
the two rebuilds agree with each other (the projection depends on nothing but the events: no
clock, no randomness), and that the live read model equals the rebuild (an event delivered twice
changes nothing the second time).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from labkit.exercises import Report
from labkit.patterns.events import StoredEvent
from labkit.scenarios import run

BATCH = 8
REDELIVER_EVERY = 3
FIELDS = ("user_id", "status", "total")

Project = Callable[[dict[str, Any], StoredEvent], None]


def check(project: Project, *, seed: int = 0) -> Report:
    """Build the read model live (with redeliveries) and twice from scratch; compare."""
    report = Report("A projection that rebuilds to the same read model")
    if not callable(project) or inspect.iscoroutinefunction(project):
        report.problem("project must be a plain function: `def project(view, event): ...`.")
        return report
    result = run("event_sourcing", seed=seed)
    store, repo = result.extras["store"], result.extras["repo"]
    events = store.read_all()
    truth = {
        oid: repo.load(oid) for oid in sorted({e.stream.removeprefix("order-") for e in events})
    }
    try:
        live, redelivered = _live(project, events), _redelivered(events)
        rebuilt, again = _fold(project, events), _fold(project, events)
    except Exception as exc:  # the learner's code: report it, never a traceback
        report.problem(f"your projection raised {type(exc).__name__}: {str(exc)[:120]}")
        return report
    report.facts = {"events": len(events), "orders": len(truth), "redelivered": redelivered}
    wrong = _wrong_rows(rebuilt, truth)
    if wrong:
        report.problem(
            f"rebuilt from the log, {len(wrong)} of {len(truth)} orders do not match the orders "
            f"themselves, e.g. {wrong[0]}. Each row needs user_id, status and total (the sum of "
            "quantity times unit_price)."
        )
        return report
    moving = _differing_fields(rebuilt, again)
    if moving:
        report.problem(
            f"two rebuilds from the same events disagree on {', '.join(moving)}: the projection "
            "depends on something besides the events (the clock? randomness?). Take times from "
            "the event itself (event.created_at), so a rebuild next year gives the same rows."
        )
    twice = [f for f in _differing_fields(live, rebuilt) if f not in moving]
    if twice:
        report.problem(
            f"the live read model differs from the rebuild on {', '.join(twice)} "
            f"({_example(live, rebuilt, twice[0])}): {redelivered} events were delivered twice "
            "after a crash, and applying one twice counted it twice. Remember the last version "
            "applied to each order (event.version) and skip events at or below it."
        )
    return report


def _fold(project: Project, events: Sequence[StoredEvent]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    for event in events:
        project(view, event)
    return view


def _batches(events: Sequence[StoredEvent]) -> list[Sequence[StoredEvent]]:
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


def _live(project: Project, events: Sequence[StoredEvent]) -> dict[str, Any]:
    """Batches as a subscription delivers them, every third one twice (a crash before the
    checkpoint was stored)."""
    view: dict[str, Any] = {}
    for n, batch in enumerate(_batches(events), start=1):
        for _ in range(2 if n % REDELIVER_EVERY == 0 else 1):
            for event in batch:
                project(view, event)
    return view


def _redelivered(events: Sequence[StoredEvent]) -> int:
    return sum(len(b) for n, b in enumerate(_batches(events), 1) if n % REDELIVER_EVERY == 0)


def _wrong_rows(view: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    wrong = []
    for oid, order in truth.items():
        row = view.get(oid)
        if not isinstance(row, dict):
            wrong.append(f"order {oid} has no row (a dict) in the view")
            continue
        expected = {"user_id": order.user_id, "status": order.status, "total": order.total}
        for name in FIELDS:
            got = row.get(name)
            same = (
                isinstance(got, int | float) and abs(got - expected[name]) < 0.005
                if name == "total"
                else got == expected[name]
            )
            if not same:
                wrong.append(f"order {oid}: {name} is {got!r}, the order says {expected[name]!r}")
                break
    return wrong


def _differing_fields(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """The fields that differ between two views, over every key (orders and anything else)."""
    names: set[str] = set()
    for key in set(a) | set(b):
        row_a, row_b = a.get(key), b.get(key)
        if isinstance(row_a, dict) and isinstance(row_b, dict):
            names |= {k for k in set(row_a) | set(row_b) if row_a.get(k) != row_b.get(k)}
        elif row_a != row_b:
            names.add(str(key))
    return sorted(names)


def _example(a: dict[str, Any], b: dict[str, Any], name: str) -> str:
    def value(view: dict[str, Any], key: str) -> Any:
        row = view.get(key)
        return row.get(name) if isinstance(row, dict) else None

    keys = sorted(k for k in set(a) | set(b) if isinstance(k, str))
    oid = next((k for k in keys if value(a, k) != value(b, k)), None)
    if oid is None:
        return f"{name} itself differs"
    return f"order {oid}: {value(a, oid)!r} live, {value(b, oid)!r} rebuilt"
