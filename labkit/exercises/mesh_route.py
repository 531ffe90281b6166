"""Exercise: fix the unreachable mesh route.

The learner edits ``my_yaml``, which starts as the syllabus' Istio configuration for
``order-service``: a VirtualService whose first route is a 90/10 split between v1 and v2 with
no ``match``, and a second route that sends beta testers (header ``end-user: beta-tester``) to
v2. The sidecar takes the first route that matches, and a route without a match matches every
request, so the beta-tester route is never taken.

The check loads the YAML the way the lab's sidecar does, lints it, and sends 1,000 requests
through the mesh in virtual time, one in ten from a beta tester. It asks for:

* a file that loads (a mistake is named by its path, e.g. ``spec.http[0].route[1].weight``);
* no route the lint reports as unreachable (``istioctl analyze``'s IST0130);
* every beta tester on v2;
* everyone else still on the canary: between 5% and 15% of them on v2, none unanswered.
"""

from __future__ import annotations

from typing import Any

from labkit.core.errors import LabError
from labkit.exercises import Report
from labkit.scenarios import run

REQUESTS = 1000
BETA_SHARE = 0.1
CANARY_PERCENT = (5.0, 15.0)


def check(my_yaml: str, *, seed: int = 0) -> Report:
    """Send traffic through a mesh configured by ``my_yaml``; report what still goes wrong."""
    report = Report("The unreachable mesh route")
    if not isinstance(my_yaml, str) or "VirtualService" not in my_yaml:
        report.problem(
            "my_yaml must be the YAML text itself (a VirtualService and a DestinationRule), "
            "e.g. the syllabus' file with its routes changed."
        )
        return report
    try:
        result = run(
            "service_mesh",
            seed=seed,
            config=my_yaml,
            requests=REQUESTS,
            beta_share=BETA_SHARE,
        )
    except LabError as exc:
        report.problem(f"the mesh refused your YAML: {str(exc).splitlines()[0]}")
        return report
    s = result.summary
    beta, others = s["beta_testers"], s["others"]
    report.facts = {
        "lint": s["lint"],
        "routes_used": s["routes_used"],
        "beta_testers": beta,
        "others": others,
        "status_counts": s["status_counts"],
    }
    for finding in s["lint"]:
        report.problem(f"the lint still finds a dead route: {finding}")
    _check_beta(report, beta)
    _check_others(report, others, s["status_counts"])
    return report


def _check_beta(report: Report, beta: dict[str, Any]) -> None:
    total = sum(beta.values())
    on_v2 = beta.get("v2", 0)
    if total and on_v2 < total:
        report.problem(
            f"only {on_v2} of {total} beta testers reached v2; the rest were split like everyone "
            "else. The sidecar takes the first route that matches, and a route without a match "
            "matches every request: put the beta-tester route first."
        )


def _check_others(report: Report, others: dict[str, Any], statuses: dict[str, Any]) -> None:
    unanswered = sum(n for code, n in statuses.items() if str(code) != "200")
    if unanswered:
        report.problem(
            f"{unanswered} requests got no 200 ({statuses}): every request needs a route. Keep "
            "the 90/10 split as the last route, without a match, so it catches everyone else."
        )
    total = sum(others.values())
    share = 100 * others.get("v2", 0) / total if total else 0.0
    low, high = CANARY_PERCENT
    if total and not low <= share <= high:
        report.problem(
            f"{share:.0f}% of the other requests reached v2; the canary should send about 10% "
            f"(between {low:.0f}% and {high:.0f}%). Keep the 90/10 weights on the split."
        )
