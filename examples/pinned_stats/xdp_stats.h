/* The per-action counters both programs share: pinned by name, as the XDP tutorials do. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct datarec {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XDP_REDIRECT + 1);
	__type(key, __u32);
	__type(value, struct datarec);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_stats_map SEC(".maps");

static __always_inline __u32 stats_record(struct xdp_md *ctx, __u32 action)
{
	struct datarec *rec = bpf_map_lookup_elem(&xdp_stats_map, &action);

	if (rec) {
		__sync_fetch_and_add(&rec->packets, 1);
		__sync_fetch_and_add(&rec->bytes, (__u64)(ctx->data_end - ctx->data));
	}
	return action;
}
