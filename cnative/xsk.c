// SPDX-License-Identifier: MIT
/*
 * AF_XDP set-up: UMEM allocation and registration, the four rings, bind,
 * options, statistics and busy polling. See xsk_int.h for who owns what.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "xsk_int.h"

#define XT_PAGE_SIZE 4096ULL
#define XT_HUGE_PAGE_SIZE (2ULL << 20)
#define XT_PACKET_HEADROOM 256 /* XDP_PACKET_HEADROOM */

int xt_xsk_abi(void)
{
	return XT_XSK_ABI;
}

void xt_xsk_rx_ring_words(struct xt_xsk *xsk, const unsigned int **prod, const unsigned int **cons)
{
	*prod = xsk->rx.producer;
	*cons = xsk->rx.consumer;
}

/* ---- UMEM ------------------------------------------------------------------ */

int xt_umem_create(unsigned int frame_size, unsigned int frames, unsigned int headroom,
		   unsigned int flags, struct xt_umem **out)
{
	struct xt_umem *umem;
	unsigned long long align;
	int mmap_flags = MAP_PRIVATE | MAP_ANONYMOUS;
	unsigned int i;
	int err;

	*out = NULL;
	if (!frames || frame_size < 2048 || frame_size > XT_PAGE_SIZE)
		return -EINVAL;
	if (!(flags & XT_UMEM_UNALIGNED) && (frame_size & (frame_size - 1)))
		return -EINVAL;
	if (headroom + XT_PACKET_HEADROOM >= frame_size) /* the kernel may want more; it says EINVAL */
		return -EINVAL;
	umem = calloc(1, sizeof(*umem));
	if (!umem)
		return -ENOMEM;
	umem->frame_size = frame_size;
	umem->frames = frames;
	umem->headroom = headroom;
	umem->flags = flags;
	umem->size = (unsigned long long)frames * frame_size;
	align = (flags & XT_UMEM_HUGEPAGES) ? XT_HUGE_PAGE_SIZE : XT_PAGE_SIZE;
	umem->map_size = (umem->size + align - 1) / align * align;
	if (flags & XT_UMEM_HUGEPAGES)
		mmap_flags |= MAP_HUGETLB;
	umem->area = mmap(NULL, umem->map_size, PROT_READ | PROT_WRITE, mmap_flags, -1, 0);
	if (umem->area == MAP_FAILED) {
		err = -errno;
		goto out_free;
	}
	umem->free_addrs = calloc(frames, sizeof(*umem->free_addrs));
	umem->owner = calloc(frames, sizeof(*umem->owner));
	if (!umem->free_addrs || !umem->owner) {
		err = -ENOMEM;
		goto out_unmap;
	}
	/* A stack: frame 0 on top, so frames are handed out in address order. */
	for (i = 0; i < frames; i++)
		umem->free_addrs[i] = (uint64_t)(frames - 1 - i) * frame_size;
	umem->nfree = frames;
	umem->next_ctx_id = 1;
	err = pthread_mutex_init(&umem->lock, NULL);
	if (err) {
		err = -err;
		goto out_unmap;
	}
	*out = umem;
	return 0;

out_unmap:
	free(umem->free_addrs);
	free(umem->owner);
	munmap(umem->area, umem->map_size);
out_free:
	free(umem);
	return err;
}

int xt_umem_destroy(struct xt_umem *umem)
{
	if (!umem)
		return 0;
	if (umem->sockets)
		return -EBUSY;
	pthread_mutex_destroy(&umem->lock);
	munmap(umem->area, umem->map_size);
	free(umem->free_addrs);
	free(umem->owner);
	free(umem);
	return 0;
}

void xt_umem_info(const struct xt_umem *umem, struct xt_umem_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = umem->size;
	info->map_size = umem->map_size;
	info->frame_size = umem->frame_size;
	info->frames = umem->frames;
	info->headroom = umem->headroom;
	info->flags = umem->flags;
	info->free_frames = umem->nfree;
	info->fd = umem->reg ? umem->reg->fd : -1;
	info->sockets = umem->sockets;
}

unsigned char *xt_umem_area(const struct xt_umem *umem)
{
	return umem->area;
}

int xt_umem_write(struct xt_umem *umem, unsigned long long offset, const void *data,
		  unsigned int len)
{
	if (offset > umem->size || len > umem->size - offset)
		return -ERANGE;
	memcpy(umem->area + offset, data, len);
	return (int)len;
}

int xt_umem_read(const struct xt_umem *umem, unsigned long long offset, void *data,
		 unsigned int len)
{
	if (offset > umem->size || len > umem->size - offset)
		return -ERANGE;
	memcpy(data, umem->area + offset, len);
	return (int)len;
}

int xt__alloc_frames(struct xt_umem *umem, uint64_t *addrs, unsigned int n, uint16_t owner)
{
	unsigned int i;

	pthread_mutex_lock(&umem->lock);
	if (n > umem->nfree)
		n = umem->nfree;
	for (i = 0; i < n; i++) {
		addrs[i] = umem->free_addrs[--umem->nfree];
		umem->owner[addrs[i] / umem->frame_size] = owner;
	}
	pthread_mutex_unlock(&umem->lock);
	return (int)n;
}

/* Caller guarantees these are frame bases it owns. */
void xt__free_frames(struct xt_umem *umem, const uint64_t *addrs, unsigned int n)
{
	unsigned int i;

	pthread_mutex_lock(&umem->lock);
	for (i = 0; i < n; i++) {
		umem->owner[addrs[i] / umem->frame_size] = XT_OWNER_FREE;
		umem->free_addrs[umem->nfree++] = addrs[i];
	}
	pthread_mutex_unlock(&umem->lock);
}

/* Every frame the ctx still holds (in fill, RX or TX) goes back to the allocator. */
static void xt_umem_reclaim(struct xt_umem *umem, unsigned int ctx_id)
{
	unsigned int i;

	pthread_mutex_lock(&umem->lock);
	for (i = 0; i < umem->frames; i++) {
		if (umem->owner[i] == XT_OWNER_FILL(ctx_id) || umem->owner[i] == XT_OWNER_TX(ctx_id)) {
			umem->owner[i] = XT_OWNER_FREE;
			umem->free_addrs[umem->nfree++] = (uint64_t)i * umem->frame_size;
		}
	}
	pthread_mutex_unlock(&umem->lock);
}

/* ---- rings ------------------------------------------------------------------- */

static void xt_ring_unmap(struct xsk_ring *r)
{
	if (r->map)
		munmap(r->map, r->map_len);
	memset(r, 0, sizeof(*r));
}

static int xt_ring_map(int fd, struct xsk_ring *r, const struct xdp_ring_offset *off,
		       unsigned int size, size_t desc_size, off_t pgoff, int producer_side)
{
	void *map;

	r->map_len = off->desc + (size_t)size * desc_size;
	map = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
	if (map == MAP_FAILED) {
		r->map_len = 0;
		return -errno;
	}
	r->map = map;
	r->mask = size - 1;
	r->size = size;
	r->producer = (__u32 *)((char *)map + off->producer);
	r->consumer = (__u32 *)((char *)map + off->consumer);
	r->flags = (__u32 *)((char *)map + off->flags);
	r->ring = (char *)map + off->desc;
	r->cached_prod = xsk_ring__load(r->producer);
	r->cached_cons = xsk_ring__load(r->consumer);
	if (producer_side)
		r->cached_cons += size; /* see xsk_prod__nb_free */
	return 0;
}

static int xt_get_offsets(int fd, struct xdp_mmap_offsets *off)
{
	socklen_t optlen = sizeof(*off);

	if (getsockopt(fd, SOL_XDP, XDP_MMAP_OFFSETS, off, &optlen))
		return -errno;
	if (optlen != sizeof(*off))
		return -EPROTO; /* pre-5.4 layout without the flags offsets */
	return 0;
}

static int xt_setsockopt_u32(int fd, int level, int name, unsigned int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) ? -errno : 0;
}

/* ---- sockets ---------------------------------------------------------------- */

static void xt_xsk_put(struct xt_xsk *xsk)
{
	if (--xsk->refs > 0)
		return;
	close(xsk->fd);
	free(xsk->scratch);
	free(xsk);
}

static void xt_ctx_put(struct xt_ctx *ctx)
{
	struct xt_umem *umem = ctx->umem;
	struct xt_ctx **pp;

	if (--ctx->refs > 0)
		return;
	xt_ring_unmap(&ctx->fill);
	xt_ring_unmap(&ctx->comp);
	for (pp = &umem->ctxs; *pp; pp = &(*pp)->next) {
		if (*pp == ctx) {
			*pp = ctx->next;
			break;
		}
	}
	xt_umem_reclaim(umem, ctx->id);
	xt_xsk_put(ctx->owner);
	free(ctx);
}

static int xt_ctx_create(struct xt_xsk *xsk, const struct xt_xsk_config *cfg,
			 const struct xdp_mmap_offsets *off, struct xt_ctx **out)
{
	struct xt_umem *umem = xsk->umem;
	struct xt_ctx *ctx;
	int err;

	if (umem->next_ctx_id > XT_MAX_CTX_ID)
		return -ENOSPC;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	err = xt_setsockopt_u32(xsk->fd, SOL_XDP, XDP_UMEM_FILL_RING, cfg->fill_size);
	if (err)
		goto out_free;
	err = xt_setsockopt_u32(xsk->fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, cfg->comp_size);
	if (err)
		goto out_free;
	err = xt_ring_map(xsk->fd, &ctx->fill, &off->fr, cfg->fill_size, sizeof(__u64),
			  XDP_UMEM_PGOFF_FILL_RING, 1);
	if (err)
		goto out_free;
	err = xt_ring_map(xsk->fd, &ctx->comp, &off->cr, cfg->comp_size, sizeof(__u64),
			  XDP_UMEM_PGOFF_COMPLETION_RING, 0);
	if (err)
		goto out_fill;
	ctx->umem = umem;
	ctx->owner = xsk;
	xsk->refs++;
	ctx->ifindex = cfg->ifindex;
	ctx->queue = cfg->queue;
	ctx->id = umem->next_ctx_id++;
	ctx->refs = 1;
	ctx->next = umem->ctxs;
	umem->ctxs = ctx;
	*out = ctx;
	return 0;

out_fill:
	xt_ring_unmap(&ctx->fill);
out_free:
	free(ctx);
	return err;
}

static int xt_umem_register(struct xt_umem *umem, int fd)
{
	struct xdp_umem_reg reg;

	memset(&reg, 0, sizeof(reg));
	reg.addr = (__u64)(unsigned long)umem->area;
	reg.len = umem->size;
	reg.chunk_size = umem->frame_size;
	reg.headroom = umem->headroom;
	reg.flags = (umem->flags & XT_UMEM_UNALIGNED) ? XDP_UMEM_UNALIGNED_CHUNK_FLAG : 0;
	return setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) ? -errno : 0;
}

static int xt_pow2(unsigned int v)
{
	return v && !(v & (v - 1));
}

int xt_xsk_open(struct xt_umem *umem, const struct xt_xsk_config *cfg, struct xt_xsk **out)
{
	struct xdp_mmap_offsets off;
	struct xt_xsk *xsk;
	struct xt_ctx *ctx;
	int registered = 0;
	int err;

	*out = NULL;
	if ((cfg->rx_size && !xt_pow2(cfg->rx_size)) || (cfg->tx_size && !xt_pow2(cfg->tx_size)) ||
	    !xt_pow2(cfg->fill_size) || !xt_pow2(cfg->comp_size) || (!cfg->rx_size && !cfg->tx_size)) {
		close(cfg->fd);
		return -EINVAL;
	}
	xsk = calloc(1, sizeof(*xsk));
	if (!xsk) {
		close(cfg->fd);
		return -ENOMEM;
	}
	xsk->fd = cfg->fd;
	xsk->refs = 1;
	xsk->umem = umem;
	xsk->ifindex = cfg->ifindex;
	xsk->queue = cfg->queue;

	if (!umem->reg) {
		err = xt_umem_register(umem, xsk->fd);
		if (err)
			goto out_xsk;
		umem->reg = xsk;
		xsk->refs++;
		registered = 1;
	}
	err = xt_get_offsets(xsk->fd, &off);
	if (err)
		goto out_reg;
	for (ctx = umem->ctxs; ctx; ctx = ctx->next)
		if (ctx->ifindex == cfg->ifindex && ctx->queue == cfg->queue)
			break;
	if (ctx) {
		ctx->refs++;
	} else {
		err = xt_ctx_create(xsk, cfg, &off, &ctx);
		if (err)
			goto out_reg;
	}
	xsk->ctx = ctx;
	if (cfg->rx_size) {
		err = xt_setsockopt_u32(xsk->fd, SOL_XDP, XDP_RX_RING, cfg->rx_size);
		if (err)
			goto out_ctx;
		err = xt_ring_map(xsk->fd, &xsk->rx, &off.rx, cfg->rx_size, sizeof(struct xdp_desc),
				  XDP_PGOFF_RX_RING, 0);
		if (err)
			goto out_ctx;
	}
	if (cfg->tx_size) {
		err = xt_setsockopt_u32(xsk->fd, SOL_XDP, XDP_TX_RING, cfg->tx_size);
		if (err)
			goto out_rx;
		err = xt_ring_map(xsk->fd, &xsk->tx, &off.tx, cfg->tx_size, sizeof(struct xdp_desc),
				  XDP_PGOFF_TX_RING, 1);
		if (err)
			goto out_rx;
	}
	xsk->open = 1;
	umem->sockets++;
	*out = xsk;
	return 0;

out_rx:
	xt_ring_unmap(&xsk->rx);
out_ctx:
	xt_ctx_put(ctx);
out_reg:
	if (registered) {
		umem->reg = NULL;
		xsk->refs--;
	}
out_xsk:
	xt_xsk_put(xsk);
	return err;
}

int xt_xsk_bind(struct xt_xsk *xsk, unsigned int flags)
{
	struct sockaddr_xdp sxdp;
	struct xt_umem *umem = xsk->umem;

	memset(&sxdp, 0, sizeof(sxdp));
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = xsk->ifindex;
	sxdp.sxdp_queue_id = xsk->queue;
	if (umem->reg != xsk) {
		/*
		 * Sharing: the kernel takes mode and wakeup flags from the
		 * socket named here and refuses any of its own. Name the ctx
		 * owner when it is another socket (same queue: shared rings),
		 * otherwise the UMEM's registering socket (new fill/comp).
		 */
		struct xt_xsk *peer = xsk->ctx->owner != xsk ? xsk->ctx->owner : umem->reg;

		sxdp.sxdp_flags = XDP_SHARED_UMEM;
		sxdp.sxdp_shared_umem_fd = peer->fd;
		flags = peer->bind_flags;
	} else {
		if (flags & XT_BIND_COPY)
			sxdp.sxdp_flags |= XDP_COPY;
		if (flags & XT_BIND_ZEROCOPY)
			sxdp.sxdp_flags |= XDP_ZEROCOPY;
		if (flags & XT_BIND_NEED_WAKEUP)
			sxdp.sxdp_flags |= XDP_USE_NEED_WAKEUP;
		if (flags & XT_BIND_SG)
			sxdp.sxdp_flags |= XDP_USE_SG;
	}
	/* Shared sockets inherit XDP_USE_SG from the UMEM's first bind, so they need it too. */
	if ((flags & XT_BIND_SG) && !xsk->scratch) {
		xsk->scratch = malloc(XT_MAX_FRAME);
		if (!xsk->scratch)
			return -ENOMEM;
	}
	if (bind(xsk->fd, (struct sockaddr *)&sxdp, sizeof(sxdp)))
		return -errno;
	xsk->bind_flags = flags & ~XT_BIND_SHARED_UMEM;
	xsk->bound = 1;
	return 0;
}

int xt_xsk_populate_fill(struct xt_xsk *xsk, int frames)
{
	struct xt_ctx *ctx = xsk->ctx;
	struct xt_umem *umem = xsk->umem;
	uint64_t *addrs;
	unsigned int n, got, i;
	__u32 idx;

	if (ctx->owner != xsk)
		return 0; /* the rings' owner filled them */
	if (frames < 0) {
		n = xsk->tx.size ? umem->nfree / 2 : umem->nfree;
		if (n > ctx->fill.size)
			n = ctx->fill.size;
	} else {
		n = (unsigned int)frames;
		if (n > ctx->fill.size)
			return -ENOSPC;
	}
	if (!n)
		return 0;
	addrs = calloc(n, sizeof(*addrs));
	if (!addrs)
		return -ENOMEM;
	got = (unsigned int)xt__alloc_frames(umem, addrs, n, XT_OWNER_FILL(ctx->id));
	if (xsk_prod__reserve(&ctx->fill, got, &idx) != got) {
		xt__free_frames(umem, addrs, got);
		free(addrs);
		return -ENOSPC;
	}
	for (i = 0; i < got; i++)
		*xsk_ring__addr(&ctx->fill, idx + i) = addrs[i];
	xsk_prod__submit(&ctx->fill, got);
	free(addrs);
	return (int)got;
}

int xt_xsk_close(struct xt_xsk *xsk)
{
	struct xt_umem *umem = xsk->umem;
	struct xt_xsk *reg;

	if (!xsk->open)
		return -EBADF;
	xsk->open = 0;
	xt_ring_unmap(&xsk->rx);
	xt_ring_unmap(&xsk->tx);
	xt_ctx_put(xsk->ctx);
	xsk->ctx = NULL;
	if (--umem->sockets == 0 && umem->reg) {
		reg = umem->reg;
		umem->reg = NULL;
		xt_xsk_put(reg);
	}
	xt_xsk_put(xsk);
	return 0;
}

int xt_xsk_fd(const struct xt_xsk *xsk)
{
	return xsk->fd;
}

int xt_xsk_is_zerocopy(const struct xt_xsk *xsk)
{
	struct xdp_options opts;
	socklen_t optlen = sizeof(opts);

	if (getsockopt(xsk->fd, SOL_XDP, XDP_OPTIONS, &opts, &optlen))
		return -errno;
	return !!(opts.flags & XDP_OPTIONS_ZEROCOPY);
}

int xt_xsk_statistics(const struct xt_xsk *xsk, struct xt_xdp_stats *stats)
{
	struct xdp_statistics raw;
	socklen_t optlen = sizeof(raw);

	memset(&raw, 0, sizeof(raw));
	memset(stats, 0, sizeof(*stats));
	if (getsockopt(xsk->fd, SOL_XDP, XDP_STATISTICS, &raw, &optlen))
		return -errno;
	stats->rx_dropped = raw.rx_dropped;
	stats->rx_invalid_descs = raw.rx_invalid_descs;
	stats->tx_invalid_descs = raw.tx_invalid_descs;
	stats->rx_ring_full = raw.rx_ring_full;
	stats->rx_fill_ring_empty_descs = raw.rx_fill_ring_empty_descs;
	stats->tx_ring_empty_descs = raw.tx_ring_empty_descs;
	stats->nfields = optlen / sizeof(__u64);
	return 0;
}

void xt_xsk_ring_state(const struct xt_xsk *xsk, int which, struct xt_ring_state *state)
{
	const struct xsk_ring *r;

	memset(state, 0, sizeof(*state));
	switch (which) {
	case XT_RING_FILL:
		r = xsk->ctx ? &xsk->ctx->fill : NULL;
		break;
	case XT_RING_COMP:
		r = xsk->ctx ? &xsk->ctx->comp : NULL;
		break;
	case XT_RING_RX:
		r = &xsk->rx;
		break;
	default:
		r = &xsk->tx;
		break;
	}
	if (!r || !r->map)
		return;
	state->producer = xsk_ring__load(r->producer);
	state->consumer = xsk_ring__load(r->consumer);
	state->cached_prod = r->cached_prod;
	/* Producer rings keep cached_cons one ring ahead; report the real index. */
	state->cached_cons = (which == XT_RING_FILL || which == XT_RING_TX) ?
			     r->cached_cons - r->size : r->cached_cons;
	state->size = r->size;
	state->flags = xsk_ring__load(r->flags);
}

void xt_xsk_counters(const struct xt_xsk *xsk, struct xt_xsk_counters *counters)
{
	*counters = xsk->cnt;
}

int xt_xsk_set_busy_poll(struct xt_xsk *xsk, int usecs, int budget, int prefer)
{
	int err;

	err = xt_setsockopt_u32(xsk->fd, SOL_SOCKET, SO_PREFER_BUSY_POLL, prefer ? 1 : 0);
	if (err)
		return err;
	err = xt_setsockopt_u32(xsk->fd, SOL_SOCKET, SO_BUSY_POLL, (unsigned int)usecs);
	if (err)
		return err;
	err = xt_setsockopt_u32(xsk->fd, SOL_SOCKET, SO_BUSY_POLL_BUDGET, (unsigned int)budget);
	if (err)
		return err;
	xsk->busy_poll = usecs > 0;
	return 0;
}

int xt_xsk_poll(struct xt_xsk *xsk, short events, int timeout_ms)
{
	struct pollfd pfd = { .fd = xsk->fd, .events = events };
	int ret;

	ret = poll(&pfd, 1, timeout_ms);
	if (ret < 0)
		return -errno;
	return ret ? pfd.revents : 0;
}
