"""Microsoft Graph mock: JSON batching (``POST /v1.0/$batch``) with Graph's shapes."""

from __future__ import annotations

from typing import Any

from loadtest.mock_providers.testing import MockHarness as Mock

DELTA = "/me/mailFolders/{}/messages/delta?$select=subject"
FOLDERS = ("inbox", "archive", "drafts", "sentitems", "deleteditems", "junkemail")


async def _setup(mock: Mock, messages: int = 40) -> tuple[dict[str, Any], dict[str, str]]:
    creds = await mock.create("graph", messages=messages, seed=5)
    return creds, await mock.login(creds)


def _requests(n: int, folders: tuple[str, ...] = FOLDERS) -> list[dict[str, Any]]:
    return [
        {
            "id": str(i),
            "method": "GET",
            "url": DELTA.format(folders[i % len(folders)]),
            "headers": {"Prefer": "odata.maxpagesize=5"},
        }
        for i in range(n)
    ]


async def _batch(mock: Mock, headers: dict[str, str], body: Any) -> Any:
    return await mock.client.post("/v1.0/$batch", headers=headers, json=body)


async def test_batch_answers_each_request_as_alone_matched_by_id(mock: Mock) -> None:
    _, headers = await _setup(mock)
    r = await _batch(mock, headers, {"requests": _requests(6)})
    assert r.status_code == 200
    answers = r.json()["responses"]
    assert sorted(a["id"] for a in answers) == [str(i) for i in range(6)]
    # No order is promised, and the mock does not keep the request order.
    assert [a["id"] for a in answers] != [str(i) for i in range(6)]
    for a in answers:
        folder = FOLDERS[int(a["id"])]
        alone = await mock.client.get(
            "/v1.0" + DELTA.format(folder),
            headers={**headers, "Prefer": "odata.maxpagesize=5"},
        )
        assert a["status"] == 200 and a["body"] == alone.json()
        assert a["headers"]["content-type"].startswith("application/json")
    stats = mock.svc.stats
    # One HTTP request; twelve delta calls (six inside the batch, six alone).
    assert stats.requests["graph.$batch"] == 1
    assert stats.requests["graph.messages.delta"] == 6
    assert stats.calls["graph.messages.delta"] == 12


async def test_inner_requests_are_throttled_on_their_own_inside_a_200(mock: Mock) -> None:
    mock.svc.update_config(
        {"quotas": {"enabled": True, "custom": {"graph.mailbox": {"limit": 4, "period_s": 30}}}}
    )
    _, headers = await _setup(mock)
    r = await _batch(mock, headers, {"requests": _requests(6)})
    assert r.status_code == 200
    by_id = {a["id"]: a for a in r.json()["responses"]}
    # The token request is the OAuth endpoint's, not the mailbox's: four pass, two are 429.
    refused = [a for a in by_id.values() if a["status"] == 429]
    assert len(refused) == 2 and all(a["headers"]["retry-after"] == "30" for a in refused)
    assert refused[0]["body"]["error"]["code"] == "TooManyRequests"
    assert sum(a["status"] == 200 for a in by_id.values()) == 4
    assert mock.svc.stats.throttled["graph.mailbox"] == 2


async def test_injected_5xx_lands_on_inner_requests(mock: Mock) -> None:
    mock.svc.update_config({"faults": {"error_rate": 0.5}})
    _, headers = await _setup(mock)
    r = await _batch(mock, headers, {"requests": _requests(20)})
    assert r.status_code == 200
    statuses = [a["status"] for a in r.json()["responses"]]
    failed = [s for s in statuses if s >= 500]
    assert failed and set(failed) <= {500, 503} and 200 in statuses
    assert sum(mock.svc.stats.injected_5xx.values()) == len(failed)


async def test_more_than_twenty_requests_refuse_the_whole_batch(mock: Mock) -> None:
    _, headers = await _setup(mock)
    r = await _batch(mock, headers, {"requests": _requests(21)})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "BadRequest"
    assert "limit is 20" in r.json()["error"]["message"]
    assert mock.svc.stats.calls["graph.messages.delta"] == 0


async def test_malformed_batches_are_400(mock: Mock) -> None:
    _, headers = await _setup(mock)
    dup = _requests(2)
    dup[1]["id"] = "0"
    for body, words in [
        ({"requests": []}, "non-empty"),
        ({"reqs": _requests(1)}, "non-empty"),
        ({"requests": dup}, "repeats the request id"),
        ({"requests": [{"id": "1", "method": "GET"}]}, "needs a 'method' and a 'url'"),
        ({"requests": [{**_requests(1)[0], "dependsOn": ["0"]}]}, "dependsOn"),
    ]:
        r = await _batch(mock, headers, body)
        assert r.status_code == 400, body
        assert words in r.json()["error"]["message"]
    r = await mock.client.post("/v1.0/$batch", headers=headers, content=b"{not json")
    assert r.status_code == 400


async def test_unknown_urls_and_methods_answer_inside_the_batch(mock: Mock) -> None:
    _, headers = await _setup(mock)
    body = {
        "requests": [
            {"id": "a", "method": "GET", "url": "/me/nothing/here"},
            {"id": "b", "method": "DELETE", "url": DELTA.format("inbox")},
            {"id": "c", "method": "GET", "url": "me/mailFolders?$top=2"},
        ]
    }
    r = await _batch(mock, headers, body)
    by_id = {a["id"]: a for a in r.json()["responses"]}
    assert (by_id["a"]["status"], by_id["b"]["status"], by_id["c"]["status"]) == (400, 405, 200)
    assert len(by_id["c"]["body"]["value"]) == 2


async def test_a_batch_without_a_valid_token_is_401(mock: Mock) -> None:
    await _setup(mock)
    r = await _batch(mock, {"Authorization": "Bearer nope"}, {"requests": _requests(2)})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "InvalidAuthenticationToken"
