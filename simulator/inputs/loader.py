"""Reading scenario and calibration files (YAML or TOML) with errors that name field and line.

Each document is parsed twice: once into plain data, once into a map from field path to
line number, so a pydantic validation error can be reported as ``file:line: field: reason``.
A scenario may ``extends:`` another one (a path relative to it, or a shipped scenario name);
the child's values win, mappings merge, lists are replaced.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from daemon.errors import ConfigError
from simulator.inputs import bounds
from simulator.inputs.scenario import Scenario

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

SHIPPED = "simulator.scenarios"


@dataclass(frozen=True)
class Document:
    """Parsed data plus where each field came from."""

    data: dict[str, Any]
    lines: dict[Loc, tuple[str, int]]
    source: str


def shipped_dir() -> Path:
    """The folder of shipped scenarios and catalogues inside the installed package."""
    return Path(str(resources.files(SHIPPED)))


def shipped_scenarios() -> list[str]:
    """Names of the shipped scenario presets (files not starting with an underscore)."""
    return sorted(
        p.stem
        for p in shipped_dir().glob("*.yaml")
        if not p.stem.startswith("_") and p.stem not in ("base", "catalogue")
    )


def resolve(ref: str, relative_to: Path | None = None) -> Path:
    """A file path from a path or a shipped scenario name."""
    candidates = []
    p = Path(ref)
    if relative_to is not None and not p.is_absolute():
        candidates.append(relative_to / p)
    candidates.append(p)
    for stem in (ref, f"{ref}.yaml", f"{ref}.toml"):
        candidates.append(shipped_dir() / stem)
    for c in candidates:
        if c.is_file():
            return c
    known = ", ".join(shipped_scenarios())
    raise ConfigError(f"scenario {ref!r}: no such file or shipped scenario (shipped: {known})")


def _yaml_lines(node: yaml.Node, loc: Loc, out: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = (*loc, str(k.value))
            out[key] = k.start_mark.line + 1
            _yaml_lines(v, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = (*loc, i)
            out[key] = item.start_mark.line + 1
            _yaml_lines(item, key, out)


_TOML_ARRAY = re.compile(r"^\[\[\s*([^\]]+?)\s*\]\]")
_TOML_TABLE = re.compile(r"^\[\s*([^\]]+?)\s*\]")
_TOML_KEY = re.compile(r"^([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _toml_keys(text: str) -> list[str]:
    return [k.strip().strip("\"'") for k in text.split(".")]


def _toml_lines(text: str) -> dict[Loc, int]:
    # tomllib keeps no positions; a line scan of headers and keys is enough for messages.
    out: dict[Loc, int] = {}
    table: Loc = ()
    counters: dict[Loc, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if m := _TOML_ARRAY.match(line):
            path: Loc = tuple(_toml_keys(m.group(1)))
            idx = counters.get(path, 0)
            counters[path] = idx + 1
            out.setdefault(path, n)
            table = (*path, idx)
            out[table] = n
        elif m := _TOML_TABLE.match(line):
            table = tuple(_toml_keys(m.group(1)))
            out.setdefault(table, n)
        elif m := _TOML_KEY.match(line):
            out[(*table, *_toml_keys(m.group(1)))] = n
    return out


def read_document(path: Path) -> Document:
    """Parse one YAML or TOML file; syntax errors become ``ConfigError`` with the line."""
    src = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(
            f"{src}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    lines: dict[Loc, int]
    if path.suffix == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, ValueError, RecursionError) as e:
            raise ConfigError(f"{src}: invalid TOML: {_one_line(e)}") from None
        lines = _toml_lines(text)
    else:
        try:
            data = yaml.safe_load(text)
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{src}:{where}: invalid YAML: {_one_line(e)}") from None
        except (ValueError, TypeError, RecursionError) as e:
            # A scalar YAML cannot convert (a date like 2024-13-45) or nesting too deep.
            raise ConfigError(f"{src}: invalid YAML: {_one_line(e)}") from None
        lines = {}
        if node is not None:
            _yaml_lines(node, (), lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{src}: line 1: the document must be a mapping of fields")
    return Document(data, {k: (src, v) for k, v in lines.items()}, src)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())


def _replaces(base: Any, over: Any) -> bool:
    # A mapping merges into a mapping, except a distribution of another kind: its fields
    # (a lognormal's sigma under an exponential) mean nothing to the new kind.
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return True
    return "kind" in over and "kind" in base and over["kind"] != base["kind"]


def _merge(base: Any, over: Any) -> Any:
    if _replaces(base, over):
        return over
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if k in base else v
    return out


def _replaced(base: Any, over: Any, loc: Loc = ()) -> list[Loc]:
    """Where ``over`` replaces ``base`` rather than merging into it."""
    if _replaces(base, over):
        return [loc]
    out: list[Loc] = []
    for k, v in over.items():
        if k in base:
            out.extend(_replaced(base[k], v, (*loc, k)))
    return out


def _inherited_lines(parent: Document, child: dict[str, Any]) -> dict[Loc, tuple[str, int]]:
    # The parent's lines, less those under what the child replaced: an error there is in
    # the child's file.
    gone = _replaced(parent.data, child)
    return {
        loc: hit
        for loc, hit in parent.lines.items()
        if not any(loc[: len(g)] == g and len(loc) > len(g) for g in gone)
    }


def load_document(ref: str | Path, relative_to: Path | None = None, depth: int = 0) -> Document:
    """A document with its ``extends:`` chain merged in."""
    path = resolve(str(ref), relative_to) if not isinstance(ref, Path) else ref
    doc = read_document(path)
    parent_ref = doc.data.pop("extends", None)
    if parent_ref is None:
        return doc
    if depth > 8:
        raise ConfigError(f"{doc.source}: extends: chain deeper than 8 files")
    if not isinstance(parent_ref, str):
        line = doc.lines.get(("extends",), (doc.source, 0))[1]
        raise ConfigError(f"{doc.source}: line {line}: extends: must be a file or scenario name")
    parent = load_document(parent_ref, path.parent, depth + 1)
    lines = {**_inherited_lines(parent, doc.data), **doc.lines}
    return Document(_merge(parent.data, doc.data), lines, doc.source)


def _where(doc: Document, loc: Loc) -> str:
    for n in range(len(loc), 0, -1):
        hit = doc.lines.get(loc[:n])
        if hit is not None:
            return f"{hit[0]}: line {hit[1]}" if hit[1] > 0 else hit[0]
    return doc.source


# pydantic's error types of a value out of bounds: the loader says why the bound exists.
_BOUND_ERRORS = frozenset(
    {"less_than_equal", "less_than", "greater_than_equal", "greater_than", "finite_number"}
)


def validate(model: type[M], doc: Document) -> M:
    """``model`` validated from ``doc``; every problem names its field and line."""
    try:
        return model.model_validate(doc.data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            # Union members add their tag to the path; drop those so the path reads as YAML.
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS))
            msg = err["msg"].removeprefix("Value error, ")
            # Cross-field rules say which field they are about ("providers: ..." or
            # "overrides: batch_size: ..."): point there, as deep as the file names it.
            head, sep, rest = msg.partition(": ")
            while sep and (*loc, head) in doc.lines:
                loc, msg = (*loc, head), rest
                head, sep, rest = msg.partition(": ")
            field = ".".join(str(p) for p in loc) or "(document)"
            why = bounds.WHY.get(field) or bounds.WHY.get(str(loc[-1]) if loc else "")
            if err["type"] in _BOUND_ERRORS and why:
                msg = f"{msg} ({why})"
            problems.append(f"{_where(doc, loc)}: {field}: {msg}")
        if len(problems) == 1:
            raise ConfigError(problems[0]) from None
        raise ConfigError(f"{len(problems)} problems:\n  " + "\n  ".join(problems)) from None


_UNION_TAGS = frozenset({"constant", "exponential", "lognormal", "uniform", "empirical"})


def apply_overrides(doc: Document, overrides: Mapping[str, Any]) -> Document:
    """``doc`` with dotted-path values replaced (command-line ``--set`` style)."""
    data = copy.deepcopy(doc.data)
    lines = dict(doc.lines)
    for key, value in overrides.items():
        *heads, last = key.split(".")
        node = data
        for h in heads:
            child = node.setdefault(h, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {key}: {h} is not a mapping of fields")
            node = child
        node[last] = value
        # An error in a value given on the command line points at the option, not the file.
        loc = tuple(key.split("."))
        lines = {k: v for k, v in lines.items() if k[: len(loc)] != loc}
        lines[loc] = (f"--set {key}", 0)
    return Document(data, lines, doc.source)


def load_scenario(ref: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """A validated ``Scenario`` from a file or shipped name, with optional dotted overrides."""
    doc = load_document(ref if isinstance(ref, Path) else str(ref))
    if overrides:
        doc = apply_overrides(doc, overrides)
    return validate(Scenario, doc)
