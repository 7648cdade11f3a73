"""How each provider answers in a scenario: latency, pages, errors, the real provider's
limits, Graph's folders and an IMAP server's modes and connections."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, model_validator

from daemon import policy
from daemon.providers.imap import KNOWN_CONNECTION_LIMITS
from simulator.inputs.distributions import Constant, Distribution, Lognormal
from simulator.inputs.section import Section, known

PROVIDERS: tuple[str, ...] = ("gmail", "graph", "imap")
IMAP = PROVIDERS.index("imap")

ImapMode = Literal["qresync", "condstore", "plain"]
# The server each IMAP mode stands for (``policy.FetchShape.imap_mode``), for its connection cap.
MODE_SERVER: dict[str, str] = {"qresync": "dovecot", "condstore": "gmail", "plain": "outlook"}


class ErrorRates(Section):
    """Per-sync failure probabilities by kind."""

    transient: float = Field(default=0.002, ge=0, le=1)
    auth_revoked: float = Field(default=0.0001, ge=0, le=1)
    permanent: float = Field(default=0.00002, ge=0, le=1)


class ProviderModel(Section):
    """Latency, throttling and failures of one provider as the daemon sees them."""

    latency_s: Distribution = Lognormal(mean=0.15, sigma=0.5)
    latency_by_method: dict[str, Distribution] = Field(default_factory=dict)
    # Extra time per inner call of a Gmail HTTP batch.
    batch_inner_s: float = Field(default=0.005, ge=0)
    # Fixed time per sync outside API calls (token refresh, connection set-up).
    sync_overhead_s: Distribution = Constant(value=0.0)
    # Probability that a request is answered 429 regardless of quotas.
    rate_429: float = Field(default=0.0, ge=0, le=1)
    retry_after_s: Distribution = Constant(value=10.0)
    errors: ErrorRates = ErrorRates()
    # The real provider's limits when they differ from what the daemon enforces
    # (a quota preset name); requests beyond them are answered 429.
    actual_quotas: str | None = None
    # How long an OAuth access token lasts (Gmail and Graph); each daemon process fetches
    # its own, so a sync on a process without a live one makes one more request ("token").
    token_lifetime_s: float = Field(default=3599.0, ge=300)

    @model_validator(mode="after")
    def _check(self) -> ProviderModel:
        if self.actual_quotas is not None:
            known(policy.get_quota_preset, self.actual_quotas)
        return self


class GraphModel(ProviderModel):
    """Microsoft Graph: the folders of a mailbox decide the calls of every sync.

    ``policy.sync_calls("graph", ...)`` counts one delta round per folder and, when the whole
    mailbox is synced (the daemon's default), the folder lists read first: one page of the
    top-level folders plus one per folder with child folders. Defaults are the policy's.
    """

    # Folders synced per mailbox, child folders included.
    folders: int = Field(default=policy.DEFAULT_FETCH.graph_folders, ge=1)
    # Synced folders that have child folders (one childFolders list each per sync).
    parent_folders: int = Field(default=policy.DEFAULT_FETCH.graph_parent_folders, ge=0)
    # False: the daemon syncs a configured folder list (graph.folders) and lists nothing.
    list_folders: bool = policy.DEFAULT_FETCH.graph_list_folders

    @model_validator(mode="after")
    def _check_graph(self) -> GraphModel:
        if self.parent_folders > self.folders:
            raise ValueError("parent_folders: cannot exceed folders")
        return self

    def fetch_shape(self, shape: policy.FetchShape) -> policy.FetchShape:
        """``shape`` with this mailbox's folders."""
        return replace(
            shape,
            graph_folders=self.folders,
            graph_parent_folders=self.parent_folders,
            graph_list_folders=self.list_folders,
        )


def _imap_by_method() -> dict[str, Distribution]:
    return {"imap.fetch": Lognormal(mean=0.12, sigma=0.5)}


class ImapModel(ProviderModel):
    """An IMAP server: latency per round trip, what it offers, folders, connection set-up.

    Calls per sync come from ``policy.sync_calls("imap", ...)`` with this mode and folder
    count; a sync on a process without a live pooled connection adds the set-up round trips.
    """

    # Per command round trip (not per HTTP request); a header FETCH carries more data.
    latency_s: Distribution = Lognormal(mean=0.08, sigma=0.5)
    latency_by_method: dict[str, Distribution] = Field(default_factory=_imap_by_method)
    mode: ImapMode = "qresync"
    folders: int = Field(default=1, ge=1)
    # Round trips of a new connection before LOGIN: TCP and TLS 1.3 handshakes.
    connect_round_trips: int = Field(default=2, ge=0)
    # None: LOGIN, plus ENABLE QRESYNC in qresync mode, as ``ImapProvider._open`` sends.
    login_round_trips: int | None = Field(default=None, ge=1)
    # Simultaneous connections the server allows one account; None: the mode's server's.
    server_connection_limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_imap(self) -> ImapModel:
        if self.actual_quotas is not None:
            raise ValueError("actual_quotas: IMAP has no request quota; leave it null")
        if self.rate_429:
            raise ValueError("rate_429: IMAP servers answer no 429; leave it 0")
        return self

    @property
    def logins(self) -> int:
        """IMAP commands of a login (LOGIN, ENABLE)."""
        if self.login_round_trips is not None:
            return self.login_round_trips
        return 2 if self.mode == "qresync" else 1

    @property
    def connection_limit(self) -> int:
        """Simultaneous connections per account the server accepts."""
        if self.server_connection_limit is not None:
            return self.server_connection_limit
        return KNOWN_CONNECTION_LIMITS[MODE_SERVER[self.mode]]

    def fetch_shape(self) -> policy.FetchShape:
        """The daemon's fetch shape with this server's mode and folder count."""
        return replace(policy.DEFAULT_FETCH, imap_mode=self.mode, imap_folders=self.folders)


class Providers(Section):
    """Provider models by name; read like a mapping (``providers["imap"]``)."""

    gmail: ProviderModel = ProviderModel()
    graph: GraphModel = GraphModel()
    imap: ImapModel = ImapModel()

    def __getitem__(self, name: str) -> ProviderModel:
        if name not in PROVIDERS:
            raise KeyError(name)
        model: ProviderModel = getattr(self, name)
        return model

    def __contains__(self, name: object) -> bool:
        return name in PROVIDERS

    def get(self, name: str) -> ProviderModel | None:
        """The model of ``name``; None for an unknown provider."""
        return self[name] if name in PROVIDERS else None
