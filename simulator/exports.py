"""Lazy re-exports for the rooms' ``__init__`` (PEP 562).

Each room states its public names in ``__all__`` and where each lives; a name is imported on
first use, so that importing one module of a room (``simulator.inputs.bounds`` for the
command line's option bounds) does not import the whole room and what it needs (pandas,
matplotlib): the daemon's process mounts the simulator's commands and must stay small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module


def lazy(package: str, where: Mapping[str, str]) -> Callable[[str], object]:
    """The ``__getattr__`` of ``package``: ``where`` maps a public name to the module that
    defines it, or to ``""`` for a submodule used as a whole (``formatting as fm``)."""

    def __getattr__(name: str) -> object:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = where[name]
        if not module:
            return import_module(f"{package}.{name}")
        return getattr(import_module(f"{package}.{module}"), name)

    return __getattr__
