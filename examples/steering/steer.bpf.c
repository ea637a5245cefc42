/*
 * An example AF_XDP steering program, as an application would ship it:
 * UDP to ports 5000-5999 goes to the AF_XDP socket of the frame's rx queue,
 * UDP to port 9 (discard) is dropped, everything else goes to the stack.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} service_sockets SEC(".maps");

SEC("xdp")
int steer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u16 port;

	if ((void *)(udp + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	port = bpf_ntohs(udp->dest);
	if (port == 9)
		return XDP_DROP;
	if (port >= 5000 && port <= 5999)
		return bpf_redirect_map(&service_sockets, ctx->rx_queue_index, XDP_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
