import asyncio

import pytest

from labkit.core.clock import LoopClock, ManualClock, VirtualTimeLoop, run_on_fresh_loop


def test_virtual_loop_jumps_to_the_next_timer():
    async def main():
        clock = LoopClock()
        await asyncio.sleep(3600)
        after_hour = clock.now()
        await asyncio.sleep(0.25)
        return after_hour, clock.now(), clock.virtual

    after_hour, later, virtual = run_on_fresh_loop(main, virtual=True)
    assert virtual is True
    assert after_hour == 3600
    assert later == pytest.approx(3600.25)


def test_virtual_timeouts_fire_at_their_deadline():
    async def main():
        clock = LoopClock()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                await asyncio.sleep(10)
        return clock.now()

    assert run_on_fresh_loop(main, virtual=True) == pytest.approx(1.5)


def test_concurrent_sleeps_overlap_in_virtual_time():
    async def main():
        clock = LoopClock()
        await asyncio.gather(*(asyncio.sleep(s) for s in (0.05, 0.2, 0.1)))
        return clock.now()

    assert run_on_fresh_loop(main, virtual=True) == pytest.approx(0.2)


def test_real_loop_is_not_virtual():
    async def main():
        return LoopClock().virtual, isinstance(asyncio.get_running_loop(), VirtualTimeLoop)

    assert run_on_fresh_loop(main, virtual=False) == (False, False)


def test_fresh_loop_runs_from_inside_a_running_loop():
    """A notebook cell already runs a loop: the run moves to a worker thread and still works."""

    async def inner():
        await asyncio.sleep(5)
        return LoopClock().now() >= 0

    async def outer():
        return run_on_fresh_loop(inner, virtual=True)

    assert asyncio.run(outer()) is True


def test_manual_clock_moves_only_forward():
    clock = ManualClock()
    clock.advance(2.5)
    assert clock.now() == 2.5
    with pytest.raises(ValueError):
        clock.advance(-1)
