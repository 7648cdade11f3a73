"""The HTTP API (OpenAPI at /docs and /openapi.json): tenants, mailboxes, sync now, status,
metrics. Every route but /healthz wants ``Authorization: Bearer <api_token>``.

``models`` bounds every input, ``guards`` keeps every answer a 2xx or 4xx (body limit,
validation errors without values, the health check), ``tenant_routes``, ``mailbox_routes``
and ``ops_routes`` hold the routes by concern, ``routes`` builds the app from them.
"""

from daemon.api.deps import ApiDeps
from daemon.api.models import MailboxIn
from daemon.api.routes import create_app

__all__ = ["ApiDeps", "MailboxIn", "create_app"]
