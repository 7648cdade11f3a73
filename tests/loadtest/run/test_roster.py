"""The registration bodies a run sends and the ids it keeps from the answers."""

from __future__ import annotations

from loadtest.run.plan import MailboxPlan, TenantPlan
from loadtest.run.roster import (
    ImapEndpoint,
    Roster,
    mock_mailboxes_body,
    tenants_body,
)

GMAIL = MailboxPlan(0, 0, "gmail", "a@example.com", "", "", 0.01, 120, 300)
IMAP = MailboxPlan(1, 0, "imap", "b@example.org", "b", "secret-b", 0.01, 40, 300)
TENANT = TenantPlan(0, "t0", "mixed", 300, (0, 1))
BY_INDEX = {0: GMAIL, 1: IMAP}
DOVECOT = ImapEndpoint(14300, ["INBOX", "Sent"])


def test_bodies_carry_each_providers_credentials_and_endpoint() -> None:
    assert mock_mailboxes_body([GMAIL]) == {
        "mailboxes": [{"provider": "gmail", "address": "a@example.com", "messages": 120, "seed": 0}]
    }
    body = tenants_body([TENANT], BY_INDEX, {"a@example.com": "rt-a"}, DOVECOT)
    (tenant,) = body["tenants"]
    assert (tenant["name"], tenant["sync_interval_s"]) == ("t0", 300)
    gmail, imap = tenant["mailboxes"]
    assert gmail == {
        "provider": "gmail",
        "address": "a@example.com",
        "credentials": {"refresh_token": "rt-a"},
    }
    assert imap["credentials"] == {"password": "secret-b"}
    assert imap["config"] == {
        "host": "127.0.0.1",
        "port": 14300,
        "tls": "implicit",
        "username": "b",
        "auth": "password",
        "folders": ["INBOX", "Sent"],
    }


def test_roster_keeps_the_ids_by_plan_index_and_round_trips() -> None:
    roster = Roster()
    answer = [
        {
            "id": 7,
            "mailboxes": [
                {"address": "b@example.org", "id": 12},
                {"address": "a@example.com", "id": 11},
            ],
        }
    ]
    roster.record([TENANT], answer, BY_INDEX)
    assert roster.tenant_ids == {0: 7}
    assert roster.mailbox_ids == {0: 11, 1: 12}
    assert Roster.from_json(roster.to_json()) == roster
