"""py-spy's samples of a daemon process, summarised per sync (``daemon_throughput.py --profile``).

Each sample is put under the innermost call site it passes through (the provider's HTTP
request, the quota gate, the run's start or commit, bullmq's job handling, the scheduler),
and also under the library of its innermost frame.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def start_profile(pid: int, window_s: float, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling the daemon for the window, as collapsed stacks (one per line)."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen(
        [
            str(spy),
            "record",
            "--format",
            "raw",
            "--nonblocking",
            "--rate",
            "200",
            "--pid",
            str(pid),
            "--duration",
            str(int(window_s)),
            "--output",
            out,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# Libraries reported under one name (by the top-level package of a frame's file).
_GROUPS = {
    "asyncio": "event loop",
    "uvloop": "event loop",
    "selectors": "event loop",
    "ssl": "event loop",
    "socket": "event loop",
    "json": "json",
    "orjson": "json",
    "logging": "logging",
    "structlog": "logging",
    "prometheus_client": "metrics",
}


# What a sample was doing: the innermost frame that names one of these decides.
_ACTIVITIES = (
    ("QuotaLimiters.admit", "quota gate (Redis Lua)"),
    ("HttpClient.", "provider HTTP (aiohttp)"),
    ("AsyncClient.request", "provider HTTP (httpx)"),
    ("AsyncClient.send", "provider HTTP (httpx)"),
    ("Response.json", "JSON decoding"),
    ("MailboxTokens.get", "OAuth token"),
    ("CredentialCipher.decrypt", "credentials decrypt"),
    ("MailboxStore.start_run", "start run (PostgreSQL)"),
    ("SyncRunner._commit", "commit (PostgreSQL)"),
    ("Metrics.", "metrics"),
    ("GmailProvider.", "provider logic"),
    ("GraphProvider.", "provider logic"),
    ("list_folders", "provider logic"),
    ("SyncRunner.", "worker, other"),
    ("Worker.", "bullmq job handling"),
    ("_CountingWorker.", "bullmq job handling"),
    ("Scheduler.cycle", "scheduler: claim and enqueue"),
    ("Scheduler.repair", "scheduler: repair checks"),
    ("Scheduler.trim", "scheduler: trim"),
)


def _activity(frames: list[str]) -> str:
    for frame in reversed(frames):
        name = frame.split(" (")[0]
        for marker, label in _ACTIVITIES:
            if name.startswith(marker):
                return label
    return "event loop and other"


def _group(frame: str) -> str:
    """Library of a py-spy frame ``func (path/file.py:line)``."""
    path = frame.rpartition(" (")[2]
    top = path.split("/")[0].split(".")[0] if "/" in path else path.split(".")[0]
    if top == "daemon":
        parts = path.split("/")
        return "daemon." + (parts[1] if len(parts) > 2 else parts[1].split(".")[0])
    return _GROUPS.get(top, top)


def profile_table(path: str, cpu_ms_per_sync: float, top: int = 30) -> str:
    """Where the sampled CPU went, per sync: self time by library and inclusive time of the
    busiest functions, as shares of the samples times the measured CPU per sync (on a busy
    machine py-spy also samples a runnable thread waiting for a core, so its own sample count
    overstates CPU; the shares stand)."""
    self_by_group: dict[str, int] = {}
    by_activity: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_s)
        frames = stack.split(";")
        total += count
        leaf = _group(frames[-1])
        self_by_group[leaf] = self_by_group.get(leaf, 0) + count
        doing = _activity(frames)
        by_activity[doing] = by_activity.get(doing, 0) + count
        seen: set[str] = set()
        for frame in frames:
            name = f"{frame.split(' (')[0]} [{_group(frame)}]"
            if name not in seen:
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + count
    ms = cpu_ms_per_sync / max(total, 1)
    lines = [f"{total} samples; by activity (ms per sync, share):"]
    for name, n in sorted(by_activity.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:<32} {n * ms:>6.3f}  {n / total:>6.1%}")
    lines.append("self time by library (ms per sync, share):")
    for name, n in sorted(self_by_group.items(), key=lambda kv: -kv[1])[:15]:
        lines.append(f"  {name:<32} {n * ms:>6.3f}  {n / total:>6.1%}")
    lines.append(f"inclusive time, top {top} functions:")
    # The frames every sample passes through (module, CLI, event loop) say nothing.
    busy = [kv for kv in inclusive.items() if kv[1] < 0.8 * total]
    for name, n in sorted(busy, key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {name[:72]:<72} {n * ms:>6.3f}  {n / total:>6.1%}")
    return "\n".join(lines)
