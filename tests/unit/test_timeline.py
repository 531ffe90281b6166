import json
import threading

from labkit.core.clock import ManualClock
from labkit.core.timeline import Timeline


def test_records_carry_clock_time_actor_kind_and_fields():
    clock = ManualClock()
    tl = Timeline(clock)
    tl.record("client", "request.sent", call="c1")
    clock.advance(0.0125)
    tl.record("client", "response.received", call="c1", status=200)
    assert [(r.t, r.kind) for r in tl] == [(0.0, "request.sent"), (0.0125, "response.received")]
    assert tl.to_dicts()[1] == {
        "t_ms": 12.5,
        "actor": "client",
        "kind": "response.received",
        "call": "c1",
        "status": 200,
    }
    json.dumps(tl.to_dicts())


def test_of_kind_matches_exact_kinds_and_prefixes():
    tl = Timeline()
    for kind in ("request.sent", "request.failed", "response.received", "fault.injected"):
        tl.record("x", kind)
    assert [r.kind for r in tl.of_kind("request.")] == ["request.sent", "request.failed"]
    assert [r.kind for r in tl.of_kind("fault.injected", "response.received")] == [
        "response.received",
        "fault.injected",
    ]


def test_disabled_timeline_records_nothing_but_still_hands_out_ids():
    tl = Timeline(enabled=False)
    assert tl.record("x", "request.sent") is None
    assert len(tl) == 0
    assert tl.new_id() == "c1"


def test_appends_from_many_threads_are_all_kept():
    tl = Timeline()

    def writer(n: int) -> None:
        for i in range(500):
            tl.record(f"w{n}", "item.added", i=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tl) == 4000
    assert len({(r.actor, r.fields["i"]) for r in tl}) == 4000


def test_frame_has_one_row_per_record():
    tl = Timeline()
    tl.record("a", "request.sent", call="c1")
    tl.record("b", "response.received", call="c1", status=200)
    frame = tl.to_frame()
    assert list(frame["kind"]) == ["request.sent", "response.received"]
    assert {"t_ms", "actor", "kind", "call", "status"} <= set(frame.columns)
