"""The base of every section of a scenario file: strict, frozen, finite."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def known(lookup: Any, name: str) -> None:
    # The policy's lookups raise KeyError; validators must raise ValueError to be reported.
    try:
        lookup(name)
    except KeyError as e:
        raise ValueError(e.args[0]) from None


class Section(BaseModel):
    """A section of a scenario: unknown fields refused, values frozen, no infinities."""

    # No infinities or NaN: a horizon of .inf ran until killed.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
