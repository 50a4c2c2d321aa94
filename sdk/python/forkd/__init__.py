"""forkd: Python client for the forkd controller daemon (`forkd serve`).

    from forkd import Controller, Sandbox
    with Sandbox(tag="py") as sb:
        sb.eval("1 + 1")
"""

from .client import Controller
from .errors import (AgentError, AgentUnreachable, AuthError, BadRequest, Conflict,
                     ConnectionFailed, ForkdError, NotAvailable, NotFound, ServerError)
from .sandbox import CommandResult, Sandbox

__version__ = "0.1.0"
__all__ = ["Controller", "Sandbox", "CommandResult", "ForkdError", "AgentError",
           "AgentUnreachable", "AuthError", "BadRequest", "Conflict", "ConnectionFailed",
           "NotAvailable", "NotFound", "ServerError"]
