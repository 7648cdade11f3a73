"""Populate a running mock and register its mailboxes with a running daemon's API.

The bridge between ``mailsync mock-providers run`` and ``mailsync daemon run`` for manual
trials and load tests: the mock hands out refresh tokens only when it creates mailboxes, so
this asks it for N mailboxes and posts each one to ``/tenants/{id}/mailboxes``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from tqdm import tqdm

from daemon.errors import ConfigError


@dataclass(frozen=True)
class Registered:
    """What ``register_mock_mailboxes`` did."""

    tenant_id: int
    created: int
    skipped: int


def _check(resp: httpx.Response, what: str) -> Any:
    if resp.status_code >= 400:
        raise ConfigError(f"{what}: HTTP {resp.status_code}: {resp.text[:300]}")
    return resp.json()


def register_mock_mailboxes(
    mock_url: str,
    api_url: str,
    api_token: str,
    tenant: str,
    gmail: int,
    graph: int,
    seed: int = 1,
    size: dict[str, Any] | None = None,
    sync_interval_s: int | None = None,
    progress: bool = True,
) -> Registered:
    """Create mailboxes in the mock and register them under ``tenant`` (created if absent)."""
    auth = {"Authorization": f"Bearer {api_token}"}
    with httpx.Client(timeout=60) as http:
        body: dict[str, Any] = {"gmail": gmail, "graph": graph, "seed": seed}
        if size:
            body["size"] = size
        creds = _check(http.post(f"{mock_url}/_mock/populate", json=body), "mock populate")
        tenants = _check(http.get(f"{api_url}/tenants", headers=auth), "list tenants")
        found = [t for t in tenants if t["name"] == tenant]
        if found:
            tenant_id = int(found[0]["id"])
        else:
            payload: dict[str, Any] = {"name": tenant}
            if sync_interval_s is not None:
                payload["sync_interval_s"] = sync_interval_s
            tenant_id = int(
                _check(
                    http.post(f"{api_url}/tenants", json=payload, headers=auth), "create tenant"
                )["id"]
            )
        created = skipped = 0
        for c in tqdm(creds, desc="registering mailboxes", unit="mbx", disable=not progress):
            resp = http.post(
                f"{api_url}/tenants/{tenant_id}/mailboxes",
                json={
                    "provider": c["provider"],
                    "address": c["address"],
                    "credentials": {"refresh_token": c["refresh_token"]},
                },
                headers=auth,
            )
            if resp.status_code == 409:
                skipped += 1
                continue
            _check(resp, f"register {c['address']}")
            created += 1
    return Registered(tenant_id, created, skipped)
