/* GET /healthz, /version, /metrics. */
#include <stdlib.h>
#include <string.h>

#include "common/sbuf.h"
#include "common/util.h"
#include "daemon/api.h"
#include "vmm/vm.h"

void api_healthz(struct api_req *rq, struct api_resp *rs)
{
	api_json(rs, 200, json_pack("{s:s}", "status", "ok"));
}

void api_version(struct api_req *rq, struct api_resp *rs)
{
	/* kvm: what runs the sandboxes here, so that figures measured through
	 * this daemon (forkd bench) can say what they are worth: "hardware"
	 * (VMX/SVM), "kvm-pvm" (guest kernel code emulated) or "lab" (KVM inside
	 * forkd's emulated KVM lab: ratios only). */
	api_json(rs, 200,
		 json_pack("{s:s,s:s,s:b,s:s}", "version", FORKD_VERSION, "api", "v1", "auth",
			   rq->d->token_len != 0, "kvm",
			   vm_host_is_pvm()	    ? "kvm-pvm"
			   : getenv("FORKD_IN_LAB") ? "lab"
						    : "hardware"));
}

void api_metrics(struct api_req *rq, struct api_resp *rs)
{
	struct metrics_gauges g = {.version = FORKD_VERSION};
	struct sbuf out = {0};

	if (api_count_sandboxes(rq->d, &g.sandboxes_running, &g.sandboxes_exited)) {
		api_error(rs, 500, "cannot read the state database");
		return;
	}
	g.snapshots = api_count_snapshots();
	g.uptime_s = (double)(now_ns() - rq->d->started_ns) / 1e9;
	metrics_render(&rq->d->metrics, &g, &out);
	if (out.oom) {
		sbuf_free(&out);
		api_error(rs, 500, "out of memory rendering metrics");
		return;
	}
	api_bytes(rs, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
	sbuf_free(&out);
}
