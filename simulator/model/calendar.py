"""The event model's calendar loop: ``simpy.Environment.run`` with jobs dispatched directly.

Most events on the calendar are jobs ending (``job.Job`` is its own event). SimPy's
``step`` costs a call, a swap of the callbacks and a failure check per event; this loop
pops SimPy's own heap, in SimPy's order (time, priority, event id), calls a job's callback
at once and runs any other event exactly as ``Environment.step`` does.
"""

from __future__ import annotations

from heapq import heappop
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import URGENT

from simulator.model.job import Job


def run_until(env: simpy.Environment, until: simpy.Event | float) -> None:
    """``env.run(until)``: process the calendar until ``until`` (an event, or an instant as
    SimPy schedules it: an urgent event before every other event of that instant)."""
    if not isinstance(until, simpy.Event):
        at = float(until)
        if at <= env.now:
            raise ValueError(f"until ({at}) must be later than the current simulated time")
        stop = simpy.Event(env)
        stop._ok = True
        stop._value = None
        env.schedule(stop, URGENT, at - env.now)
        until = stop
    elif until.callbacks is None:
        return
    assert until.callbacks is not None  # an event not yet processed keeps its list
    until.callbacks.append(StopSimulation.callback)
    # Typed loosely: SimPy's calendar holds ``Event``s, and jobs stand in for them.
    queue: list[Any] = env._queue
    job_type = Job
    try:
        while queue:
            env._now, _, _, event = heappop(queue)
            if event.__class__ is job_type:
                # A job never fails and has one callback (its end, pause or resumption);
                # its ``callbacks`` is set again before it is next on the calendar.
                event.callbacks[0](event)  # type: ignore[index]  # set when it was scheduled
                continue
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                # As SimPy does: a failed event nobody defused stops the run with a copy of
                # its exception.
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
    except StopSimulation:
        return
    raise RuntimeError(f"no events left on the calendar but {until} never happened")
