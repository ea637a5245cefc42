/*
 * Written the CO-RE way: kernel types come from vmlinux.h (the kit generates it from the running
 * kernel's BTF), helpers from libbpf's headers. Counts IPv4 frames per IP protocol in .bss.
 */
#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define ETH_P_IP 0x0800	/* a macro, so vmlinux.h (types only) does not carry it */

__u64 ipv4_by_protocol[256] = {};
__u64 not_ipv4 = 0;

SEC("xdp")
int core_counter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP)) {
		__sync_fetch_and_add(&not_ipv4, 1);
		return XDP_PASS;
	}
	__sync_fetch_and_add(&ipv4_by_protocol[ip->protocol], 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
