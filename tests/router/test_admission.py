"""Admission rules on their own: the limit, the 429, and a place given back however a request ends."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator

import pytest

from router.errors import OverloadedError
from router.serving.admission import Admission


async def tokens(n: int, fail_at: int | None = None) -> AsyncIterator[str]:
    for i in range(n):
        if i == fail_at:
            raise RuntimeError("engine died")
        yield f"t{i}"


def test_admits_up_to_the_limit_then_refuses_with_retry_after() -> None:
    admission = Admission(limit=2, retry_after_s=3)
    first, second = admission.admit(), admission.admit()
    with pytest.raises(OverloadedError) as refused:
        admission.admit()
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "3"}
    assert admission.admitted == 2 and admission.refused == 1
    first.release()
    first.release()  # a second release gives back nothing more
    assert admission.admitted == 1
    third = admission.admit()
    assert admission.admitted == 2
    del second, third  # a ticket nobody holds any more is given back
    gc.collect()
    assert admission.admitted == 0


def test_a_held_stream_keeps_its_place_until_it_ends() -> None:
    admission = Admission(limit=1, retry_after_s=1)

    async def run() -> list[str]:
        stream = admission.admit().hold(tokens(3))
        seen = [await anext(stream)]
        assert admission.admitted == 1
        seen += [item async for item in stream]
        return seen

    assert asyncio.run(run()) == ["t0", "t1", "t2"]
    assert admission.admitted == 0


def test_a_failing_or_abandoned_stream_gives_its_place_back() -> None:
    admission = Admission(limit=3, retry_after_s=1)

    async def run() -> None:
        failing = admission.admit().hold(tokens(3, fail_at=1))
        with pytest.raises(RuntimeError):
            async for _ in failing:
                pass
        closed = admission.admit().hold(tokens(10))
        await anext(closed)
        await closed.aclose()  # client went away mid-stream
        admission.admit().hold(tokens(10))  # never iterated: dropped with its response

    asyncio.run(run())
    gc.collect()
    assert admission.admitted == 0
