"""Error bodies in each provider's own JSON shape."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse, Response

GMAIL_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
GMAIL_5XX_MESSAGE = {
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
}
GRAPH_5XX = {
    500: ("InternalServerError", "An internal server error occurred."),
    503: ("ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."),
}


def gmail_error_body(
    code: int,
    message: str,
    reason: str,
    domain: str = "global",
    **extra: str,
) -> dict[str, Any]:
    """Google's ``{"error": {...}}`` body with one entry in ``errors``."""
    detail: dict[str, str] = {"message": message, "domain": domain, "reason": reason, **extra}
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [detail],
            "status": GMAIL_STATUS.get(code, "UNKNOWN"),
        }
    }


def gmail_error(code: int, message: str, reason: str, **kw: str) -> JSONResponse:
    """A Google-style error response."""
    return JSONResponse(gmail_error_body(code, message, reason, **kw), status_code=code)


def gmail_unauthenticated_body() -> dict[str, Any]:
    """Google's 401 body for a missing, unknown, expired or revoked access token."""
    return gmail_error_body(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
        "authError",
        location="Authorization",
        locationType="header",
    )


def gmail_unauthenticated() -> JSONResponse:
    """401 for a missing, unknown, expired or revoked access token."""
    return JSONResponse(gmail_unauthenticated_body(), status_code=401)


def gmail_not_found() -> JSONResponse:
    """404 as Google sends it for unknown messages and expired history ids."""
    return gmail_error(404, "Requested entity was not found.", "notFound")


def gmail_bad_param(name: str, message: str) -> JSONResponse:
    """400 naming the offending query parameter."""
    return gmail_error(400, message, "invalidArgument", location=name, locationType="parameter")


def graph_error_body(code: str, message: str) -> dict[str, Any]:
    """Graph's ``{"error": {"code", "message"}}`` body."""
    return {"error": {"code": code, "message": message}}


def graph_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A Graph-style error response."""
    return JSONResponse(graph_error_body(code, message), status_code=status, headers=headers)


def graph_unauthenticated() -> JSONResponse:
    """401 for a missing, unknown, expired or revoked access token."""
    return graph_error(
        401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
    )


def plain(status: int, body: bytes, content_type: str) -> Response:
    """A raw response (garbage bodies, batch answers)."""
    return Response(body, status_code=status, media_type=content_type)
