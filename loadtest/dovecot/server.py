"""A throw-away Dovecot IMAP server for tests and load tests.

``DovecotServer(base_dir, port)`` renders a Dovecot 2.3 config into ``base_dir``, keeps
passwd-files of users with Maildir homes under it, and runs ``dovecot -F`` on a loopback
port. Started by root it drops to ``nobody`` first (Dovecot refuses uid 0 for mail
processes anyway); started by a normal user it runs as that user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from string import Template
from types import TracebackType

import structlog

from loadtest.dovecot.maildir import MaildirMessage, folder_dir, write_maildir_message
from loadtest.dovecot.tls import self_signed_certificate

log = structlog.get_logger(__name__)

TEMPLATE = Path(__file__).with_name("dovecot.conf.template")
NOBODY_UID = 65534
NOBODY_GID = 65534
_USERNAME_RE = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")


class DovecotError(RuntimeError):
    """Dovecot is missing, of an unsupported version, or failed to start."""


def dovecot_version(binary: str = "dovecot") -> tuple[int, int, str]:
    """(major, minor, full version string) of the installed Dovecot."""
    path = shutil.which(binary)
    if path is None:
        raise DovecotError(
            f"{binary!r} not found on PATH; run loadtest/dovecot/install.sh (Debian: dovecot-imapd)"
        )
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=False)
    text = out.stdout.strip()
    m = re.match(r"(\d+)\.(\d+)", text)
    if out.returncode != 0 or m is None:
        raise DovecotError(f"cannot read the Dovecot version from {text or out.stderr!r}")
    return int(m.group(1)), int(m.group(2)), text


def require_dovecot_23(binary: str = "dovecot") -> str:
    """The version string; fails clearly on anything but 2.3 (2.4 changed the config syntax)."""
    major, minor, text = dovecot_version(binary)
    if (major, minor) != (2, 3):
        raise DovecotError(
            f"Dovecot {text} found, but the test config is written for 2.3; 2.4 needs "
            "dovecot_config_version, mail_driver/mail_path and named passdb blocks"
        )
    return text


def scratch_dir(prefix: str = "mailsync-dovecot-", *, prefer_memory: bool = True) -> Path:
    """A new directory Dovecot's unprivileged processes can reach (mode 755).

    On tmpfs (``/dev/shm``) when available: creating thousands of Maildir files there is
    over ten times faster than on a VM disk (docs/imap.md has the figures).
    """
    shm = Path("/dev/shm")
    parent = shm if prefer_memory and shm.is_dir() and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    path.chmod(0o755)
    return path


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True, slots=True)
class DovecotUser:
    """A provisioned IMAP account."""

    name: str
    password: str
    home: Path

    @property
    def maildir(self) -> Path:
        """The user's Maildir root (INBOX)."""
        return self.home / "Maildir"


class DovecotServer:
    """One Dovecot instance under ``base_dir`` listening on ``127.0.0.1:port``."""

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        max_userip_connections: int = 10,
        auth_failure_delay_s: float = 0.0,
        process_limit: int = 1024,
        client_limit: int = 1000,
        auth_verbose: bool = True,
        tls: bool = False,
        oauth2_introspection_url: str | None = None,
        binary: str = "dovecot",
    ) -> None:
        self.base_dir = Path(base_dir).resolve()
        # 0 or None: any free port, chosen now so the config can name it.
        self.port = port or free_port()
        self.max_userip_connections = max_userip_connections
        self.auth_failure_delay_s = auth_failure_delay_s
        self.process_limit = process_limit
        self.client_limit = client_limit
        self.auth_verbose = auth_verbose
        self.tls = tls
        # XOAUTH2/OAUTHBEARER tokens are checked by POSTing them to this URL (RFC 7662).
        self.oauth2_introspection_url = oauth2_introspection_url
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            self.uid, self.gid = NOBODY_UID, NOBODY_GID
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
        self._users: dict[str, DovecotUser] = {}
        # Makes Maildir file names unique across calls without a clock or random source.
        self._written = 0

    # --- layout -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """The rendered dovecot.conf."""
        return self.base_dir / "dovecot.conf"

    @property
    def users_dir(self) -> Path:
        """One passwd-file per user (name = user), holding the plaintext test password."""
        return self.base_dir / "users"

    @property
    def log_path(self) -> Path:
        """Dovecot's log file."""
        return self.base_dir / "dovecot.log"

    @property
    def host(self) -> str:
        """Where clients connect."""
        return "127.0.0.1"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            os.chown(path, self.uid, self.gid)

    def _check_reachable(self) -> None:
        # Mail processes run as the mail uid and must be able to walk down to the homes.
        if os.geteuid() != 0:
            return
        for parent in [self.base_dir, *self.base_dir.parents]:
            mode = parent.stat().st_mode
            if parent.stat().st_uid != self.uid and not mode & 0o001:
                raise DovecotError(
                    f"{parent} is not searchable by uid {self.uid}; put the Dovecot base "
                    "directory under a world-searchable path (e.g. tempfile.mkdtemp())"
                )

    def prepare(self) -> None:
        """Create the directory layout and the config."""
        require_dovecot_23(self.binary)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        for sub in ("run", "state", "home", "users"):
            (self.base_dir / sub).mkdir(exist_ok=True)
            self._chown(self.base_dir / sub)
        self._chown(self.base_dir)
        values = {
            "base_dir": str(self.base_dir),
            "imap_port": "0" if self.tls else str(self.port),
            "imaps_port": str(self.port) if self.tls else "0",
            "ssl_settings": self._ssl_settings(),
            "oauth2_mechanisms": " xoauth2 oauthbearer" if self.oauth2_introspection_url else "",
            "oauth2_passdb": self._oauth2_passdb(),
            "user": pwd.getpwuid(self.uid).pw_name,
            "group": grp.getgrgid(self.gid).gr_name,
            "max_userip_connections": str(self.max_userip_connections),
            "auth_failure_delay": f"{int(self.auth_failure_delay_s * 1000)} msecs",
            "auth_verbose": "yes" if self.auth_verbose else "no",
            "process_limit": str(self.process_limit),
            "client_limit": str(self.client_limit),
        }
        self.config_path.write_text(Template(TEMPLATE.read_text()).substitute(values))
        self.log_path.touch()
        self._chown(self.log_path)

    @property
    def cert_path(self) -> Path:
        """The self-signed certificate (PEM) served with ``tls=True``; a CA file for clients."""
        return self.base_dir / "tls" / "cert.pem"

    def _ssl_settings(self) -> str:
        if not self.tls:
            return "ssl = no"
        key_path = self.cert_path.with_name("key.pem")
        if not self.cert_path.exists():
            self.cert_path.parent.mkdir(exist_ok=True)
            cert, key = self_signed_certificate(self.host)
            self.cert_path.write_bytes(cert)
            key_path.write_bytes(key)
            key_path.chmod(0o600)
            for p in (self.cert_path.parent, self.cert_path, key_path):
                self._chown(p)
        return f"ssl = required\nssl_cert = <{self.cert_path}\nssl_key = <{key_path}"

    def _oauth2_passdb(self) -> str:
        if not self.oauth2_introspection_url:
            return ""
        conf = self.base_dir / "oauth2.conf.ext"
        conf.write_text(
            "introspection_mode = post\n"
            f"introspection_url = {self.oauth2_introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        self._chown(conf)
        return (
            f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {conf}\n}}"
        )

    # --- users and mail -----------------------------------------------------------------

    def add_user(self, name: str, password: str) -> DovecotUser:
        """Add an account with an empty Maildir; Dovecot sees it at once."""
        return self.add_users([(name, password)])[0]

    def add_users(self, users: Iterable[tuple[str, str]]) -> list[DovecotUser]:
        """Add accounts with empty Maildirs."""
        made: list[DovecotUser] = []
        for name, password in users:
            if not _USERNAME_RE.match(name):
                raise ValueError(f"user name {name!r}: use letters, digits and ._@+- only")
            if name in self._users:
                raise ValueError(f"user {name!r} already exists")
            if ":" in password or "\n" in password:
                raise ValueError(f"password of {name!r}: ':' and newlines cannot be stored")
            home = self.base_dir / "home" / name
            user = DovecotUser(name, password, home)
            for d in (home, user.maildir, *(user.maildir / s for s in ("cur", "new", "tmp"))):
                d.mkdir(parents=True, exist_ok=True)
                self._chown(d)
            self._write_passwd(user)
            self._users[name] = user
            made.append(user)
        return made

    def _write_passwd(self, u: DovecotUser) -> None:
        entry = self.users_dir / u.name
        entry.write_text(f"{u.name}:{{PLAIN}}{u.password}:{self.uid}:{self.gid}::{u.home}::\n")
        self._chown(entry)

    def set_password(self, user: DovecotUser, password: str) -> DovecotUser:
        """Change a password on the server (as its owner would); returns the updated user."""
        if ":" in password or "\n" in password:
            raise ValueError(f"password of {user.name!r}: ':' and newlines cannot be stored")
        changed = self._users[user.name] = DovecotUser(user.name, password, user.home)
        self._write_passwd(changed)
        # Dovecot re-reads a passwd-file whose mtime changed: make sure it differs.
        stamp = (self.users_dir / user.name).stat().st_mtime - 2
        os.utime(self.users_dir / user.name, (stamp, stamp))
        return changed

    def write_messages(
        self, user: DovecotUser, folder: str, messages: Iterable[MaildirMessage]
    ) -> int:
        """Drop messages straight into the folder's ``cur/``; Dovecot assigns UIDs on next
        access. Much faster than APPEND for bulk data (see docs/imap.md)."""
        target = folder_dir(user.maildir, folder)
        created = not target.exists()
        for sub in ("cur", "new", "tmp"):
            (target / sub).mkdir(parents=True, exist_ok=True)
            self._chown(target / sub)
        if created or folder.upper() != "INBOX":
            self._chown(target)
            marker = target / "maildirfolder"
            if folder.upper() != "INBOX" and not marker.exists():
                marker.touch()
                self._chown(marker)
        count = 0
        for msg in messages:
            self._written += 1
            path = write_maildir_message(target / "cur", msg, f"M{self._written}P{os.getpid()}")
            self._chown(path)
            count += 1
        return count

    # --- process ------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> None:
        """Start Dovecot in the foreground and wait until it greets on the port.

        Dovecot is stopped when the calling *thread* ends (parent-death signal), so call
        this from a thread that outlives the server, normally the main thread.
        """
        if self._proc is not None:
            raise DovecotError("already started")
        if not self.config_path.exists():
            self.prepare()
        dovecot = shutil.which(self.binary)
        assert dovecot is not None  # checked by prepare()
        cmd = [dovecot, "-F", "-c", str(self.config_path)]
        setpriv = shutil.which("setpriv")
        if os.geteuid() == 0 and setpriv is None:
            raise DovecotError("setpriv (util-linux) is needed to drop root for Dovecot")
        if setpriv is not None:
            creds = [f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups"]
            # The master gets SIGTERM if this process dies without stop() (a killed test
            # run), instead of living on as an orphan holding its port.
            cmd = [setpriv, *(creds if os.geteuid() == 0 else []), "--pdeathsig", "TERM", *cmd]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                self._proc = None
                raise DovecotError(f"dovecot exited at start: {err.strip()}\n{self.log_tail()}")
            if self._greets():
                break
            if time.monotonic() > deadline:
                self.stop()
                raise DovecotError(f"no IMAP greeting on port {self.port} within {timeout_s} s")
            time.sleep(0.05)
        log.info("dovecot.started", port=self.port, pid=self._proc.pid, base_dir=str(self.base_dir))

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as raw:
                if not self.tls:
                    return raw.recv(64).startswith(b"* OK")
                ctx = ssl.create_default_context(cafile=str(self.cert_path))
                with ctx.wrap_socket(raw, server_hostname=self.host) as s:
                    return s.recv(64).startswith(b"* OK")
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        """Master process id while running."""
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the master and wait; SIGKILL the process group if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        log.info("dovecot.stopped", port=self.port)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Dovecot's log (for error messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def auth_failures(self) -> int:
        """Failed logins so far, read from Dovecot's log."""
        text = self.log_path.read_text(errors="replace")
        return text.count("Password mismatch") + text.count("unknown user")

    def count_logins(self, user: str) -> int:
        """Successful IMAP logins of ``user`` so far, read from Dovecot's log."""
        pattern = re.compile(rf"imap-login: Info: Login: user=<{re.escape(user)}>")
        return len(pattern.findall(self.log_path.read_text(errors="replace")))

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def users(self) -> Iterator[DovecotUser]:
        """Accounts added through this object."""
        return iter(self._users.values())
