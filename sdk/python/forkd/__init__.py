"""forkd: Python client for the forkd controller daemon (`forkd serve`).

    from forkd import Controller, Sandbox
    with Sandbox(tag="py") as sb:
        sb.eval("1 + 1")

    import asyncio
    from forkd import AsyncSandbox

    async def main():
        async with await AsyncSandbox.create(tag="py") as sb:
            print(await sb.eval("1 + 1"))
    asyncio.run(main())
"""

from .client import AsyncController, Controller
from .errors import (AgentError, AgentUnreachable, AuthError, BadRequest, Conflict,
                     ConnectionFailed, ForkdError, NotAvailable, NotFound, ServerError)
from .sandbox import AsyncSandbox, CommandResult, EntryInfo, Sandbox

__version__ = "0.2.0"
__all__ = ["Controller", "AsyncController", "Sandbox", "AsyncSandbox", "CommandResult",
           "EntryInfo", "ForkdError", "AgentError", "AgentUnreachable", "AuthError", "BadRequest",
           "Conflict", "ConnectionFailed", "NotAvailable", "NotFound", "ServerError"]
