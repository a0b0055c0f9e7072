"""Turns: one holder per key at a time, a bounded wait for a turn, and no entry left for an idle key."""

from __future__ import annotations

import asyncio

import pytest

from docpipe.adapters.turns import Turns

FAR = 60.0
"""A deadline no test reaches: generous on a shared machine."""


def deadline_in(seconds: float) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_one_key_is_held_by_one_at_a_time_and_keys_are_independent() -> None:
    turns = Turns()
    holding: dict[str, int] = {"a": 0, "b": 0}
    most = {"a": 0, "b": 0}

    async def hold(key: str) -> None:
        async with turns.turn(key, deadline_in(FAR)):
            holding[key] += 1
            most[key] = max(most[key], holding[key])
            await asyncio.sleep(0.001)
            holding[key] -= 1

    await asyncio.gather(*(hold(key) for key in "ab" * 10))
    assert most == {"a": 1, "b": 1}
    assert len(turns) == 0


async def test_a_wait_past_its_deadline_times_out_and_leaves_nothing_behind() -> None:
    turns = Turns()
    async with turns.turn("k", deadline_in(FAR)):
        with pytest.raises(TimeoutError):
            async with turns.turn("k", deadline_in(0.01)):
                pytest.fail("got a turn another holds")
        assert len(turns) == 1
    assert len(turns) == 0
    async with turns.turn("k", deadline_in(FAR)):
        pass


async def test_a_failing_holder_and_a_cancelled_waiter_leave_nothing_behind() -> None:
    turns = Turns()
    entered = asyncio.Event()

    async def fail_while_holding() -> None:
        async with turns.turn("k", deadline_in(FAR)):
            entered.set()
            await asyncio.sleep(0.01)
            raise ValueError("the holder failed")

    async def wait() -> None:
        async with turns.turn("k", deadline_in(FAR)):
            await asyncio.sleep(FAR)

    holder = asyncio.create_task(fail_while_holding())
    await entered.wait()
    waiter = asyncio.create_task(wait())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(ValueError, match="the holder failed"):
        await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(turns) == 0


async def test_many_keys_used_once_leave_nothing_behind() -> None:
    turns = Turns()
    for n in range(1000):
        async with turns.turn(str(n), deadline_in(FAR)):
            pass
    assert len(turns) == 0
