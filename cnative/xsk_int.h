/* SPDX-License-Identifier: MIT */
/*
 * Private layout of the AF_XDP engine objects, shared by xsk.c (set-up) and
 * txrx.c (data path). Not read by cffi: Python sees the objects as opaque.
 *
 * Ownership:
 *  - A UMEM is registered (XDP_UMEM_REG) on the first socket that uses it;
 *    that socket's fd stays open while any socket uses the UMEM, because
 *    XDP_SHARED_UMEM binds name it.
 *  - Fill and completion rings belong to a "ctx": one per (ifindex, queue)
 *    in a UMEM. Sockets on the same queue share the ctx of the first one;
 *    a socket on another queue gets its own (XDP_SHARED_UMEM with its own
 *    fill/completion rings).
 *  - Objects are reference counted so that the fds and mappings the kernel
 *    still needs outlive the Python object that made them.
 *
 * Frame accounting: every UMEM frame has a 16-bit owner word: 0 = free in
 * the allocator, (ctx_id << 1) | 1 = in that ctx's fill/RX path,
 * (ctx_id << 1) = in that ctx's TX/completion path. Only frames in the
 * expected state are recycled, so a stray or repeated address coming back
 * from the kernel can never corrupt the allocator.
 */
#ifndef XT_XSK_INT_H
#define XT_XSK_INT_H

#include <pthread.h>
#include <stdint.h>

#include "ring.h"
#include "xt_xsk.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef XDP_USE_NEED_WAKEUP
#define XDP_USE_NEED_WAKEUP (1 << 3)
#endif
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4)
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0)
#endif
#ifndef XDP_UMEM_UNALIGNED_CHUNK_FLAG
#define XDP_UMEM_UNALIGNED_CHUNK_FLAG (1 << 0)
#endif
#ifndef XDP_OPTIONS
#define XDP_OPTIONS 8
#endif
#ifndef XDP_OPTIONS_ZEROCOPY
#define XDP_OPTIONS_ZEROCOPY (1 << 0)
#endif
#ifndef XSK_UNALIGNED_BUF_OFFSET_SHIFT
#define XSK_UNALIGNED_BUF_OFFSET_SHIFT 48
#endif
#ifndef XSK_UNALIGNED_BUF_ADDR_MASK
#define XSK_UNALIGNED_BUF_ADDR_MASK ((1ULL << XSK_UNALIGNED_BUF_OFFSET_SHIFT) - 1)
#endif
#ifndef SO_BUSY_POLL
#define SO_BUSY_POLL 46
#endif
#ifndef SO_PREFER_BUSY_POLL
#define SO_PREFER_BUSY_POLL 69
#endif
#ifndef SO_BUSY_POLL_BUDGET
#define SO_BUSY_POLL_BUDGET 70
#endif

#define XT_OWNER_FREE 0
#define XT_OWNER_FILL(id) ((uint16_t)(((id) << 1) | 1))
#define XT_OWNER_TX(id) ((uint16_t)((id) << 1))
#define XT_MAX_CTX_ID 32767

struct xt_xsk;

struct xt_ctx {
	struct xt_ctx *next;
	struct xt_umem *umem;
	struct xt_xsk *owner;	/* the socket whose fd the rings are mapped from */
	struct xsk_ring fill;
	struct xsk_ring comp;
	unsigned int ifindex;
	unsigned int queue;
	unsigned int id;
	int refs;
};

struct xt_umem {
	unsigned char *area;
	unsigned long long size;
	unsigned long long map_size;
	unsigned int frame_size;
	unsigned int frames;
	unsigned int headroom;
	unsigned int flags;
	struct xt_xsk *reg;	/* socket the UMEM is registered on, NULL if none */
	int sockets;
	struct xt_ctx *ctxs;
	unsigned int next_ctx_id;
	pthread_mutex_t lock;	/* allocator and ctx list; taken once per batch */
	uint64_t *free_addrs;	/* stack of free frame base addresses */
	unsigned int nfree;
	uint16_t *owner;	/* per frame, see above */
};

struct xt_xsk {
	int fd;
	int refs;		/* itself while open, plus the ctx and UMEM that need its fd */
	int open;
	struct xt_umem *umem;
	struct xt_ctx *ctx;
	struct xsk_ring rx;
	struct xsk_ring tx;
	unsigned int ifindex;
	unsigned int queue;
	unsigned int bind_flags;
	int bound;
	int busy_poll;		/* kick RX with recvfrom() whenever it is empty */
	unsigned char *scratch;	/* XT_BIND_SG: XT_MAX_FRAME bytes where a frame spanning several
				   descriptors is put together (RX) or built before it is split (TX) */
	struct xt_xsk_counters cnt;
};

/* xsk.c */
int xt__alloc_frames(struct xt_umem *umem, uint64_t *addrs, unsigned int n, uint16_t owner);
void xt__free_frames(struct xt_umem *umem, const uint64_t *addrs, unsigned int n);

/* Base address of the frame that holds umem offset 'addr' (after offset decoding). */
static inline uint64_t xt__frame_base(const struct xt_umem *u, uint64_t addr)
{
	if (u->flags & XT_UMEM_UNALIGNED)
		return (addr / u->frame_size) * u->frame_size;
	return addr & ~((uint64_t)u->frame_size - 1);
}

/* An RX descriptor's address with the unaligned-mode offset folded in. */
static inline uint64_t xt__desc_addr(const struct xt_umem *u, uint64_t addr)
{
	if (u->flags & XT_UMEM_UNALIGNED)
		return (addr & XSK_UNALIGNED_BUF_ADDR_MASK) + (addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT);
	return addr;
}

/* The chunk start the kernel used for an RX descriptor (the address the fill ring gave it). */
static inline uint64_t xt__desc_chunk(const struct xt_umem *u, uint64_t addr)
{
	if (u->flags & XT_UMEM_UNALIGNED)
		return addr & XSK_UNALIGNED_BUF_ADDR_MASK;
	return addr & ~((uint64_t)u->frame_size - 1);
}

/*
 * Is [addr, addr + len) inside the UMEM and inside one frame? This is the
 * check every descriptor from the RX ring passes before it is read.
 */
static inline int xt__desc_ok(const struct xt_umem *u, uint64_t raw, uint32_t len)
{
	uint64_t addr = xt__desc_addr(u, raw);
	uint64_t chunk = xt__desc_chunk(u, raw);

	if ((u->flags & XT_UMEM_UNALIGNED) && (raw >> XSK_UNALIGNED_BUF_OFFSET_SHIFT) >= u->frame_size)
		return 0;
	if (addr >= u->size || len > u->size - addr || len == 0)
		return 0;
	/* The data must lie in the chunk the kernel was given. */
	return addr >= chunk && addr + len <= chunk + u->frame_size;
}

/* txtime.c: timed replay, TX capture and waiting, used by the TX loop in txrx.c. */
unsigned int xt_sched_allowance(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
				unsigned int batch, uint64_t end_ns);
void xt_sched_account(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st, uint64_t first,
		      unsigned int n, uint64_t now);
unsigned int xt_pcapng_room(const struct xt_loop_cfg *cfg, const struct xt_loop_stats *st,
			    unsigned int max_len);
void xt_pcapng_append(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
		      const unsigned char *frame, unsigned int len, uint64_t addr,
		      unsigned int options, uint64_t realtime_ns);
uint64_t xt_realtime_ns(void);
/* Ask for 1 us timer slack on the calling thread (paced and timed TX). */
void xt_timer_slack_tight(void);
/* Wait until due_ns (CLOCK_MONOTONIC): sleep, then spin the last spin_ns. Returns the clock. */
uint64_t xt_wait_until(uint64_t due_ns, uint64_t spin_ns);

#endif /* XT_XSK_INT_H */
