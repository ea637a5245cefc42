/*
 * An ICMP echo responder in the style of the XDP tutorials: answers every IPv4 echo request with
 * XDP_TX (MACs and addresses swapped, type 0, checksum updated incrementally), passes the rest.
 * <linux/icmp.h> reaches glibc's headers through <linux/if.h>, which a plain `clang -target bpf`
 * cannot compile on Debian without libc6-dev-i386; the kit makes it compile as it is.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/icmp.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} replies SEC(".maps");

static __always_inline void swap_bytes(unsigned char *a, unsigned char *b, int n)
{
	for (int i = 0; i < n; i++) {
		unsigned char t = a[i];

		a[i] = b[i];
		b[i] = t;
	}
}

SEC("xdp")
int icmp_echo(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct icmphdr *icmp = (void *)(ip + 1);
	__u32 key = 0, sum;
	__be32 addr;
	__u64 *count;

	if ((void *)(icmp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if (ip->ihl != 5 || ip->protocol != IPPROTO_ICMP || icmp->type != ICMP_ECHO)
		return XDP_PASS;

	swap_bytes(eth->h_dest, eth->h_source, ETH_ALEN);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr;
	/* type 8 -> 0 in the first word: add the difference back into the checksum (RFC 1624) */
	icmp->type = ICMP_ECHOREPLY;
	sum = (__u32)icmp->checksum + bpf_htons(ICMP_ECHO << 8);
	icmp->checksum = (__u16)(sum + (sum >> 16));

	count = bpf_map_lookup_elem(&replies, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
