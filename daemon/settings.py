"""Typed settings, built once at start-up and passed down.

Precedence, lowest first: built-in defaults, the TOML config file, ``MAILSYNC_*`` environment
variables (nested with ``__``: ``MAILSYNC_POLICY__CONCURRENCY__HIGH=20``), then CLI flags.
Secrets are ``SecretStr`` and print as ``**********``.
"""

from __future__ import annotations

import json
import os
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

from daemon.errors import ConfigError
from daemon.policy import (
    DEFAULT_PROFILE,
    DEFAULT_QUOTA_PRESET,
    PROFILES,
    QUOTA_MARGIN_DEFAULT,
    Profile,
    ProviderLimits,
    apply_quota_margin,
    get_profile,
    get_quota_preset,
    scale_quotas,
    validate_profile,
    with_overrides,
)
from daemon.provider_settings import GmailSettings, GraphSettings, ImapSettings

_STRICT = ConfigDict(extra="forbid")


class ConcurrencyOverrides(BaseModel):
    """Workers per tier; unset values come from the profile."""

    model_config = _STRICT
    high: int | None = Field(default=None, ge=0)
    normal: int | None = Field(default=None, ge=0)
    low: int | None = Field(default=None, ge=0)


class RetryOverrides(BaseModel):
    """Backoff settings; unset values come from the profile."""

    model_config = _STRICT
    base_s: float | None = Field(default=None, gt=0)
    factor: float | None = Field(default=None, ge=1)
    cap_s: float | None = Field(default=None, gt=0)
    jitter: float | None = Field(default=None, ge=0, le=1)
    max_failures: int | None = Field(default=None, ge=1)


class QuotaOverride(BaseModel):
    """Replace parts of one provider quota, keyed by its name (``gmail.user``)."""

    model_config = _STRICT
    limit: int | None = Field(default=None, ge=2)
    period_s: int | None = Field(default=None, ge=1)
    burst: int | None = Field(default=None, ge=1)


class PolicySettings(BaseModel):
    """The profile and its overrides, and the provider quotas to enforce."""

    model_config = _STRICT
    profile: str = DEFAULT_PROFILE
    batch_size: int | None = Field(default=None, ge=1)
    incremental_threshold_h: float | None = Field(default=None, gt=0)
    low_after_h: float | None = Field(default=None, ge=0)
    normal_after_h: float | None = Field(default=None, ge=0)
    scheduler_interval_s: float | None = Field(default=None, gt=0)
    sync_interval_s: float | None = Field(default=None, gt=0)
    # Quota one run of a full sync may wait for before it commits and frees its worker.
    full_sync_quota_wait_s: float | None = Field(default=None, ge=0)
    # Idle lower-tier workers take higher-tier jobs (``policy.serving_order``).
    work_conserving: bool | None = None
    concurrency: ConcurrencyOverrides = ConcurrencyOverrides()
    retry: RetryOverrides = RetryOverrides()
    quota_preset: str = DEFAULT_QUOTA_PRESET
    # Multiplies every quota of the preset (what-ifs, and mocks whose quotas are scaled).
    quota_scale: float = Field(default=1.0, gt=0)
    quotas: dict[str, QuotaOverride] = {}
    # Share of each provider quota (the preset, scaled and overridden as above) that the
    # daemon enforces: headroom for clock skew and other clients; 1.0 uses whole quotas.
    quota_margin: float = Field(default=QUOTA_MARGIN_DEFAULT, gt=0, le=1)

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str) -> str:
        if v not in PROFILES:
            raise ValueError(f"unknown profile {v!r}; known: {', '.join(PROFILES)}")
        return v

    @field_validator("quota_preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        try:
            get_quota_preset(v)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        return v

    def build_profile(self) -> Profile:
        """The named profile with every override applied."""
        overrides = self.model_dump(
            exclude={"profile", "quota_preset", "quota_scale", "quotas", "quota_margin"},
            exclude_none=True,
        )
        base = get_profile(self.profile)
        try:
            return with_overrides(base, overrides)
        except ValueError as exc:
            raise ConfigError(f"policy: {exc}") from exc

    def build_limits(self) -> dict[str, ProviderLimits]:
        """The limits the daemon enforces: the provider's (preset, scaled, with per-quota
        overrides), then the quota margin, which leaves headroom under them."""
        out: dict[str, ProviderLimits] = {}
        known = set()
        for provider, limits in get_quota_preset(self.quota_preset).items():
            if self.quota_scale != 1.0:
                limits = scale_quotas(limits, self.quota_scale)
            quotas = []
            for q in limits.quotas:
                known.add(q.name)
                o = self.quotas.get(q.name)
                if o is not None:
                    try:
                        q = replace(q, **o.model_dump(exclude_none=True))
                    except ValueError as exc:
                        raise ConfigError(f"policy.quotas.{q.name}: {exc}") from exc
                quotas.append(q)
            out[provider] = apply_quota_margin(
                replace(limits, quotas=tuple(quotas)), self.quota_margin
            )
        for name in self.quotas:
            if name not in known:
                raise ConfigError(
                    f"policy.quotas: unknown quota {name!r}; known: {', '.join(sorted(known))}"
                )
        return out


class Settings(BaseSettings):
    """Every setting of a mailsync process."""

    model_config = SettingsConfigDict(
        env_prefix="MAILSYNC_", env_nested_delimiter="__", extra="forbid"
    )

    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/mailsync")
    # Connections per process; default derives from the worker count.
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int | None = Field(default=None, ge=2)
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    # Namespace for every Redis key (queues, limiters); separate deployments on one Redis.
    redis_prefix: str = Field(default="mailsync", pattern=r"^[A-Za-z0-9_.-]+$")
    # Fernet keys (urlsafe base64, 32 bytes each) of the credentials at rest, newest first:
    # the first encrypts, every one decrypts (rotation: docs/daemon.md). In the environment a
    # JSON list or comma-separated: MAILSYNC_ENCRYPTION_KEYS=new,old.
    encryption_keys: Annotated[list[SecretStr], NoDecode] = []
    # The one-key form (existing configs); set it or encryption_keys, not both.
    encryption_key: SecretStr | None = None
    # Bearer token of the HTTP API; the API refuses to start without one.
    api_token: SecretStr | None = None
    api_enabled: bool = True
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    policy: PolicySettings = PolicySettings()
    gmail: GmailSettings = GmailSettings()
    graph: GraphSettings = GraphSettings()
    imap: ImapSettings = ImapSettings()
    # Job lock: a job whose process died is re-run after at most lock + stalled interval.
    lock_duration_s: float = Field(default=30.0, gt=0)
    stalled_interval_s: float = Field(default=15.0, gt=0)
    # A mailbox queued this long without a job in Redis gets its job re-added.
    requeue_after_s: float = Field(default=120.0, gt=0)
    # A run older than this is presumed lost and the mailbox made due again.
    max_run_s: float = Field(default=3600.0, gt=0)
    shutdown_timeout_s: float = Field(default=30.0, ge=0)
    # A job whose run hit a PostgreSQL or Redis error is retried this often, the delay
    # doubling from the backoff; a run given up after the last attempt is released by the
    # repair as soon as the database answers (docs/daemon.md, "Outages").
    infra_attempts: int = Field(default=6, ge=1, le=50)
    infra_backoff_s: float = Field(default=2.0, gt=0, le=600)
    # /healthz fails when a background loop (scheduler, repair, trim) has been failing this long.
    task_unhealthy_after_s: float = Field(default=30.0, gt=0)
    # How often old sync_runs rows are deleted (all of them past the retention, in batches).
    trim_interval_s: float = Field(default=60.0, gt=0)
    keep_completed_jobs: int = Field(default=1000, ge=0)
    keep_failed_jobs: int = Field(default=5000, ge=0)
    sync_runs_retention_days: float = Field(default=3.0, gt=0)
    scheduler_enabled: bool = True
    workers_enabled: bool = True
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    process_name: str = Field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    seed: int | None = None

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _key_list(cls, v: object) -> object:
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [k.strip() for k in text.split(",") if k.strip()]
        return v

    @model_validator(mode="after")
    def _one_key_form(self) -> Settings:
        if self.encryption_key is not None and self.encryption_keys:
            raise ValueError(
                "set encryption_keys (several keys, newest first) or encryption_key "
                "(one key), not both: move encryption_key into encryption_keys"
            )
        return self

    def credential_keys(self) -> list[SecretStr]:
        """The keys of the credentials at rest, newest (encrypting) first; may be empty."""
        if self.encryption_key is not None:
            return [self.encryption_key]
        return list(self.encryption_keys)

    @property
    def profile(self) -> Profile:
        """The effective policy profile."""
        return self.policy.build_profile()

    def pool_max(self) -> int:
        """PostgreSQL connections per process: one per worker plus scheduler and API."""
        if self.db_pool_max is not None:
            return self.db_pool_max
        return self.profile.concurrency.total + 6


# Query parameters of a database or Redis URL that carry a secret (libpq's and redis-py's).
_SECRET_PARAMS = frozenset({"password", "sslpassword", "passfile", "sslkey", "token"})


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for logs: in the user part and in the query
    string (``?password=...``, as libpq accepts)."""
    parts = urlsplit(url)
    if parts.password is not None:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
        masked = [(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(masked, safe="*/"))
    return urlunsplit(parts)


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _format_validation(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"{loc}: {err['msg']}")
    return f"invalid settings ({source}):\n  " + "\n  ".join(lines)


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from defaults, an optional TOML file, the environment and overrides.

    Raises ``ConfigError`` naming the bad field (and the file) on invalid input.
    """
    file_data: dict[str, Any] = {}
    source = "environment"
    if config_file is not None:
        source = str(config_file)
        try:
            file_data = tomllib.loads(config_file.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {config_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_file}: {exc}") from exc
    try:
        env_data = _EnvSource(Settings, os.environ if environ is None else environ)()
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"invalid settings (environment): {exc}") from exc
    merged = _deep_merge(_deep_merge(file_data, env_data), dict(overrides or {}))
    try:
        settings = _InitOnly(**merged)
    except ValidationError as exc:
        raise ConfigError(_format_validation(exc, source)) from exc
    try:
        profile = settings.profile
    except ValueError as exc:
        raise ConfigError(f"policy: {exc}") from exc
    problems = validate_profile(profile)
    if problems:
        raise ConfigError("policy: " + "; ".join(problems))
    settings.policy.build_limits()
    return settings


class _InitOnly(Settings):
    """Settings fed only by the merged mapping that ``load_settings`` assembles."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment parser over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = {k: v for k, v in environ.items() if k.upper().startswith("MAILSYNC_")}
        super().__init__(settings_cls, env_prefix="MAILSYNC_", env_nested_delimiter="__")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._given, False, False, None)
