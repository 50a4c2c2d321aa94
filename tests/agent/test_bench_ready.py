"""bench/ready without a lab: its help, its refusals of bad arguments, and a
clean failure (one line, non-zero, nothing left behind) when the snapshot or
/dev/kvm is missing. The figures themselves need the guest image on KVM
(docs/BENCH.md)."""

import os
import subprocess
import time

import pytest

from conftest import PYTHON, REPO

BENCH = REPO / "bench" / "ready"
FORKD = os.environ.get("FORKD_BIN", str(REPO / "build" / "forkd"))


def bench(tmp_path, *args, env=None):
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    e = dict(os.environ, TMPDIR=str(tmp), FORKD_HOME=str(tmp_path / "home"))
    e.pop("FORKD_IN_LAB", None)
    e.update(env or {})
    return subprocess.run([PYTHON, str(BENCH)] + list(args), capture_output=True, text=True,
                          env=e, timeout=120)


def test_help(tmp_path):
    r = bench(tmp_path, "--help")
    assert r.returncode == 0, r.stderr
    for opt in ("--tag", "--counts", "--cmdline", "--json", "--image"):
        assert opt in r.stdout
    assert os.access(BENCH, os.X_OK)


def test_bad_arguments(tmp_path):
    for args, why in ((["--counts", "0"], "--counts"), (["--counts", "x"], "--counts"),
                      (["--tag", "t", "--cmdline", "forkd.gc_freeze=0"], "--cmdline"),
                      (["--tag", "t", "--compare-cmdline", "forkd.gc_freeze=0"], "--cmdline"),
                      (["--compare-tag", "t"], "--compare-tag")):
        r = bench(tmp_path, *args)
        assert r.returncode == 2 and why in r.stderr, (args, r.stderr)
    assert not os.listdir(tmp_path / "tmp")


def test_missing_forkd(tmp_path):
    r = bench(tmp_path, "--forkd", str(tmp_path / "nope"), "--tag", "x")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "build forkd" in r.stderr, r.stderr
    assert not os.listdir(tmp_path / "tmp")


def test_missing_snapshot_fails_cleanly(tmp_path):
    if not os.access(FORKD, os.X_OK):
        pytest.skip("%s is not built (make)" % FORKD)
    (tmp_path / "home").mkdir()
    r = bench(tmp_path, "--forkd", FORKD, "--tag", "nosuch", "--counts", "1",
              "--json", str(tmp_path / "out.json"))
    assert r.returncode == 1, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("bench/ready: "), r.stderr
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        assert "nosuch" in line and "not found" in line, line
    else:
        assert "/dev/kvm" in line, line
    assert "Traceback" not in r.stdout + r.stderr
    assert not os.listdir(tmp_path / "tmp")  # its temporary directory is gone
    assert not (tmp_path / "out.json").exists()  # no runs, no figures
    assert not os.path.exists(tmp_path / "home" / "kept") or \
        not os.listdir(tmp_path / "home" / "kept")


def test_missing_image_fails_cleanly(tmp_path):
    if not os.access(FORKD, os.X_OK) or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("needs a built forkd and /dev/kvm to get as far as the image")
    empty = tmp_path / "cache"
    empty.mkdir()
    r = bench(tmp_path, "--forkd", FORKD, "--counts", "1",
              env={"FORKD_CACHE": str(empty), "XDG_CACHE_HOME": str(empty)})
    assert r.returncode == 1, r.stdout + r.stderr
    line = r.stderr.strip()
    assert line.count("\n") == 0 and "no guest image 'py'" in line, r.stderr
    assert not os.listdir(tmp_path / "tmp")


def test_sigterm_cleans_up(tmp_path):
    # A stand-in forkd whose snapshot never ends: SIGTERM must end the
    # benchmark (128 + 15), its forkd with it, and remove its directory.
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("bench/ready stops at the /dev/kvm check first")
    fake = tmp_path / "forkd"
    fake.write_text("#!/bin/sh\ncase $1 in\nls) echo '[]' ;;\nsnapshot) echo $$ > %s; exec sleep 60 ;;\n"
                    "*) exit 1 ;;\nesac\n" % (tmp_path / "pid"))
    fake.chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    env.pop("FORKD_IN_LAB", None)
    p = subprocess.Popen([PYTHON, str(BENCH), "--forkd", str(fake), "--counts", "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "booting image" in p.stdout.readline()
        for _ in range(100):  # the stand-in is running
            if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip():
                break
            time.sleep(0.1)
        p.terminate()
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 128 + 15, err
    assert not os.listdir(tmp)
    pid = int((tmp_path / "pid").read_text())
    for _ in range(50):  # killed; reaped by bench/ready before it exits
        if not os.path.exists("/proc/%d" % pid):
            break
        time.sleep(0.1)
    assert not os.path.exists("/proc/%d" % pid), "the stand-in forkd still runs"


def load_bench():
    import importlib.machinery
    import importlib.util
    loader = importlib.machinery.SourceFileLoader("bench_ready", str(BENCH))
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(mod)
    return mod


def test_agent_eval_through_a_vsock_socket(agent, tmp_path):
    # bench/ready's eval goes to RUN_DIR/vsock.sock as to a child's: a
    # stand-in for the VMM's vsock socket ('CONNECT 8888' -> 'OK <port>')
    # in front of the real agent on TCP.
    import socket
    import threading
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(tmp_path / "vsock.sock"))
    srv.listen(1)

    def serve():
        conn, _ = srv.accept()
        f = conn.makefile("rb")
        assert f.readline() == b"CONNECT 8888\n"
        conn.sendall(b"OK 1073741824\n")
        up = socket.create_connection(("127.0.0.1", agent))
        up.sendall(f.readline())
        conn.sendall(up.makefile("rb").readline())
        up.close()
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    ok, secs, result = load_bench().agent_eval(str(tmp_path), "int(np.arange(4).sum())", 30)
    t.join(30)
    srv.close()
    assert ok and result == "6" and 0 < secs < 30, (ok, result)
    ok, _, err = load_bench().agent_eval(str(tmp_path / "nope"), "1+1", 5)
    assert not ok and "No such file" in err
