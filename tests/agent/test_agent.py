"""The guest agent on the host, over TCP: every op, framing, robustness.
The agent is the real guest/agent/agent.py in its own process."""

import base64
import json
import os
import socket
import stat
import subprocess
import threading
import time

import pytest

from conftest import AGENT, PYTHON, Client, need_root, start_agent, stop_agent

MIB = 1024 * 1024


# ---- ping and framing ------------------------------------------------------------


def test_ping(client):
    r = client.call("ping", id="p1")
    assert r["ok"] and r["pong"] and r["id"] == "p1"
    assert r["warm"] is True
    assert r["numpy"] and r["numpy"][0].isdigit()
    assert r["index"] is None
    assert isinstance(r["pid"], int) and os.path.exists("/proc/%d" % r["pid"])
    assert isinstance(r["gc_frozen"], int) and r["gc_frozen"] > 0  # gc.freeze() before warm


def test_gc_frozen_heap_stays_frozen(agent):
    # The warm heap is in the permanent generation: a child's collections
    # (here, explicit ones in eval) leave it alone, and eval still works.
    c = Client(agent)
    frozen = c.call("ping")["gc_frozen"]
    assert frozen > 1000  # numpy and the agent's modules, not a handful
    r = c.call("eval", code="import gc\n"
                            "junk = [[i] for i in range(1000)]\n"
                            "gc.collect(); gc.collect(2)\n"
                            "del junk\n"
                            "(gc.get_freeze_count(), gc.collect(), gc.get_freeze_count())")
    assert r["ok"], r
    before, _, after = eval(r["result"])
    assert before == frozen and after == frozen
    assert c.call("eval", code="int(np.arange(10).sum())")["result"] == "45"
    assert c.call("ping")["gc_frozen"] == frozen
    c.close()


def test_gc_freeze_switch(tmp_path):
    # forkd.gc_freeze=0 on the kernel command line turns it off, in a guest only.
    code = ("import sys; sys.path.insert(0, %r); import agent; "
            "print([agent.gc_freeze_wanted(g, sys.argv[1]) for g in (True, False)])"
            % str(AGENT.parent))
    for cmdline, want in (("console=ttyS0 forkd.gc_freeze=0 quiet", "[False, True]"),
                          ("console=ttyS0 forkd.gc_freeze=1", "[True, True]"),
                          ("console=ttyS0 xforkd.gc_freeze=0", "[True, True]")):
        f = tmp_path / "cmdline"
        f.write_text(cmdline + "\n")
        r = subprocess.run([PYTHON, "-c", code, str(f)], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.strip() == want, (cmdline, r.stdout, r.stderr)


def test_id_echoed_any_json_value(client):
    for rid in (7, "x", None, [1, {"a": 2}], {"k": [True]}):
        assert client.call("ping", id=rid)["id"] == rid
    r = json.loads(json.dumps(client.call("ping")))
    assert r["id"] is None


def test_many_requests_pipelined_on_one_connection(client):
    n = 300
    client.send_raw(b"".join(json.dumps({"op": "ping", "id": i}).encode() + b"\n"
                             for i in range(n)))
    ids = [client.recv()["id"] for _ in range(n)]
    assert ids == list(range(n))


def test_concurrent_connections(agent):
    errors = []

    def worker(k):
        try:
            c = Client(agent)
            for i in range(15):
                r = c.call("eval", code="%d * %d" % (k, i), id=i)
                assert r["ok"] and r["result"] == str(k * i) and r["id"] == i
                r = c.call("exec", argv=["echo", "w%d-%d" % (k, i)])
                assert r["stdout"] == "w%d-%d\n" % (k, i)
            c.close()
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


def test_slow_exec_does_not_block_other_connections(agent):
    slow = Client(agent)
    slow.send_raw(json.dumps({"op": "exec", "argv": ["sleep", "2"]}).encode() + b"\n")
    time.sleep(0.2)
    c = Client(agent)
    t0 = time.monotonic()
    assert c.call("ping")["ok"]
    assert time.monotonic() - t0 < 1.0
    assert slow.recv()["exit_code"] == 0
    c.close()
    slow.close()


# ---- robustness ------------------------------------------------------------------


def test_malformed_json_then_connection_still_works(client):
    for bad in (b"{bad json", b"", b"[1, 2", b"\xff\xfe", b'{"op": "ping"'):
        client.send_raw(bad + b"\n")
        r = client.recv()
        assert r["ok"] is False and r["id"] is None
        assert r["error"].startswith("bad JSON")
    assert client.call("ping")["pong"]


def test_not_an_object(client):
    for bad in (b"[]", b"42", b'"ping"', b"null"):
        client.send_raw(bad + b"\n")
        r = client.recv()
        assert r["ok"] is False and "must be a JSON object" in r["error"]


def test_unknown_and_missing_op(client):
    r = client.call("reboot", id=3)
    assert r == {"id": 3, "ok": False, "error": r["error"]}
    assert 'unknown op "reboot"' in r["error"] and "ping" in r["error"]
    client.send_raw(b'{"id": 4}\n')
    r = client.recv()
    assert r["id"] == 4 and not r["ok"] and 'missing "op"' in r["error"]
    client.send_raw(b'{"op": 5}\n')
    assert not client.recv()["ok"]


def test_oversized_request_gets_error_and_connection_survives(client):
    # Over the protocol's 64 MiB limit; the rest of the line is discarded,
    # including something that looks like a request.
    big = b'{"op": "ping", "pad": "' + b"a" * (64 * MIB) + b'"}'
    client.send_raw(big + b'{"op": "ping", "id": "hidden"}\n')
    r = client.recv()
    assert r["ok"] is False and "longer than 67108864 bytes" in r["error"]
    r = client.call("ping", id="after")
    assert r["ok"] and r["id"] == "after"


def test_request_just_under_the_limit_is_served(agent):
    # A near-limit write_file (base64) shows large requests work.
    c = Client(agent)
    data = os.urandom(40 * MIB)
    path = "/tmp/forkd-agent-test-big.bin"
    try:
        r = c.call("write_file", path=path, data=base64.b64encode(data).decode())
        assert r["ok"] and r["bytes"] == len(data)
        with open(path, "rb") as f:
            assert f.read() == data
    finally:
        os.unlink(path)
        c.close()


def test_bad_fields_are_errors_not_crashes(client):
    cases = [
        ("exec", {}), ("exec", {"argv": []}), ("exec", {"argv": "ls"}),
        ("exec", {"argv": ["ls", 1]}), ("exec", {"argv": ["true"], "env": {"A": 1}}),
        ("exec", {"argv": ["true"], "timeout": -1}), ("exec", {"argv": ["true"], "timeout": "x"}),
        ("exec", {"argv": ["true"], "stdin": "a", "stdin_b64": "YQ=="}),
        ("exec", {"argv": ["true"], "stdin_b64": "!!"}), ("exec", {"argv": ["a\0b"]}),
        ("eval", {}), ("eval", {"code": 5}),
        ("write_file", {"path": "/tmp/x"}), ("write_file", {"path": "", "data": ""}),
        ("write_file", {"path": "/tmp/x", "data": "", "mode": 99999}),
        ("read_file", {}), ("after_fork", {}),
        ("after_fork", {"entropy": base64.b64encode(b"x" * 8).decode(), "unix_time": 1e9,
                        "index": 0}),
        ("after_fork", {"entropy": base64.b64encode(b"x" * 32).decode(), "unix_time": "now",
                        "index": 0}),
        ("after_fork", {"entropy": base64.b64encode(b"x" * 32).decode(), "unix_time": 1e9,
                        "index": -1}),
    ]
    for op, fields in cases:
        r = client.call(op, id=op, **fields)
        assert r["ok"] is False and r["id"] == op, (op, fields, r)
        assert r["error"].startswith(op + ":"), r
    assert client.call("ping")["pong"]


# ---- exec --------------------------------------------------------------------------


def test_exec_stdout_stderr_exit_code(client):
    r = client.call("exec", argv=["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r["ok"] and r["stdout"] == "out\n" and r["stderr"] == "err\n"
    assert r["exit_code"] == 3 and r["timed_out"] is False


def test_exec_env_cwd_stdin(client, tmp_path):
    r = client.call("exec", argv=["sh", "-c", 'echo "$FOO"; pwd; cat; env | wc -l'],
                    env={"FOO": "bar baz", "PATH": "/usr/bin:/bin"}, cwd=str(tmp_path),
                    stdin="line1\nline2\n")
    assert r["ok"], r
    lines = r["stdout"].split("\n")
    assert lines[0] == "bar baz"
    assert lines[1] == str(tmp_path)
    assert lines[2:4] == ["line1", "line2"]
    assert int(lines[4]) <= 4  # FOO, PATH, and what sh itself adds (PWD, SHLVL)


def test_exec_inherits_agent_env_without_env(client):
    r = client.call("exec", argv=["sh", "-c", 'echo "$PATH"'])
    assert r["ok"] and r["stdout"].strip() == os.environ["PATH"]


def test_exec_stdin_b64_binary_and_lossy_output(client):
    data = bytes(range(256)) * 64
    r = client.call("exec", argv=["sh", "-c", "wc -c; printf '\\377ok'"],
                    stdin_b64=base64.b64encode(data).decode())
    assert r["ok"], r
    assert r["stdout"].split("\n")[0].strip() == str(len(data))
    assert r["stdout"].endswith("\ufffdok")  # invalid UTF-8 replaced, not an error


def test_exec_large_stdin_and_output_both_ways(client):
    data = os.urandom(8 * MIB)
    r = client.call("exec", argv=["sh", "-c", "cat; head -c 3000000 /dev/zero >&2"],
                    stdin_b64=base64.b64encode(data).decode(), timeout=60)
    assert r["ok"] and not r["timed_out"]
    assert len(r["stderr"]) == 3000000
    assert len(r["stdout"]) > 0


def test_exec_prints_10_mib(client):
    t0 = time.monotonic()
    r = client.call("exec", argv=["sh", "-c",
                                  "head -c 10485760 /dev/zero | tr '\\0' x; "
                                  "head -c 1048576 /dev/zero | tr '\\0' y >&2"])
    assert r["ok"] and r["exit_code"] == 0 and not r["timed_out"]
    assert len(r["stdout"]) == 10 * MIB and set(r["stdout"]) == {"x"}
    assert len(r["stderr"]) == MIB and set(r["stderr"]) == {"y"}
    assert "stdout_truncated" not in r
    assert time.monotonic() - t0 < 20


def test_exec_output_that_escapes_badly_is_cut_to_fit_a_reply(client):
    # 12 MiB of control bytes: 72 MiB as JSON escapes. The reply carries a
    # prefix that fits the per-field budget (40 MiB of JSON) and says so.
    client.send_raw(json.dumps({"op": "exec", "argv": [
        "sh", "-c", "head -c 12582912 /dev/zero | tr '\\0' '\\1'"]}).encode() + b"\n")
    line = client.rfile.readline()
    assert len(line) < 96 * MIB
    r = json.loads(line)
    assert r["ok"] and r["exit_code"] == 0 and r["stdout_truncated"] is True
    assert 0 < len(r["stdout"]) < 12 * MIB and set(r["stdout"]) == {"\x01"}
    assert len(json.dumps(r["stdout"])) <= 40 * MIB
    assert client.call("eval", code="print('\\x02' * (8 << 20))")["stdout_truncated"] is True


def test_exec_missing_program_and_bad_cwd(client):
    r = client.call("exec", argv=["/nonexistent/prog"])
    assert r["ok"] is False and "No such file" in r["error"] and "/nonexistent/prog" in r["error"]
    r = client.call("exec", argv=["true"], cwd="/nonexistent-dir")
    assert r["ok"] is False and "/nonexistent-dir" in r["error"]


def pid_alive(pid):
    """True if pid runs (a zombie waiting for a reaper counts as dead)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_exec_timeout_kills_the_process_group(client, tmp_path):
    pids = tmp_path / "pids"
    t0 = time.monotonic()
    r = client.call("exec", timeout=1.0, argv=[
        "sh", "-c", "sleep 300 & echo $$ $! > %s; echo started; sleep 300" % pids])
    took = time.monotonic() - t0
    assert r["ok"] and r["timed_out"] is True and r["exit_code"] == -9
    assert r["stdout"] == "started\n"  # output before the kill is kept
    assert 0.9 < took < 10
    shell, grandchild = (int(x) for x in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (pid_alive(shell) or pid_alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(shell), "the command survived its timeout"
    assert not pid_alive(grandchild), "the command's child survived the group kill"


def test_exec_timeout_when_output_closed_but_process_runs(client):
    r = client.call("exec", timeout=0.5, argv=["sh", "-c", "exec >&- 2>&-; sleep 30"])
    assert r["ok"] and r["timed_out"] and r["exit_code"] == -9


# ---- eval --------------------------------------------------------------------------


def test_eval_expression_statements_and_state(client):
    r = client.call("eval", code="x = 41")
    assert r["ok"] and r["result"] is None
    r = client.call("eval", code="x + 1")
    assert r["ok"] and r["result"] == "42"
    r = client.call("eval", code="def f(n):\n    return n * x\nprint('side', 1)\nf(2)")
    assert r["ok"] and r["result"] == "82" and r["stdout"] == "side 1\n"
    assert client.call("eval", code="f(10)")["result"] == "410"
    assert client.call("eval", code="'a' + 'b'")["result"] == "'ab'"
    assert client.call("eval", code="None")["result"] == "None"


def test_eval_state_shared_across_connections(agent):
    a, b = Client(agent), Client(agent)
    assert a.call("eval", code="shared_value = [1, 2, 3]")["ok"]
    assert b.call("eval", code="sum(shared_value)")["result"] == "6"
    a.close()
    b.close()


def test_eval_numpy_is_warm(client):
    r = client.call("eval", code="np.arange(10).sum()")
    assert r["ok"] and r["result"] in ("45", "np.int64(45)")
    r = client.call("eval", code="import sys\n'numpy' in sys.modules and np is numpy")
    assert r["result"] == "True"
    r = client.call("eval", code="round(float(np.linalg.det(np.eye(3) * 2)), 6)")
    assert r["result"] == "8.0"  # LAPACK through numpy.linalg


def test_eval_error_has_type_message_and_traceback(client):
    r = client.call("eval", code="def g():\n    return 1 / 0\n\ng()")
    assert r["ok"] is False
    assert r["error"] == "ZeroDivisionError: division by zero"
    tb = r["traceback"]
    assert tb.startswith("Traceback") and "return 1 / 0" in tb and "line 2, in g" in tb
    assert "agent.py" not in tb  # the agent's own frames are left out
    r = client.call("eval", code="print('before')\nundefined_name")
    assert r["error"] == "NameError: name 'undefined_name' is not defined"
    assert r["stdout"] == "before\n"


def test_eval_syntax_error(client):
    r = client.call("eval", code="x = (")
    assert r["ok"] is False and r["error"].startswith("SyntaxError:")
    assert "^" in r["traceback"] and "ast.py" not in r["traceback"]


def test_eval_system_exit_does_not_end_agent(client):
    r = client.call("eval", code="import sys; sys.exit(3)")
    assert r["ok"] is False and r["error"] == "SystemExit: 3"
    r = client.call("eval", code="raise KeyboardInterrupt")
    assert r["ok"] is False and r["error"] == "KeyboardInterrupt"
    assert client.call("ping")["pong"]


def test_eval_defined_function_pickles(client):
    # The namespace is the __main__ module, so pickle finds what eval defined.
    r = client.call("eval", code="import pickle\ndef sq(v):\n    return v * v\n"
                                 "pickle.loads(pickle.dumps(sq))(7)")
    assert r["ok"] and r["result"] == "49", r


# ---- files -------------------------------------------------------------------------


def test_write_read_binary_round_trip(client, tmp_path):
    data = bytes(range(256)) * 17 + os.urandom(100000)
    path = tmp_path / "blob.bin"
    r = client.call("write_file", path=str(path), data=base64.b64encode(data).decode(),
                    mode=0o600)
    assert r["ok"] and r["bytes"] == len(data)
    assert path.read_bytes() == data
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    r = client.call("read_file", path=str(path))
    assert r["ok"] and r["bytes"] == len(data)
    assert base64.b64decode(r["data"]) == data


def test_write_truncates_and_empty_files(client, tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old content that is longer")
    assert client.call("write_file", path=str(path), data="bmV3")["bytes"] == 3
    assert path.read_bytes() == b"new"
    assert client.call("write_file", path=str(path), data="")["bytes"] == 0
    r = client.call("read_file", path=str(path))
    assert r["ok"] and r["data"] == "" and r["bytes"] == 0


def test_read_proc_file_and_errors(client, tmp_path):
    r = client.call("read_file", path="/proc/self/status")  # size 0 in stat, content on read
    assert r["ok"] and b"Pid:" in base64.b64decode(r["data"])
    r = client.call("read_file", path=str(tmp_path / "missing"))
    assert r["ok"] is False and "No such file" in r["error"]
    r = client.call("write_file", path=str(tmp_path / "no" / "dir"), data="")
    assert r["ok"] is False and "No such file" in r["error"]
    r = client.call("read_file", path=str(tmp_path))
    assert r["ok"] is False and "directory" in r["error"]


def test_list_dir_entries_types_and_lstat(client, tmp_path):
    (tmp_path / "b.txt").write_bytes(b"12345")
    os.chmod(tmp_path / "b.txt", 0o640)
    os.utime(tmp_path / "b.txt", (1700000000.5, 1700000000.5))
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "a-dir" / "inner").write_bytes(b"")
    os.symlink("/etc", tmp_path / "c-link")  # a link to a directory is a symlink
    os.symlink("/nonexistent", tmp_path / "d-dangling")
    os.mkfifo(tmp_path / "e-fifo")
    bad = os.fsencode(str(tmp_path)) + b"/f-\xff\xfename"
    open(bad, "wb").close()
    r = client.call("list_dir", path=str(tmp_path))
    assert r["ok"] is True and r["truncated"] is False, r
    by = {e["name"]: e for e in r["entries"]}
    assert [e["name"] for e in r["entries"]] == sorted(by)
    assert set(by) == {"a-dir", "b.txt", "c-link", "d-dangling", "e-fifo",
                       "f-\ufffd\ufffdname"}
    assert by["b.txt"] == {"name": "b.txt", "type": "file", "size": 5, "mode": 0o640,
                           "mtime": 1700000000.5}
    assert by["a-dir"]["type"] == "dir" and by["c-link"]["type"] == "symlink"
    assert by["c-link"]["size"] == len("/etc") and by["d-dangling"]["type"] == "symlink"
    assert by["e-fifo"]["type"] == "other"
    # Through a link to a directory: the directory's entries.
    r = client.call("list_dir", path=str(tmp_path / "c-link"))
    assert r["ok"] and any(e["name"] == "passwd" for e in r["entries"])
    r = client.call("list_dir", path=str(tmp_path / "a-dir"))
    assert r["ok"] and [e["name"] for e in r["entries"]] == ["inner"]


def test_list_dir_is_bounded(client, tmp_path):
    for i in range(10005):
        open(tmp_path / ("%05d" % i), "wb").close()
    r = client.call("list_dir", path=str(tmp_path))
    assert r["ok"] and r["truncated"] is True and len(r["entries"]) == 10000
    assert len({e["name"] for e in r["entries"]}) == 10000


def test_list_dir_errors(client, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    for path, want in ((str(tmp_path / "missing"), "No such file"),
                       (str(tmp_path / "f"), "Not a directory"),
                       ("relative/dir", '"path" must be an absolute path'),
                       ("", '"path" must be a non-empty string'),
                       (7, '"path" must be a non-empty string'),
                       ("/tmp/a\0b", "null")):
        r = client.call("list_dir", path=path)
        assert r["ok"] is False and r["error"].startswith("list_dir: ") and want in r["error"], r


def test_remove_file_symlink_and_directories(client, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"keep")
    (tmp_path / "f").write_bytes(b"x")
    os.symlink(outside, tmp_path / "link")
    assert client.call("remove", path=str(tmp_path / "f")) == {"id": None, "ok": True,
                                                               "type": "file"}
    assert not (tmp_path / "f").exists()
    # A link goes, never what it points to (recursive or not).
    r = client.call("remove", path=str(tmp_path / "link"), recursive=True)
    assert r["ok"] and r["type"] == "symlink"
    assert (outside / "keep").read_bytes() == b"keep"
    (tmp_path / "empty").mkdir()
    r = client.call("remove", path=str(tmp_path / "empty"))
    assert r["ok"] and r["type"] == "dir" and not (tmp_path / "empty").exists()
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    (tree / "sub" / "deeper" / "x").write_bytes(b"x")
    os.symlink(outside, tree / "sub" / "out")  # not followed out of the tree
    r = client.call("remove", path=str(tree))
    assert r["ok"] is False and "directory not empty" in r["error"] and "recursive" in r["error"]
    assert (tree / "sub" / "deeper" / "x").exists()
    r = client.call("remove", path=str(tree), recursive=True)
    assert r["ok"] and r["type"] == "dir" and not tree.exists()
    assert (outside / "keep").read_bytes() == b"keep"


def test_remove_errors(client, tmp_path):
    for fields, want in (({"path": str(tmp_path / "missing")}, "No such file"),
                         ({"path": "rel"}, "absolute path"),
                         ({}, '"path" must be a non-empty string'),
                         ({"path": str(tmp_path), "recursive": 1}, '"recursive" must be'),
                         ({"path": "/", "recursive": True}, "refusing to remove /"),
                         ({"path": "//tmp/..", "recursive": True}, "refusing to remove /")):
        r = client.call("remove", **fields)
        assert r["ok"] is False and r["error"].startswith("remove: ") and want in r["error"], r
    assert tmp_path.is_dir()


# ---- after_fork --------------------------------------------------------------------


def clone_state(c):
    """Give an agent the same generator state as a sibling would have after a
    fork (the same seeds), and return what the generators draw next."""
    assert c.call("eval", code="import random\nrandom.seed(1234)\nnp.random.seed(1234)")["ok"]
    r = c.call("eval", code="(random.random(), float(np.random.random()))")
    assert r["ok"]
    assert c.call("eval", code="random.seed(1234)\nnp.random.seed(1234)")["ok"]
    return r["result"]


def test_after_fork_reseeds_random_and_numpy():
    need_root()  # RNDADDENTROPY needs CAP_SYS_ADMIN
    a_proc, a_port = start_agent()
    b_proc, b_port = start_agent()
    try:
        a, b = Client(a_port), Client(b_port)
        cloned = clone_state(a)
        assert clone_state(b) == cloned  # identical state, as in forked children
        draw = "(random.random(), float(np.random.random()))"
        for i, c in enumerate((a, b)):
            t = time.time()
            r = c.call("after_fork", id=i, index=i, unix_time=t,
                       entropy=base64.b64encode(os.urandom(64)).decode())
            assert r["ok"], r
            assert r["clock_set"] is False  # never on a host (no --guest)
            assert set(r["reseeded"]) >= {"kernel-crng", "random", "numpy.random"}
            assert c.call("ping")["index"] == i
        va = a.call("eval", code=draw)["result"]
        vb = b.call("eval", code=draw)["result"]
        assert va != cloned and vb != cloned
        assert va != vb
        ra, rb = eval(va), eval(vb)
        assert ra[0] != rb[0] and ra[1] != rb[1]
        a.close()
        b.close()
    finally:
        stop_agent(a_proc)
        stop_agent(b_proc)


def test_after_fork_without_privilege_fails_cleanly():
    need_root()
    # In a new user namespace the agent has no CAP_SYS_ADMIN over the host's
    # random pool: after_fork must fail (a child must not be called ready).
    proc, port = start_agent(prefix=["unshare", "--user", "--map-root-user"])
    try:
        c = Client(port)
        r = c.call("after_fork", index=0, unix_time=time.time(),
                   entropy=base64.b64encode(os.urandom(32)).decode())
        assert r["ok"] is False and "RNDADDENTROPY" in r["error"]
        assert "Operation not permitted" in r["error"]
        assert c.call("ping")["index"] is None
        c.close()
    finally:
        stop_agent(proc)


def test_after_fork_sets_clock_only_in_a_guest():
    pytest.skip("CLOCK_REALTIME is not namespaced (time namespaces cover only MONOTONIC and "
                "BOOTTIME), so testing clock_settime here would set the host's clock; the "
                "guest end-to-end test checks the child's clock against the host's")


def test_agent_cli_errors():
    r = subprocess.run([PYTHON, str(AGENT), "--port", "70000", "--tcp-only"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port" in r.stderr
    # A port in use: a clear message and a non-zero exit, not a traceback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run([PYTHON, str(AGENT), "--tcp-only", "--host", "127.0.0.1",
                            "--port", str(port)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "cannot listen" in r.stderr and "Traceback" not in r.stderr
