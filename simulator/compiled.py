"""Build the event model compiled with mypyc, beside the sources rather than over them.

The event model's hot modules (``simulator/model/``, the GCRA and the scheduler's pure
claim in ``daemon/``) run about twice as fast compiled. Compiled extensions placed next to
the sources would shadow every later edit of them, so the build goes to a copy of the
``daemon`` and ``simulator`` packages in ``build/compiled/`` (extensions are found before
sources in the same folder), with a manifest of the sources it was built from. A process
uses it when that folder comes first on its path::

    python -m simulator.compiled               # or: make compiled
    PYTHONPATH=build/compiled mailsync report
    python benchmarks/sim_speed.py --compiled

A build older than its sources refuses to run (``refuse_stale``, called as the model's
package loads), so a forgotten rebuild cannot run code the sources no longer hold.

The same seed gives the same results compiled or not (``tests/simulator/test_compiled.py``);
nothing else changes, so a build is optional and the plain sources are what is developed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "build" / "compiled"
PACKAGES = ("daemon", "simulator")
# The modules compiled: the event model and the policy functions it calls per job. Not
# compiled: the package's __init__ (it only names what lives where) and ``resources`` (run
# once per replication, and handed numpy arrays by the fast path where its hints say float,
# which compiled code refuses).
PLAIN = ("__init__.py", "resources.py")
MODULES = (
    *sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "simulator" / "model").glob("*.py")
        if p.name not in PLAIN
    ),
    "daemon/gcra.py",
    "daemon/policy/scheduling.py",
)
MANIFEST = "SOURCES.json"
_REBUILD = "run `python -m simulator.compiled`"


def sources(root: Path) -> dict[str, str]:
    """SHA-256 of every file of the packages under ``root`` (their data files included)."""
    out: dict[str, str] = {}
    for pkg in PACKAGES:
        for p in sorted((root / pkg).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".c"):
                out[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def stale(out: Path = DEFAULT_OUT, root: Path | None = None) -> str | None:
    """Why the build in ``out`` is not of the current sources in ``root`` (by default the
    folder it was built from), or None when it is."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return f"no compiled model in {out}: {_REBUILD}"
    recorded = json.loads(manifest.read_text())
    if not isinstance(recorded, dict) or not {"files", "root"} <= recorded.keys():
        return f"the compiled model in {out} has no readable manifest: {_REBUILD}"
    built: dict[str, str] = recorded["files"]
    root = root or Path(recorded["root"])
    now = sources(root)
    changed = sorted(set(built) ^ set(now) | {k for k in built.keys() & now if built[k] != now[k]})
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        )
        return f"the compiled model in {out} is older than {shown} in {root}: {_REBUILD}"
    return None


def refuse_stale(package_init: str) -> None:
    """Raise ``RuntimeError`` when the package whose ``__init__`` is ``package_init`` (two
    levels under a build's folder) belongs to a build older than its sources: a process
    started with ``PYTHONPATH=build/compiled`` must not run code the sources no longer
    hold. Outside a build, nothing to check."""
    out = Path(package_init).resolve().parents[2]
    if (out / MANIFEST).is_file() and (why := stale(out)):
        raise RuntimeError(why)


def is_compiled() -> bool:
    """Whether this process runs the compiled event model."""
    from simulator.model import engine  # here: building and checking need no model

    return not engine.__file__.endswith(".py")


def build(out: Path = DEFAULT_OUT, root: Path = ROOT) -> float:
    """Copy the packages to ``out``, compile ``MODULES`` there; returns the seconds taken."""
    t0 = time.perf_counter()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for pkg in PACKAGES:
        shutil.copytree(
            root / pkg, out / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c")
        )
    # mypyc writes its C and setup script to ./build and the extensions beside the modules.
    done = subprocess.run(
        [sys.executable, "-m", "mypyc", *MODULES],
        cwd=out,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise SystemExit(f"mypyc failed (exit {done.returncode}):\n{tail}")
    shutil.rmtree(out / "build", ignore_errors=True)
    # Written last: a build that stopped half way has no manifest and is not used.
    manifest = {"root": str(root), "files": sources(out)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m simulator.compiled", description=(__doc__ or "").splitlines()[0]
    )
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="only say whether the build is current")
    args = ap.parse_args()
    if args.check:
        why = stale(args.out)
        print(why or f"{args.out} is current")
        raise SystemExit(1 if why else 0)
    print(f"compiling {len(MODULES)} modules with mypyc into {args.out} (about a minute) ...")
    secs = build(args.out)
    print(f"built in {secs:.0f} s; use it with PYTHONPATH={args.out}")


if __name__ == "__main__":
    main()
