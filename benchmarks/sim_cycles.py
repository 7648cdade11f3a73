"""What happens at the scheduler's releases in the event model, beside the fast path's view.

The fast path's mean queue wait rests on the batches a release hands the workers, the
workers other jobs hold at that instant and how long the batch takes to drain. This records
them around seeded runs of the event model (``simulator.checks.cycles``; the plain model,
not the compiled one) and prints, per scenario: the batches (mean, variance/mean, deciles),
the workers busy at a release by what they run (scheduled syncs, later chunks of a
quota-chunked full sync, push syncs) against their time average, the drain's end (the last
start of a batch's jobs after its release) and the waits of each kind of job, beside the
fast path's own figures for a run (the cycle map serving where its closed forms miss), its
closed forms alone and, with one scheduler and no push, the cycle map's
(``simulator.checks.cycle_map``) and the wait the fast path's drain gives from them.
``docs/simulator.md`` ("Where the fast path is not expected to agree") quotes them.

With several schedulers it prints each run's gaps between the releases and its wait; with
``--phased`` also the phased map (``simulator.fast.phased_map``) on each run's phases and
its mean over drawn phases.

    python benchmarks/sim_cycles.py plan-b-1000@2s-jobs plan-b-1500@2s-jobs [--seeds 4]
    python benchmarks/sim_cycles.py plan-c-5000@2s-jobs --seeds 12 --phased

A name is a shipped scenario, with ``@2s-jobs`` (every sync about 2 s, the plan's
assumption) or ``@push`` (every arrival notifies) as in ``benchmarks/sim_accuracy.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from variants import scenario

from simulator.checks import (
    JOB_KINDS,
    CycleFigures,
    Cycles,
    PhasedInputs,
    cycle_inputs,
    drain_wait,
    fast_for,
    mean_wait,
    phased_inputs,
    record_cycles,
    simulate_cycles,
    simulate_phased,
)
from simulator.fast import profiles, settle
from simulator.inputs.scenario import Scenario
from simulator.runs import seeds


def fast_view(s: Scenario, cycles: bool = True) -> dict[str, float]:
    """The fast path's batch, held workers and waits for a run of the scenario's
    configuration (``cycles=False``: its closed forms only, no cycle map)."""
    p = profiles.profile(s)
    tenants, k = np.array([s.population.tenants]), np.array([s.daemon.processes])
    cfg, st = settle(s, p, tenants, k, run_window=True, cycles=cycles)
    period = s.profile().scheduler_interval_s
    lam_s = float(np.asarray(st.lam - st.lam_p).ravel()[0])
    lam = float(np.asarray(st.lam).ravel()[0])
    dispatch_ms = s.resources.dispatch_ms
    return {
        "wait_mean": fast_for(s, as_run=True, cycles=cycles)["wait_mean"],
        "batch": lam_s * period / float(np.asarray(cfg.k).ravel()[0]),
        "job_s": float(np.asarray(st.s_inc).ravel()[0]),
        "chunk_held": lam * p.full_share * float(np.asarray(cfg.s_full).ravel()[0]),
        "push_held": float(np.asarray(st.lam_p * st.s_inc).ravel()[0]),
        "wait_scheduled": float(np.asarray(st.dispatch + st.w_s).ravel()[0]),
        "wait_chunk": float(np.asarray(dispatch_ms / 1000 + st.w_ch).ravel()[0]),
    }


# Bins of a drain's end (seconds) for the chunks busy at the next release.
EDGES = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]


def show(
    name: str,
    r: Cycles,
    fast: dict[str, float],
    closed: dict[str, float],
    cm: CycleFigures | None,
    inp: PhasedInputs | None = None,
    replay_paths: int = 4,
    phased_paths: int = 64,
) -> None:
    b = np.asarray(r.batches, dtype=float)
    d = np.asarray(r.drain_end, dtype=float)
    dec = np.percentile(b, [10, 50, 90])
    print(f"\n{name}: {b.size:,} releases after warm-up")
    print(
        f"  batch: mean {b.mean():.1f} (closed forms {closed['batch']:.1f}), variance/mean "
        f"{b.var() / max(b.mean(), 1e-12):.2f}, deciles 10/50/90: "
        + " / ".join(f"{x:.0f}" for x in dec)
    )
    if cm:
        print(
            f"    cycle map: batch mean {cm.batch_mean:.1f}, variance/mean {cm.dispersion:.2f}; "
            f"chunks busy at a release {cm.held_mean:.2f} (variance {cm.held_var:.2f}), "
            f"{cm.residual_s:.2f} s left to run; drain end {cm.drain_end_mean:.2f} s "
            f"(sd {cm.drain_end_sd:.2f}); chunk wait {cm.chunk_wait_s:.3f} s"
        )
    for k in JOB_KINDS:
        h = np.asarray(r.held[k], dtype=float)
        avg = r.busy_s[k] / r.window_s if r.window_s else 0.0
        fast_avg = {"chunk": closed["chunk_held"], "push": closed["push_held"]}.get(k)
        tail = f" (closed forms {fast_avg:.2f})" if fast_avg is not None else ""
        res = r.residual.get(k, [])
        left = f", {np.mean(res):.2f} s left to run" if res else ""
        print(
            f"  {k:9s} workers busy at a release: mean {h.mean():.2f}, variance {h.var():.2f}"
            f"{left}; time average {avg:.2f}{tail}"
        )
    steps = ", ".join(
        f"{lo:.0f}-{hi:.0f} s: {mean:.2f} ({n:,})" for lo, hi, n, mean in r.held_after(EDGES)
    )
    print(
        f"  consecutive batches correlate {r.batch_lag_correlation():+.2f}; chunks busy at a "
        f"release by the previous drain's end (releases): {steps}"
    )
    if d.size:
        q = np.percentile(d, [10, 50, 90])
        print(
            f"  drain end after a release: mean {d.mean():.2f} s, sd {d.std():.2f} s, deciles "
            + " / ".join(f"{x:.2f}" for x in q)
        )
    if any(len(g) > 1 for g, _w in r.runs):
        # Several schedulers: the gaps between their releases are drawn per run; a release
        # that comes while the one before is still draining finds the workers busy.
        print(
            f"  per run, the gaps between the schedulers' releases (a job takes "
            f"{closed['job_s']:.2f} s on average; closed forms {closed['wait_mean']:.3f} s):"
        )
        for i, (gaps, w) in enumerate(r.runs, 1):
            replay = ""
            if inp is not None:
                ph = np.concatenate([[0.0], np.cumsum(gaps)[:-1]])
                again = simulate_phased(inp, paths=replay_paths, phases=ph)
                pw = again.path_waits
                replay = (
                    f" (the phased map on its phases {np.mean(pw):.3f} s, its paths "
                    f"{min(pw):.3f}-{max(pw):.3f} s)"
                )
            print(
                f"    run {i}: gaps "
                + " / ".join(f"{g:.2f}" for g in gaps)
                + f" s (closest {min(gaps):.2f} s), mean wait {w:.3f} s{replay}"
            )
        if inp is not None:
            drawn = simulate_phased(inp, paths=phased_paths)
            runs_mean = np.mean([w for _g, w in r.runs])
            print(
                f"  the phased map over {phased_paths} drawn phases: every job's wait "
                f"{np.mean(drawn.path_waits):.3f} s (the runs above: {runs_mean:.3f} s)"
            )
    every = [w for k in JOB_KINDS for w in r.waits.get(k, [])]
    also = f"; the cycle map {fast['all_map']:.3f} s" if cm else ""
    print(
        f"  every job's wait: mean {np.mean(every):.3f} s (fast {fast['wait_mean']:.3f} s, "
        f"closed forms {closed['wait_mean']:.3f} s{also})"
    )
    for k in JOB_KINDS:
        w = r.waits.get(k, [])
        if w:
            key = "wait_scheduled" if k == "scheduled" else "wait_chunk"
            also = f", closed forms {closed[key]:.3f} s"
            if cm and k == "scheduled":
                also += f"; the drain on the cycle map's inputs {fast['wait_map']:.3f} s"
            print(
                f"  {k:9s} wait: mean {np.mean(w):.3f} s over {len(w):,} jobs "
                f"(fast {fast[key]:.3f} s{also})"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("scenarios", nargs="+", help="e.g. plan-b-1000@2s-jobs")
    ap.add_argument("--seeds", type=int, default=4, help="replications per scenario (default 4)")
    ap.add_argument("--paths", type=int, default=32, help="cycle map paths (default 32)")
    ap.add_argument(
        "--phased", action="store_true",
        help="several schedulers: replay each run's phases on the phased map, and its mean "
        "over drawn phases",
    )  # fmt: skip
    ap.add_argument("--replay-paths", type=int, default=4, help="phased map paths per replay")
    ap.add_argument("--phased-paths", type=int, default=64, help="phased map's drawn phases")
    a = ap.parse_args()
    for name in a.scenarios:
        s = scenario(name)
        r = Cycles()
        t0 = time.perf_counter()
        for i, seed in enumerate(seeds(s.run.seed, a.seeds), 1):
            record_cycles(s, seed, r)
            print(f"  {name}: run {i} of {a.seeds} ({time.perf_counter() - t0:.0f} s)", flush=True)
        view, closed = fast_view(s), fast_view(s, cycles=False)
        cm = None
        if s.daemon.processes == 1 and s.daemon.push_share == 0:
            t1 = time.perf_counter()
            cm = simulate_cycles(cycle_inputs(s), paths=a.paths)
            print(f"  cycle map: {a.paths} paths in {time.perf_counter() - t1:.1f} s", flush=True)
            view["wait_map"] = drain_wait(s, cm)
            view["all_map"] = mean_wait(s, cm)
        inp = None
        if s.daemon.processes > 1 and s.daemon.push_share == 0 and a.phased:
            inp = phased_inputs(s)
        show(name, r, view, closed, cm, inp, a.replay_paths, a.phased_paths)


if __name__ == "__main__":
    main()
