#!/usr/bin/env bash
# fork_workdir: `forkd fork` (as root) never writes through a work
# directory someone else prepared. With tests/guests/snap_idle.c:
#   1. a --workdir owned by another user, holding spawner.pid as a symbolic
#      link to a root-only file, is refused (exit 1, naming the owner) and
#      the file keeps its contents;
#   2. a --workdir that is a symbolic link, or a directory of ours that
#      others can write to, is refused the same way;
#   3. the default work directory is new (/tmp/forkd-fork-TAG-XXXXXX, mode
#      0700): a /tmp/forkd-fork-TAG planted at the old predictable name,
#      with links in it, is neither used nor followed;
#   4. a missing --workdir is made with mode 0700 and used.
# Contract: tests/vmm/run.sh sets FORKD and WORK (no guest of this name).
GUEST=${GUEST:-}
[[ -n $GUEST ]] || GUEST=$(dirname "${FORKD:?}")/guests/snap_idle.elf
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=snap_lib.sh
. "$here/snap_lib.sh"

(($(id -u) == 0)) || { echo "skip: the attack needs root as the victim"; exit 77; }
other=$(id -u nobody 2>/dev/null) || { echo "skip: no user 'nobody'"; exit 77; }
[[ -f $GUEST ]] || fail "$GUEST is missing (make guests)"

tag=wd$$
snap_take "$tag" --mem-mib 16
victim=$WORK/precious
echo "root's data" >"$victim"
chmod 600 "$victim"

# refused DIR WHY: forkd fork --workdir DIR exits 1 saying WHY, the victim intact.
refused() {
	local rc=0
	bounded 60 "$FORKD" fork --tag "$tag" -n 1 --workdir "$1" >"$WORK/out.log" 2>&1 || rc=$?
	((rc == 1)) && grep -q -- "$2" "$WORK/out.log" ||
		{ cat "$WORK/out.log"; fail "--workdir $1: status $rc, no '$2'"; }
	[[ $(cat "$victim") == "root's data" ]] || fail "--workdir $1: the victim file was written"
	ok "--workdir $1 refused: $(head -n 1 "$WORK/out.log")"
}

planted=$WORK/planted
mkdir "$planted"
ln -s "$victim" "$planted/spawner.pid"
mkdir "$planted/child-0"
ln -s "$victim" "$planted/child-0/console.log"
chown -R "$other" "$planted"
chmod 755 "$WORK"
refused "$planted" "belongs to uid $other"

mkdir "$WORK/real"
ln -s "$WORK/real" "$WORK/linkdir"
refused "$WORK/linkdir" "not a directory"
mkdir "$WORK/open"
chmod 777 "$WORK/open"
refused "$WORK/open" "nobody else can write"

old=/tmp/forkd-fork-$tag
mkdir "$old"
ln -s "$victim" "$old/spawner.pid"
rc=0
bounded 60 "$FORKD" fork --tag "$tag" -n 1 --settle-secs 1 --keep-workdir >"$WORK/default.log" 2>&1 || rc=$?
rm -rf "$old"
((rc == 0)) || { cat "$WORK/default.log"; fail "fork with the default workdir: status $rc"; }
dir=$(sed -n 's/^fork: child files kept in //p' "$WORK/default.log")
[[ $dir =~ ^/tmp/forkd-fork-$tag-[A-Za-z0-9]{6}$ ]] || fail "default workdir '$dir' is not /tmp/forkd-fork-$tag-XXXXXX"
[[ $(stat -c %a "$dir") == 700 ]] || fail "default workdir mode $(stat -c %a "$dir"), not 700"
[[ -f $dir/child-0/console.log ]] || fail "the default workdir has no child-0/console.log"
rm -rf "$dir"
[[ $(cat "$victim") == "root's data" ]] || fail "the planted old-style workdir was followed"
ok "default workdir: a new $dir (0700); the planted $old was not touched"

rc=0
bounded 60 "$FORKD" fork --tag "$tag" -n 1 --settle-secs 1 --workdir "$WORK/fresh" --keep-workdir \
	>"$WORK/fresh.log" 2>&1 || rc=$?
((rc == 0)) || { cat "$WORK/fresh.log"; fail "fork with a new --workdir: status $rc"; }
[[ $(stat -c %a "$WORK/fresh") == 700 && -f $WORK/fresh/child-0/console.log ]] ||
	fail "a new --workdir was not made 0700 and used"
ok "a missing --workdir is made 0700 and used"
