"""The IMAP provider: full and incremental sync of configured folders over aioimaplib.

One ``ImapProvider`` serves a daemon process. Connections are pooled per login identity
and reused across syncs for a bounded time (see ``imap_pool`` and ``imap_identity``); folder
logic lives in ``imap_sync``, the cursor in ``imap_cursor``, response parsing in
``imap_parse`` and ``imap_message``, the aioimaplib adapter in ``imap_client``.
docs/imap.md describes the cursor, the capability paths and the call counts.
"""

from __future__ import annotations

import ipaddress
import secrets
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from daemon.crypto import secret_digest
from daemon.errors import AuthRevoked, ConfigError, PermanentError, RateLimited, TransientError
from daemon.policy import SyncKind, imap_reauth_after
from daemon.provider_settings import ImapSettings as ImapConfig
from daemon.providers.base import MailboxContext, RequestObserver, SyncResult, ignore_request
from daemon.providers.imap_client import PROVIDER, ImapConnection
from daemon.providers.imap_cursor import CURSOR_VERSION, parse_cursor
from daemon.providers.imap_hosts import HostPolicy, HostRefused, IPNetwork
from daemon.providers.imap_identity import LoginIdentity
from daemon.providers.imap_pool import ImapPool
from daemon.providers.imap_sync import FolderSyncer, Mode

log = structlog.get_logger(__name__)

# Per-account connection caps of common servers, for choosing ``max_connections``.
KNOWN_CONNECTION_LIMITS: Mapping[str, int] = {"gmail": 15, "dovecot": 10, "outlook": 20}


# Defaults come from the daemon's settings (one definition); tests build variants directly.
_DEFAULTS = ImapConfig()


@dataclass(frozen=True)
class ImapSettings:
    """Process-wide IMAP settings; each mailbox adds its server settings in its config."""

    folders: tuple[str, ...] = tuple(_DEFAULTS.folders)
    fetch_chunk: int = _DEFAULTS.fetch_chunk
    flag_scan_chunk: int = _DEFAULTS.flag_scan_chunk
    # Per account and per daemon process: N processes open up to N x this many.
    max_connections: int = _DEFAULTS.max_connections_per_account
    keepalive_s: float = _DEFAULTS.idle_keepalive_s
    max_idle_s: float = _DEFAULTS.max_idle_s
    # Cap on a pooled login's age; the bound used is also under 0.9 x the mailbox's interval.
    reauth_after_s: float = _DEFAULTS.reauth_after_s
    command_timeout_s: float = _DEFAULTS.command_timeout_s
    verify_tls: bool = _DEFAULTS.verify_tls
    # Extra CA bundle (PEM) for servers with a private CA; the system store is used too.
    ca_file: str | None = _DEFAULTS.ca_file
    max_header_bytes: int = _DEFAULTS.max_header_bytes
    # Capabilities to pretend the server lacks (e.g. {"QRESYNC", "CONDSTORE"} = Outlook).
    ignore_capabilities: frozenset[str] = frozenset()
    # Non-public networks a mailbox's server may be in (imap_hosts; tests pass LOOPBACK).
    allowed_networks: tuple[IPNetwork, ...] = tuple(_DEFAULTS.allowed_networks)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    def __post_init__(self) -> None:
        checks = {
            "folders": bool(self.folders) and all(isinstance(f, str) and f for f in self.folders),
            "fetch_chunk": self.fetch_chunk >= 1,
            "flag_scan_chunk": self.flag_scan_chunk >= 1,
            "max_connections": self.max_connections >= 1,
            "keepalive_s": self.keepalive_s >= 0,
            "max_idle_s": self.max_idle_s >= self.keepalive_s,
            "reauth_after_s": self.reauth_after_s > 0,
            "command_timeout_s": self.command_timeout_s > 0,
            "max_header_bytes": self.max_header_bytes >= 1024,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"invalid IMAP settings: {', '.join(bad)}")
        object.__setattr__(
            self, "ignore_capabilities", frozenset(c.upper() for c in self.ignore_capabilities)
        )


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """A mailbox's server settings (``MailboxContext.config``), validated."""

    host: str
    port: int
    tls: str
    username: str
    auth: str
    folders: tuple[str, ...]

    def identity(self, mailbox_id: int, secret_digest: bytes) -> LoginIdentity:
        """The pool key of this mailbox's logins (see ``imap_identity``)."""
        return LoginIdentity(
            self.host, self.port, self.tls, self.username, self.auth, mailbox_id, secret_digest
        )

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], default_folders: tuple[str, ...]) -> AccountConfig:
        """Validate; a bad field is a ``PermanentError`` naming it (retrying cannot help)."""

        def bad(name: str, why: str) -> PermanentError:
            return PermanentError(f"mailbox config.{name}: {why}", provider=PROVIDER)

        host = cfg.get("host")
        if not isinstance(host, str) or not host:
            raise bad("host", "missing")
        port = cfg.get("port", 993)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise bad("port", f"{port!r} is not a TCP port")
        tls = cfg.get("tls", "implicit")
        if tls == "starttls":
            raise bad("tls", "STARTTLS is not implemented by aioimaplib; use implicit TLS (993)")
        if tls not in ("implicit", "none"):
            raise bad("tls", f"{tls!r}: use 'implicit' (or 'none' for loopback tests)")
        if tls == "none" and not _is_loopback(host):
            raise bad("tls", "plaintext IMAP is only allowed to a loopback address")
        username = cfg.get("username")
        if not isinstance(username, str) or not username:
            raise bad("username", "missing")
        auth = cfg.get("auth", "password")
        if auth not in ("password", "xoauth2"):
            raise bad("auth", f"{auth!r}: use 'password' or 'xoauth2'")
        folders = cfg.get("folders") or default_folders
        if isinstance(folders, str) or not all(isinstance(f, str) and f for f in folders):
            raise bad("folders", "must be a list of folder names")
        return cls(host, port, tls, username, auth, tuple(dict.fromkeys(folders)))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapProvider:
    """Syncs IMAP mailboxes; one instance per daemon process."""

    name = "imap"

    def __init__(
        self, settings: ImapSettings | None = None, observe: RequestObserver = ignore_request
    ) -> None:
        self.settings = settings or ImapSettings()
        self.observe = observe
        s = self.settings
        self.pool = ImapPool(s.max_connections, s.keepalive_s, s.max_idle_s, s.clock)
        self._ssl: ssl.SSLContext | None = None
        # Keys the digests that tell logins apart; random per process, never stored.
        self._digest_key = secrets.token_bytes(32)

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            if self.settings.ca_file:
                try:
                    ctx.load_verify_locations(cafile=self.settings.ca_file)
                except (OSError, ssl.SSLError) as e:
                    raise ConfigError(f"IMAP settings ca_file: {e}") from e
            if not self.settings.verify_tls:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl = ctx
        return self._ssl

    def _mode(self, conn: ImapConnection) -> Mode:
        caps = conn.capabilities - self.settings.ignore_capabilities
        if "QRESYNC" in caps and "QRESYNC" in conn.enabled:
            return Mode.QRESYNC
        if "CONDSTORE" in caps:
            return Mode.CONDSTORE
        return Mode.PLAIN

    async def _connect(self, account: AccountConfig) -> ImapConnection:
        """Connect to the addresses the host policy allows, in resolver order, checked now
        (the name may resolve differently than at registration); a refused host is a
        ``PermanentError``, an unresolvable one transient."""
        policy = HostPolicy(self.settings.allowed_networks)
        try:
            addresses = await policy.resolve(account.host, account.port)
        except HostRefused as exc:
            if exc.rule == "not_resolvable":
                raise TransientError(f"mailbox config.host: {exc}", provider=PROVIDER) from exc
            raise PermanentError(
                f"mailbox config.host refused by the IMAP host policy: {exc}", provider=PROVIDER
            ) from exc
        for i, address in enumerate(addresses):
            try:
                return await ImapConnection.connect(
                    address,
                    account.port,
                    ssl_context=self._ssl_context() if account.tls == "implicit" else None,
                    timeout_s=self.settings.command_timeout_s,
                    now=self.settings.clock(),
                    observe=self.observe,
                    server_hostname=account.host,
                )
            except TransientError:
                if i == len(addresses) - 1:
                    raise
        raise AssertionError("resolve() returns at least one address")

    async def _open(self, account: AccountConfig, mailbox: MailboxContext) -> ImapConnection:
        await mailbox.gate.acquire("imap.login")
        conn = await self._connect(account)
        try:
            await self._authenticate(conn, account, mailbox)
            caps = conn.capabilities - self.settings.ignore_capabilities
            if "QRESYNC" in caps and "ENABLE" in caps:
                await mailbox.gate.acquire("imap.enable")
                await conn.enable("QRESYNC")
        except RateLimited:
            # The server's own per-user connection cap (lower than ours, or other clients).
            mailbox.gate.throttled(None)
            await conn.close()
            raise
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _authenticate(
        self, conn: ImapConnection, account: AccountConfig, mailbox: MailboxContext
    ) -> None:
        """LOGIN or XOAUTH2; a refused token is refreshed and tried once more."""
        if account.auth == "password":
            password = mailbox.credentials.get("password")
            if not password:
                raise AuthRevoked("no IMAP password stored", provider=PROVIDER)
            await conn.login(account.username, password)
            return
        try:
            await conn.xoauth2(account.username, await mailbox.tokens.get())
        except AuthRevoked:
            # The cached access token may have expired early: one fresh try.
            await mailbox.gate.acquire("imap.login")
            token = await mailbox.tokens.get(force_refresh=True)
            await conn.xoauth2(account.username, token)

    async def sync(
        self, mailbox: MailboxContext, kind: SyncKind, cursor: Mapping[str, Any] | None
    ) -> SyncResult:
        """Sync the mailbox's folders; see docs/imap.md for what each kind does."""
        account = AccountConfig.from_config(mailbox.config, self.settings.folders)
        prev = parse_cursor(cursor) if kind is SyncKind.INCREMENTAL else None
        result = SyncResult(kind=kind, cursor={})
        states: dict[str, Any] = {}
        unavailable: list[str] = []
        fully = 0
        s = self.settings
        calls_before = mailbox.gate.calls

        async def opener() -> ImapConnection:
            return await self._open(account, mailbox)

        who = account.identity(
            mailbox.mailbox_id, secret_digest(self._digest_key, mailbox.credentials)
        )
        reauth = imap_reauth_after(s.reauth_after_s, mailbox.sync_interval_s)
        async with self.pool.connection(who, opener, mailbox.gate, reauth) as conn:
            syncer = FolderSyncer(
                conn,
                mailbox.gate,
                self._mode(conn),
                s.fetch_chunk,
                s.flag_scan_chunk,
                s.max_header_bytes,
            )
            for folder in account.folders:
                state = prev.get(folder) if prev is not None else None
                if state is None:
                    fr = await syncer.full(folder)
                    fr.fell_back = kind is SyncKind.INCREMENTAL
                else:
                    fr = await syncer.incremental(folder, state)
                result.upserts.extend(fr.upserts)
                result.flag_updates.extend(fr.flag_updates)
                result.deletes.extend(fr.deletes)
                result.skipped.extend(fr.skipped)
                result.fell_back_to_full |= fr.fell_back
                if fr.full:
                    fully += 1
                    result.full_scopes.append(folder)
                if fr.state is None:
                    unavailable.append(folder)
                else:
                    states[folder] = fr.state.to_json()
        if len(unavailable) == len(account.folders):
            raise PermanentError(
                f"none of the folders {list(account.folders)} exist", provider=PROVIDER
            )
        # Folders dropped from the configuration: their stored messages go too.
        for folder in (prev or {}).keys() - set(account.folders):
            result.full_scopes.append(folder)
        if kind is SyncKind.INCREMENTAL and fully == len(account.folders):
            result.kind = SyncKind.FULL
        # Includes LOGIN/ENABLE/NOOP when the pool had to open or check a connection.
        result.api_calls = mailbox.gate.calls - calls_before
        result.cursor = {"v": CURSOR_VERSION, "folders": states}
        log.info(
            "imap.synced",
            mailbox_id=mailbox.mailbox_id,
            kind=str(result.kind),
            mode=str(syncer.mode),
            upserts=len(result.upserts),
            flags=len(result.flag_updates),
            deletes=len(result.deletes),
            skipped=len(result.skipped),
            calls=result.api_calls,
        )
        return result

    async def aclose(self) -> None:
        """Log out of every pooled connection."""
        await self.pool.aclose()


def build_imap_provider(cfg: ImapConfig, observe: RequestObserver = ignore_request) -> ImapProvider:
    """The provider from the daemon's ``Settings.imap`` section."""
    keepalive = float(cfg.idle_keepalive_s)
    return ImapProvider(
        ImapSettings(
            folders=tuple(cfg.folders),
            fetch_chunk=cfg.fetch_chunk,
            flag_scan_chunk=cfg.flag_scan_chunk,
            max_connections=cfg.max_connections_per_account,
            keepalive_s=keepalive,
            max_idle_s=max(keepalive, float(cfg.max_idle_s)),
            reauth_after_s=float(cfg.reauth_after_s),
            command_timeout_s=cfg.command_timeout_s,
            verify_tls=cfg.verify_tls,
            ca_file=cfg.ca_file,
            max_header_bytes=cfg.max_header_bytes,
            allowed_networks=tuple(cfg.allowed_networks),
        ),
        observe,
    )
