"""The SDK is typed: mypy --strict finds nothing in the package, and code
using it is checked against its hints (an AsyncController call must be
awaited, a Sandbox's eval is a str or None...)."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)

USER_CODE = '''
from typing import List, Optional
from forkd import (AsyncController, AsyncSandbox, CommandResult, Controller, EntryInfo,
                   Sandbox)

def sync_use(ctl: Controller) -> None:
    sb: Sandbox = Sandbox.create("py", controller=ctl)
    v: Optional[str] = sb.eval("1")
    r: CommandResult = sb.commands.run(["true"])
    flag: bool = r.timed_out
    n: int = sb.files.write("/tmp/x", b"x")
    data: bytes = sb.files.read("/tmp/x")
    entries: List[EntryInfo] = sb.files.list("/tmp")
    size: int = entries[0].size
    sb.files.remove("/tmp/x", recursive=True)
    all_: List[Sandbox] = Sandbox.list()

async def async_use(ctl: AsyncController) -> None:
    sb: AsyncSandbox = await AsyncSandbox.create("py", controller=ctl)
    v: Optional[str] = await sb.eval("1")
    r: CommandResult = await sb.commands.run("true")
    names: List[str] = [e.name for e in await sb.files.list("/tmp")]
    await sb.files.remove("/tmp/x")
    info = await ctl.sandbox(sb.id)
'''

BAD_CODE = '''
from forkd import AsyncSandbox

async def forgot_await() -> None:
    sb = await AsyncSandbox.create("py")
    v: str = sb.eval("1")  # a coroutine, not a str
'''


def mypy(*args):
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--cache-dir", "/dev/null", *args],
                          cwd=PKG, capture_output=True, text=True)


def test_package_is_strictly_typed():
    r = mypy("forkd")
    assert r.returncode == 0, r.stdout + r.stderr


def test_user_code_is_checked(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(USER_CODE)
    r = mypy(str(good))
    assert r.returncode == 0, r.stdout + r.stderr
    bad = tmp_path / "bad.py"
    bad.write_text(BAD_CODE)
    r = mypy(str(bad))
    assert r.returncode == 1 and "Coroutine" in r.stdout, r.stdout + r.stderr
