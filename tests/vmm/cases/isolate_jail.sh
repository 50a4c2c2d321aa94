#!/usr/bin/env bash
# isolate_jail: the VMM jail `forkd fork` puts every child in (seccomp
# allow-list, no new privileges, no capabilities), with
# tests/guests/isolate_jail.c driving virtio-rng, virtio-blk and
# virtio-vsock (both directions) from scratch in each child.
#   1. jailed (the default), 2 children: both finish with every device
#      working; while they wait for the host, /proc/<VMM pid>/status (the
#      pid from SO_PEERCRED on the vsock connection) shows Seccomp 2 (filter),
#      NoNewPrivs 1, no capability in any set and the jail's uid and gid
#      (FORKD_JAIL_UID, set here), /proc/<pid>/ns/{mnt,net} differ from
#      ours; the guest's connection reached the host's socket, made
#      root:<jail gid> 0660; the disk image unchanged;
#      FORKD_TEST_JAIL_CONNECT (test-only) has each child connect() to a
#      root-owned socket outside its run directory (mode 0777: nothing but
#      the mount namespace stops it), to child 0's root-only socket (0600,
#      in child 0's run directory) and to an abstract socket of the host:
#      No such file or directory / Permission denied for child 0 and No
#      such file for child 1 / Connection refused, and no listener saw a
#      connection;
#   2. the same with --live-fork;
#   3. FORKD_TEST_JAIL_FORBIDDEN=1 (test-only, read by the child at setup):
#      child 1 makes a forbidden call (open) once running: it dies with
#      SIGSYS, `forkd fork` reports it and exits 1; child 0 is unaffected;
#   4. --no-seccomp: the warning says UNSAFE, the children are not
#      filtered (Seccomp 0) and still work; the test variable does nothing.
# (forkd snapshot's own VMM: tests/vmm/cases/snap_jail.sh.)
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

command -v python3 >/dev/null || { echo "skip: python3 is needed for the host side"; exit 77; }

python3 - "$WORK/disk.img" <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.write(b"FORKD-ISO-DISK" + bytes(64 * 1024 - 14))
PY
sum=$(sha256sum "$WORK/disk.img" | cut -d' ' -f1)

# The host side of each child's vsock: listen on child-N/vsock.sock_5000,
# take "hello from child N", check the VMM's jail in /proc, connect to the
# child's own socket for guest port 1234 (refused by the guest: the VMM
# must close us), then answer "ok N" and wait for the guest's shutdown.
cat >"$WORK/host.py" <<'PY'
import os, socket, struct, sys, threading
workdir, expect, mode = sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3]
jail_id = int(os.environ["FORKD_JAIL_UID"])
errors, done = [], []

def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out

def child(i, srv):
    try:
        c, _ = srv.accept()
        c.settimeout(60)
        pid = struct.unpack("3i", c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        buf = b""
        while not buf.endswith(b"\n"):
            b = c.recv(64)
            if not b:
                raise RuntimeError("EOF after %r" % buf)
            buf += b
        if buf != b"hello from child %d\n" % i:
            raise RuntimeError("got %r" % buf)
        st = status(pid)
        caps = [st[k] for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
        if mode == "jail":
            if st["Seccomp"] != "2" or st["NoNewPrivs"] != "1" or any(int(x, 16) for x in caps):
                raise RuntimeError("VMM %d not jailed: Seccomp %s NoNewPrivs %s caps %s"
                                   % (pid, st["Seccomp"], st["NoNewPrivs"], caps))
            ids = (st["Uid"].split(), st["Gid"].split())
            if ids != ([str(jail_id)] * 4, [str(jail_id)] * 4):
                raise RuntimeError("VMM %d ids %r, not the jail's %d" % (pid, ids, jail_id))
            for ns in ("mnt", "net"):
                if os.readlink("/proc/%d/ns/%s" % (pid, ns)) == os.readlink("/proc/self/ns/" + ns):
                    raise RuntimeError("VMM %d shares our %s namespace" % (pid, ns))
        elif st["Seccomp"] != "0" or st["Uid"].split()[0] != "0":
            raise RuntimeError("VMM %d filtered despite --no-seccomp" % pid)
        h = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        h.settimeout(30)
        h.connect(os.path.join(workdir, "child-%d" % i, "vsock.sock"))
        h.sendall(b"CONNECT 1234\n")
        try:
            got = h.recv(64)
        except ConnectionResetError:
            got = b""
        if got != b"":
            raise RuntimeError("guest port 1234 should be refused, got %r" % got)
        h.close()
        c.sendall(b"ok %d\n" % i)
        if c.recv(16) != b"":
            raise RuntimeError("expected EOF after the guest's shutdown")
        c.close()
        done.append("child %d (VMM pid %d): Seccomp %s NoNewPrivs %s CapEff %s CapBnd %s Uid %s"
                    % (i, pid, st["Seccomp"], st["NoNewPrivs"], st["CapEff"], st["CapBnd"],
                       st["Uid"].split()[0]))
    except Exception as e:
        errors.append("child %d: %r" % (i, e))

threads = []
for i in expect:
    d = os.path.join(workdir, "child-%d" % i)
    os.makedirs(d, exist_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(os.path.join(d, "vsock.sock_5000"))
    # A host program that wants the jailed VMM to connect: the jail's
    # group may write the socket (isolate/jail_fs.h).
    os.chown(os.path.join(d, "vsock.sock_5000"), -1, jail_id)
    os.chmod(os.path.join(d, "vsock.sock_5000"), 0o660)
    srv.listen(1)
    srv.settimeout(90)
    t = threading.Thread(target=child, args=(i, srv))
    t.start()
    threads.append(t)
# Sockets no jailed VMM may reach (FORKD_TEST_JAIL_CONNECT names them).
bait = []
for path, mode_ in ((os.path.join(workdir, "outside.sock"), 0o777),
                    (os.path.join(workdir, "child-0", "private.sock"), 0o600),
                    ("\0" + os.environ["JAIL_ABSTRACT"], None)):
    b = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    b.bind(path)
    if mode_ is not None:
        os.chmod(path, mode_)
    b.listen(8)
    b.setblocking(False)
    bait.append((path.replace("\0", "@"), b))
open(os.path.join(workdir, "host.ready"), "w").close()
for t in threads:
    t.join()
for path, b in bait:
    try:
        b.accept()
        errors.append("a VMM reached %s" % path)
    except BlockingIOError:
        pass
for d in sorted(done):
    print("host: " + d)
for e in errors:
    print("host: FAIL " + e)
sys.exit(1 if errors or len(done) != len(expect) else 0)
PY

export FORKD_JAIL_UID=$((4000000 + $$))
tag=jail$$
snap_take "$tag" --disk "$WORK/disk.img" --vsock "$WORK/snap.sock"

# run NAME EXPECT(children the host serves) MODE [fork options]: start the
# host side, fork 2 children with --wait; leaves forkd's status in $frc.
run() {
	local name=$1 expect=$2 mode=$3 hrc=0
	shift 3
	local workdir=$WORK/$name
	mkdir -p "$workdir"
	timeout "$(scaled 120)" python3 "$WORK/host.py" "$workdir" "$expect" "$mode" >"$WORK/$name.host.log" 2>&1 &
	local hpid=$!
	for ((t = 0; t < 100; t++)); do
		[[ -e $workdir/host.ready ]] && break
		sleep 0.1
	done
	frc=0
	bounded 120 "$FORKD" fork --tag "$tag" -n 2 --wait --timeout-secs "$(scaled 90)" --keep-workdir \
		--workdir "$workdir" "$@" >"$WORK/$name.log" 2>&1 || frc=$?
	wait "$hpid" || hrc=$?
	sed 's/^/    | /' "$WORK/$name.log" "$WORK/$name.host.log"
	((hrc == 0)) || fail "$name: host side failed"
	for i in ${expect//,/ }; do
		grep -qx "isolate_jail: child $i: rng blk vsock ok" "$workdir/child-$i/console.log" ||
			{ cat "$workdir/child-$i/console.log"; fail "$name: child $i's devices did not all work"; }
	done
	[[ $(sha256sum "$WORK/disk.img" | cut -d' ' -f1) == "$sum" ]] || fail "$name: disk image changed"
	[[ ! -e $workdir/child-0/vsock.sock ]] || fail "$name: child 0's vsock socket left behind"
}

export JAIL_ABSTRACT=forkd-jail-test-$$
j=$WORK/jailed
export FORKD_TEST_JAIL_CONNECT="$j/outside.sock,$j/child-0/private.sock,@$JAIL_ABSTRACT"
run jailed 0,1 jail
unset FORKD_TEST_JAIL_CONNECT
((frc == 0)) || fail "jailed: forkd fork exited with status $frc"
check_children_exit 2 "$WORK/jailed.log"
ok "jailed: 2 children used rng, blk (read, write, read back) and vsock (both directions) under the jail"
ok "jailed: VMMs had Seccomp 2, NoNewPrivs 1, all capability sets empty, uid/gid $FORKD_JAIL_UID, own mount and network namespaces; image unchanged"
for want in "$j/outside.sock): No such file or directory" "$j/child-0/private.sock): Permission denied" \
	"$j/child-0/private.sock): No such file or directory" "@$JAIL_ABSTRACT): Connection refused"; do
	grep -rqF "jail: test: connect($want" "$WORK/jailed.log" "$j"/child-*/*.log ||
		fail "jailed: no child logged connect($want"
done
grep -rq 'jail: test: connect(.*): connected' "$WORK/jailed.log" "$j"/child-*/*.log &&
	fail "jailed: a child connected to a socket outside its reach"
ok "jailed: no child reached a root-owned socket outside its run directory (ENOENT), child 0's root-only one (EACCES) or the host's abstract socket"

run live 0,1 jail --live-fork
((frc == 0)) || fail "live: forkd fork exited with status $frc"
check_children_exit 2 "$WORK/live.log"
ok "live fork: the same under the jail"

export FORKD_TEST_JAIL_FORBIDDEN=1
run forbidden 0 jail
((frc == 1)) || fail "forbidden: forkd fork exited with status $frc, not 1"
grep -qx 'fork: child 1 killed by SIGSYS: it made a system call the VMM jail forbids' \
	"$WORK/forbidden.log" || fail "forbidden: child 1's SIGSYS was not reported"
grep -qx 'fork: child 1 exit status 159 (SIGSYS: a system call the VMM jail forbids)' \
	"$WORK/forbidden.log" || fail "forbidden: child 1's exit status is not 159 (SIGSYS)"
grep -qx 'fork: child 0 exit status 0' "$WORK/forbidden.log" || fail "forbidden: child 0 did not exit 0"
grep -q 'was allowed' "$WORK/forbidden.log" && fail "forbidden: the open went through"
ok "forbidden: child 1 opened a file after the jail: killed by SIGSYS, reported; child 0 unaffected"

run nojail 0,1 nojail --no-seccomp
unset FORKD_TEST_JAIL_FORBIDDEN
((frc == 0)) || fail "nojail: forkd fork exited with status $frc"
grep -q 'warning: --no-seccomp: .*UNSAFE' "$WORK/nojail.log" || fail "nojail: no UNSAFE warning"
check_children_exit 2 "$WORK/nojail.log"
ok "--no-seccomp: warned UNSAFE, children unfiltered (Seccomp 0) and working; the test variable is ignored"
