#!/usr/bin/env bash
# forkd snapshot waiting for the guest's agent (--agent-port, --image), with
# test guests only (the Linux image takes minutes to boot: tests/e2e).
#   1. agent_stub (tests/guests/agent_stub.c, answers ping warm=true on vsock
#      port 8888) with --agent-port 8888 and no --vsock: snapshot.json has
#      agent_port 8888 and a vsock device; the private vsock socket is gone.
#   2. --agent-port 0: the doorbell decides, no agent_port in snapshot.json;
#      a child of it answers `forkd ping --run-dir` in a --keep-workdir
#      work directory while `forkd fork` keeps it alive.
#   3. A guest that never answers (snap_idle: no vsock driver) times out
#      with a clear error naming the port, and leaves nothing behind: no
#      snapshot, no temporary snapshot directory, no socket, no process.
#   4. A guest that stops first (smoke: powers off) fails at once, saying so.
#   5. --image with a fake image in a private FORKD_CACHE (agent_stub as its
#      vmlinuz): defaults 512 MiB / 2 vCPUs, the rootfs as disk 0 and extra
#      --disk after it, the image's cmdline + lpj= + --cmdline, agent_port.
#   6. A missing image: one line naming the path and 'forkd image build'.
#   7. Usage errors: --image with --kernel, --warm-console with an agent
#      port, an agent port forkd's client cannot reach.
# Contract: tests/vmm/run.sh sets FORKD, GUEST (empty: host-side case) and
# WORK; 0 pass, 77 skip.
set -euo pipefail

if [[ ! -c /dev/kvm || ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "skip: /dev/kvm is not available"
	exit 77
fi
command -v python3 >/dev/null || { echo "skip: python3 is needed to read snapshot.json"; exit 77; }
: "${FORKD:?}" "${WORK:?}"
guests=$(dirname "$FORKD")/guests
for g in agent_stub snap_idle smoke; do
	[[ -f $guests/$g.elf ]] || { echo "FAIL: no $guests/$g.elf (run 'make guests')"; exit 1; }
done

export FORKD_HOME=$WORK/home FORKD_CACHE=$WORK/cache
# forkd's private vsock directories go here, so the test can see them go.
export TMPDIR=$WORK/tmp
mkdir -p "$FORKD_HOME" "$TMPDIR" "$FORKD_CACHE/images"
snaps=$FORKD_HOME/snapshots
bg=""
trap '[[ -z $bg ]] || kill "$bg" 2>/dev/null || true' EXIT

fail() {
	echo "FAIL: $*"
	exit 1
}

ok() {
	echo "ok: $*"
}

# json FILE EXPR: print the Python expression EXPR over the JSON object j.
json() {
	python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# Nothing of a failed or finished run may stay: no temporary snapshot
# directory, no private vsock directory, no forkd still running.
no_leftovers() {
	local what=$1 left
	left=$(find "$snaps" "$TMPDIR" -mindepth 1 -maxdepth 1 \( -name '*.tmp.*' -o \
		-name 'forkd-snapshot.*' \) 2>/dev/null || true)
	[[ -z $left ]] || fail "$what left behind: $left"
	left=$(pgrep -f -- "snapshot --tag $what( |$)" || true)
	[[ -z $left ]] || fail "$what: processes left behind: $left"
}

# --- 1. agent_stub, --agent-port 8888 -----------------------------------------------
rc=0
timeout -k 5 "$(scaled 60)" "$FORKD" snapshot --tag stub --kernel "$guests/agent_stub.elf" --agent-port 8888 \
	--console "$WORK/stub.console" --timeout-secs "$(scaled 30)" >"$WORK/stub.log" 2>&1 || rc=$?
cat "$WORK/stub.log"
((rc == 0)) || fail "snapshot of agent_stub with --agent-port 8888 exited with status $rc"
grep -q "agent warm after .* (pid 1, numpy none)" "$WORK/stub.log" ||
	fail "the snapshot was not taken on the agent's warm pong"
[[ $(json "$snaps/stub/snapshot.json" 'j["agent_port"]') == 8888 ]] || fail "agent_port is not 8888"
[[ $(json "$snaps/stub/snapshot.json" 'j["devices"]["vsock"]') == True ]] || fail "no vsock device"
[[ -s $snaps/stub/memory.bin && -s $snaps/stub/vmstate ]] || fail "snapshot files missing"
no_leftovers stub
ok "agent_stub: snapshot taken on ping warm=true, snapshot.json agent_port 8888"

# --- 2. --agent-port 0: the doorbell; a forked child answers ping --run-dir ---------------
"$FORKD" snapshot --tag bell --kernel "$guests/agent_stub.elf" --agent-port 0 --mem-mib 32 \
	--vsock "$WORK/bell.sock" --console "$WORK/bell.console" --timeout-secs "$(scaled 30)" >"$WORK/bell.log" 2>&1 ||
	{ cat "$WORK/bell.log"; fail "snapshot with --agent-port 0 failed"; }
grep -q "guest warm after" "$WORK/bell.log" || fail "--agent-port 0 did not wait for the doorbell"
[[ $(json "$snaps/bell/snapshot.json" '"agent_port" in j') == False ]] ||
	fail "--agent-port 0 wrote an agent_port"
[[ ! -e $WORK/bell.sock ]] || fail "the snapshot VM's vsock socket was left behind"
timeout -k 5 "$(scaled 60)" "$FORKD" fork --tag bell -n 2 --settle-secs "$(scaled 30)" --keep-workdir \
	--workdir "$WORK/fork" >"$WORK/fork.log" 2>&1 &
bg=$!
for _ in $(seq 100); do
	[[ -S $WORK/fork/child-1/vsock.sock ]] && break
	sleep 0.1
done
for i in 0 1; do
	out=$("$FORKD" ping --run-dir "$WORK/fork/child-$i" --timeout-secs "$(scaled 10)" --json) ||
		fail "forkd ping --run-dir $WORK/fork/child-$i failed"
	[[ $(python3 -c 'import json, sys; j = json.loads(sys.argv[1]); print(j["warm"], j["index"])' "$out") == "True $i" ]] ||
		fail "child $i answered $out"
done
kill "$bg"
wait "$bg" || true
bg=""
ok "--agent-port 0: doorbell; forkd ping --run-dir reaches both children of a --keep-workdir fork"

# --- 3. a guest that never answers --------------------------------------------------------
rc=0
t0=$SECONDS
timeout -k 5 "$(scaled 60)" "$FORKD" snapshot --tag mute --kernel "$guests/snap_idle.elf" --agent-port 8888 \
	--console "$WORK/mute.console" --timeout-secs 3 >"$WORK/mute.log" 2>&1 || rc=$?
cat "$WORK/mute.log"
((rc == 1)) || fail "a guest that never answers: exit status $rc, expected 1"
((SECONDS - t0 < 20)) || fail "the 3 s timeout took $((SECONDS - t0)) s"
grep -q "no warm answer from the agent on vsock port 8888 within 3 s" "$WORK/mute.log" ||
	fail "the error does not say what timed out"
grep -q "nothing was written" "$WORK/mute.log" || fail "the error does not say nothing was written"
grep -q "last console line: snap_idle" "$WORK/mute.log" || fail "the error lacks the last console line"
[[ ! -e $snaps/mute ]] || fail "a snapshot directory was left for a guest that never answered"
no_leftovers mute
ok "a guest that never answers: timed out after 3 s with a clear error, nothing left"

# --- 4. a guest that stops before its agent answers ---------------------------------------
rc=0
timeout -k 5 "$(scaled 60)" "$FORKD" snapshot --tag gone --kernel "$guests/smoke.elf" --agent-port 8888 \
	--console "$WORK/gone.console" --timeout-secs "$(scaled 30)" >"$WORK/gone.log" 2>&1 || rc=$?
((rc == 1)) || { cat "$WORK/gone.log"; fail "a guest that powers off: exit status $rc"; }
grep -q "the guest stopped before its agent answered warm" "$WORK/gone.log" ||
	{ cat "$WORK/gone.log"; fail "the error does not say the guest stopped"; }
[[ ! -e $snaps/gone ]] || fail "a snapshot directory was left for a guest that stopped"
no_leftovers gone
ok "a guest that stops first: reported at once, nothing left"

# --- 5. --image with a fake image -----------------------------------------------------------
img=$FORKD_CACHE/images/fake
mkdir -p "$img"
cp "$guests/agent_stub.elf" "$img/vmlinuz"
head -c 4096 /dev/urandom >"$img/initrd.img"
truncate -s 1M "$img/rootfs.ext4" "$WORK/extra.img"
echo " console=ttyS0 quiet " >"$img/cmdline"
echo '{"kernel": {"release": "test", "version": "1"}}' >"$img/image.json"
mkdir -p "$FORKD_CACHE/kernel/test_1"
printf 'CONFIG_HZ_100=y\nCONFIG_HZ=100\n' >"$FORKD_CACHE/kernel/test_1/config"
rc=0
timeout -k 5 "$(scaled 60)" "$FORKD" snapshot --tag img --image fake --cmdline "forkd.test=1" \
	--disk "$WORK/extra.img" --console "$WORK/img.console" >"$WORK/img.log" 2>&1 || rc=$?
cat "$WORK/img.log"
((rc == 0)) || fail "snapshot --image fake exited with status $rc"
grep -q "at most 3600 s" "$WORK/img.log" || fail "--image did not default --timeout-secs to 3600"
j=$snaps/img/snapshot.json
# 2 vCPUs, but 1 on KVM-PVM hosts (SMP guests' user memory is corrupted there).
want_vcpus=2
[[ -e /sys/module/kvm_pvm && ${FORKD_PVM:-} != 0 || ${FORKD_PVM:-} == 1 ]] && want_vcpus=1
[[ $(json "$j" 'j["mem_mib"], j["vcpus"], j["agent_port"]') == "(512, $want_vcpus, 8888)" ]] ||
	fail "--image defaults: $(json "$j" 'j["mem_mib"], j["vcpus"], j.get("agent_port")')"
[[ $(json "$j" '[d["path"] for d in j["devices"]["disks"]]') == "['$img/rootfs.ext4', '$WORK/extra.img']" ]] ||
	fail "disks: $(json "$j" 'j["devices"]["disks"]')"
[[ $(json "$j" 'j["kernel"], j["initrd"]') == "('$img/vmlinuz', '$img/initrd.img')" ]] ||
	fail "kernel/initrd: $(json "$j" 'j["kernel"], j["initrd"]')"
# lpj = guest TSC kHz * 1000 / CONFIG_HZ (100 here, from the kernel's .config).
cmdline=$(json "$j" 'j["cmdline"]')
[[ $cmdline =~ ^console=ttyS0\ quiet\ lpj=([0-9]+)\ forkd\.test=1$ ]] || fail "cmdline: $cmdline"
lpj=${BASH_REMATCH[1]}
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo)
if [[ -n $mhz ]] && ((mhz > 0)); then
	# KVM's TSC frequency and /proc/cpuinfo's MHz agree to within a few percent.
	((lpj > mhz * 10000 * 9 / 10 && lpj < mhz * 10000 * 11 / 10)) ||
		fail "lpj=$lpj is not about $mhz MHz / HZ 100"
fi
"$FORKD" snapshot --tag img2 --image fake --mem-mib 64 --vcpus 1 --timeout-secs "$(scaled 20)" \
	--console "$WORK/img2.console" >"$WORK/img2.log" 2>&1 || { cat "$WORK/img2.log"; fail "--image with --mem-mib/--vcpus"; }
[[ $(json "$snaps/img2/snapshot.json" 'j["mem_mib"], j["vcpus"]') == "(64, 1)" ]] ||
	fail "--mem-mib/--vcpus did not override the image defaults"
no_leftovers img
ok "--image: defaults, root disk first, cmdline + lpj=$lpj + --cmdline, agent_port 8888"

# --- 6. a missing image ---------------------------------------------------------------------
rc=0
"$FORKD" snapshot --tag none --image nosuch >"$WORK/none.log" 2>&1 || rc=$?
cat "$WORK/none.log"
((rc == 1)) || fail "a missing image: exit status $rc"
[[ $(wc -l <"$WORK/none.log") == 1 ]] || fail "a missing image: more than one line"
grep -q "$FORKD_CACHE/images/nosuch.*forkd image build --tag nosuch" "$WORK/none.log" ||
	fail "a missing image: the error does not name the path and the fix"
rm "$img/initrd.img"
rc=0
"$FORKD" snapshot --tag none --image fake >"$WORK/none.log" 2>&1 || rc=$?
if ((rc != 1)) || ! grep -q "no file $img/initrd.img.*forkd image build --tag fake" "$WORK/none.log"; then
	cat "$WORK/none.log"
	fail "an incomplete image: status $rc"
fi
[[ ! -e $snaps/none ]] || fail "a snapshot directory was left for a missing image"
no_leftovers none
ok "a missing or incomplete image: one line with the path and 'forkd image build'"

# --- 7. usage errors --------------------------------------------------------------------------
usage() {
	local want=$1 rc=0
	shift
	"$FORKD" snapshot --tag u "$@" >"$WORK/u.log" 2>&1 || rc=$?
	if ((rc != 2)) || ! grep -q -- "$want" "$WORK/u.log"; then
		cat "$WORK/u.log"
		fail "$* -> status $rc"
	fi
}
usage "drop --kernel" --image fake --kernel "$guests/smoke.elf"
usage "two warm signals" --image fake --warm-console READY
usage "two warm signals" --kernel "$guests/smoke.elf" --agent-port 8888 --warm-console READY
usage "vsock port 8888 only" --kernel "$guests/smoke.elf" --agent-port 1234
usage "wants a vsock port" --kernel "$guests/smoke.elf" --agent-port x
usage "give --image IMG" --agent-port 8888
ok "usage errors"
