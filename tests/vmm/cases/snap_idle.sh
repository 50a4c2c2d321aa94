#!/usr/bin/env bash
# snap_idle (sharing): 100 children of a 256 MiB snapshot share its pages.
# Each child writes 16 pages and then halts (tests/guests/snap_idle.c with
# snap_idle.write on its command line); while `forkd fork --settle-secs`
# keeps them alive, the script reads every child's private memory from
# /proc: Private_Dirty (smaps_rollup) + page tables (VmPTE in status).
# Every child must stay under SNAP_SHARING_LIMIT_KIB (default 1024 KiB,
# i.e. < 0.4% of its 256 MiB of guest RAM; 4096 KiB for a sanitizer
# build, 8192 KiB for one where transparent hugepages are "always");
# the figures are printed. Then
# the spawner is stopped with SIGTERM and must leave no child and no work
# directory behind.
# Contract: tests/vmm/run.sh sets FORKD, GUEST and WORK; 0 pass, 77 skip.
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

n=${SNAP_SHARING_CHILDREN:-100}
limit_kib=${SNAP_SHARING_LIMIT_KIB:-1024}
# ASan's shadow memory and allocator are private to each child: the figure
# says nothing about forkd then, so the bound is relaxed.
# Not grep -q: under pipefail, grep quitting early fails ldd with SIGPIPE.
if ldd "$FORKD" 2>/dev/null | grep libasan >/dev/null; then
	limit_kib=${SNAP_SHARING_LIMIT_KIB:-4096}
	# With transparent hugepages "always" (the KVM lab's kernel) ASan's
	# shadow grows in 2 MiB pages: measured 4.4 MiB per child there.
	if grep -q '\[always\]' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null; then
		limit_kib=${SNAP_SHARING_LIMIT_KIB:-8192}
	fi
	echo "note: sanitizer build: bound relaxed to $limit_kib KiB per child"
fi
mem_mib=256
tag=sharing$$
workdir=$WORK/fork

snap_take "$tag" --mem-mib "$mem_mib" --cmdline snap_idle.write

bounded_start 600 "$FORKD" fork --tag "$tag" -n "$n" --settle-secs "$(scaled 500)" --workdir "$workdir" \
	>"$WORK/fork.log" 2>&1
fork_bg=$_snap_bg

# Wait (bounded) for the spawner, then for every child's report.
deadline=$((SECONDS + 180))
while [[ ! -s $workdir/spawner.pid ]]; do
	((SECONDS < deadline)) || fail "no spawner.pid in $workdir"
	kill -0 "$fork_bg" 2>/dev/null || { cat "$WORK/fork.log"; fail "forkd fork exited early"; }
	sleep 0.1
done
spawner=$(cat "$workdir/spawner.pid")
while :; do
	wrote=$(grep -l '^snap_idle: child [0-9]* wrote 16 pages$' "$workdir"/child-*/console.log 2>/dev/null |
		wc -l)
	((wrote == n)) && break
	((SECONDS < deadline)) || { cat "$WORK/fork.log"; fail "only $wrote of $n children wrote their pages"; }
	kill -0 "$fork_bg" 2>/dev/null || { cat "$WORK/fork.log"; fail "forkd fork exited early"; }
	sleep 0.2
done
sed 's/^/    | /' "$WORK/fork.log"
ok "$n children running, each wrote 16 pages and halted"

mapfile -t kids < <(pgrep -P "$spawner")
((${#kids[@]} == n)) || fail "spawner $spawner has ${#kids[@]} child processes, expected $n"
sum=0 max=0 sum_pd=0 sum_pte=0
for pid in "${kids[@]}"; do
	pd=$(awk '/^Private_Dirty:/ { print $2 }' "/proc/$pid/smaps_rollup")
	pte=$(awk '/^VmPTE:/ { print $2 }' "/proc/$pid/status")
	[[ -n $pd && -n $pte ]] || fail "could not read /proc/$pid"
	kib=$((pd + pte))
	sum=$((sum + kib)) sum_pd=$((sum_pd + pd)) sum_pte=$((sum_pte + pte))
	((kib > max)) && max=$kib
done
awk -v s="$sum" -v pd="$sum_pd" -v pte="$sum_pte" -v m="$max" -v n="$n" -v ram="$mem_mib" 'BEGIN {
	printf "    private memory per child: mean %.0f KiB (Private_Dirty %.0f + page tables %.0f), max %d KiB\n",
		s / n, pd / n, pte / n, m
	printf "    = %.2f MiB, %.3f%% of the guest'"'"'s %d MiB; %d children: %.1f MiB in all (vs %d MiB of guest RAM)\n",
		s / n / 1024, 100 * s / n / 1024 / ram, ram, n, s / 1024, n * ram }'
((max < limit_kib)) || fail "a child holds $max KiB privately (limit $limit_kib KiB)"
ok "every child's private memory (Private_Dirty + VmPTE) < $limit_kib KiB"

kill -TERM "$spawner"
rc=0
wait "$fork_bg" || rc=$?
_snap_bg=""
((rc == 130)) || { cat "$WORK/fork.log"; fail "forkd fork exited with status $rc after SIGTERM, expected 130"; }
for pid in "${kids[@]}"; do
	kill -0 "$pid" 2>/dev/null && fail "child process $pid still runs after the spawner stopped"
done
[[ ! -e $workdir ]] || fail "work directory $workdir left behind"
ok "SIGTERM to the spawner stopped all $n children and removed the work directory"
