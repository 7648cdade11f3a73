"""A run's raw measurements kept beside its report (``raw/``), so the analysis can be done
again without the load: ``mailsync loadtest report DIR`` after a model change."""

from __future__ import annotations

import gzip
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.run.measure import RunData, Window
from loadtest.run.sampler import ProcessSample, Samples
from loadtest.run.verify import Integrity

_ARRAYS = (
    "mailbox", "tier", "full", "queued", "started", "finished", "ok", "stored", "calls",
    "due", "lag_stored", "lag_s",
)  # fmt: skip


@dataclass
class RunRecord:
    """What ``orchestrate`` hands to the analysis."""

    t0: float
    idle: Window
    warm: list[Window]
    started_clean: bool
    integrity: Integrity
    synced: bool
    behind: int
    calibration: str | None
    prefix: str = ""
    # Scenario, date, machine and commit of the run itself (a later re-analysis keeps them).
    measured_by: str = ""


def save(out: Path, data: RunData, samples: Samples, rec: RunRecord) -> None:
    """Write ``raw/`` under the report folder."""
    raw = out / "raw"
    raw.mkdir(exist_ok=True)
    np.savez_compressed(
        raw / "runs.npz",
        **{k: getattr(data, k) for k in _ARRAYS},
        lag_provider=data.lag_provider.astype(str),
        lag_tier=data.lag_tier.astype(str),
    )
    meta = {
        "provider_of": {str(k): v for k, v in data.provider_of.items()},
        "record": {
            **asdict(rec),
            "idle": asdict(rec.idle),
            "warm": [asdict(w) for w in rec.warm],
            "integrity": asdict(rec.integrity),
        },
    }
    (raw / "run.json").write_text(json.dumps(meta))
    doc = {
        "procs": {
            name: {str(pid): [[s.t, s.cpu_s, s.rss_mb] for s in series]
                   for pid, series in by_pid.items()}
            for name, by_pid in samples.procs.items()
        },
        "machine": samples.machine,
        "staleness": [[t, _sparse(h)] for t, h in samples.staleness],
        "active": samples.active,
        "metrics": [
            [t, d, [[n, list(lab), v] for (n, lab), v in parsed.items()]]
            for t, d, parsed in samples.metrics
        ],
        "imap_connections": samples.imap_connections,
        "events": samples.events,
    }  # fmt: skip
    with gzip.open(raw / "samples.json.gz", "wt") as f:
        json.dump(doc, f)


def _sparse(h: np.ndarray) -> list[list[int]]:
    idx = np.nonzero(h)
    return [[int(a), int(b), int(h[a, b])] for a, b in zip(*idx, strict=True)]


def _dense(cells: list[list[int]], shape: tuple[int, int]) -> np.ndarray:
    h = np.zeros(shape, dtype=np.int64)
    for a, b, v in cells:
        h[a, b] = v
    return h


def load(out: Path) -> tuple[RunData, Samples, RunRecord]:
    """Read what ``save`` wrote; a clear error when the folder holds no run."""
    raw = out / "raw"
    if not (raw / "run.json").exists():
        raise FileNotFoundError(f"{out} holds no raw load-test data (raw/run.json)")
    from simulator.model.metrics import NB

    arrays = np.load(raw / "runs.npz", allow_pickle=False)
    meta = json.loads((raw / "run.json").read_text())
    lag_files = out / "loadgen"
    deliveries: list[tuple[float, str, int, str]] = []
    import csv

    for f in sorted(lag_files.glob("lag/*/deliveries-*.csv")):
        with f.open() as fh:
            deliveries += [(float(r[0]), r[1], int(r[2]), r[3]) for r in list(csv.reader(fh))[1:]]
    data = RunData(
        **{k: arrays[k] for k in _ARRAYS},
        provider_of={int(k): v for k, v in meta["provider_of"].items()},
        lag_provider=arrays["lag_provider"].astype(object),
        lag_tier=arrays["lag_tier"].astype(object),
        deliveries=deliveries,
    )
    with gzip.open(raw / "samples.json.gz", "rt") as f:
        doc: dict[str, Any] = json.load(f)
    samples = Samples(
        procs={
            name: {int(pid): [ProcessSample(*x) for x in series] for pid, series in by.items()}
            for name, by in doc["procs"].items()
        },
        machine=[tuple(x) for x in doc["machine"]],
        staleness=[(t, _dense(cells, (3, NB))) for t, cells in doc["staleness"]],
        active=[tuple(x) for x in doc["active"]],
        metrics=[
            (t, d, {(n, tuple(tuple(p) for p in lab)): v for n, lab, v in items})
            for t, d, items in doc["metrics"]
        ],
        imap_connections=[tuple(x) for x in doc["imap_connections"]],
        events=[tuple(x) for x in doc["events"]],
    )  # type: ignore[arg-type]  # JSON lists back into the recorded tuples
    r = meta["record"]
    rec = RunRecord(
        t0=r["t0"],
        idle=Window(**r["idle"]),
        warm=[Window(**w) for w in r["warm"]]
        if isinstance(r["warm"], list)
        else [Window(**r["warm"])],
        started_clean=r["started_clean"],
        integrity=Integrity(**r["integrity"]),
        synced=r["synced"],
        behind=r["behind"],
        calibration=r["calibration"],
        prefix=r.get("prefix", ""),
        measured_by=r.get("measured_by", ""),
    )
    return data, samples, rec
