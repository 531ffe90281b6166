"""Benchmark: how fast the quiz answers, and how long each exercise check takes.

    uv run python bench/bench_interview.py [--repeat 200]

Prints JSON:
* ``bank``: loading and validating every question file (cold), and the bank's size;
* ``grading_ms``: grading one answer: every model answer (median and max over the bank) and an
  answer at the length limit (5,000 characters), which is the worst case a learner can submit;
* ``chooser_ms``: ranking the seven patterns for a set of ticked requirements;
* ``exercise_check_s``: wall time of each exercise's check on the unmodified exercise and on
  the reference solution (what a learner waits for after pressing run), after one cold check
  that pays for the imports.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from labkit.exercises import (  # noqa: E402
    breaker,
    forged_jwt,
    gateway,
    mesh_route,
    poison_loop,
    projection,
)
from labkit.patterns import interview  # noqa: E402
from labkit.patterns.chooser import load_table, rank  # noqa: E402
from labkit.patterns.grading import MAX_ANSWER_CHARS  # noqa: E402


def ms(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return round((time.perf_counter() - start) / repeat * 1000, 4)


def solution(name: str):  # type: ignore[no-untyped-def]
    path = ROOT / "tests" / "exercises" / "solutions" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def starter(name: str, defined: str):  # type: ignore[no-untyped-def]
    nb = json.loads((ROOT / "notebooks" / "exercises" / f"{name}.ipynb").read_text())
    namespace: dict = {}
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]), namespace)
            if "exercise" in cell["metadata"].get("tags", []):
                return namespace[defined]
    raise LookupError(name)


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return round(time.perf_counter() - start, 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=200)
    repeat = parser.parse_args().repeat

    start = time.perf_counter()
    bank = interview.load_bank()
    load_ms = round((time.perf_counter() - start) * 1000, 1)
    questions = interview.all_questions(bank)
    free = [q for q in questions if q.kind == "free"]
    per_model = [ms(lambda q=q: interview.grade_free(q, q.model_answer), repeat) for q in free]
    longest = max(free, key=lambda q: len(q.key_points))
    long_answer = (longest.model_answer + " ") * (MAX_ANSWER_CHARS // len(longest.model_answer))
    long_answer = long_answer[:MAX_ANSWER_CHARS]
    table = load_table()
    ticked = {"immediate_answer", "many_react", "traffic_spikes", "audit_trail"}

    exercises = {
        "poison_loop": (poison_loop.check, "handle"),
        "gateway": (gateway.check, "order_details"),
        "breaker": (breaker.check, "settings"),
        "mesh_route": (mesh_route.check, "my_yaml"),
        "projection": (projection.check, "project"),
        "forged_jwt": (forged_jwt.check, "verify"),
    }
    checks: dict[str, object] = {
        # the first check in a process pays for imports (sqlite_utils, brokers, httpx)
        "first_check_cold": timed(lambda: poison_loop.check(solution("poison_loop").handle)),
    }
    for name, (check, defined) in exercises.items():
        checks[name] = {
            "unmodified": timed(lambda c=check, n=name, d=defined: c(starter(n, d))),
            "solution": timed(lambda c=check, n=name, d=defined: c(getattr(solution(n), d))),
        }

    print(
        json.dumps(
            {
                "bank": {
                    "load_ms": load_ms,
                    "topics": len(bank),
                    "questions": len(questions),
                    "by_kind": {k: sum(q.kind == k for q in questions) for k in interview.KINDS},
                },
                "grading_ms": {
                    "model_answer_median": statistics.median(per_model),
                    "model_answer_max": max(per_model),
                    "answer_at_limit": ms(
                        lambda: interview.grade_free(longest, long_answer), max(1, repeat // 10)
                    ),
                },
                "chooser_ms": ms(lambda: rank(ticked, table), repeat),
                "exercise_check_s": checks,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
