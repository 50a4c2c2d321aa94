#!/usr/bin/env bash
# forkd cleanup, cgroups and network namespaces (root):
#  - leaf cgroups under a forkd/ parent in each memory-capable hierarchy
#    mounted here (cgroup v1 memory, cgroup v2), kept inside a private test
#    cgroup given with --cgroup-root: the empty ones (nested ones too) are
#    removed, the one holding a process is kept;
#  - forkd-child-* namespaces: one with nothing inside is removed with its
#    host veth, one with a process inside is kept, a stray fkd<i>h host veth
#    whose namespace is gone is removed; without --yes nothing goes.
# Contract: tests/vmm/run.sh sets FORKD and WORK; 0 pass, 77 skip.
set -euo pipefail
: "${FORKD:?}" "${WORK:?}"
((EUID == 0)) || { echo "skip: cgroups and network namespaces need root"; exit 77; }
command -v ip >/dev/null || { echo "skip: iproute2 (ip) is missing"; exit 77; }

fail() {
	echo "FAIL: $*"
	exit 1
}
ok() {
	echo "ok: $*"
}

N1=16372 N2=16373 N3=16374
cgtests=()
bg=()
cleanup() {
	local rc=$?
	for i in "$N1" "$N2"; do
		# shellcheck disable=SC2046 # one pid per word
		kill $(ip netns pids "forkd-child-$i" 2>/dev/null) 2>/dev/null || true
	done
	for p in "${bg[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	"$FORKD" netns teardown --force "$N1" "$N2" "$N3" >/dev/null 2>&1 || true
	ip link del "fkd${N3}h" 2>/dev/null || true
	for d in "${cgtests[@]}"; do
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
	exit "$rc"
}
trap cleanup EXIT

# Memory-capable hierarchies: cgroup v1 with the memory controller, cgroup2.
# mountinfo: "... MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS".
roots=$(awk '{ for (i = 7; $i != "-"; i++); t = $(i + 1); o = $(i + 3) }
	t == "cgroup2" || (t == "cgroup" && o ~ /(^|,)memory(,|$)/) { print $5 }' \
	/proc/self/mountinfo | sort -u)
[[ -n $roots ]] || echo "note: no cgroup v1 memory or cgroup2 hierarchy mounted; cgroup part skipped"
for root in $roots; do
	t="$root/fkt-cleanup-$$"
	mkdir -p "$t/forkd/empty" "$t/forkd/busy" "$t/forkd/run1/child-0" "$t/other"
	cgtests+=("$t")
	sleep 60 &
	bg+=($!)
	echo "${bg[-1]}" >"$t/forkd/busy/cgroup.procs"
	out=$("$FORKD" cleanup --only cgroup --min-age 0 --cgroup-root "$t")
	echo "$out"
	for d in empty run1/child-0 run1; do
		grep -q "^stale   cgroup   $t/forkd/$d$" <<<"$out" || fail "$root: $d not listed stale"
	done
	grep -q "^keep    cgroup   $t/forkd/busy (processes in it)$" <<<"$out" || fail "$root: busy"
	[[ -d $t/forkd/empty ]] || fail "$root: removed without --yes"
	out=$("$FORKD" cleanup --yes --only cgroup --min-age 0 --cgroup-root "$t")
	echo "$out"
	[[ ! -e $t/forkd/empty && ! -e $t/forkd/run1 ]] || fail "$root: empty leaves left"
	[[ -d $t/forkd/busy && -d $t/forkd && -d $t/other ]] || fail "$root: removed too much"
	grep -qx "${bg[-1]}" "$t/forkd/busy/cgroup.procs" || fail "$root: the process left its cgroup"
	ok "$root: empty forkd/ leaves (nested too) removed, the busy one and forkd/ kept"
done

# Namespaces.
"$FORKD" netns teardown --force "$N1" "$N2" "$N3" >/dev/null
"$FORKD" netns setup --first "$N1" 2 >/dev/null
ip link add "fkd${N3}h" type veth peer name "fkt${N3}p"
ip netns exec "forkd-child-$N2" sleep 60 &
bg+=($!)
sleep 0.3
out=$("$FORKD" cleanup --only netns)
echo "$out"
grep -q "^stale   netns    /run/netns/forkd-child-$N1$" <<<"$out" || fail "empty namespace not stale"
grep -q "^keep    netns    /run/netns/forkd-child-$N2 (pid [0-9]* is inside)$" <<<"$out" ||
	fail "namespace with a process not kept"
grep -q "^stale   netns    host veth fkd${N3}h$" <<<"$out" || fail "stray host veth not listed"
[[ -e /run/netns/forkd-child-$N1 ]] || fail "removed without --yes"
out=$("$FORKD" cleanup --yes --only netns)
echo "$out"
[[ ! -e /run/netns/forkd-child-$N1 ]] || fail "forkd-child-$N1 still there"
! ip link show "fkd${N1}h" >/dev/null 2>&1 || fail "host veth fkd${N1}h still there"
! ip link show "fkd${N3}h" >/dev/null 2>&1 || fail "stray host veth fkd${N3}h still there"
if [[ ! -e /run/netns/forkd-child-$N2 ]] || ! ip link show "fkd${N2}h" >/dev/null; then
	fail "the namespace in use (or its veth) was removed"
fi
ok "unused namespace and stray veth removed, the one with a process kept"
echo SUCCESS
