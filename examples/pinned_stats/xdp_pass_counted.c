/* Lets everything through and counts it in the shared, pinned xdp_stats_map. */
#include "xdp_stats.h"

SEC("xdp")
int xdp_pass_counted(struct xdp_md *ctx)
{
	return stats_record(ctx, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
