/* Built-in "tx": swaps source and destination MAC and sends the frame back out (XDP_TX). */
#include "common.h"
#include <linux/if_ether.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xt_counter);
} reflected SEC(".maps");

SEC("xdp")
int xt_tx(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	unsigned char tmp[ETH_ALEN];
	__u32 key = 0;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	xt_count(bpf_map_lookup_elem(&reflected, &key), ctx);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
