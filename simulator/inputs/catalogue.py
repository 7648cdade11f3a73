"""The instance catalogue: VM sizes and managed Redis/PostgreSQL tiers with monthly prices."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from daemon.errors import ConfigError
from simulator.inputs.loader import read_document, shipped_dir, validate


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Instance(_Model):
    """A VM size."""

    vcpu: int = Field(ge=1)
    ram_gb: float = Field(gt=0)
    usd_month: float = Field(ge=0)


class RedisTier(_Model):
    """A managed Redis tier and the command rate it sustains."""

    ops_per_s: float = Field(gt=0)
    ram_gb: float = Field(gt=0)
    usd_month: float = Field(ge=0)


class PostgresTier(_Model):
    """A managed PostgreSQL tier; database milliseconds are charged against its vCPUs."""

    vcpu: int = Field(ge=1)
    ram_gb: float = Field(gt=0)
    usd_month: float = Field(ge=0)


class Catalogue(_Model):
    """Every priced option."""

    instances: dict[str, Instance] = Field(min_length=1)
    redis: dict[str, RedisTier] = Field(min_length=1)
    postgres: dict[str, PostgresTier] = Field(min_length=1)

    def instance(self, name: str) -> Instance:
        """The named VM size; ``ConfigError`` naming the known ones."""
        try:
            return self.instances[name]
        except KeyError:
            raise ConfigError(
                f"daemon.instance: unknown {name!r}; known: {', '.join(self.instances)}"
            ) from None

    def redis_for(
        self, ops_per_s: float, name: str | None = None, ram_gb: float = 0.0
    ) -> tuple[str, RedisTier]:
        """The named Redis tier, or the cheapest that carries ``ops_per_s`` and holds
        ``ram_gb`` below 70 % (the largest when none does)."""
        if name is not None:
            if name not in self.redis:
                raise ConfigError(f"costs.redis: unknown {name!r}; known: {', '.join(self.redis)}")
            return name, self.redis[name]
        fits = [
            (t.usd_month, n)
            for n, t in self.redis.items()
            if ops_per_s <= 0.7 * t.ops_per_s and ram_gb <= 0.7 * t.ram_gb
        ]
        n = min(fits)[1] if fits else max(self.redis, key=lambda k: self.redis[k].ops_per_s)
        return n, self.redis[n]

    def postgres_for(
        self, busy_cores: float, name: str | None = None, ram_gb: float = 0.0
    ) -> tuple[str, PostgresTier]:
        """The named PostgreSQL tier, or the cheapest whose vCPUs stay below 70 % busy and
        whose memory holds ``ram_gb`` below 70 % (the largest when none does)."""
        if name is not None:
            if name not in self.postgres:
                known = ", ".join(self.postgres)
                raise ConfigError(f"costs.postgres: unknown {name!r}; known: {known}")
            return name, self.postgres[name]
        fits = [
            (t.usd_month, n)
            for n, t in self.postgres.items()
            if busy_cores <= 0.7 * t.vcpu and ram_gb <= 0.7 * t.ram_gb
        ]
        n = min(fits)[1] if fits else max(self.postgres, key=lambda k: self.postgres[k].vcpu)
        return n, self.postgres[n]


@lru_cache(maxsize=8)
def load_catalogue(ref: str = "default") -> Catalogue:
    """The shipped catalogue (``default``) or one from a YAML/TOML file."""
    path = shipped_dir() / "catalogue.yaml" if ref == "default" else Path(ref)
    return validate(Catalogue, read_document(path))
