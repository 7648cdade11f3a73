"""The load shape: each level's tenants, added over the level's spawn time."""

from __future__ import annotations

from locust import LoadTestShape

from loadtest.run.loadgen.config import LevelSpec, level_at


class LevelShape(LoadTestShape):
    """Steps through the levels; stops after the last one."""

    def __init__(self, levels: tuple[LevelSpec, ...]) -> None:
        super().__init__()
        self.levels = levels

    def tick(self) -> tuple[int, float] | None:
        lv = level_at(self.levels, self.get_run_time())
        if lv is None:
            return None
        before = 0
        for other in self.levels:
            if other is lv:
                break
            before = other.tenants
        # New tenants join evenly over the spawn time, so their first syncs (due when they
        # are resumed) spread like the model's steady start.
        rate = max(0.01, (lv.tenants - before) / max(lv.spawn_s, 1.0))
        return lv.tenants, rate
