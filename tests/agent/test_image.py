"""`forkd image build` end to end on the host: the real build (Debian
packages through apt), its cache, the files it writes, the root file system
(mounted read-only from rootfs.ext4), the initramfs, and the image's own
/sbin/init + agent brought up as PID 1 of a container made from the image
(what the guest runs after the initramfs, minus the kernel)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, need_root

TAG = "py"  # the default image, shared with the guest end-to-end tests
FORKD = os.environ.get("FORKD_BIN", str(REPO / "build" / "forkd"))


def cache_dir():
    c = os.environ.get("FORKD_CACHE")
    if c:
        return Path(c)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "forkd"


@pytest.fixture(scope="module")
def image():
    need_root()
    if not os.access(FORKD, os.X_OK):
        pytest.fail("%s missing: run make first" % FORKD)
    t0 = time.monotonic()
    r = subprocess.run([FORKD, "image", "build", "--tag", TAG], capture_output=True, text=True,
                       timeout=1200)
    took = time.monotonic() - t0
    sys.stderr.write(r.stderr)
    assert r.returncode == 0, r.stderr[-3000:]
    out = Path(r.stdout.strip().splitlines()[-1])
    assert out == cache_dir() / "images" / TAG
    print("\nimage build: %.1f s (%s)" % (took, "cache hit" if "cache hit" in r.stderr
                                           else "built"))
    return out


def test_cli_validates_before_building():
    if not os.access(FORKD, os.X_OK):
        pytest.fail("%s missing: run make first" % FORKD)
    for args, msg in ((["--tag", "../x"], "bad tag"), (["--extra", "Bad_Name"], "bad package"),
                      (["--free-mib", "lots"], "--free-mib"), (["--nope"], "unknown option"),
                      (["extra-arg"], "unexpected argument")):
        r = subprocess.run([FORKD, "image", "build"] + args, capture_output=True, text=True)
        assert r.returncode == 2 and msg in r.stderr, (args, r.stderr)
    r = subprocess.run([FORKD, "image", "build", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--extra PKG" in r.stdout
    r = subprocess.run([FORKD, "image", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown subcommand" in r.stderr


def test_image_files_and_metadata(image):
    for f in ("vmlinuz", "initrd.img", "rootfs.ext4", "cmdline", "image.json"):
        assert (image / f).stat().st_size > 0, f
    meta = json.loads((image / "image.json").read_text())
    assert meta["tag"] == TAG
    assert meta["kernel"]["package"].startswith("linux-image-")
    names = {p.split("=")[0] for p in meta["packages"]}
    assert {"python3", "python3-numpy", "busybox-static", "libc6"} <= names
    assert not {"dpkg", "tar"} & names
    assert meta["sizes"]["rootfs"] == (image / "rootfs.ext4").stat().st_size
    assert "virtio_blk" in meta["modules"] and "vmw_vsock_virtio_transport" in meta["modules"]
    cmdline = (image / "cmdline").read_text()
    assert cmdline.count("\n") == 1 and "root=/dev/vda" in cmdline and "console=ttyS0" in cmdline
    with open(image / "vmlinuz", "rb") as f:
        f.seek(0x202)
        assert f.read(4) == b"HdrS"  # a bzImage
    r = subprocess.run(["sha256sum", str(image / "rootfs.ext4")], capture_output=True, text=True)
    assert r.stdout.split()[0] == meta["rootfs_sha256"]


def test_second_build_is_a_cache_hit(image):
    t0 = time.monotonic()
    r = subprocess.run([FORKD, "image", "build", "--tag", TAG], capture_output=True, text=True,
                       timeout=120)
    took = time.monotonic() - t0
    assert r.returncode == 0 and "cache hit" in r.stderr, r.stderr
    assert took < 3, "a rebuild with the same inputs took %.1f s" % took
    r = subprocess.run([FORKD, "image", "list"], capture_output=True, text=True)
    assert r.returncode == 0 and any(ln.split()[0] == TAG for ln in r.stdout.splitlines())


def read_cpio(path):
    """{name: (mode, rdev major, rdev minor, data)} of a newc archive."""
    out = {}
    data = Path(path).read_bytes()
    off = 0
    while True:
        h = data[off:off + 110]
        assert h[:6] == b"070701", "not a newc cpio at %d" % off
        f = [int(h[6 + 8 * i:14 + 8 * i], 16) for i in range(13)]
        mode, size, rmaj, rmin, namesize = f[1], f[6], f[9], f[10], f[11]
        name = data[off + 110:off + 110 + namesize - 1].decode()
        off = (off + 110 + namesize + 3) & ~3
        body = data[off:off + size]
        off = (off + size + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (mode, rmaj, rmin, body)


def test_initramfs(image):
    files = read_cpio(image / "initrd.img")
    init = files["init"][3]
    assert init[:4] == b"\x7fELF" and files["init"][0] & 0o111
    mode, rmaj, rmin, _ = files["dev/console"]
    assert (mode & 0o170000) == 0o020000 and (rmaj, rmin) == (5, 1)
    assert "newroot" in files and "proc" in files
    mods = [ln for ln in files["etc/forkd/modules"][3].decode().splitlines()
            if ln and not ln.startswith("#")]
    assert mods[-1].endswith("virtio_rng.ko") or "virtio_rng" in "".join(mods)
    for m in mods:
        body = files[m.lstrip("/")][3]
        assert body[:4] == b"\x7fELF", m
    # dependencies come before their users
    order = [os.path.basename(m)[:-3] for m in mods]
    assert order.index("virtio") < order.index("virtio_mmio") < order.index("virtio_blk")
    assert order.index("vsock") < order.index("vmw_vsock_virtio_transport")


@pytest.fixture(scope="module")
def rootfs(image, tmp_path_factory):
    mnt = tmp_path_factory.mktemp("rootfs")
    subprocess.run(["mount", "-o", "loop,ro", str(image / "rootfs.ext4"), str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_rootfs_contents(rootfs, image):
    assert (rootfs / "usr/bin/python3").exists()
    assert (rootfs / "usr/lib/python3/dist-packages/numpy/__init__.py").exists()
    assert (rootfs / "opt/forkd/agent.py").read_bytes() == \
        (REPO / "guest/agent/agent.py").read_bytes()
    init = (rootfs / "sbin/init").read_bytes()
    assert init[:4] == b"\x7fELF" and b"/lib64/ld-linux" not in init[:4096]  # static
    assert init == read_cpio(image / "initrd.img")["init"][3]
    assert os.readlink(rootfs / "bin/sh") == "/bin/busybox"
    for gone in ("usr/share/doc", "usr/share/man", "usr/share/locale"):
        assert not (rootfs / gone).exists(), gone
    assert not list((rootfs / "usr/lib/python3/dist-packages/numpy").rglob("tests"))
    pyc = list((rootfs / "usr/lib/python3.11/__pycache__").glob("os.cpython-311.pyc"))
    assert pyc, "the standard library is not byte-compiled"
    mods = (rootfs / "etc/forkd/modules").read_text().split()
    assert all((rootfs / m.lstrip("/")).exists() for m in mods if m.startswith("/"))


def test_rootfs_python_imports_numpy_in_chroot(rootfs):
    r = subprocess.run(["chroot", str(rootfs), "/usr/bin/python3", "-I", "-c",
                        "import numpy, sys; print(numpy.__version__, sys.version_info[:2]);"
                        "print(float(numpy.linalg.inv(numpy.eye(2) * 4)[0, 0]))"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "0.25"
    r = subprocess.run(["chroot", str(rootfs), "/bin/sh", "-c", "echo ok; ls /opt/forkd"],
                       capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["ok", "agent.py"] or r.stdout.split()[0] == "ok", r


# ---- the image's initramfs, init and agent as PID 1 of a container --------------

BOOT = r"""
set -e
ird=$1 dev=$2
ip link add eth0 type veth peer name peer0
ip link set peer0 up
# The initramfs's /init (stage 1) with the root device a loop device of
# rootfs.ext4: it mounts /dev and /proc, mounts the root, moves them over,
# switches root and executes /sbin/init (stage 2), which starts the agent.
exec /usr/bin/env -i FORKD_INIT_CMDLINE="console=ttyS0 root=$dev ro rootfstype=ext4" \
    /usr/sbin/chroot "$ird" /init
"""

CLIENT = r"""
import json, socket, sys, time
reqs = json.loads(sys.argv[1])
deadline = time.monotonic() + 60
while True:
    try:
        s = socket.create_connection(("10.42.0.2", 8888), timeout=30)
        f = s.makefile("rwb")
        f.write(b'{"op":"ping"}\n'); f.flush()
        r = json.loads(f.readline())
        if r.get("warm"):
            break
    except (OSError, ValueError):
        pass
    assert time.monotonic() < deadline, "agent not warm within 60 s"
    time.sleep(0.2)
out = [r]
for q in reqs:
    f.write(json.dumps(q).encode() + b"\n"); f.flush()
    line = f.readline()
    out.append(json.loads(line) if line else None)
print(json.dumps(out))
"""


def vsock_port_free(port):
    try:
        with socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM) as s:
            s.bind((socket.VMADDR_CID_ANY, port))
        return True
    except OSError:
        return False


def ask(init_pid, reqs):
    r = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % init_pid, sys.executable, "-c",
                        CLIENT, json.dumps(reqs)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_image_boots_as_pid1_of_a_container(image, tmp_path):
    # The agent also listens on vsock port 8888, which is not per-namespace.
    if not vsock_port_free(8888):
        pytest.skip("vsock port 8888 is in use on this host (the image's agent needs it)")
    ird = tmp_path / "initramfs"
    ird.mkdir()
    with open(image / "initrd.img", "rb") as f:
        subprocess.run(["cpio", "-id", "--quiet"], stdin=f, cwd=ird, check=True)
    # Never load the guest's modules into the host's kernel.
    (ird / "etc/forkd/modules").write_text("# (host test: no modules)\n")
    loop = subprocess.run(["losetup", "-f", "--show", "-r", str(image / "rootfs.ext4")],
                          capture_output=True, text=True, check=True).stdout.strip()
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount", "--net", "--uts",
                             "sh", "-c", BOOT, "sh", str(ird), loop],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            with open("/proc/%d/task/%d/children" % (proc.pid, proc.pid)) as f:
                kids = f.read().split()
            if kids:
                break
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        init_pid = int(kids[0])
        res = ask(init_pid, [
            {"op": "exec", "argv": ["hostname"]},
            {"op": "exec", "argv": ["sh", "-c", "tr '\\0' ' ' </proc/1/cmdline; echo; "
                                    "cat /proc/mounts; ip -o -4 addr show eth0; ip route"]},
            {"op": "eval", "code": "import os\n(os.getppid(), os.environ.get('LANG'), "
                                   "np.__file__)"},
            {"op": "exec", "argv": ["python3", "-c", "import numpy; print(numpy.__version__)"]},
            {"op": "exec", "argv": ["sh", "-c", "sleep 0.2 & echo $!"]},
        ])
        ping, host, env, ev, py, orphan = res
        assert ping["warm"] and ping["numpy"]
        assert host["stdout"] == "forkd\n"
        lines = env["stdout"]
        assert lines.startswith("/sbin/init \n")
        for mnt in (" /tmp tmpfs ", " /run tmpfs ", " /dev/pts devpts ", " /dev/shm tmpfs ",
                    " /sys sysfs "):
            assert mnt in lines, mnt
        # stage 1 mounted the root read-only (as "ro" asked) and moved /dev, /proc
        assert "%s / ext4 ro,noatime" % loop in lines
        assert " /dev devtmpfs " in lines and " /proc proc " in lines
        assert "inet 10.42.0.2/24" in lines and "default via 10.42.0.1 dev eth0" in lines
        assert ev["result"] == ("(1, 'C.UTF-8', "
                                "'/usr/lib/python3/dist-packages/numpy/__init__.py')")
        assert py["stdout"].strip() == ping["numpy"]
        # The orphan (reparented to init) is reaped once it exits.
        orphan_pid = int(orphan["stdout"])
        time.sleep(0.6)
        with open("/proc/%d/task/%d/children" % (init_pid, init_pid)) as f:
            kids = [int(k) for k in f.read().split()]
        for k in kids:
            with open("/proc/%d/stat" % k) as f:
                assert f.read().rsplit(")", 1)[1].split()[0] != "Z", "init left a zombie"
        assert len(kids) == 1  # just the agent
        # Kill the agent: init restarts it.
        gone = ask(init_pid, [{"op": "exec", "argv": ["sh", "-c", "kill -9 $PPID; sleep 5"]}])
        assert gone[1] is None
        again = ask(init_pid, [])[0]
        assert again["warm"] and again["pid"] != ping["pid"]
        os.kill(init_pid, 15)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["losetup", "-d", loop])
    assert "killed by signal 9" in err and "restarting in 250 ms" in err
    assert proc.returncode == -2, err  # reboot(POWER_OFF) in a PID namespace
    assert orphan_pid > 0
