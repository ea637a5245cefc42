/* Built-in "drop": drops every frame and counts what it dropped. */
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xt_counter);
} dropped SEC(".maps");

SEC("xdp")
int xt_drop(struct xdp_md *ctx)
{
	__u32 key = 0;

	xt_count(bpf_map_lookup_elem(&dropped, &key), ctx);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
