/* Drops everything and counts it in the same pinned xdp_stats_map as xdp_pass_counted. */
#include "xdp_stats.h"

SEC("xdp")
int xdp_drop_counted(struct xdp_md *ctx)
{
	return stats_record(ctx, XDP_DROP);
}

char LICENSE[] SEC("license") = "GPL";
