/* SPDX-License-Identifier: MIT */
/*
 * AF_XDP ring helpers in the libxdp idiom: batched reserve/submit for the
 * rings user space produces (fill, TX) and peek/release for the rings it
 * consumes (RX, completion), with cached copies of the indices so that the
 * shared cache lines are touched once per batch, not once per descriptor.
 *
 * Memory ordering (the kernel side is net/xdp/xsk_queue.h):
 *  - A producer writes descriptors, then publishes them with a release store
 *    of *producer. The consumer's acquire load of *producer pairs with it, so
 *    the descriptors are visible before the index that covers them.
 *  - A consumer reads descriptors, then hands the slots back with a release
 *    store of *consumer. The producer's acquire load of *consumer pairs with
 *    it, so the producer never overwrites a slot that is still being read.
 * This is the kernel's "smp_load_acquire / smp_store_release" pairing (its
 * comments label them A/B/C/D); ours are named after the same roles.
 */
#ifndef XT_RING_H
#define XT_RING_H

#include <linux/if_xdp.h>
#include <linux/types.h>

struct xsk_ring {
	__u32 cached_prod;
	__u32 cached_cons;
	__u32 mask;
	__u32 size;
	__u32 *producer;
	__u32 *consumer;
	void *ring;
	__u32 *flags;
	void *map;		/* the mmap()ed area (NULL: ring not present) */
	unsigned long map_len;
};

static inline __u64 *xsk_ring__addr(const struct xsk_ring *r, __u32 idx)
{
	return &((__u64 *)r->ring)[idx & r->mask];
}

static inline struct xdp_desc *xsk_ring__desc(const struct xsk_ring *r, __u32 idx)
{
	return &((struct xdp_desc *)r->ring)[idx & r->mask];
}

/* Plain reads for snapshots and flags; ordering does not matter there. */
static inline __u32 xsk_ring__load(const __u32 *p)
{
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline int xsk_ring__needs_wakeup(const struct xsk_ring *r)
{
	return r->flags && (xsk_ring__load(r->flags) & XDP_RING_NEED_WAKEUP);
}

/* ---- producer side (fill, TX) ---------------------------------------- */

static inline __u32 xsk_prod__nb_free(struct xsk_ring *r, __u32 nb)
{
	__u32 free_entries = r->cached_cons - r->cached_prod;

	if (free_entries >= nb)
		return free_entries;
	/*
	 * Refresh the cached consumer. Acquire: pairs with the kernel
	 * consumer's release store of *consumer after it has read the
	 * descriptors (xskq_cons_release / __xskq_cons_release), so the
	 * slots we are about to overwrite are really free.
	 * cached_cons is kept "size ahead" so that free = cons - prod.
	 */
	r->cached_cons = __atomic_load_n(r->consumer, __ATOMIC_ACQUIRE) + r->size;
	return r->cached_cons - r->cached_prod;
}

/* Reserve up to nb slots (all or nothing, like libxdp); *idx gets the first. */
static inline __u32 xsk_prod__reserve(struct xsk_ring *r, __u32 nb, __u32 *idx)
{
	if (xsk_prod__nb_free(r, nb) < nb)
		return 0;
	*idx = r->cached_prod;
	r->cached_prod += nb;
	return nb;
}

/* Reserve as many as fit, up to nb. */
static inline __u32 xsk_prod__reserve_upto(struct xsk_ring *r, __u32 nb, __u32 *idx)
{
	__u32 free_entries = xsk_prod__nb_free(r, nb);

	if (nb > free_entries)
		nb = free_entries;
	*idx = r->cached_prod;
	r->cached_prod += nb;
	return nb;
}

static inline void xsk_prod__submit(struct xsk_ring *r, __u32 nb)
{
	/*
	 * Release: makes the descriptors written into the reserved slots
	 * visible before the new producer index. Pairs with the kernel
	 * consumer's acquire load of *producer (xskq_cons_peek ->
	 * __xskq_cons_peek / smp_load_acquire in xsk_queue.h).
	 */
	__atomic_store_n(r->producer, *r->producer + nb, __ATOMIC_RELEASE);
}

/* Give back reserved-but-unused slots (only the most recent reservation). */
static inline void xsk_prod__cancel(struct xsk_ring *r, __u32 nb)
{
	r->cached_prod -= nb;
}

/* ---- consumer side (RX, completion) ------------------------------------ */

static inline __u32 xsk_cons__nb_avail(struct xsk_ring *r, __u32 nb)
{
	__u32 entries = r->cached_prod - r->cached_cons;

	if (entries == 0) {
		/*
		 * Acquire: pairs with the kernel producer's release store of
		 * *producer (xskq_prod_submit / __xskq_prod_submit), so the
		 * descriptors up to that index are fully written when we read
		 * them.
		 */
		r->cached_prod = __atomic_load_n(r->producer, __ATOMIC_ACQUIRE);
		entries = r->cached_prod - r->cached_cons;
	}
	return entries > nb ? nb : entries;
}

static inline __u32 xsk_cons__peek(struct xsk_ring *r, __u32 nb, __u32 *idx)
{
	__u32 entries = xsk_cons__nb_avail(r, nb);

	if (entries > 0) {
		*idx = r->cached_cons;
		r->cached_cons += entries;
	}
	return entries;
}

static inline void xsk_cons__cancel(struct xsk_ring *r, __u32 nb)
{
	r->cached_cons -= nb;
}

static inline void xsk_cons__release(struct xsk_ring *r, __u32 nb)
{
	/*
	 * Release: our reads of the released descriptors happen before the
	 * kernel may reuse their slots. Pairs with the kernel producer's
	 * acquire load of *consumer (xskq_prod_nb_free / xskq_prod_is_full,
	 * smp_load_acquire in xsk_queue.h).
	 */
	__atomic_store_n(r->consumer, *r->consumer + nb, __ATOMIC_RELEASE);
}

#endif /* XT_RING_H */
