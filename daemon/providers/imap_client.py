"""One IMAP session over aioimaplib, with the library's gaps closed and errors translated.

aioimaplib is used as a line transport only; three of its behaviours are fixed here:

* it parses a received chunk by recursing once per line, so a response of a few thousand
  lines in one read (a QRESYNC SELECT, a large UID FETCH) raises ``RecursionError`` inside
  ``data_received`` and the command then hangs: the loop below is iterative;
* its FETCH completion check rescans every line of the command for each new line
  (quadratic in the chunk size): the command class below remembers where it was;
* a rejected ``AUTHENTICATE XOAUTH2`` gets a ``+ <error>`` continuation the library never
  answers, so the command hangs until the timeout: we answer with the empty line SASL asks
  for, and the server then fails the command.

A dropped connection fails every pending command at once instead of leaving it to time out.
Library exceptions become ``daemon.errors`` types here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioimaplib import aioimaplib as lib

from daemon.errors import AuthRevoked, PermanentError, RateLimited, TransientError
from daemon.providers.base import RequestObserver, ignore_request
from daemon.providers.imap_parse import parse_capabilities, response_code

PROVIDER = "imap"

# Response codes (RFC 5530) after which retrying the same credentials cannot succeed.
_AUTH_CODES = {"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED"}
_BUSY_CODES = {"LIMIT", "INUSE"}
_TRANSIENT_CODES = {"UNAVAILABLE", "SERVERBUG"}
_TOO_MANY_RE = re.compile(rb"too many (simultaneous )?connections", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Reply:
    """A completed command: tagged result, untagged lines (literals as ``bytearray``)."""

    result: str
    untagged: list[bytes]
    text: bytes

    @property
    def ok(self) -> bool:
        """True for a tagged OK."""
        return self.result == "OK"


class _FetchCommand(lib.FetchCommand):  # type: ignore[misc]  # aioimaplib is untyped
    """FETCH whose completion check is incremental instead of quadratic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scanned = 0
        self._last_start = 0
        self._depth = 0

    def wait_data(self) -> bool:
        lines = self._resp_lines
        for i in range(self._scanned, len(lines)):
            line = lines[i]
            if isinstance(line, bytes) and not isinstance(line, bytearray):
                if self.FETCH_MESSAGE_DATA_RE.match(line):
                    self._last_start = i
                    self._depth = 0
                self._depth += line.count(b"(") - line.count(b")")
        self._scanned = len(lines)
        return bool(self._depth != 0)


class _Protocol(lib.IMAP4ClientProtocol):  # type: ignore[misc]  # aioimaplib is untyped
    """aioimaplib's protocol with an iterative response loop (see the module docstring)."""

    def _handle_responses(
        self,
        data: bytes,
        line_handler: Callable[[bytes, Any], Any],
        current_cmd: Any = None,
    ) -> None:
        while True:
            if not data:
                if self.pending_sync_command is not None:
                    self.pending_sync_command.flush()
                if current_cmd is not None and current_cmd.wait_data():
                    raise lib.IncompleteRead(current_cmd)
                return
            if current_cmd is not None and current_cmd.wait_literal_data():
                data = current_cmd.append_literal_data(data)
                if current_cmd.wait_literal_data():
                    raise lib.IncompleteRead(current_cmd)
            line, separator, tail = data.partition(lib.CRLF)
            if not separator:
                raise lib.IncompleteRead(current_cmd, data)
            cmd = line_handler(line, current_cmd)
            begin_literal = lib.literal_data_re.match(line)
            if begin_literal:
                if cmd is None:
                    cmd = lib.Command("NIL", "unused")
                cmd.begin_literal_data(int(begin_literal.group("size")))
                data, current_cmd = tail, cmd
            elif cmd is not None and cmd.wait_data():
                data, current_cmd = tail, cmd
            else:
                data, current_cmd = tail, None

    # The signature (``timeout`` included) is the overridden aioimaplib method's.
    async def fetch(
        self,
        message_set: str,
        message_parts: str,
        by_uid: bool = False,
        timeout: Any = None,  # noqa: ASYNC109
    ) -> Any:
        return await self.execute(
            _FetchCommand(
                self.new_tag(),
                message_set,
                message_parts,
                prefix="UID" if by_uid else "",
                loop=self.loop,
                timeout=timeout,
            )
        )

    def _continuation(self, line: bytes) -> None:
        pending = self.pending_sync_command
        if pending is not None and pending.name == "AUTHENTICATE":
            # SASL error challenge: an empty response makes the server complete with NO.
            pending.append_to_resp(line)
            self.transport.write(lib.CRLF)
            return
        super()._continuation(line)

    def connection_lost(self, exc: Exception | None) -> None:
        commands = [self.pending_sync_command, *self.pending_async_commands.values()]
        for cmd in commands:
            if cmd is not None and not cmd._event.is_set():
                cmd._exception = lib.Abort(f"connection lost: {exc or 'closed by server'}")
                cmd.close(b"connection lost", "BYE")
        super().connection_lost(exc)


class _Client(lib.IMAP4):  # type: ignore[misc]  # aioimaplib is untyped
    """aioimaplib.IMAP4 with our protocol; TLS through ``ssl_context`` (implicit TLS).

    ``server_hostname`` is the name the certificate must match when ``host`` is an address
    (the provider connects to the addresses its host policy checked, not to the name).
    """

    def __init__(self, *args: Any, server_hostname: str | None = None, **kwargs: Any) -> None:
        self._server_hostname = server_hostname
        super().__init__(*args, **kwargs)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop, conn_lost_cb)
        name = self._server_hostname if ssl_context is not None else None
        self._client_task = local_loop.create_task(
            local_loop.create_connection(
                lambda: self.protocol, host, port, ssl=ssl_context, server_hostname=name
            )
        )


def fixed_client(
    host: str,
    port: int,
    *,
    timeout_s: float,
    ssl_context: ssl.SSLContext | None = None,
    conn_lost_cb: Callable[[Exception | None], None] | None = None,
    server_hostname: str | None = None,
) -> lib.IMAP4:
    """An ``aioimaplib.IMAP4`` with the fixes above, for code that drives it directly."""
    return _Client(
        host,
        port,
        timeout=timeout_s,
        conn_lost_cb=conn_lost_cb,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )


def _to_reply(resp: Any) -> Reply:
    lines = list(resp.lines)
    text = bytes(lines.pop()) if lines else b""
    return Reply(str(resp.result), lines, text)


def auth_error(what: str, reply: Reply) -> Exception:
    """The daemon error for a refused LOGIN/AUTHENTICATE."""
    code = response_code(reply.text)
    detail = reply.text.decode("utf-8", "replace").strip()
    if code in _TRANSIENT_CODES:
        return TransientError(f"{what} refused for now: {detail}", provider=PROVIDER)
    if code in _BUSY_CODES or _TOO_MANY_RE.search(reply.text):
        return RateLimited(f"{what}: {detail}", provider=PROVIDER, status=None)
    if reply.result == "BAD":
        return PermanentError(f"{what} rejected as malformed: {detail}", provider=PROVIDER)
    return AuthRevoked(f"{what} failed: {detail}", provider=PROVIDER)


# Commands by the method names of the call model (``daemon.policy.sync_calls``), so the
# latency histogram and the simulator's ``latency_by_method`` speak of the same things.
_COMMAND_METHODS = {
    "SELECT": "imap.select",
    "UID FETCH": "imap.fetch",
    "UID SEARCH": "imap.search",
    "LOGIN": "imap.login",
    "AUTHENTICATE XOAUTH2": "imap.login",
    "NOOP": "imap.noop",
    "CAPABILITY": "imap.capability",
    "STATUS": "imap.status",
}


def command_method(what: str) -> str:
    """The call-model method name of an IMAP command (``ENABLE QRESYNC`` → ``imap.enable``)."""
    if what.startswith("ENABLE"):
        return "imap.enable"
    return _COMMAND_METHODS.get(what, "imap." + what.split()[0].lower())


class ImapConnection:
    """A connected (and after ``login``/``xoauth2`` authenticated) IMAP session."""

    def __init__(
        self, client: lib.IMAP4, *, created_at: float, observe: RequestObserver = ignore_request
    ) -> None:
        self._client = client
        self._observe = observe
        self.created_at = created_at
        self.last_used = created_at
        self.broken = False
        self.capabilities: frozenset[str] = frozenset()
        self.enabled: frozenset[str] = frozenset()
        self.selected: str | None = None

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout_s: float,
        now: float,
        observe: RequestObserver = ignore_request,
        server_hostname: str | None = None,
    ) -> ImapConnection:
        """Open the socket and wait for the greeting; network failures are transient.

        ``observe`` is told the time of the handshake (``imap.connect``) and of every command.
        With ``host`` an address, ``server_hostname`` is the name TLS verifies.
        """
        holder: list[ImapConnection] = []

        def lost(_exc: Exception | None) -> None:
            if holder:
                holder[0].broken = True

        client = fixed_client(
            host,
            port,
            timeout_s=timeout_s,
            conn_lost_cb=lost,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
        )
        conn = cls(client, created_at=now, observe=observe)
        holder.append(conn)
        started = time.perf_counter()
        try:
            await client.wait_hello_from_server()
        except BaseException as e:
            # Do not leave a half-open socket behind (the connect task may still finish).
            conn.broken = True
            client._client_task.cancel()
            if client.protocol.transport is not None:
                client.protocol.transport.close()
            if isinstance(e, OSError | TimeoutError | lib.AioImapException):
                raise TransientError(
                    f"cannot connect to {host}:{port}: {e!r}", provider=PROVIDER
                ) from e
            raise
        observe(PROVIDER, "imap.connect", time.perf_counter() - started)
        conn.capabilities = frozenset(c.upper() for c in client.protocol.capabilities)
        return conn

    async def _run(self, what: str, call: Awaitable[Any]) -> Reply:
        if self.broken:
            raise TransientError(f"{what}: connection already broken", provider=PROVIDER)
        started = time.perf_counter()
        try:
            resp = await call
        except (TimeoutError, lib.CommandTimeout) as e:
            self.broken = True
            raise TransientError(f"{what} timed out", provider=PROVIDER) from e
        except (OSError, lib.AioImapException) as e:
            self.broken = True
            raise TransientError(f"{what} failed: {e}", provider=PROVIDER) from e
        self._observe(PROVIDER, command_method(what), time.perf_counter() - started)
        reply = _to_reply(resp)
        if reply.result == "BYE":
            self.broken = True
            raise TransientError(f"{what}: server closed the connection", provider=PROVIDER)
        return reply

    async def _after_auth(self, reply: Reply) -> None:
        # Servers send the new list as a response code or an untagged line, or not at all.
        caps = parse_capabilities(reply.text)
        for line in reply.untagged:
            if caps is None and not isinstance(line, bytearray):
                caps = parse_capabilities(line)
        if caps is None:
            caps = await self._capability()
        self.capabilities = caps
        # aioimaplib checks its own (mis-parsed) set before ENABLE/MOVE/IDLE.
        self._client.protocol.capabilities = set(caps)

    async def _capability(self) -> frozenset[str]:
        reply = await self._run(
            "CAPABILITY",
            self._client.protocol.execute(
                lib.Command(
                    "CAPABILITY", self._client.protocol.new_tag(), loop=self._client.protocol.loop
                )
            ),
        )
        # aioimaplib strips the "CAPABILITY" name from the untagged line it hands back.
        for line in reply.untagged:
            words = bytes(line).decode("ascii", "replace").upper().split()
            if "IMAP4REV1" in words or "IMAP4REV2" in words:
                return frozenset(words)
        raise TransientError("CAPABILITY answered without a capability list", provider=PROVIDER)

    async def login(self, username: str, password: str) -> None:
        """LOGIN; raises ``AuthRevoked`` on wrong credentials."""
        if "LOGINDISABLED" in self.capabilities:
            raise PermanentError(
                "server disables LOGIN (Outlook): configure auth = xoauth2", provider=PROVIDER
            )
        reply = await self._run("LOGIN", self._client.login(username, password))
        if not reply.ok:
            raise auth_error("LOGIN", reply)
        await self._after_auth(reply)

    async def xoauth2(self, username: str, token: str) -> None:
        """SASL XOAUTH2; raises ``AuthRevoked`` when the token is refused."""
        reply = await self._run("AUTHENTICATE XOAUTH2", self._client.xoauth2(username, token))
        if not reply.ok:
            raise auth_error("AUTHENTICATE XOAUTH2", reply)
        await self._after_auth(reply)

    async def enable(self, capability: str) -> None:
        """ENABLE an extension (QRESYNC); a refusal is transient."""
        reply = await self._run(f"ENABLE {capability}", self._client.enable(capability))
        if not reply.ok:
            raise TransientError(f"ENABLE {capability} refused: {reply.text!r}", provider=PROVIDER)
        self.enabled = self.enabled | {capability.upper()}

    async def select(self, mailbox_arg: str) -> Reply:
        """SELECT with a pre-encoded mailbox argument (quoted name plus any modifiers)."""
        self.selected = None
        reply = await self._run("SELECT", self._client.select(mailbox_arg))
        if reply.ok:
            self.selected = mailbox_arg
        return reply

    async def uid_fetch(self, uid_set: str, items: str) -> Reply:
        """UID FETCH; the timeout counts inactivity, so long answers are fine."""
        return await self._run("UID FETCH", self._client.uid("fetch", uid_set, items))

    async def uid_search(self, *criteria: str) -> Reply:
        """UID SEARCH without a CHARSET argument (criteria are ASCII)."""
        return await self._run("UID SEARCH", self._client.uid_search(*criteria, charset=None))

    async def list(self, pattern_arg: str) -> Reply:
        """LIST with an empty reference and a pre-encoded (quoted) mailbox pattern."""
        return await self._run("LIST", self._client.list('""', pattern_arg))

    async def status(self, mailbox_arg: str, items: str) -> Reply:
        """STATUS of a mailbox without selecting it."""
        return await self._run("STATUS", self._client.status(mailbox_arg, items))

    async def noop(self) -> bool:
        """A liveness check; False (and marked broken) when the session is gone."""
        try:
            reply = await self._run("NOOP", self._client.noop())
        except TransientError:
            return False
        if not reply.ok:
            self.broken = True
        return reply.ok

    async def close(self) -> None:
        """LOGOUT politely if possible, then drop the socket."""
        if not self.broken:
            with contextlib.suppress(OSError, TimeoutError, lib.AioImapException):
                await asyncio.wait_for(self._client.logout(), 2.0)
        self.broken = True
        transport = self._client.protocol.transport
        if transport is not None:
            transport.close()
