/*
 * Built-in "count": counts every frame, then returns the action held in
 * config[0]. The map starts zeroed and 0 would be XDP_ABORTED, which is kept
 * for program errors, so 0 means the default, XDP_PASS; XDP_REDIRECT (which
 * needs a target) is not accepted either. counters[action] holds the packets
 * and bytes that left with that action.
 */
#include "common.h"

#define XT_ACTIONS (XDP_REDIRECT + 1)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XT_ACTIONS);
	__type(key, __u32);
	__type(value, struct xt_counter);
} counters SEC(".maps");

SEC("xdp")
int xt_count_prog(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u32 action = XDP_PASS;
	__u32 *configured = bpf_map_lookup_elem(&config, &key);

	if (configured && *configured > XDP_ABORTED && *configured < XDP_REDIRECT)
		action = *configured;
	xt_count(bpf_map_lookup_elem(&counters, &action), ctx);
	return action;
}

char LICENSE[] SEC("license") = "GPL";
