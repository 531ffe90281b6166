"""Experiment: order-service v1 and v2 behind a sidecar configured by Istio YAML.

A caller sends ``requests`` requests to ``http://order-service`` at ``rate_per_s``, a share of
them as a beta tester (header ``end-user: beta-tester``). The sidecar routes them per the
configuration: by default the syllabus' YAML, whose beta-tester route is unreachable. Knobs
make one v1 instance slow (load balancing) or down for a while (outlier detection, retries).
The summary counts where requests went, per subset, per instance and for beta testers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from labkit.core.errors import BadParameter, UnknownName
from labkit.core.faults import FaultPlan, Latency, Outage
from labkit.core.params import Param
from labkit.core.paths import data_dir
from labkit.core.stats import latency_summary
from labkit.patterns.mesh_config import MeshConfig, load_mesh_config
from labkit.patterns.mesh_lint import lint
from labkit.patterns.service_mesh import Instance, open_loop, serve_mesh
from labkit.scenarios.base import RunContext
from labkit.shop.catalog import load_catalog
from labkit.shop.services import order_app

TITLE = "Service mesh: Istio routing, balancing and ejection"
BACKENDS = ("inprocess", "live")
HOST = "order-service"
ORDER = "o-1001"
LBS = ("config", "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM")

PARAMS = [
    Param("config", "syllabus", "a name in data/mesh, a path to a YAML file, or YAML text"),
    Param("requests", 1000, "requests the caller sends", minimum=1, maximum=20000),
    Param("rate_per_s", 200.0, "how many requests start per second", minimum=1, unit="req/s"),
    Param("beta_share", 0.1, "share sent as end-user: beta-tester", minimum=0, maximum=1),
    Param("canary_weight", -1, "% to v2 in every two-way split; -1 keeps the YAML", minimum=-1,
          maximum=100),
    Param("lb", "config", "load balancer for every pool; 'config' follows the YAML", choices=LBS),
    Param("v1_instances", 3, "instances labelled version: v1", minimum=1, maximum=8),
    Param("v2_instances", 2, "instances labelled version: v2", minimum=1, maximum=8),
    Param("latency_ms", 10.0, "how long an instance takes to answer", minimum=0, unit="ms"),
    Param("slow_instance", "", "an instance (e.g. order-v1-1) made slower; empty: none"),
    Param("slow_factor", 10.0, "how many times slower the slow instance is", minimum=1),
    Param("failing_instance", "", "an instance (e.g. order-v1-2) that refuses calls for a while"),
    Param("fail_from_s", 0.0, "when the failing instance goes down", minimum=0, unit="s"),
    Param("fail_until_s", 20.0, "when it comes back", minimum=0, unit="s"),
]  # fmt: skip


def config_names() -> list[str]:
    """The configurations shipped in ``data/mesh`` (preset names for ``config``)."""
    return sorted(p.stem for p in (data_dir() / "mesh").glob("*.yaml"))


def config_text(config: str) -> str:
    """The YAML text of ``config``: a shipped name, a path to a file, or YAML text itself."""
    if "\n" in config or (":" in config and not config.endswith((".yaml", ".yml"))):
        return config
    if config in config_names():
        return (data_dir() / "mesh" / f"{config}.yaml").read_text(encoding="utf-8")
    path = Path(config).expanduser()
    if path.suffix in (".yaml", ".yml") or "/" in config:
        if not path.is_file():
            raise BadParameter("config", config, "no such YAML file")
        return path.read_text(encoding="utf-8")
    raise UnknownName("mesh config", config, config_names())


def shipped_name(text: str) -> str | None:
    """The name of the shipped configuration whose text is ``text`` (None: edited)."""
    for name in config_names():
        if (data_dir() / "mesh" / f"{name}.yaml").read_text(encoding="utf-8") == text:
            return name
    return None


def load(params: dict[str, Any]) -> MeshConfig:
    """The checked configuration of a run, the canary weight applied."""
    config = load_mesh_config(config_text(params["config"]))
    if params["canary_weight"] >= 0:
        config = config.with_canary(int(params["canary_weight"]))
    return config


def instances(params: dict[str, Any]) -> list[Instance]:
    catalog = load_catalog()
    return [
        Instance(f"order-{version}-{k}", HOST, {"version": version}, order_app(catalog))
        for version in ("v1", "v2")
        for k in range(1, params[f"{version}_instances"] + 1)
    ]


def fault_plan(params: dict[str, Any], names: list[str], seed: int) -> FaultPlan:
    plan = FaultPlan(seed)
    for name in names:
        ms = params["latency_ms"]
        if name == params["slow_instance"]:
            ms *= params["slow_factor"]
        plan.add(name, Latency(ms))
    for knob in ("slow_instance", "failing_instance"):
        if params[knob] and params[knob] not in names:
            raise UnknownName(f"instance for {knob}", params[knob], names)
    if params["failing_instance"]:
        until = max(params["fail_from_s"], params["fail_until_s"])
        plan.add(params["failing_instance"], Outage(params["fail_from_s"], until))
    return plan


async def main(ctx: RunContext) -> dict[str, Any]:
    p = ctx.params
    config = load(p)
    members = instances(p)
    plan = fault_plan(p, [i.name for i in members], ctx.seed)
    lb = None if p["lb"] == "config" else p["lb"]
    tl = ctx.timeline
    beta_every = round(1 / p["beta_share"]) if p["beta_share"] else 0
    statuses: Counter[int] = Counter()

    async with serve_mesh(
        config, members, timeline=tl, faults=plan, seed=ctx.seed, lb_override=lb,
        backend=ctx.backend,
    ) as (_mesh, client):  # fmt: skip

        async def call(i: int) -> None:
            beta = bool(beta_every) and i % beta_every == 0
            headers = {"end-user": "beta-tester"} if beta else {}
            response = await client.get(f"http://{HOST}/orders/{ORDER}", headers=headers)
            statuses[response.status_code] += 1

        await open_loop(p["requests"], p["rate_per_s"], call, tl.clock)
    return summarize(tl, config, statuses, [i.name for i in members])


def summarize(tl, config: MeshConfig, statuses: Counter[int], names: list[str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    answered = tl.of_kind("mesh.answered")
    matched = tl.of_kind("route.matched")
    beta: Counter[str] = Counter()
    rest: Counter[str] = Counter()
    for r in matched:
        (beta if r.fields["end_user"] == "beta-tester" else rest)[str(r.fields["subset"])] += 1
    per_instance = Counter(r.fields["instance"] for r in answered if r.fields["instance"])
    per_subset = Counter(str(r.fields["subset"]) for r in matched)
    total = max(1, len(matched))
    return {
        "requests": len(answered),
        "lint": [f.message for f in lint(config)],
        "notes": list(config.notes),
        "per_subset": dict(sorted(per_subset.items())),
        "share_percent": {k: round(100 * v / total, 2) for k, v in sorted(per_subset.items())},
        "beta_testers": dict(sorted(beta.items())),
        "others": dict(sorted(rest.items())),
        "routes_used": dict(sorted(Counter(str(r.fields["route"]) for r in matched).items())),
        "per_instance": {n: per_instance.get(n, 0) for n in names},
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "latency_ms": latency_summary([r.fields["latency_ms"] for r in answered]),
        "retries": len(tl.of_kind("mesh.retry")),
        "faults_injected": len(tl.of_kind("mesh.fault_injected")),
        "ejections": [{"t_s": round(r.t, 3), **r.fields} for r in tl.of_kind("instance.ejected")],
        "returns": [{"t_s": round(r.t, 3), **r.fields} for r in tl.of_kind("instance.returned")],
    }
