"""AsyncController and AsyncSandbox against the real daemon (see conftest.py):
the same calls and errors as the sync API, concurrent calls on one client."""

import asyncio

import pytest

import forkd
from forkd import AsyncController, AsyncSandbox


def arun(coro):
    return asyncio.run(coro)


def actl(target):
    return AsyncController(target[0], target[1], timeout=60 if target[3] else 300)


def test_async_service_and_errors(target):
    async def main():
        async with actl(target) as ctl:
            assert await ctl.healthz() == {"status": "ok"}
            assert (await ctl.version())["api"] == "v1"
            assert "forkd_http_requests_total" in await ctl.metrics()
            assert target[2] in [s["tag"] for s in await ctl.snapshots()]
            with pytest.raises(forkd.NotFound) as e:
                await ctl.snapshot("no-such-snapshot")
            assert e.value.status == 404 and e.value.message == "no snapshot 'no-such-snapshot'"
            with pytest.raises(forkd.BadRequest) as e:
                await ctl.create_sandboxes(target[2], n=0)
            assert '"n" must be an integer from 1 to 1000' in str(e.value)
            if target[1]:
                with pytest.raises(forkd.AuthError):
                    await AsyncController(target[0], "not-the-token").sandboxes()
    arun(main())


def test_async_sandbox(target, spawn_args):
    async def main():
        async with actl(target) as ctl:
            sb = await AsyncSandbox.create(target[2], controller=ctl, **spawn_args)
            async with sb:
                assert sb.id.startswith("sb-") and await sb.state() == "running"
                pings = await asyncio.gather(*(sb.ping() for _ in range(8)))
                assert all(p["pong"] is True and p["index"] == 0 for p in pings)
                assert sb.id in [s.id for s in await AsyncSandbox.list(target[2], ctl)]
                again = await AsyncSandbox.connect(sb.id, ctl)
                assert again.info["index"] == 0
                if target[3]:
                    with pytest.raises(forkd.AgentError) as e:
                        await sb.eval("1 + 1")
                    assert e.value.message == "agent_stub: op not supported"
                else:
                    assert await sb.eval("x = 20") is None
                    assert await sb.eval("x + 22") == "42"
                    r = await sb.commands.run("echo out; echo err >&2; exit 3", timeout=120)
                    assert (r.stdout, r.stderr, r.exit_code, r.timed_out) == \
                        ("out\n", "err\n", 3, False)
                    assert await sb.files.write("/tmp/async", b"\x00hi") == 3
                    assert await sb.files.read("/tmp/async") == b"\x00hi"
            with pytest.raises(forkd.NotFound):
                await ctl.sandbox(sb.id)
            many = await AsyncSandbox.create_many(target[2], 3, controller=ctl, **spawn_args)
            try:
                idx = await asyncio.gather(*(s.ping() for s in many))
                assert sorted(p["index"] for p in idx) == [0, 1, 2]
            finally:
                await asyncio.gather(*(s.kill() for s in many))
    arun(main())


def test_async_files_list_and_remove(target, spawn_args):
    from test_sdk import STUB_ENTRIES, stub_file_agent

    async def main():
        async with actl(target) as ctl:
            async with await AsyncSandbox.create(target[2], controller=ctl,
                                                 **spawn_args) as sb:
                if target[3]:
                    with pytest.raises(forkd.AgentError):
                        await sb.files.list("/tmp")
                    from test_files import scripted_agent
                    with scripted_agent(sb.info["run_dir"], stub_file_agent) as seen:
                        got = await sb.files.list("/w")
                        await sb.files.remove("/w/sub", recursive=True)
                        with pytest.raises(forkd.AgentError):
                            await sb.files.remove("/w/missing")
                    assert [(e.name, e.path, e.type, e.size, e.mode) for e in got] == [
                        (x["name"], "/w/" + x["name"], x["type"], x["size"], x["mode"])
                        for x in STUB_ENTRIES]
                    assert [r.get("recursive") for r in seen] == [None, True, False]
                    return
                assert await sb.files.write("/tmp/async-ls", b"1234") == 4
                got = {e.name: e for e in await sb.files.list("/tmp")}
                e = got["async-ls"]
                assert (e.path, e.type, e.size) == ("/tmp/async-ls", "file", 4)
                await sb.files.remove("/tmp/async-ls")
                assert "async-ls" not in {e.name for e in await sb.files.list("/tmp")}
                with pytest.raises(forkd.AgentError):
                    await sb.files.remove("/tmp/async-ls")
    arun(main())


def test_command_result_flags(target, spawn_args):
    """timed_out comes through to CommandResult (the mapping of every flag is
    test_transport.py's test_command_result_fields)."""
    if target[3]:
        pytest.skip("agent_stub runs no commands; the real image's run covers this")
    with forkd.Sandbox(target[2], controller=forkd.Controller(target[0], target[1],
                                                              timeout=300),
                       **spawn_args) as sb:
        r = sb.commands.run("sleep 30", timeout=3)
        assert r.timed_out is True and r.exit_code == -9, r
