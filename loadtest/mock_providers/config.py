"""Settings of the mock providers, validated with pydantic so every error names its field.

One ``MockConfig`` drives everything that can be tuned at run time: latency, fault injection,
quotas, token lifetime, history retention and the default mailbox size distribution. The
control API patches it with a partial mapping (``merge_config``); the CLI loads it from a
TOML or YAML file (``load_config_file``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from daemon.errors import ConfigError
from daemon.policy import DEFAULT_QUOTA_PRESET, get_quota_preset


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConstantSize(_Strict):
    """Every mailbox gets ``value`` messages."""

    dist: Literal["constant"] = "constant"
    value: int = Field(100, ge=0)
    max: int = Field(100_000, ge=0)


class LognormalSize(_Strict):
    """Mailbox sizes drawn from a lognormal with this median and sigma, capped at ``max``."""

    dist: Literal["lognormal"] = "lognormal"
    median: float = Field(200.0, gt=0)
    sigma: float = Field(1.0, ge=0)
    max: int = Field(5_000, ge=0)


class EmpiricalSize(_Strict):
    """Mailbox sizes drawn uniformly from a list of observed sizes, capped at ``max``."""

    dist: Literal["empirical"] = "empirical"
    values: list[Annotated[int, Field(ge=0)]] = Field(min_length=1)
    max: int = Field(100_000, ge=0)


SizeDist = Annotated[ConstantSize | LognormalSize | EmpiricalSize, Field(discriminator="dist")]


class LatencyDist(_Strict):
    """A per-call service time distribution (milliseconds)."""

    dist: Literal["constant", "exponential", "lognormal", "empirical"] = "constant"
    mean_ms: float = Field(0.0, ge=0)
    # Shape of the lognormal; ``mean_ms`` stays the distribution's mean.
    sigma: float = Field(0.5, ge=0)
    samples_ms: list[Annotated[float, Field(ge=0)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _empirical_needs_samples(self) -> LatencyDist:
        if self.dist == "empirical" and not self.samples_ms:
            raise ValueError("samples_ms must not be empty when dist is 'empirical'")
        return self


class LatencyConfig(LatencyDist):
    """Per-call service time added before a provider answers (milliseconds).

    The top-level distribution applies to every call unless ``providers`` names one for the
    call's provider (``gmail``, ``graph``) or ``methods`` one for the provider and quota
    method (``gmail:messages.get``, ``graph:messages.delta``, ``gmail:token``); the most
    specific wins. A Gmail batch takes the method of its inner calls when they all share
    one, plus ``batch_inner_ms`` per inner call.
    """

    providers: dict[str, LatencyDist] = Field(default_factory=dict)
    methods: dict[str, LatencyDist] = Field(default_factory=dict)
    batch_inner_ms: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _method_keys(self) -> LatencyConfig:
        for key in self.providers:
            if key not in ("gmail", "graph"):
                raise ValueError(f"providers: unknown provider {key!r}; known: gmail, graph")
        for key in self.methods:
            provider, sep, method = key.partition(":")
            if not sep or provider not in ("gmail", "graph") or not method:
                raise ValueError(
                    f"methods: key {key!r} must be 'gmail:<method>' or 'graph:<method>'"
                )
        return self

    def for_call(self, provider: str | None, method: str | None) -> LatencyDist:
        """The distribution of one call (the most specific one configured)."""
        if provider is not None:
            if method is not None:
                found = self.methods.get(f"{provider}:{method}")
                if found is not None:
                    return found
            by_provider = self.providers.get(provider)
            if by_provider is not None:
                return by_provider
        return self


class FaultConfig(_Strict):
    """Share of API calls answered with a 5xx, slowly, or with an unreadable 200."""

    error_rate: float = Field(0.0, ge=0, le=1)
    slow_rate: float = Field(0.0, ge=0, le=1)
    slow_ms: float = Field(5_000.0, ge=0)
    garbage_rate: float = Field(0.0, ge=0, le=1)
    # Token endpoints are spared unless asked: most tests want faults on data calls only.
    include_oauth: bool = False


class CustomLimit(_Strict):
    """A window limit replacing one quota of the preset."""

    limit: int = Field(ge=1)
    period_s: float = Field(gt=0)


class QuotaConfig(_Strict):
    """Which provider limits the mock enforces."""

    enabled: bool = True
    preset: str = DEFAULT_QUOTA_PRESET
    # Multiplies every limit of the preset (burst tests use tiny values).
    scale: float = Field(1.0, gt=0)
    # By quota name (``gmail.user``, ``graph.mailbox`` ...); applied after ``scale``.
    custom: dict[str, CustomLimit] = Field(default_factory=dict)
    # Graph in-flight requests per mailbox; None takes the preset's value, 0 disables.
    max_concurrent_per_mailbox: int | None = Field(None, ge=0)
    # Gmail's way of refusing: 429 + Retry-After, or 403 usageLimits without it.
    gmail_style: Literal["429", "403"] = "429"

    @model_validator(mode="after")
    def _known_names(self) -> QuotaConfig:
        try:
            limits = get_quota_preset(self.preset)
        except KeyError as exc:
            raise ValueError(f"preset: {exc.args[0]}") from None
        known = {q.name for lim in limits.values() for q in lim.quotas}
        unknown = sorted(set(self.custom) - known)
        if unknown:
            raise ValueError(
                f"custom: unknown quota {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return self


class TokenConfig(_Strict):
    """The mock's two OAuth apps and the access-token lifetime."""

    access_token_lifetime_s: int = Field(3599, ge=1)
    gmail_client_id: str = Field("mock-gmail-client", min_length=1)
    gmail_client_secret: str = Field("mock-gmail-secret", min_length=1)
    graph_client_id: str = Field("mock-graph-client", min_length=1)
    graph_client_secret: str = Field("mock-graph-secret", min_length=1)


class HistoryConfig(_Strict):
    """How long change logs (Gmail history, Graph delta state) are kept per mailbox."""

    max_records: int | None = Field(None, ge=1)
    max_age_s: float | None = Field(None, gt=0)


class MockConfig(_Strict):
    """Everything about the mock that can change at run time."""

    seed: int = 1
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    faults: FaultConfig = Field(default_factory=FaultConfig)
    quotas: QuotaConfig = Field(default_factory=QuotaConfig)
    tokens: TokenConfig = Field(default_factory=TokenConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    size: SizeDist = Field(default_factory=LognormalSize)


class PopulateSpec(_Strict):
    """How many seeded mailboxes of each provider to create, and their sizes."""

    gmail: int = Field(0, ge=0, le=1_000_000)
    graph: int = Field(0, ge=0, le=1_000_000)
    seed: int = 1
    size: SizeDist | None = None
    domain: str = Field("example.com", min_length=1, pattern=r"^[A-Za-z0-9.-]+$")


def describe_errors(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    """Pydantic's errors as ``{"field", "message"}`` with dotted field paths."""
    out = []
    for err in exc.errors():
        # Discriminated unions add the tag as a path element; drop it so paths stay readable.
        loc = [str(p) for p in err["loc"] if p not in ("constant", "lognormal", "empirical")]
        field = ".".join([prefix, *loc] if prefix else loc) or "(body)"
        out.append({"field": field, "message": err["msg"]})
    return out


def errors_text(errors: list[dict[str, str]]) -> str:
    """One line naming every bad field."""
    return "; ".join(f"{e['field']}: {e['message']}" for e in errors)


def _deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        # ``size``, ``custom`` and the latency tables are replaced whole: merging two
        # distributions or two sets of limits field by field would produce combinations
        # nobody asked for.
        if (
            isinstance(value, Mapping)
            and isinstance(out.get(key), dict)
            and key not in ("size", "custom", "providers", "methods")
        ):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def merge_config(base: MockConfig, patch: Mapping[str, Any]) -> MockConfig:
    """``base`` with the (possibly nested, partial) ``patch`` applied; raises
    ``ConfigError`` naming every bad field."""
    merged = _deep_merge(base.model_dump(), patch)
    try:
        return MockConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(errors_text(describe_errors(exc))) from exc


def load_config_file(path: Path) -> tuple[MockConfig, PopulateSpec | None]:
    """Read a ``.toml`` or ``.yaml`` file: MockConfig keys at top level plus an optional
    ``populate`` table. Errors name the file and the field."""
    if path.suffix not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"{path}: unknown config format; use .toml, .yaml or .yml")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        if path.suffix == ".toml":
            data: Any = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a table of settings")
    populate_raw = data.pop("populate", None)
    try:
        config = MockConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {errors_text(describe_errors(exc))}") from exc
    populate = None
    if populate_raw is not None:
        try:
            populate = PopulateSpec.model_validate(populate_raw)
        except ValidationError as exc:
            text = errors_text(describe_errors(exc, "populate"))
            raise ConfigError(f"{path}: {text}") from exc
    return config, populate
