"""Isolation through the daemon: memory_limit_mib (a leaf memory cgroup per
sandbox), per_child_netns (a network namespace per sandbox, never shared),
the VMM jail (on by default), and after_fork for snapshots whose guest runs
the agent (snapshot.json "agent_port"). Real cgroups, namespaces and KVM
children; cgroups and namespaces need root."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time

import pytest

import harness

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="memory cgroups and network namespaces need root")


def memory_cgroup_dir(pid):
    """The directory of pid's memory cgroup (v1 memory hierarchy, or v2)."""
    mounts = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, (fstype, _, opts) = pre.split(), post.split()[:3]
            if fstype == "cgroup" and "memory" in opts.split(","):
                mounts["v1"] = (fields[3], fields[4])
            elif fstype == "cgroup2":
                mounts["v2"] = (fields[3], fields[4])
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            key = "v1" if "memory" in ctrls.split(",") else "v2" if ctrls == "" else None
            if key in mounts and (key == "v1" or "v1" not in mounts):
                root, mnt = mounts[key]
                rel = path[len(root):] if root != "/" and path.startswith(root) else path
                return mnt + rel
    raise AssertionError("no memory cgroup for pid %d" % pid)


def limit_of(cg):
    for name in ("memory.max", "memory.limit_in_bytes"):
        p = os.path.join(cg, name)
        if os.path.exists(p):
            with open(p) as f:
                return int(f.read())
    raise AssertionError("no memory limit file in " + cg)


def net_ns_id(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino


@needs_root
def test_memory_limit(daemon, spawn):
    kids = spawn(2, memory_limit_mib=64)
    leaves = []
    for k in kids:
        assert k["memory_limit_mib"] == 64 and k["state"] == "running", k
        cg = memory_cgroup_dir(k["pid"])
        assert cg.endswith("/forkd/" + k["id"]), cg
        assert limit_of(cg) == 64 << 20, cg
        with open(os.path.join(cg, "cgroup.procs")) as f:
            assert str(k["pid"]) in f.read().split(), cg
        st, o = daemon.json("GET", "/v1/sandboxes/" + k["id"])
        assert st == 200 and o["memory_limit_mib"] == 64
        leaves.append(cg)
    assert leaves[0] != leaves[1]
    for k, cg in zip(kids, leaves):
        assert daemon.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
        assert not os.path.exists(cg), "leaf %s left after DELETE" % cg
    # Without a limit: no leaf, null in the API.
    k = spawn(1)[0]
    assert k["memory_limit_mib"] is None
    assert not memory_cgroup_dir(k["pid"]).endswith("/forkd/" + k["id"])


@needs_root
def test_memory_limit_oom_kills_one(daemon, env, spawn):
    """tests/guests/isolate_mem_hog.c: child 1 writes 200 MiB, child 0 keeps
    printing and serves the agent on vsock port 8888 (snapshot taken with
    --agent-port 8888). Under a 64 MiB limit sandbox 1 is OOM-killed (state
    exited, oom_killed true) and sandbox 0 keeps running and still answers
    ping (pong, its own index 0)."""
    guest = os.path.join(harness.build_dir(), "guests", "isolate_mem_hog.elf")
    if not os.path.exists(guest):
        pytest.skip("isolate_mem_hog.elf is missing (run 'make guests')")
    r = subprocess.run([harness.forkd_bin(), "snapshot", "--tag", "hog", "--kernel", guest,
                        "--mem-mib", "256", "--console", os.path.join(env.top, "hog.console"),
                        "--agent-port", "8888", "--timeout-secs", "60"],
                       env=env.env(), capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    kids = spawn(2, tag="hog", memory_limit_mib=64)
    deadline = time.time() + 60
    while time.time() < deadline:
        st, o = daemon.json("GET", "/v1/sandboxes/" + kids[1]["id"])
        if o["state"] == "exited":
            break
        time.sleep(0.2)
    assert o["state"] == "exited" and o["oom_killed"] is True, o
    st, o = daemon.json("GET", "/v1/sandboxes/" + kids[0]["id"])
    assert o["state"] == "running" and o["oom_killed"] is False, o
    console = os.path.join(kids[0]["run_dir"], "console.log")
    before = open(console).read().count("alive")
    time.sleep(1.5)
    assert open(console).read().count("alive") > before, "sandbox 0 stopped printing"
    st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % kids[0]["id"], {})
    assert st == 200 and o["pong"] is True and o["index"] == 0, (st, o)
    assert o["after_fork"] is True and o["vmctl_index"] == 0, o
    for k in kids:
        assert daemon.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
    assert daemon.request("DELETE", "/v1/snapshots/hog")[0] in (200, 204)


@needs_root
def test_per_child_netns(daemon, spawn):
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    a = spawn(2, per_child_netns=True)
    b = spawn(1, per_child_netns=True)  # while a runs: other namespaces
    names = [k["netns"] for k in a + b]
    assert len(set(names)) == 3, names  # never shared, not even across requests
    for k in a + b:
        assert k["netns"].startswith("forkd-child-"), k
        # The stub has no network device: no guest address.
        assert k["guest_addr"] is None
        ns = "/run/netns/" + k["netns"]
        assert net_ns_id("/proc/%d/ns/net" % k["pid"]) == net_ns_id(ns), k
        assert net_ns_id("/proc/%d/ns/net" % k["pid"]) != net_ns_id("/proc/self/ns/net")
        st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"], {})
        assert st == 200 and o["pong"] is True
    st, o = daemon.json("GET", "/v1/sandboxes/" + a[0]["id"])
    assert st == 200 and o["netns"] == a[0]["netns"]
    for k in a + b:
        assert daemon.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
        if k["netns"] not in before:
            assert not os.path.exists("/run/netns/" + k["netns"]), \
                "%s (made for the sandbox) left after DELETE" % k["netns"]


def test_jail_and_run_dir(daemon, spawn):
    k = spawn(1)[0]
    with open("/proc/%d/status" % k["pid"]) as f:
        status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    assert status["Seccomp"].strip() == "2" and status["NoNewPrivs"].strip() == "1", status
    assert int(status["CapEff"], 16) == 0, status
    if os.geteuid() == 0:  # the jail's ids (src/isolate/jail_fs.h)
        assert status["Uid"].split() == [str(harness.jail_uid())] * 4, status
        assert status["Gid"].split() == [str(harness.jail_gid())] * 4, status
    for ns in ("mnt", "net"):
        assert os.readlink("/proc/%d/ns/%s" % (k["pid"], ns)) != os.readlink("/proc/self/ns/" + ns)
    assert os.path.exists(k["vsock"])
    assert daemon.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
    # The jailed VMM cannot unlink its socket: the daemon removed the lot.
    assert not os.path.exists(k["run_dir"]), os.listdir(k["run_dir"])


def test_serve_no_seccomp_and_agent_timeout(env, daemon):
    """forkd serve --no-seccomp warns and spawns unjailed VMMs;
    --agent-timeout-secs takes 1 to 3600."""
    for bad in ("0", "3601", "x"):
        r = subprocess.run([harness.forkd_bin(), "serve", "--agent-timeout-secs", bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "--agent-timeout-secs wants a number from 1 to 3600" in r.stderr, bad
    st, run = os.path.join(env.top, "st-nojail"), os.path.join(env.top, "run-nojail")
    d = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run, "--no-seccomp",
                                   "--agent-timeout-secs", "30"]).start()
    try:
        assert "--no-seccomp: sandboxes run WITHOUT the VMM jail" in d.stderr()
        assert "UNSAFE" in d.stderr()
        code, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub"})
        assert code == 201, kids
        with open("/proc/%d/status" % kids[0]["pid"]) as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        assert status["Seccomp"].strip() == "0", status
        assert d.json("POST", "/v1/sandboxes/%s/ping" % kids[0]["id"])[0] == 200
        assert d.request("DELETE", "/v1/sandboxes/" + kids[0]["id"])[0] == 200
    finally:
        assert d.stop() == 0
    assert "Sanitizer" not in d.stderr() and "runtime error" not in d.stderr()


def set_agent_port(env, tag, port):
    path = os.path.join(env.home, "snapshots", tag, "snapshot.json")
    with open(path) as f:
        m = json.load(f)
    m["agent_port"] = port
    with open(path + ".tmp", "w") as f:
        json.dump(m, f, indent=2)
    os.rename(path + ".tmp", path)


def test_after_fork(daemon, env, spawn):
    harness.make_stub_snapshot(daemon, "stubaf")
    set_agent_port(env, "stubaf", 8888)
    kids = spawn(3, tag="stubaf")
    hashes = set()
    for i, k in enumerate(kids):
        st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"], {})
        assert st == 200 and o["after_fork"] is True and o["index"] == i, o
        assert o["vmctl_index"] == i
        hashes.add(o["entropy_fnv"])
    assert len(hashes) == 3, hashes
    # The shared "stub" snapshot has no agent_port (unless its snapshot
    # recorded one): then no after_fork reached the child.
    meta = json.load(open(os.path.join(env.home, "snapshots", "stub", "snapshot.json")))
    if not meta.get("agent_port"):
        k = spawn(1)[0]
        st, o = daemon.json("POST", "/v1/sandboxes/%s/ping" % k["id"], {})
        assert st == 200 and o["after_fork"] is False, o


@needs_root
@pytest.mark.skipif(not shutil.which("ip"), reason="ip (iproute2) is missing")
def test_netns_with_network_device(daemon, env, spawn):
    """A snapshot with virtio-net (tests/guests/fork_netns.c): refused without
    per_child_netns; with it the sandbox is 10.42.0.2 in its namespace, and its
    UDP datagram reaches a listener on that namespace's 10.42.0.1."""
    guest = os.path.join(harness.build_dir(), "guests", "fork_netns.elf")
    if not os.path.exists(guest):
        pytest.skip("fork_netns.elf is missing (run 'make guests')")
    tap = "fkdt%d" % (os.getpid() % 100000)
    r = subprocess.run([harness.forkd_bin(), "snapshot", "--tag", "netg", "--kernel", guest,
                        "--mem-mib", "16", "--no-rng", "--tap", tap, "--console",
                        os.path.join(env.top, "netg.console"), "--timeout-secs", "60"],
                       env=env.env(), capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    st, o = daemon.json("POST", "/v1/sandboxes", {"snapshot_tag": "netg"})
    assert st == 400 and "per_child_netns" in o["error"], (st, o)
    k = spawn(1, tag="netg", per_child_netns=True)[0]
    assert k["guest_addr"] == "10.42.0.2" and k["netns"].startswith("forkd-child-"), k
    prog = ("import socket,sys\n"
            "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
            "s.bind(('10.42.0.1',5555)); s.settimeout(45)\n"
            "d,a=s.recvfrom(256); s.sendto(b'ack '+d,a)\n"
            "print(a[0], d.decode())\n")
    r = subprocess.run(["ip", "netns", "exec", k["netns"], "python3", "-c", prog],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "10.42.0.2 forkd child 0", r.stdout
    deadline = time.time() + 20
    console = os.path.join(k["run_dir"], "console.log")
    while time.time() < deadline:
        if "reply 'ack forkd child 0'" in open(console).read():
            break
        time.sleep(0.2)
    else:
        raise AssertionError("the guest got no reply: " + open(console).read())
    assert daemon.request("DELETE", "/v1/sandboxes/" + k["id"])[0] == 200
    assert daemon.request("DELETE", "/v1/snapshots/netg")[0] in (200, 204)


@needs_root
def test_restart_keeps_and_releases(env, daemon):
    """kill -9 the daemon with two isolated sandboxes; one dies meanwhile.
    After the restart the survivor still lists its namespace and limit, and
    the dead one's leaf cgroup and namespace are gone with it."""
    st, run = os.path.join(env.top, "st-iso"), os.path.join(env.top, "run-iso")
    d = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]).start()
    before = set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()
    code, kids = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub", "n": 2,
                                                  "per_child_netns": True,
                                                  "memory_limit_mib": 32})
    assert code == 201, kids
    leaves = [memory_cgroup_dir(k["pid"]) for k in kids]
    d.proc.kill()
    d.proc.wait()
    dead, alive = kids
    os.kill(dead["pid"], signal.SIGKILL)
    time.sleep(0.3)
    d2 = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]).start()
    try:
        assert "re-adopted 1 running sandbox, forgot 1 that had exited" in d2.stderr()
        assert not os.path.exists(leaves[0]), leaves[0]
        if dead["netns"] not in before:
            assert not os.path.exists("/run/netns/" + dead["netns"])
        code, o = d2.json("GET", "/v1/sandboxes/" + alive["id"])
        assert code == 200 and o["netns"] == alive["netns"] and o["memory_limit_mib"] == 32
        assert os.path.exists(leaves[1]) and os.path.exists("/run/netns/" + alive["netns"])
        assert d2.request("DELETE", "/v1/sandboxes/" + alive["id"])[0] == 200
        assert not os.path.exists(leaves[1])
    finally:
        assert d2.stop() == 0


def test_schema1_database_is_migrated(env, daemon):
    """A state database from before the isolation columns opens, gains them,
    and its rows read back with no isolation."""
    st = os.path.join(env.top, "st-old")
    run = os.path.join(env.top, "run-old")
    os.makedirs(st)
    db = sqlite3.connect(os.path.join(st, "forkd.db"))
    db.executescript(
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES('schema', '1');"
        "CREATE TABLE sandboxes(id TEXT PRIMARY KEY, snapshot_tag TEXT NOT NULL,"
        " child_index INTEGER NOT NULL, pid INTEGER NOT NULL, start_time INTEGER NOT NULL,"
        " run_dir TEXT NOT NULL, live_fork INTEGER NOT NULL, hugepages INTEGER NOT NULL,"
        " created_ms INTEGER NOT NULL);")
    db.close()
    d = harness.Daemon(env, extra=["--state-dir", st, "--run-root", run]).start()
    try:
        code, k = d.json("POST", "/v1/sandboxes", {"snapshot_tag": "stub"})
        assert code == 201 and k[0]["netns"] is None and k[0]["memory_limit_mib"] is None
        assert d.request("DELETE", "/v1/sandboxes/" + k[0]["id"])[0] == 200
    finally:
        assert d.stop() == 0
    db = sqlite3.connect(os.path.join(st, "forkd.db"))
    cols = {r[1] for r in db.execute("PRAGMA table_info(sandboxes)")}
    assert {"netns_index", "netns_created", "guest_net", "memory_limit_mib", "cgroup"} <= cols
    assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)
    db.close()
