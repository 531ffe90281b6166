"""The registry: health transitions follow the thresholds on virtual time, lookups return
healthy instances only, and an empty lookup is a clear error instead of the syllabus' crash."""

import asyncio

import pytest

import labkit
from labkit.core.clock import LoopClock, run_on_fresh_loop
from labkit.core.timeline import Timeline
from labkit.patterns.discovery import (
    Check,
    DiscoveryClient,
    NoHealthyInstance,
    Registry,
    ServiceInstance,
    syllabus_pick,
)


def _run(body):  # type: ignore[no-untyped-def]
    """Run ``body(registry, alive, timeline)`` on virtual time with a scripted probe."""

    async def main():  # type: ignore[no-untyped-def]
        tl = Timeline(LoopClock())
        alive: dict[str, bool] = {}

        async def probe(instance, path, timeout):  # type: ignore[no-untyped-def]
            return alive.get(instance.id, True)

        registry = Registry(tl, probe)
        try:
            return await body(registry, alive, tl)
        finally:
            await registry.close()

    return run_on_fresh_loop(main, virtual=True)


def _transitions(tl):  # type: ignore[no-untyped-def]
    return [(r.t, r.fields["instance"], r.kind) for r in tl.of_kind("health.")]


def test_health_transitions_follow_the_thresholds():
    check = Check(interval=5, success_before_passing=2, failures_before_critical=3)

    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        registry.register(ServiceInstance("a", "user-service", "10.0.0.1", 80), check)
        await tl.clock.sleep(1)
        assert registry.healthy("user-service") == []  # a new check starts critical
        await tl.clock.sleep(21)  # passing at t=5 (checks at 0 and 5)
        alive["a"] = False  # dies at t=22: checks at 25, 30, 35 fail
        await tl.clock.sleep(12)
        assert registry.status("a") == "passing"  # two failures are not enough
        await tl.clock.sleep(2)
        assert registry.healthy("user-service") == []
        alive["a"] = True  # recovers at t=36: checks at 40, 45 pass
        await tl.clock.sleep(20)
        return _transitions(tl)

    assert _run(body) == [
        (5.0, "a", "health.passing"),
        (35.0, "a", "health.critical"),
        (45.0, "a", "health.passing"),
    ]


def test_deregister_critical_after_removes_the_instance():
    check = Check(interval=5, deregister_critical_after=30)

    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        registry.register(ServiceInstance("a", "s", "h", 1), check)
        await tl.clock.sleep(7)
        alive["a"] = False  # critical at the check at 10
        await tl.clock.sleep(40)
        gone = tl.of_kind("instance.deregistered")
        return registry.instances("s"), [(r.t, r.fields["instance"]) for r in gone]

    instances, gone = _run(body)
    assert instances == [] and gone == [(40.0, "a")]


def test_ttl_check_goes_critical_when_the_heartbeat_stops():
    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        registry.register(ServiceInstance("a", "s", "h", 1), Check(http=None, ttl=10))
        for _ in range(3):  # heartbeats at 0, 4, 8
            registry.ttl_pass("a")
            await tl.clock.sleep(4)
        await tl.clock.sleep(20)
        registry.ttl_pass("a")
        return _transitions(tl)

    assert _run(body) == [
        (0.0, "a", "health.passing"),
        (18.0, "a", "health.critical"),  # last heartbeat at 8 + ttl 10
        (32.0, "a", "health.passing"),
    ]


def test_lookups_return_healthy_instances_only_by_name_tag_and_dns():
    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        for k, tag in ((1, "v1"), (2, "v2"), (3, "v2")):
            registry.register(ServiceInstance(f"u{k}", "user-service", f"10.0.0.{k}", 80, (tag,)))
        alive["u3"] = False
        await tl.clock.sleep(1)
        client = DiscoveryClient(registry)
        picks = [client.pick("user-service").id for _ in range(6)]
        return (
            [i.id for i in registry.healthy("user-service")],
            [i.id for i in registry.resolve("v2.user-service.service.lab")],
            [i.id for i in registry.resolve("user-service.service.lab")],
            picks,
        )

    healthy, v2, dns, picks = _run(body)
    assert healthy == ["u1", "u2"] and v2 == ["u2"] and dns == ["u1", "u2"]
    assert sorted(picks) == ["u1", "u1", "u1", "u2", "u2", "u2"]  # client-side round robin


def test_no_healthy_instance_is_a_clear_error_where_the_syllabus_crashes():
    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        alive["u1"] = False
        registry.register(ServiceInstance("u1", "user-service", "h", 1))
        await tl.clock.sleep(1)
        with pytest.raises(IndexError, match="list index out of range"):
            syllabus_pick(registry, "user-service")
        with pytest.raises(NoHealthyInstance) as caught:
            DiscoveryClient(registry).pick("user-service")
        return str(caught.value)

    message = _run(body)
    assert message.startswith("no healthy instance of user-service")
    assert isinstance(NoHealthyInstance("x"), labkit.LabError)


def test_bad_check_settings_and_dns_names_are_refused():
    with pytest.raises(labkit.BadParameter, match="failures_before_critical"):
        Check(failures_before_critical=0)
    with pytest.raises(labkit.BadParameter, match="interval"):
        Check(interval=0)

    async def body(registry, alive, tl):  # type: ignore[no-untyped-def]
        with pytest.raises(labkit.BadParameter, match=r"service\.lab"):
            registry.resolve("user-service.example.com")
        await asyncio.sleep(0)

    _run(body)


def test_scenario_an_instance_dies_leaves_after_the_failures_and_returns_after_recovery():
    s = labkit.run(
        "discovery", kill_instance=2, kill_at_s=20, recover_at_s=60, interval_s=5,
        failures_before_critical=3, success_before_passing=2,
    ).summary  # fmt: skip
    d = s["detection"]["user-service-2"]
    assert d["critical_after_s"] == 10.0  # failed checks at 20, 25, 30
    assert d["passing_again_after_s"] == 5.0  # passed checks at 60, 65
    assert s["outcomes"]["call_failed"] > 0  # calls sent to it before the registry noticed
    assert s["outcomes"].get("no_healthy_instance", 0) == 0
    assert s["served"]["user-service-1"] > s["served"]["user-service-2"] > 0


def test_scenario_all_down_the_checked_lookup_errors_and_the_syllabus_lookup_crashes():
    checked = labkit.run("discovery", kill_all=True, recover_at_s=0).summary
    assert checked["outcomes"]["no_healthy_instance"] > 0
    assert checked["errors"]["lookup"].startswith("no healthy instance of user-service")
    naive = labkit.run("discovery", kill_all=True, recover_at_s=0, lookup="syllabus").summary
    assert naive["errors"]["crash"] == "IndexError: list index out of range"
    assert naive["outcomes"]["crashed"] == 1
    served = naive["served"]
    assert served["user-service-2"] == served["user-service-3"] == 0 < served["user-service-1"]
    # services[0]: every call before the crash went to the first instance


def test_health_timeline_has_a_band_per_status_change():
    from labkit import viz

    result = labkit.run("discovery", recover_at_s=0, deregister_critical_after_s=15)
    spans = [s for s in viz.mesh.health_spans(result) if s["instance"] == "user-service-2"]
    assert [s["status"] for s in spans] == ["critical", "passing", "critical", "deregistered"]
    assert [s["start"] for s in spans] == [0.0, 5.0, 30.0, 45.0]
    fig = viz.health_timeline(result)
    assert {t.name for t in fig.data} >= {"passing", "critical", "deregistered", "failed check"}
