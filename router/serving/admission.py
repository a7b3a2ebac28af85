"""Bounded admission: at most ``limit`` generation requests are inside the service at once (running in the
engine or waiting in its queue). One more gets a fast 429 with ``Retry-After`` instead of joining a queue
that would stretch every accepted request's latency and hold its memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

from router.errors import OverloadedError


class Admission:
    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.admitted = 0
        self.refused = 0

    def admit(self) -> Ticket:
        """A ticket for one request, or OverloadedError; single-threaded (the event loop), so no lock."""
        if self.admitted >= self.limit:
            self.refused += 1
            raise OverloadedError(
                f"the service is at its limit of {self.limit} requests in progress; retry shortly",
                retry_after_s=self.retry_after_s,
            )
        self.admitted += 1
        return Ticket(self)


class Ticket:
    """One admitted request's place; released exactly once, however the request ends."""

    def __init__(self, admission: Admission) -> None:
        self._admission: Admission | None = admission

    def release(self) -> None:
        if self._admission is not None:
            self._admission.admitted -= 1
            self._admission = None

    async def hold(self, stream: AsyncIterator[str]) -> AsyncIterator[str]:
        """``stream``, keeping the place until it ends, fails or is closed."""
        try:
            async for item in stream:
                yield item
        finally:
            self.release()

    def __del__(self) -> None:
        # A response body that was never iterated (client gone before the first byte) never runs `hold`'s
        # finally; its ticket is collected with it.
        self.release()
