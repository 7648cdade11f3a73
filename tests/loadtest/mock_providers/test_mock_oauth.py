"""Google and Microsoft token endpoints of the mock."""

from __future__ import annotations

from loadtest.mock_providers.testing import MockHarness as Mock


def _form(creds: dict[str, str], **over: str) -> dict[str, str]:
    form = {
        "grant_type": "refresh_token",
        "client_id": creds["client_id"],
        "client_secret": creds["client_secret"],
        "refresh_token": creds["refresh_token"],
    }
    form.update(over)
    return form


async def test_google_refresh_returns_a_bearer_token_that_opens_the_mailbox(mock: Mock) -> None:
    creds = await mock.create("gmail")
    r = await mock.client.post("/token", data=_form(creds))
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type"}
    assert body["expires_in"] == 3599 and body["token_type"] == "Bearer"
    profile = await mock.client.get(
        "/gmail/v1/users/me/profile", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert profile.status_code == 200
    assert profile.json()["emailAddress"] == creds["address"]


async def test_google_wrong_client_is_invalid_client(mock: Mock) -> None:
    creds = await mock.create("gmail")
    r = await mock.client.post("/token", data=_form(creds, client_secret="nope"))
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    r = await mock.client.post("/token", data=_form(creds, client_id="other"))
    assert r.status_code == 401


async def test_google_unknown_or_revoked_refresh_token_is_invalid_grant(mock: Mock) -> None:
    creds = await mock.create("gmail")
    r = await mock.client.post("/token", data=_form(creds, refresh_token="1//0unknown"))
    assert r.status_code == 400
    assert r.json() == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    headers = await mock.login(creds)
    await mock.control(creds["address"], "revoke")
    r = await mock.client.post("/token", data=_form(creds))
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    # Access tokens issued before the revocation stop working too.
    r = await mock.client.get("/gmail/v1/users/me/profile", headers=headers)
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["status"] == "UNAUTHENTICATED" and err["errors"][0]["reason"] == "authError"


async def test_access_token_expires_after_the_configured_lifetime(mock: Mock) -> None:
    await mock.config({"tokens": {"access_token_lifetime_s": 60}})
    creds = await mock.create("gmail")
    r = await mock.client.post("/token", data=_form(creds))
    assert r.json()["expires_in"] == 60
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    mock.clock.advance(59)
    assert (await mock.client.get("/gmail/v1/users/me/profile", headers=headers)).status_code == 200
    mock.clock.advance(1)
    assert (await mock.client.get("/gmail/v1/users/me/profile", headers=headers)).status_code == 401


async def test_microsoft_refresh_rotates_and_keeps_the_old_token_valid(mock: Mock) -> None:
    creds = await mock.create("graph")
    path = "/organizations/oauth2/v2.0/token"
    r = await mock.client.post(
        path, data=_form(creds, scope="https://graph.microsoft.com/.default")
    )
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599 and body["ext_expires_in"] == 3599
    assert body["scope"] == "https://graph.microsoft.com/.default"
    rotated = body["refresh_token"]
    assert rotated != creds["refresh_token"]
    again = await mock.client.post(path, data=_form(creds, refresh_token=rotated))
    assert again.status_code == 200
    assert again.json()["refresh_token"] not in (rotated, creds["refresh_token"])
    old = await mock.client.post(path, data=_form(creds))
    assert old.status_code == 200
    folders = await mock.client.get(
        "/v1.0/me/mailFolders", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert folders.status_code == 200


async def test_microsoft_revoked_grant_is_aadsts50173(mock: Mock) -> None:
    creds = await mock.create("graph")
    path = "/common/oauth2/v2.0/token"
    rotated = (await mock.client.post(path, data=_form(creds))).json()["refresh_token"]
    await mock.control(creds["address"], "revoke")
    for token in (creds["refresh_token"], rotated):
        r = await mock.client.post(path, data=_form(creds, refresh_token=token))
        assert r.status_code == 400
        body = r.json()
        assert body["error"] == "invalid_grant"
        assert body["error_codes"] == [50173]
        assert body["error_description"].startswith("AADSTS50173: The provided grant has expired")


async def test_microsoft_wrong_secret_is_invalid_client(mock: Mock) -> None:
    creds = await mock.create("graph")
    r = await mock.client.post(
        "/common/oauth2/v2.0/token", data=_form(creds, client_secret="wrong")
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


async def test_a_gmail_refresh_token_does_not_work_at_microsoft(mock: Mock) -> None:
    gmail = await mock.create("gmail")
    graph = await mock.create("graph")
    r = await mock.client.post(
        "/common/oauth2/v2.0/token",
        data=_form(graph, refresh_token=gmail["refresh_token"]),
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
