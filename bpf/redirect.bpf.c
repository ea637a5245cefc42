/*
 * Built-in "redirect": steers each frame to the AF_XDP socket registered for
 * the queue it arrived on (xsks_map[rx_queue_index]); frames on a queue with
 * no socket go to the kernel stack. queue_stats[queue] counts both outcomes.
 */
#include "common.h"

#define XT_MAX_QUEUES 64

struct xt_queue_stats {
	__u64 redirected;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XT_MAX_QUEUES);
	__type(key, __u32);
	__type(value, struct xt_queue_stats);
} queue_stats SEC(".maps");

SEC("xdp")
int xt_redirect(struct xdp_md *ctx)
{
	__u32 queue = ctx->rx_queue_index;
	struct xt_queue_stats *stats = bpf_map_lookup_elem(&queue_stats, &queue);
	int action = bpf_redirect_map(&xsks_map, queue, XDP_PASS);

	if (stats) {
		if (action == XDP_REDIRECT)
			stats->redirected++;
		else
			stats->passed++;
	}
	return action;
}

char LICENSE[] SEC("license") = "GPL";
