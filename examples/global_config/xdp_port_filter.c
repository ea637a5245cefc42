/*
 * Configured the current libbpf way: `const volatile` globals (.rodata) set from user space
 * before load, counters in .bss and a tunable in .data that user space reads and writes while
 * the program runs. Drops UDP to one port, counts what it saw, per IP protocol too.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u16 blocked_port = 0;		/* 0: block nothing */
const volatile __u32 verdict = XDP_DROP;	/* what a blocked frame gets */
const volatile char label[8] = "filter";

__u64 seen = 0;				/* .bss */
__u64 blocked = 0;
__u32 per_protocol[4] = {};		/* ICMP, TCP, UDP, other */
__u64 budget = 1000000;			/* .data: frames still allowed through before all is dropped */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u16);
	__type(value, __u64);
} by_port SEC(".maps");

SEC("xdp")
int port_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u64 one = 1, *count;
	__u16 port;

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	__sync_fetch_and_add(&seen, 1);
	__sync_fetch_and_add(&per_protocol[ip->protocol == IPPROTO_ICMP ? 0 : ip->protocol == IPPROTO_TCP ? 1 :
					   ip->protocol == IPPROTO_UDP ? 2 : 3], 1);
	if (budget == 0)
		return XDP_DROP;
	budget--;
	if (ip->protocol != IPPROTO_UDP || ip->ihl != 5 || (void *)(udp + 1) > data_end)
		return XDP_PASS;
	port = bpf_ntohs(udp->dest);
	count = bpf_map_lookup_elem(&by_port, &port);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&by_port, &port, &one, BPF_NOEXIST);
	if (blocked_port && port == blocked_port) {
		__sync_fetch_and_add(&blocked, 1);
		return verdict;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
