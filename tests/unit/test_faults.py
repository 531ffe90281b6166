import pytest

from labkit.core.errors import BadParameter, UnknownName
from labkit.core.faults import (
    ErrorStatus,
    FailFirst,
    FaultPlan,
    Hang,
    Latency,
    Outage,
    Reset,
)


def actions(plan, target="svc", path="/x", now=0.0):
    return [e.action for e in plan.effects(target, path, now)]


def test_latency_with_jitter_stays_within_its_band_and_is_seeded():
    def draws(seed):
        plan = FaultPlan(seed).add("svc", Latency(ms=50, jitter_ms=10))
        return [plan.effects("svc", "/", 0)[0].seconds for _ in range(200)]

    first = draws(1)
    assert all(0.040 <= s <= 0.060 for s in first)
    assert len(set(first)) > 100
    assert first == draws(1)
    assert first != draws(2)


def test_error_probability_is_roughly_honoured_and_repeatable():
    plan = FaultPlan(3).add("svc", ErrorStatus(500, probability=0.3))
    hits = sum(bool(actions(plan)) for _ in range(2000))
    assert 500 < hits < 700
    again = FaultPlan(3).add("svc", ErrorStatus(500, probability=0.3))
    assert hits == sum(bool(actions(again)) for _ in range(2000))


def test_fail_first_n_then_recover():
    plan = FaultPlan().add("svc", FailFirst(count=3, status=502))
    statuses = [e.status for _ in range(5) for e in plan.effects("svc", "/", 0)]
    assert statuses == [502, 502, 502]


def test_rules_target_a_service_and_a_route_prefix():
    plan = FaultPlan().add("product", ErrorStatus(503), route="/products/p-3")
    assert actions(plan, "product", "/products/p-3") == ["status"]
    assert actions(plan, "product", "/products/p-1") == []
    assert actions(plan, "user", "/products/p-3") == []
    everywhere = FaultPlan().add("*", Reset())
    assert actions(everywhere, "user") == ["reset"]


def test_outage_refuses_inside_its_window_only_and_skips_delays():
    plan = FaultPlan().add("svc", Latency(ms=20)).add("svc", Outage(start_s=1, end_s=2))
    assert actions(plan, now=0.5) == ["delay"]
    assert actions(plan, now=1.0) == ["refuse"]
    assert actions(plan, now=2.0) == ["delay"]


def test_delays_come_first_and_only_one_ending_effect_wins():
    plan = FaultPlan().add("svc", Hang()).add("svc", Latency(ms=5)).add("svc", ErrorStatus(500))
    assert actions(plan) == ["delay", "hang"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Latency(ms=-1), "latency.ms=-1"),
        (lambda: ErrorStatus(probability=1.5), "error.probability=1.5"),
        (lambda: ErrorStatus(status=200), "error.status=200"),
        (lambda: Hang(probability=-0.1), "hang.probability=-0.1"),
        (lambda: Outage(start_s=5, end_s=1), "outage.end_s=1"),
    ],
)
def test_bad_fault_settings_are_refused_by_name(make, message):
    with pytest.raises(BadParameter, match=message.replace(".", r"\.")):
        make()


def test_plan_round_trips_through_plain_data():
    plan = FaultPlan(9).add("svc", Latency(ms=30, jitter_ms=5)).add("svc", FailFirst(2), route="/a")
    again = FaultPlan.from_config(plan.to_config(), seed=9)
    assert again.to_config() == plan.to_config()
    assert isinstance(again.rules[1].fault.count, int)


def test_plan_from_config_names_what_is_wrong():
    with pytest.raises(UnknownName, match="'slow'"):
        FaultPlan.from_config([{"target": "svc", "kind": "slow"}])
    with pytest.raises(UnknownName, match="'msec'"):
        FaultPlan.from_config([{"target": "svc", "kind": "latency", "msec": 5}])
    with pytest.raises(BadParameter, match=r"latency\.ms='fast'"):
        FaultPlan.from_config([{"target": "svc", "kind": "latency", "ms": "fast"}])
