"""Provision N Dovecot users with generated mailboxes for load tests.

    mailsync imap provision --users 200 --messages-median 500 --seed 1 --dir D

(``loadtest.dovecot.cli``) writes the Dovecot config, one passwd-file per user, their
Maildirs (messages written straight into ``cur/``) and ``D/users.csv`` (username, password,
messages), plus ``D/provision.json`` so ``mailsync imap serve --dir D`` can start the server
later.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm import tqdm

from loadtest.dovecot.messages import generate_mailbox
from loadtest.dovecot.server import DovecotServer

# Arrival times of generated mail: one year ending at this instant (fixed for repeatability).
END_OF_DATA = 1_790_000_000.0
YEAR_S = 365 * 86400.0


@dataclass(frozen=True, slots=True)
class ProvisionedUser:
    """One account of a provisioned server."""

    name: str
    password: str
    messages: int


@dataclass(frozen=True, slots=True)
class ProvisionSpec:
    """How many users and how much mail; sizes are lognormal (median, sigma), capped."""

    users: int
    messages_median: int
    seed: int = 0
    messages_sigma: float = 1.0
    max_messages: int = 20_000
    port: int = 10143  # 0: any free port
    max_userip_connections: int = 100

    def __post_init__(self) -> None:
        if self.users < 1:
            raise ValueError("users must be >= 1")
        if self.messages_median < 1 or self.max_messages < 1:
            raise ValueError("messages_median and max_messages must be >= 1")
        if self.messages_sigma < 0:
            raise ValueError("messages_sigma must be >= 0")


def message_counts(spec: ProvisionSpec) -> list[int]:
    """Messages per user, drawn from the spec's seeded lognormal."""
    rng = random.Random(spec.seed)
    mu = math.log(spec.messages_median)
    return [
        min(spec.max_messages, max(0, round(rng.lognormvariate(mu, spec.messages_sigma))))
        for _ in range(spec.users)
    ]


def provision(
    base_dir: Path, spec: ProvisionSpec, *, progress: bool = True
) -> tuple[DovecotServer, list[ProvisionedUser]]:
    """Create the server directory with every user and mailbox (Dovecot is not started)."""
    base_dir = Path(base_dir)
    if (base_dir / "provision.json").exists():
        raise FileExistsError(f"{base_dir} is already provisioned; use a new directory")
    server = DovecotServer(base_dir, spec.port, max_userip_connections=spec.max_userip_connections)
    server.prepare()
    counts = message_counts(spec)
    made: list[ProvisionedUser] = []
    names = [(f"user{i:05d}", f"pw{spec.seed}-{i:05d}") for i in range(spec.users)]
    users = server.add_users(names)
    for user, count in tqdm(
        list(zip(users, counts, strict=True)), desc="mailboxes", unit="user", disable=not progress
    ):
        rng = random.Random(f"{spec.seed}:{user.name}")
        server.write_messages(
            user,
            "INBOX",
            generate_mailbox(rng, count, start=END_OF_DATA - YEAR_S, end=END_OF_DATA),
        )
        made.append(ProvisionedUser(user.name, user.password, count))
    with (base_dir / "users.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["username", "password", "messages"])
        out.writerows((u.name, u.password, u.messages) for u in made)
    # The port actually configured (a spec port of 0 means "any free one").
    saved = {**asdict(spec), "port": server.port}
    (base_dir / "provision.json").write_text(json.dumps(saved, indent=2) + "\n")
    return server, made


def open_provisioned(base_dir: Path) -> DovecotServer:
    """The server of a provisioned directory, ready to ``start()``."""
    try:
        spec = ProvisionSpec(**json.loads((Path(base_dir) / "provision.json").read_text()))
    except FileNotFoundError:
        raise FileNotFoundError(f"{base_dir} has no provision.json: provision it first") from None
    return DovecotServer(base_dir, spec.port, max_userip_connections=spec.max_userip_connections)


def read_users(base_dir: Path) -> list[ProvisionedUser]:
    """The accounts listed in ``users.csv``."""
    with (Path(base_dir) / "users.csv").open(newline="") as f:
        return [
            ProvisionedUser(r["username"], r["password"], int(r["messages"]))
            for r in csv.DictReader(f)
        ]
