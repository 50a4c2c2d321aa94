"""Exceptions raised by the forkd SDK. Each carries the API's error message."""

from __future__ import annotations

from typing import Any, Dict, Optional


class ForkdError(Exception):
    """Base class: `message` is the daemon's {"error": ...} text, `status` the HTTP status."""

    def __init__(self, message: str, status: Optional[int] = None,
                 body: Optional[Dict[str, Any]] = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.body = body or {}

    def __str__(self) -> str:
        if self.status:
            return "%s (HTTP %d)" % (self.message, self.status)
        return self.message


class ConnectionFailed(ForkdError):
    """The daemon could not be reached (not running, wrong URL) or did not answer in time."""


class BadRequest(ForkdError):
    """400 or 413: the request was malformed or too large."""


class AuthError(ForkdError):
    """401: missing or wrong bearer token."""


class NotFound(ForkdError):
    """404: no such snapshot, sandbox or endpoint."""


class Conflict(ForkdError):
    """409: the state forbids it (sandbox not running, snapshot in use or existing)."""


class AgentError(ForkdError):
    """422: the guest agent refused or failed; `traceback` is set for eval errors."""

    @property
    def traceback(self) -> Optional[str]:
        return self.body.get("traceback")


class NotAvailable(ForkdError):
    """501: the feature is not available in this daemon yet."""


class AgentUnreachable(ForkdError):
    """502/504: no agent answered on the sandbox's vsock socket, or not in time."""


class ServerError(ForkdError):
    """Any other 5xx."""


def error_for(status: int, message: str, body: Optional[Dict[str, Any]] = None) -> ForkdError:
    cls = {
        400: BadRequest,
        413: BadRequest,
        401: AuthError,
        404: NotFound,
        405: BadRequest,
        409: Conflict,
        422: AgentError,
        501: NotAvailable,
        502: AgentUnreachable,
        504: AgentUnreachable,
    }.get(status, ServerError if status >= 500 else ForkdError)
    return cls(message, status, body)
