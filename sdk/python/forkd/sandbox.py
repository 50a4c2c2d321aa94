"""Sandbox and AsyncSandbox: one forked child, driven through the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Union, cast

from .client import JSON, AsyncController, Controller

Cmd = Union[str, Sequence[str]]
Stdin = Union[str, bytes, None]


class CommandResult(NamedTuple):
    """What a command printed and its exit status (-9 after a timeout kill)."""

    stdout: str
    stderr: str
    exit_code: Optional[int]
    timed_out: bool = False
    stdout_truncated: bool = False
    stderr_truncated: bool = False


def _result(r: Mapping[str, Any]) -> CommandResult:
    return CommandResult(r.get("stdout", ""), r.get("stderr", ""), r.get("exit_code"),
                         bool(r.get("timed_out", False)), bool(r.get("stdout_truncated", False)),
                         bool(r.get("stderr_truncated", False)))


def _cmd_args(cmd: Cmd) -> Dict[str, Any]:
    return {"cmd": cmd} if isinstance(cmd, str) else {"argv": list(cmd)}


class Commands:
    def __init__(self, sandbox: "Sandbox"):
        self._sb = sandbox

    def run(self, cmd: Cmd, timeout: float = 60, env: Optional[Mapping[str, str]] = None,
            cwd: Optional[str] = None, stdin: Stdin = None) -> CommandResult:
        """Run `cmd` (a shell string, or an argv list) and return a CommandResult."""
        return _result(self._sb.controller.exec(self._sb.id, env=env, cwd=cwd, stdin=stdin,
                                                timeout=timeout, **_cmd_args(cmd)))


@dataclass(frozen=True)
class EntryInfo:
    """One entry of a directory listing, as lstat describes it in the guest."""

    name: str
    path: str  # the listed directory joined with name
    type: str  # "file", "dir", "symlink" (whatever it points to) or "other"
    size: int  # bytes
    mode: int  # permission bits (0o644...)
    mtime: float  # seconds since 1970

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"


def _entries(r: Mapping[str, Any], path: str) -> List[EntryInfo]:
    base = path if path.endswith("/") else path + "/"
    return [EntryInfo(e["name"], base + e["name"], e["type"], e["size"], e["mode"],
                      float(e["mtime"])) for e in r["entries"]]


class Files:
    def __init__(self, sandbox: "Sandbox"):
        self._sb = sandbox

    def write(self, path: str, data: Union[str, bytes], mode: Optional[int] = None) -> int:
        """Write bytes (or str, as UTF-8) to `path` in the guest; returns the byte count."""
        return cast(int, self._sb.controller.write_file(self._sb.id, path, data, mode=mode)["bytes"])

    def read(self, path: str) -> bytes:
        """The bytes of `path` in the guest."""
        return cast(bytes, self._sb.controller.read_file(self._sb.id, path))

    def list(self, path: str) -> List[EntryInfo]:
        """The entries of directory `path` in the guest, sorted by name (at most
        10000: list_dir() on the controller says whether more were left out)."""
        return _entries(self._sb.controller.list_dir(self._sb.id, path), path)

    def remove(self, path: str, recursive: bool = False) -> None:
        """Remove a file, link or empty directory; with recursive, a directory and
        everything under it. AgentError when the guest cannot (no such path...)."""
        self._sb.controller.remove_file(self._sb.id, path, recursive=recursive)


class Sandbox:
    """A sandbox of the daemon.

        with Sandbox.create(tag="py") as sb:
            sb.eval("1 + 1")

    Sandbox(tag=...) is the same as Sandbox.create(tag=...). Leaving a `with` block
    kills the sandbox.
    """

    def __init__(self, tag: Optional[str] = None, controller: Optional[Controller] = None,
                 info: Optional[Dict[str, Any]] = None, **spawn_args: Any):
        self.controller = controller or Controller()
        if info is None:
            if tag is None:
                raise ValueError("Sandbox needs a snapshot tag (or info of an existing one)")
            info = self.controller.create_sandboxes(tag, n=1, **spawn_args)[0]
        self.info: Dict[str, Any] = info
        self.id: str = info["id"]
        self.commands = Commands(self)
        self.files = Files(self)
        self._killed = False

    @classmethod
    def create(cls, tag: str, controller: Optional[Controller] = None,
               **spawn_args: Any) -> "Sandbox":
        return cls(tag=tag, controller=controller, **spawn_args)

    @classmethod
    def create_many(cls, tag: str, n: int, controller: Optional[Controller] = None,
                    **spawn_args: Any) -> List["Sandbox"]:
        """n sandboxes from one spawn request."""
        controller = controller or Controller()
        infos = controller.create_sandboxes(tag, n=n, **spawn_args)
        return [cls(controller=controller, info=i) for i in infos]

    @classmethod
    def connect(cls, sandbox_id: str, controller: Optional[Controller] = None) -> "Sandbox":
        """An existing sandbox by id (NotFound if the daemon has none)."""
        controller = controller or Controller()
        return cls(controller=controller, info=controller.sandbox(sandbox_id))

    attach = connect  # the name of earlier versions

    @classmethod
    def list(cls, tag: Optional[str] = None,
             controller: Optional[Controller] = None) -> List["Sandbox"]:
        """Every sandbox of the daemon (of snapshot `tag`), running or exited."""
        controller = controller or Controller()
        return [cls(controller=controller, info=i) for i in controller.sandboxes(tag)]

    def __repr__(self) -> str:
        return "Sandbox(%s, tag=%s)" % (self.id, self.info.get("snapshot_tag"))

    def refresh(self) -> Dict[str, Any]:
        self.info = self.controller.sandbox(self.id)
        return self.info

    @property
    def state(self) -> str:
        return cast(str, self.refresh()["state"])

    def ping(self) -> JSON:
        return self.controller.ping(self.id)

    def eval(self, code: str, timeout: float = 60) -> Optional[str]:
        """The repr of the value (None for statements); printed output is in eval_full()."""
        return cast(Optional[str], self.eval_full(code, timeout)["result"])

    def eval_full(self, code: str, timeout: float = 60) -> Dict[str, Any]:
        return cast(Dict[str, Any], self.controller.eval(self.id, code, timeout=timeout))

    def branch(self, tag: Optional[str] = None, mode: str = "live", wait: bool = True) -> str:
        """Snapshot this running sandbox as it is now; returns the new snapshot's tag.

        Sandbox.create(tag=...) then starts sandboxes from it, each with this one's
        memory, files and interpreter state; this sandbox runs on unchanged."""
        return cast(str, self.controller.branch(self.id, tag=tag, mode=mode, wait=wait)["tag"])

    def kill(self) -> None:
        if not self._killed:
            self.controller.delete_sandbox(self.id)
            self._killed = True

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.kill()
        except Exception:
            if exc[0] is None:
                raise


class AsyncCommands:
    def __init__(self, sandbox: "AsyncSandbox"):
        self._sb = sandbox

    async def run(self, cmd: Cmd, timeout: float = 60, env: Optional[Mapping[str, str]] = None,
                  cwd: Optional[str] = None, stdin: Stdin = None) -> CommandResult:
        """Run `cmd` (a shell string, or an argv list) and return a CommandResult."""
        return _result(await self._sb.controller.exec(self._sb.id, env=env, cwd=cwd,
                                                      stdin=stdin, timeout=timeout,
                                                      **_cmd_args(cmd)))


class AsyncFiles:
    def __init__(self, sandbox: "AsyncSandbox"):
        self._sb = sandbox

    async def write(self, path: str, data: Union[str, bytes], mode: Optional[int] = None) -> int:
        r = await self._sb.controller.write_file(self._sb.id, path, data, mode=mode)
        return cast(int, r["bytes"])

    async def read(self, path: str) -> bytes:
        return cast(bytes, await self._sb.controller.read_file(self._sb.id, path))

    async def list(self, path: str) -> List[EntryInfo]:
        return _entries(await self._sb.controller.list_dir(self._sb.id, path), path)

    async def remove(self, path: str, recursive: bool = False) -> None:
        await self._sb.controller.remove_file(self._sb.id, path, recursive=recursive)


class AsyncSandbox:
    """Sandbox on asyncio: the same methods as coroutines.

        async with await AsyncSandbox.create(tag="py") as sb:
            await sb.eval("1 + 1")
    """

    def __init__(self, controller: AsyncController, info: Dict[str, Any]):
        self.controller = controller
        self.info: Dict[str, Any] = info
        self.id: str = info["id"]
        self.commands = AsyncCommands(self)
        self.files = AsyncFiles(self)
        self._killed = False

    @classmethod
    async def create(cls, tag: str, controller: Optional[AsyncController] = None,
                     **spawn_args: Any) -> "AsyncSandbox":
        controller = controller or AsyncController()
        infos = await controller.create_sandboxes(tag, n=1, **spawn_args)
        return cls(controller, infos[0])

    @classmethod
    async def create_many(cls, tag: str, n: int, controller: Optional[AsyncController] = None,
                          **spawn_args: Any) -> List["AsyncSandbox"]:
        controller = controller or AsyncController()
        infos = await controller.create_sandboxes(tag, n=n, **spawn_args)
        return [cls(controller, i) for i in infos]

    @classmethod
    async def connect(cls, sandbox_id: str,
                      controller: Optional[AsyncController] = None) -> "AsyncSandbox":
        controller = controller or AsyncController()
        return cls(controller, await controller.sandbox(sandbox_id))

    @classmethod
    async def list(cls, tag: Optional[str] = None,
                   controller: Optional[AsyncController] = None) -> List["AsyncSandbox"]:
        controller = controller or AsyncController()
        return [cls(controller, i) for i in await controller.sandboxes(tag)]

    def __repr__(self) -> str:
        return "AsyncSandbox(%s, tag=%s)" % (self.id, self.info.get("snapshot_tag"))

    async def refresh(self) -> Dict[str, Any]:
        self.info = await self.controller.sandbox(self.id)
        return self.info

    async def state(self) -> str:
        return cast(str, (await self.refresh())["state"])

    async def ping(self) -> JSON:
        return await self.controller.ping(self.id)

    async def eval(self, code: str, timeout: float = 60) -> Optional[str]:
        return cast(Optional[str], (await self.eval_full(code, timeout))["result"])

    async def eval_full(self, code: str, timeout: float = 60) -> Dict[str, Any]:
        return cast(Dict[str, Any], await self.controller.eval(self.id, code, timeout=timeout))

    async def branch(self, tag: Optional[str] = None, mode: str = "live",
                     wait: bool = True) -> str:
        r = await self.controller.branch(self.id, tag=tag, mode=mode, wait=wait)
        return cast(str, r["tag"])

    async def kill(self) -> None:
        if not self._killed:
            await self.controller.delete_sandbox(self.id)
            self._killed = True

    async def __aenter__(self) -> "AsyncSandbox":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        try:
            await self.kill()
        except Exception:
            if exc[0] is None:
                raise
