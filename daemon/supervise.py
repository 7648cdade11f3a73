"""Long-lived loops (scheduler, repair, trim) that survive any exception.

A step that raises is logged and retried after a growing delay, never ends its loop; a loop
that has ended while the daemon is not stopping, or whose steps have failed for longer than
``unhealthy_after_s``, is named by ``Supervisor.unhealthy`` so ``/healthz`` can fail.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from daemon.logs import get_logger

log = get_logger("supervise")
Step = Callable[[], Awaitable[Any]]


def retry_delay(failures: int, interval_s: float, cap_s: float) -> float:
    """Seconds before the next step after ``failures`` failed steps in a row.

    Doubles from the loop's own interval and stops at ``cap_s`` (or at the interval, for a
    loop slower than the cap), so a loop resumes its work soon after its dependency is back.
    """
    if failures <= 0:
        return interval_s
    return min(max(cap_s, interval_s), interval_s * 2.0 ** (failures - 1))


def describe(exc: BaseException) -> str:
    """One line naming an exception, for logs and health reports."""
    return f"{type(exc).__name__}: {exc}"[:300]


@dataclass
class LoopState:
    """What a supervised loop is doing, for health checks."""

    name: str
    failures: int = 0
    failing_since: float | None = None
    last_error: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class Supervisor:
    """Runs named loops until ``stop`` is set."""

    def __init__(
        self,
        stop: asyncio.Event,
        clock: Callable[[], float],
        *,
        max_backoff_s: float = 10.0,
        unhealthy_after_s: float = 30.0,
    ) -> None:
        self.stop = stop
        self.clock = clock
        self.max_backoff_s = max_backoff_s
        self.unhealthy_after_s = unhealthy_after_s
        self.loops: dict[str, LoopState] = {}

    def start(self, name: str, step: Step, interval_s: float) -> LoopState:
        """Run ``step`` every ``interval_s`` seconds (from the start of one to the next)."""
        state = LoopState(name)
        state.task = asyncio.create_task(self._run(state, step, interval_s), name=name)
        self.loops[name] = state
        return state

    async def _run(self, state: LoopState, step: Step, interval_s: float) -> None:
        while not self.stop.is_set():
            started = self.clock()
            try:
                await step()
            except Exception as exc:
                state.failures += 1
                if state.failing_since is None:
                    state.failing_since = started
                state.last_error = describe(exc)
                delay = retry_delay(state.failures, interval_s, self.max_backoff_s)
                # The traceback once per streak: a dependency that stays down would
                # otherwise print the same one every few seconds.
                log.error(
                    "task step failed; will retry",
                    task=state.name,
                    error=state.last_error,
                    failures=state.failures,
                    retry_in_s=round(delay, 1),
                    exc_info=state.failures == 1,
                )
            else:
                if state.failures:
                    log.warning("task recovered", task=state.name, failures=state.failures)
                state.failures = 0
                state.failing_since = None
                state.last_error = None
                delay = max(0.0, interval_s - (self.clock() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=delay)

    def unhealthy(self) -> list[str]:
        """Loops that ended although the daemon runs, or that keep failing; with why."""
        out: list[str] = []
        now = self.clock()
        for state in self.loops.values():
            if state.task is not None and state.task.done() and not self.stop.is_set():
                out.append(f"{state.name}: not running ({self._ended(state.task)})")
            elif (
                state.failing_since is not None
                and now - state.failing_since >= self.unhealthy_after_s
            ):
                out.append(
                    f"{state.name}: failing since {round(now - state.failing_since)} s "
                    f"({state.last_error})"
                )
        return out

    @staticmethod
    def _ended(task: asyncio.Task[None]) -> str:
        if task.cancelled():
            return "cancelled"
        exc = task.exception()
        return "returned" if exc is None else describe(exc)

    async def join(self, timeout_s: float) -> None:
        """Wait for every loop to finish its step and end (after ``stop`` is set)."""
        tasks = [s.task for s in self.loops.values() if s.task is not None]
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
