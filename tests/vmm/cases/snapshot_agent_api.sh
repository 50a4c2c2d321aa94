#!/usr/bin/env bash
# POST /v1/snapshots kind "image" on a real `forkd serve` (loopback, --no-auth:
# no token, private state): the job runs `forkd snapshot --image`, here with a
# fake image in a private FORKD_CACHE whose vmlinuz is tests/guests/
# agent_stub (the real Linux image takes minutes: tests/e2e).
#   - no "image", a bad tag, "guest" with kind image, "image" with kind
#     test-guest: 400; a missing image: 400 naming 'forkd image build';
#   - {"kind":"image","image":"fake"}: 202, then ready, with agent_port 8888,
#     512 MiB / 2 vCPUs by default and the image's kernel;
#   - mem_mib/vcpus/cmdline reach the job; the job's log has the agent wait.
# Contract: tests/vmm/run.sh sets FORKD, GUEST (empty: host-side case) and
# WORK; 0 pass, 77 skip.
set -euo pipefail

if [[ ! -c /dev/kvm || ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "skip: /dev/kvm is not available"
	exit 77
fi
command -v python3 >/dev/null || { echo "skip: python3 is needed for the HTTP client"; exit 77; }
: "${FORKD:?}" "${WORK:?}"
guests=$(dirname "$FORKD")/guests
[[ -f $guests/agent_stub.elf ]] || { echo "FAIL: no $guests/agent_stub.elf (run 'make guests')"; exit 1; }

# Short paths: the job's vsock socket lives under the state directory.
top=$(mktemp -d /tmp/fsa.XXXXXX)
export FORKD_HOME=$top/h FORKD_CACHE=$top/c
mkdir -p "$FORKD_HOME" "$FORKD_CACHE/images/fake"
img=$FORKD_CACHE/images/fake
cp "$guests/agent_stub.elf" "$img/vmlinuz"
head -c 4096 /dev/urandom >"$img/initrd.img"
truncate -s 1M "$img/rootfs.ext4"
echo "console=ttyS0 quiet" >"$img/cmdline"

serve_pid=""
cleanup() {
	local rc=$?
	if [[ -n $serve_pid ]]; then
		kill -TERM "$serve_pid" 2>/dev/null || true
		wait "$serve_pid" 2>/dev/null || true
	fi
	rm -rf "$top"
	exit "$rc"
}
trap cleanup EXIT

"$FORKD" serve --bind 127.0.0.1:0 --no-auth --state-dir "$top/st" --run-root "$top/run" \
	--guest-dir "$guests" --audit-log "$WORK/audit.log" >"$WORK/serve.out" 2>"$WORK/serve.err" &
serve_pid=$!
port=""
for _ in $(seq 150); do
	port=$(sed -n 's/.*listening on http:\/\/[^ ]*:\([0-9]*\).*/\1/p' "$WORK/serve.out" | head -n 1)
	[[ -n $port ]] && break
	kill -0 "$serve_pid" 2>/dev/null || { cat "$WORK/serve.err"; echo "FAIL: forkd serve exited"; exit 1; }
	sleep 0.1
done
[[ -n $port ]] || { cat "$WORK/serve.err"; echo "FAIL: forkd serve did not say where it listens"; exit 1; }

timeout "$(scaled 120)" python3 - "$port" "$img" "$top/st" <<'PY'
import json, http.client, sys, time

port, img, state = int(sys.argv[1]), sys.argv[2], sys.argv[3]

def call(method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if data else None
    finally:
        c.close()

def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)

for body, code, want in (
    ({"tag": "a", "kind": "image"}, 400, 'needs "image"'),
    ({"tag": "a", "kind": "image", "image": "../x"}, 400, 'needs "image"'),
    ({"tag": "a", "kind": "image", "image": 5}, 400, 'needs "image"'),
    ({"tag": "a", "kind": "image", "image": "fake", "guest": "agent_stub"}, 400,
     '"guest" is for kind "test-guest"'),
    ({"tag": "a", "kind": "test-guest", "guest": "agent_stub", "image": "fake"}, 400,
     '"image" is for kind "image"'),
    ({"tag": "a", "kind": "image", "image": "nosuch"}, 400, "forkd image build --tag nosuch"),
    ({"tag": "a", "kind": "image", "image": "fake", "mem_mib": 3}, 400, "mem_mib"),
):
    st, o = call("POST", "/v1/snapshots", body)
    check(st == code and want in o.get("error", ""), "%s -> %s %s" % (body, st, o))
check(call("GET", "/v1/snapshots/a")[0] == 404, "a refused request left a snapshot")
print("ok: kind image: bad requests refused with 400")

def make(tag, body):
    st, o = call("POST", "/v1/snapshots", dict(body, tag=tag, kind="image"))
    check(st == 202 and o["state"] == "creating" and o["kind"] == "image", "POST: %s %s" % (st, o))
    deadline = time.time() + 60
    while time.time() < deadline:
        st, o = call("GET", "/v1/snapshots/" + tag)
        if st == 200 and o["state"] != "creating":
            return o
        time.sleep(0.2)
    check(False, "snapshot %s still creating after 60 s" % tag)

o = make("img", {"image": "fake"})
check(o["state"] == "ready", "kind image job: %s" % o)
check(o.get("agent_port") == 8888, "agent_port: %s" % o)
check(o["mem_mib"] == 512 and o["vcpus"] == 2, "image defaults: %s" % o)
check(o["kernel"] == img + "/vmlinuz" and o["vsock"] is True and o["disks"] == 1, "boot: %s" % o)
check(o["cmdline"].startswith("console=ttyS0 quiet lpj="), "cmdline: %s" % o["cmdline"])
log = open(state + "/jobs/img/job.log").read()
check("waiting for the agent on vsock port 8888" in log and "agent warm after" in log,
      "the job did not wait for the agent:\n" + log)
print("ok: kind image: ready with agent_port 8888, 512 MiB, 2 vCPUs")

o = make("img2", {"image": "fake", "mem_mib": 64, "vcpus": 1, "cmdline": "forkd.x=1"})
check(o["state"] == "ready" and o["mem_mib"] == 64 and o["vcpus"] == 1, "overrides: %s" % o)
check(o["cmdline"].endswith(" forkd.x=1"), "cmdline: %s" % o["cmdline"])
print("ok: kind image: mem_mib, vcpus and cmdline reach the job")
PY
