"""forkd-init's pieces that run on a host: the module list, network set-up in
a throwaway network namespace, and the supervisor as PID 1 of a PID
namespace (reaping, restart with backoff, power-off on SIGTERM). Real
namespaces and real processes; nothing on the host is changed."""

import os
import signal
import subprocess
import time


from conftest import need_root


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def test_refuses_to_run_as_init_outside_pid_1(init_bin):
    r = run([init_bin])
    assert r.returncode == 2 and "not PID 1" in r.stderr
    r = run([init_bin, "--supervise", "/bin/true"])
    assert r.returncode == 2 and "must run as PID 1" in r.stderr
    r = run([init_bin, "--bogus"])
    assert r.returncode == 2 and "usage" in r.stderr
    r = run([init_bin, "--help"])
    assert r.returncode == 0 and "--modules-plan" in r.stdout


def loaded_host_module():
    try:
        with open("/proc/modules") as f:
            first = f.readline().split()
        return first[0] if first else None
    except FileNotFoundError:
        return None


def test_modules_plan(init_bin, tmp_path):
    ko = tmp_path / "virtio-test_mod.ko"
    ko.write_bytes(b"\x7fELF")
    lines = ["# comment", "", "   " + str(ko) + "  ", str(tmp_path / "absent.ko")]
    host_mod = loaded_host_module()
    if host_mod:
        lines.append(str(tmp_path / (host_mod + ".ko")))
    (tmp_path / "list").write_text("\n".join(lines) + "\n")
    r = run([init_bin, "--modules-plan", str(tmp_path / "list")])
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    # Names use '_' for '-', as /proc/modules does; order is the file's.
    assert out[0] == "load virtio_test_mod %s" % ko
    assert out[1].startswith("fail absent %s" % (tmp_path / "absent.ko"))
    assert "No such file" in out[1]
    if host_mod:
        assert out[2] == "skip %s loaded" % host_mod
    assert len(out) == (3 if host_mod else 2)


def test_modules_plan_rejects_bad_lines(init_bin, tmp_path):
    for bad in ("relative/path.ko", "/lib/modules/not-a-module.txt", "/x/.ko"):
        (tmp_path / "list").write_text(bad + "\n")
        r = run([init_bin, "--modules-plan", str(tmp_path / "list")])
        assert r.returncode == 1 and "bad line" in r.stderr, (bad, r)
    r = run([init_bin, "--modules-plan", str(tmp_path / "missing")])
    assert r.returncode == 0 and r.stdout == ""  # no list: nothing to load


def test_net_setup_in_a_netns(init_bin):
    need_root()
    script = """
set -e
ip link add eth0 type veth peer name peer0
ip link set peer0 up
"$1" --net eth0 10.42.0.2/24 10.42.0.1
ip -o link show lo; ip -o -4 addr show eth0; ip -o link show eth0; ip route show
"""
    r = run(["unshare", "--net", "sh", "-c", script, "sh", init_bin])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "lo: <LOOPBACK,UP,LOWER_UP>" in out
    assert "inet 10.42.0.2/24 brd 10.42.0.255" in out
    # Up, and the flags it had (MULTICAST) kept.
    assert "eth0@peer0: <BROADCAST,MULTICAST,UP,LOWER_UP>" in out
    assert "default via 10.42.0.1 dev eth0" in out
    assert "10.42.0.0/24 dev eth0 proto kernel scope link src 10.42.0.2" in out


def test_net_setup_errors(init_bin):
    need_root()
    r = run(["unshare", "--net", init_bin, "--net", "eth0", "10.42.0.2/24", "10.42.0.1"])
    assert r.returncode == 1 and "SIOCSIFADDR(eth0): No such device" in r.stderr
    for cidr in ("10.42.0.2", "10.42.0.300/24", "10.42.0.2/33"):
        r = run(["unshare", "--net", init_bin, "--net", "lo", cidr])
        assert r.returncode == 1 and "bad address" in r.stderr, cidr


FAKE_AGENT = """#!/bin/sh
# A stand-in agent: records each start, leaves an orphan behind (which
# only PID 1 can reap), exits at once for the first 3 runs, then stays up
# and records the SIGTERM that shutdown sends.
log=%(log)s
echo "start $$ $(cut -d' ' -f1 /proc/uptime)" >> $log
sleep 0.2 &
n=$(grep -c start $log)
if [ "$n" -le 3 ]; then exit 7; fi
trap 'echo term >> $log; exit 0' TERM
while :; do sleep 1; done
"""


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


def states_under(pid):
    """State letter of every direct child of pid."""
    out = {}
    for c in children(pid):
        try:
            with open("/proc/%d/stat" % c) as f:
                out[c] = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            pass
    return out


def test_supervise_reaps_restarts_with_backoff_and_powers_off(init_bin, tmp_path):
    need_root()
    log = tmp_path / "log"
    fake = tmp_path / "agent.sh"
    fake.write_text(FAKE_AGENT % {"log": log})
    fake.chmod(0o755)
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", init_bin,
                             "--supervise", str(fake)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if log.exists() and log.read_text().count("start") >= 4:
                break
            time.sleep(0.05)
        starts = [ln.split() for ln in log.read_text().splitlines() if ln.startswith("start")]
        assert len(starts) >= 4, log.read_text()
        # Backoff: 250 ms, then 500, then 1000 (each measured on the
        # namespace's uptime clock, with slack for slow machines).
        t = [float(s[2]) for s in starts[:4]]
        gaps = [b - a for a, b in zip(t, t[1:])]
        assert 0.2 <= gaps[0] < gaps[1] < gaps[2], gaps
        assert gaps[2] >= 0.9, gaps
        # PID 1 is init; the orphans the agent left were reaped: after they
        # exit, init has no zombie children.
        init_pid = children(proc.pid)[0]
        time.sleep(0.6)
        st = states_under(init_pid)
        assert "Z" not in st.values(), st
        assert len(st) == 1  # only the running agent (plus nothing else)
        # SIGTERM: the agent gets SIGTERM, then init powers off the PID
        # namespace, which its parent sees as death by SIGINT.
        os.kill(init_pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert log.read_text().rstrip().endswith("term")
    assert proc.returncode == -signal.SIGINT, (proc.returncode, err)
    assert "exited with status 7" in err and "restarting in 250 ms" in err
    assert "restarting in 1000 ms" in err and "power off" in err


def test_supervise_exec_failure_is_retried_not_fatal(init_bin, tmp_path):
    need_root()
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", init_bin,
                             "--supervise", str(tmp_path / "no-such-agent")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.2)
        assert proc.poll() is None, "init ended when the agent could not start"
        os.kill(children(proc.pid)[0], signal.SIGUSR2)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert err.count("No such file or directory") >= 2
    assert "exited with status 127" in err
    assert proc.returncode == -signal.SIGINT
