/* Shared definitions for the built-in XDP programs. */
#ifndef XDPTEST_BPF_COMMON_H
#define XDPTEST_BPF_COMMON_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Packets and bytes, as kept in the per-CPU counter maps. */
struct xt_counter {
	__u64 packets;
	__u64 bytes;
};

static __always_inline void xt_count(struct xt_counter *c, struct xdp_md *ctx)
{
	if (!c)
		return;
	c->packets++;
	c->bytes += ctx->data_end - ctx->data;
}

#endif
