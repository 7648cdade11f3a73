"""Google's and Microsoft's OAuth2 token endpoints (refresh-token grant only)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from loadtest.mock_providers.service import MockService

GOOGLE_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
GRAPH_SCOPE = "https://graph.microsoft.com/Mail.Read offline_access"


async def _form(request: Request) -> dict[str, str]:
    # Parsed by hand: the token endpoints only ever receive urlencoded forms, and this keeps
    # the multipart parser out of the dependencies.
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def _oauth_error(status: int, error: str, description: str, **extra: Any) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description, **extra}, status_code=status
    )


def _ms_error(status: int, error: str, code: int, text: str) -> JSONResponse:
    return _oauth_error(
        status, error, f"AADSTS{code}: {text}", error_codes=[code], timestamp="", trace_id=""
    )


async def _prelude(svc: MockService, request: Request, endpoint: str) -> Response | None:
    """Latency for every token call; injected faults only when configured."""
    svc.stats.requests[endpoint] += 1
    provider = "gmail" if "google" in endpoint else "graph"
    d = svc.draw(provider, "token")
    await svc.delay(d)
    if svc.config.faults.include_oauth:
        return svc.injected(provider, endpoint, d)
    return None


def routes(svc: MockService) -> list[Route]:
    """The two token endpoints."""

    async def google_token(request: Request) -> Response:
        early = await _prelude(svc, request, "oauth.google.token")
        if early is not None:
            return early
        form = await _form(request)
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(
                400, "unsupported_grant_type", f"Invalid grant_type: {form.get('grant_type', '')}"
            )
        client_id, secret = svc.client("gmail")
        if form.get("client_id") != client_id:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("client_secret") != secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        if not form.get("refresh_token"):
            return _oauth_error(400, "invalid_request", "Missing required parameter: refresh_token")
        mbx = svc.registry.mailbox_for_refresh(form["refresh_token"])
        if mbx is None or mbx.revoked or mbx.provider != "gmail":
            return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        lifetime = svc.config.tokens.access_token_lifetime_s
        token = svc.registry.issue_access_token(mbx, svc.clock(), lifetime)
        return JSONResponse(
            {
                "access_token": token,
                "expires_in": lifetime,
                "scope": GOOGLE_SCOPE,
                "token_type": "Bearer",
            }
        )

    async def microsoft_token(request: Request) -> Response:
        early = await _prelude(svc, request, "oauth.microsoft.token")
        if early is not None:
            return early
        form = await _form(request)
        if form.get("grant_type") != "refresh_token":
            return _ms_error(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type.",
            )
        client_id, secret = svc.client("graph")
        if form.get("client_id") != client_id:
            return _ms_error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form.get('client_id', '')}' was not found.",
            )
        if form.get("client_secret") != secret:
            return _ms_error(401, "invalid_client", 7000215, "Invalid client secret provided.")
        if not form.get("refresh_token"):
            return _ms_error(
                400, "invalid_request", 900144, "The request body must contain 'refresh_token'."
            )
        mbx = svc.registry.mailbox_for_refresh(form["refresh_token"])
        if mbx is None or mbx.provider != "graph":
            return _ms_error(
                400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."
            )
        if mbx.revoked:
            return _ms_error(
                400,
                "invalid_grant",
                50173,
                "The provided grant has expired due to it being revoked, a fresh auth token is "
                "needed. The user might have changed or reset their password.",
            )
        lifetime = svc.config.tokens.access_token_lifetime_s
        token = svc.registry.issue_access_token(mbx, svc.clock(), lifetime)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "scope": form.get("scope") or GRAPH_SCOPE,
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
                # Microsoft rotates on every use; the old token stays valid.
                "refresh_token": svc.registry.new_refresh_token(mbx),
            }
        )

    return [
        Route("/token", google_token, methods=["POST"]),
        Route("/{tenant}/oauth2/v2.0/token", microsoft_token, methods=["POST"]),
    ]
