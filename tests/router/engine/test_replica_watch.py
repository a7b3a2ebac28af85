"""A stream relayed from a replica ends with EngineError as soon as the replica is taken out, even while a
read is waiting on it, and lets any other cancellation through as it is (real asyncio, a real replica
client object; the stream is a generator standing in for the replica's token stream)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from router.engine.base import CompletionDelta, EngineError, GenerationStep
from router.engine.remote import ReplicaClient
from router.engine.replicas import Replica, _until_down


def _replica() -> Replica:
    return Replica(ReplicaClient("http://127.0.0.1:9", base_model="m", api_key=None, read_timeout_s=5))


def _step(i: int) -> GenerationStep:
    return GenerationStep(deltas=[CompletionDelta(index=0, text=str(i), num_tokens=1)], finished=False)


class Stream:
    """Yields ``count`` steps, then waits forever; records whether it was cancelled while waiting."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.cancelled = False

    async def steps(self) -> AsyncGenerator[GenerationStep, None]:
        for i in range(self.count):
            yield _step(i)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        yield _step(-1)  # never reached


def test_every_step_passes_and_the_stream_ends_when_it_ends() -> None:
    async def run() -> list[str]:
        async def three() -> AsyncGenerator[GenerationStep, None]:
            for i in range(3):
                yield _step(i)

        return [step.deltas[0].text async for step in _until_down(three(), _replica())]

    assert asyncio.run(run()) == ["0", "1", "2"]


def test_a_replica_taken_out_during_a_read_ends_the_stream_with_engine_error() -> None:
    async def run() -> tuple[list[str], Stream, str]:
        replica, stream, seen = _replica(), Stream(2), []
        asyncio.get_running_loop().call_later(0.05, replica.down.set)
        with pytest.raises(EngineError) as error:
            async for step in _until_down(stream.steps(), replica):
                seen.append(step.deltas[0].text)
        # The task itself is not left cancelled: it goes on (here, to return) as after any engine error.
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        return seen, stream, str(error.value)

    seen, stream, message = asyncio.run(asyncio.wait_for(run(), timeout=5))
    assert seen == ["0", "1"] and stream.cancelled and "went down" in message


def test_a_replica_taken_out_between_reads_ends_the_stream_before_the_next() -> None:
    async def run() -> list[str]:
        replica, seen = _replica(), []
        with pytest.raises(EngineError):
            async for step in _until_down(Stream(3).steps(), replica):
                seen.append(step.deltas[0].text)
                replica.down.set()
                await asyncio.sleep(0.01)  # the watcher sees it while no read is waiting
        return seen

    assert asyncio.run(run()) == ["0"]


def test_another_cancellation_is_not_turned_into_an_engine_error() -> None:
    async def consume(stream: Stream) -> None:
        async for _ in _until_down(stream.steps(), _replica()):
            pass

    async def run() -> Stream:
        stream = Stream(1)
        task = asyncio.ensure_future(consume(stream))
        await asyncio.sleep(0.05)
        task.cancel()  # the client went away
        with pytest.raises(asyncio.CancelledError):
            await task
        return stream

    assert asyncio.run(run()).cancelled
