// SPDX-License-Identifier: MIT
/*
 * The AF_XDP data path: kicks, completion reaping, send/receive of frames
 * that Python hands over, and the batched loops the traffic generator
 * drives. Every descriptor the kernel returns (RX and completion) is checked
 * to lie inside the UMEM before it is used; a bad one is counted and never
 * read or recycled.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "xsk_int.h"
#include "xt_stamp.h"

#define XT_CHUNK 256		/* descriptors handled per inner step */
/*
 * Descriptors one copy-mode sendto() consumes at most before it fails with EAGAIN: 32 on
 * current kernels, 16 on Linux 5.10 (measured: three kicks took 48 of 64 there). Kicks are
 * counted with the smaller figure; the flush stops as soon as the ring is consumed, so newer
 * kernels pay nothing for it. (5.10 also publishes its consumer index only once it has used
 * up what it last read, so a kick's progress cannot be seen until then.)
 */
#define XT_KERNEL_TX_BATCH 16

static inline uint64_t xt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline unsigned int xt_min(unsigned long long a, unsigned long long b)
{
	return (unsigned int)(a < b ? a : b);
}

/* ---- kicks -------------------------------------------------------------------- */

int xt_xsk_kick_tx(struct xt_xsk *xsk)
{
	if (!xsk->tx.map)
		return -EINVAL;
	xsk->cnt.tx_kicks++;
	if (sendto(xsk->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
		return 0;
	/* Transient: the kernel stopped at its batch limit or the ring/queue is busy. */
	if (errno == ENOBUFS || errno == EAGAIN || errno == EBUSY || errno == ENETDOWN)
		return 0;
	xsk->cnt.tx_kick_errors++;
	return -errno;
}

int xt_xsk_kick_rx(struct xt_xsk *xsk)
{
	xsk->cnt.rx_kicks++;
	if (recvfrom(xsk->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EBUSY || errno == ENETDOWN)
		return 0;
	return -errno;
}

/* Without XDP_USE_NEED_WAKEUP every TX batch is kicked; with it, only when the kernel asks. */
static inline int xt_tx_needs_kick(const struct xt_xsk *xsk)
{
	return !(xsk->bind_flags & XT_BIND_NEED_WAKEUP) || xsk_ring__needs_wakeup(&xsk->tx);
}

static inline int xt_rx_needs_kick(const struct xt_xsk *xsk)
{
	return xsk->busy_poll ||
	       ((xsk->bind_flags & XT_BIND_NEED_WAKEUP) && xsk_ring__needs_wakeup(&xsk->ctx->fill));
}

/*
 * Kick until the kernel has consumed what we produced (a copy-mode sendto()
 * takes at most XT_KERNEL_TX_BATCH descriptors) or max_kicks is spent.
 */
static void xt_tx_flush(struct xt_xsk *xsk, unsigned int max_kicks)
{
	unsigned int k;

	for (k = 0; k < max_kicks; k++) {
		if (xsk_ring__load(xsk->tx.consumer) == xsk->tx.cached_prod)
			return;
		if (!xt_tx_needs_kick(xsk))
			return;
		if (xt_xsk_kick_tx(xsk) < 0)
			return;
	}
}

/* ---- completion ------------------------------------------------------------------ */

/*
 * Linux 6.18 (copy mode) hands back an odd TX address with its lowest bit cleared: it keeps the
 * address of a one-descriptor frame in a pointer-sized field whose bit 0 is a tag. Frames sit at
 * odd addresses only in an unaligned UMEM of odd frame size, and the engine sends from frame
 * starts, so an address one below a frame start is that frame's.
 */
static inline uint64_t xt__comp_fixup(const struct xt_umem *u, uint64_t addr)
{
	if ((u->flags & XT_UMEM_UNALIGNED) && (u->frame_size & 1) && addr % u->frame_size &&
	    (addr + 1) % u->frame_size == 0)
		return addr + 1;
	return addr;
}

static int xt_reap(struct xt_xsk *xsk, unsigned int max)
{
	struct xt_ctx *ctx = xsk->ctx;
	struct xt_umem *umem = xsk->umem;
	struct xsk_ring *r = &ctx->comp;
	uint64_t bases[XT_CHUNK];
	unsigned int total = 0, n, i, nok;
	uint16_t mine = XT_OWNER_TX(ctx->id);
	__u32 idx;

	if (!max)
		max = UINT_MAX;
	while (total < max) {
		n = xsk_cons__peek(r, xt_min(max - total, XT_CHUNK), &idx);
		if (!n)
			break;
		nok = 0;
		for (i = 0; i < n; i++) {
			uint64_t addr = xt__desc_addr(umem, *xsk_ring__addr(r, idx + i));

			if (addr >= umem->size) {
				xsk->cnt.bad_comp_addrs++;
				continue;
			}
			bases[nok++] = xt__frame_base(umem, xt__comp_fixup(umem, addr));
		}
		xsk_cons__release(r, n);
		pthread_mutex_lock(&umem->lock);
		for (i = 0; i < nok; i++) {
			uint16_t *owner = &umem->owner[bases[i] / umem->frame_size];

			if (*owner != mine) {
				xsk->cnt.foreign_comp_addrs++;
				continue;
			}
			*owner = XT_OWNER_FREE;
			umem->free_addrs[umem->nfree++] = bases[i];
			xsk->cnt.completed++;
		}
		pthread_mutex_unlock(&umem->lock);
		total += n;
	}
	return (int)total;
}

int xt_xsk_complete(struct xt_xsk *xsk, unsigned int max)
{
	/* Frames still waiting in the TX ring go out only when kicked (copy mode). */
	if (xsk->tx.map)
		xt_tx_flush(xsk, xsk->tx.size / XT_KERNEL_TX_BATCH + 1);
	return xt_reap(xsk, max);
}

/* ---- TX ------------------------------------------------------------------------- */

/* Take up to n TX frames and matching TX ring slots; returns how many, *idx the first slot. */
static unsigned int xt_tx_reserve(struct xt_xsk *xsk, uint64_t *addrs, unsigned int n, __u32 *idx)
{
	unsigned int got, res;

	got = (unsigned int)xt__alloc_frames(xsk->umem, addrs, n, XT_OWNER_TX(xsk->ctx->id));
	if (!got)
		return 0;
	res = xsk_prod__reserve_upto(&xsk->tx, got, idx);
	if (res < got)
		xt__free_frames(xsk->umem, addrs + res, got - res);
	return res;
}

/* Descriptors a frame of len bytes takes: one per UMEM frame it fills (several: XT_BIND_SG). */
static inline unsigned int xt_descs_for(const struct xt_xsk *xsk, unsigned int len)
{
	unsigned int fs = xsk->umem->frame_size;

	return len <= fs ? 1 : (len + fs - 1) / fs;
}

/* May this socket send a frame of len bytes? Longer than a UMEM frame needs XDP_USE_SG. */
static inline int xt_tx_len_ok(const struct xt_xsk *xsk, unsigned int len)
{
	if (!len || len > XT_MAX_FRAME)
		return 0;
	return len <= xsk->umem->frame_size || (xsk->bind_flags & XT_BIND_SG);
}

/*
 * Copy one frame into the k UMEM frames addrs[0..k) and describe it in TX slots idx..idx+k-1:
 * each descriptor but the last carries XDP_PKT_CONTD, which tells the kernel that the frame
 * goes on in the next one. Returns k.
 */
static unsigned int xt_tx_place(struct xt_xsk *xsk, __u32 idx, const uint64_t *addrs,
				const unsigned char *data, unsigned int len)
{
	unsigned int fs = xsk->umem->frame_size, k = xt_descs_for(xsk, len), j;

	for (j = 0; j < k; j++) {
		struct xdp_desc *d = xsk_ring__desc(&xsk->tx, idx + j);
		unsigned int part = j + 1 < k ? fs : len - j * fs;

		memcpy(xsk->umem->area + addrs[j], data + (size_t)j * fs, part);
		d->addr = addrs[j];
		d->len = part;
		d->options = j + 1 < k ? XDP_PKT_CONTD : 0;
	}
	return k;
}

/* Give back the last (reserved - used) TX slots and UMEM frames of a reservation. */
static void xt_tx_unreserve(struct xt_xsk *xsk, const uint64_t *addrs, unsigned int used,
			    unsigned int reserved)
{
	if (used >= reserved)
		return;
	xsk_prod__cancel(&xsk->tx, reserved - used);
	xt__free_frames(xsk->umem, addrs + used, reserved - used);
}

int xt_xsk_send(struct xt_xsk *xsk, const unsigned char *data, const unsigned int *lens,
		unsigned int n)
{
	uint64_t addrs[XT_CHUNK];
	unsigned long long off = 0;
	unsigned int sent = 0, res, nd, nf, used, i;
	__u32 idx;

	if (!xsk->tx.map)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!xt_tx_len_ok(xsk, lens[i]))
			return -EMSGSIZE;
	xt_reap(xsk, 0);
	while (sent < n) {
		/* Whole frames only: a frame is never split between two reservations. */
		for (nd = 0, nf = 0; sent + nf < n && nd + xt_descs_for(xsk, lens[sent + nf]) <= XT_CHUNK; nf++)
			nd += xt_descs_for(xsk, lens[sent + nf]);
		res = xt_tx_reserve(xsk, addrs, nd, &idx);
		for (used = 0, i = 0; i < nf && used + xt_descs_for(xsk, lens[sent + i]) <= res; i++) {
			used += xt_tx_place(xsk, idx + used, addrs + used, data + off, lens[sent + i]);
			off += lens[sent + i];
			xsk->cnt.tx_bytes += lens[sent + i];
		}
		xt_tx_unreserve(xsk, addrs, used, res);
		if (!i)
			break;
		xsk_prod__submit(&xsk->tx, used);
		sent += i;
	}
	xsk->cnt.tx_frames += sent;
	xt_tx_flush(xsk, xsk->tx.size / XT_KERNEL_TX_BATCH + 2);
	return (int)sent;
}

int xt_xsk_send_raw(struct xt_xsk *xsk, const struct xt_desc *descs, unsigned int n, int kick)
{
	unsigned int res, i;
	__u32 idx;

	if (!xsk->tx.map)
		return -EINVAL;
	res = xsk_prod__reserve_upto(&xsk->tx, n, &idx);
	for (i = 0; i < res; i++) {
		struct xdp_desc *d = xsk_ring__desc(&xsk->tx, idx + i);

		d->addr = descs[i].addr;
		d->len = descs[i].len;
		d->options = descs[i].options;
	}
	if (res)
		xsk_prod__submit(&xsk->tx, res);
	if (kick) {
		int err = xt_xsk_kick_tx(xsk);

		if (err)
			return err;
	}
	return (int)res;
}

/* ---- RX ------------------------------------------------------------------------- */

/* Hand received frames back to the fill ring (they stay owned by the ctx). */
static void xt_fill_recycle(struct xt_xsk *xsk, const uint64_t *chunks, unsigned int n)
{
	struct xsk_ring *fill = &xsk->ctx->fill;
	unsigned int got, i;
	__u32 idx;

	if (!n)
		return;
	got = xsk_prod__reserve_upto(fill, n, &idx);
	for (i = 0; i < got; i++)
		*xsk_ring__addr(fill, idx + i) = chunks[i];
	if (got)
		xsk_prod__submit(fill, got);
	if (got < n) {
		xt__free_frames(xsk->umem, chunks + got, n - got);
		xsk->cnt.fill_shortfall += n - got;
	}
}

/*
 * Check an RX descriptor; on success *data points at the frame and *chunk is
 * set to the frame to recycle (or UINT64_MAX when the frame is not ours).
 */
static inline int xt_rx_check(struct xt_xsk *xsk, const struct xdp_desc *d,
			      const unsigned char **data, uint64_t *chunk)
{
	struct xt_umem *umem = xsk->umem;

	if (!xt__desc_ok(umem, d->addr, d->len)) {
		xsk->cnt.bad_rx_descs++;
		return 0;
	}
	*data = umem->area + xt__desc_addr(umem, d->addr);
	*chunk = xt__desc_chunk(umem, d->addr);
	if (*chunk % umem->frame_size ||
	    umem->owner[*chunk / umem->frame_size] != XT_OWNER_FILL(xsk->ctx->id))
		*chunk = UINT64_MAX;
	return 1;
}

/*
 * How many RX descriptors the frame that starts at slot idx spans, among the avail peeked: with
 * XDP_USE_SG every one up to the first without XDP_PKT_CONTD; without it, one (the bit means
 * nothing there). 0 when the frame's last descriptor is not among those peeked: it is left in
 * the ring for the next peek.
 */
static inline unsigned int xt_rx_span(struct xt_xsk *xsk, __u32 idx, unsigned int avail)
{
	unsigned int k = 0;

	if (!(xsk->bind_flags & XT_BIND_SG))
		return avail ? 1 : 0;
	while (k < avail) {
		if (!(xsk_ring__desc(&xsk->rx, idx + k++)->options & XDP_PKT_CONTD))
			return k;
	}
	return 0;
}

/*
 * Check the k descriptors of one RX frame. Returns the frame's bytes (in the UMEM when k is 1,
 * else put together in xsk->scratch) and sets *len, or NULL when a descriptor is bad (counted
 * in *bad) or the frame is longer than XT_MAX_FRAME. The frame's own chunks are appended to
 * chunks[*nrec] either way, to go back to the fill ring.
 */
static const unsigned char *xt_rx_frame(struct xt_xsk *xsk, __u32 idx, unsigned int k,
					unsigned int *len, uint64_t *chunks, unsigned int *nrec,
					unsigned long long *bad)
{
	const unsigned char *data = NULL, *part;
	unsigned int j, total = 0, ok = 1;
	uint64_t chunk;

	for (j = 0; j < k; j++) {
		const struct xdp_desc *d = xsk_ring__desc(&xsk->rx, idx + j);

		if (!xt_rx_check(xsk, d, &part, &chunk)) {
			(*bad)++;
			ok = 0;
			continue;
		}
		if (chunk != UINT64_MAX)
			chunks[(*nrec)++] = chunk;
		if (k == 1) {
			data = part;
		} else if (ok && xsk->scratch && d->len <= XT_MAX_FRAME - total) {
			memcpy(xsk->scratch + total, part, d->len);
			data = xsk->scratch;
		} else {
			ok = 0;
		}
		total += d->len;
	}
	*len = total;
	return ok ? data : NULL;
}

/*
 * Copy the meta_len bytes in front of an RX frame (the metadata an XDP program placed there with
 * bpf_xdp_adjust_meta; in front of the first buffer of a multi-buffer frame), or zeros where its
 * chunk has no room for them there.
 */
static void xt_rx_meta(const struct xt_xsk *xsk, const struct xdp_desc *first, unsigned char *out,
		       unsigned int meta_len)
{
	const struct xt_umem *umem = xsk->umem;
	uint64_t addr = xt__desc_addr(umem, first->addr);

	if (addr - xt__desc_chunk(umem, first->addr) >= meta_len)
		memcpy(out, umem->area + addr - meta_len, meta_len);
	else
		memset(out, 0, meta_len);
}

static int xt_recv_once(struct xt_xsk *xsk, unsigned int max, unsigned char *buf,
			unsigned long long cap, unsigned int *lens, unsigned long long *addrs,
			unsigned char *meta, unsigned int meta_len)
{
	struct xsk_ring *r = &xsk->rx;
	uint64_t chunks[XT_CHUNK];
	unsigned long long used = 0, bad = 0;
	unsigned int n, i = 0, k, got = 0, nrec = 0, len;
	int sg = !!(xsk->bind_flags & XT_BIND_SG), no_room = 0;
	__u32 idx;

	n = xsk_cons__peek(r, sg ? XT_CHUNK : xt_min(max, XT_CHUNK), &idx);
	while (i < n && got < max && (k = xt_rx_span(xsk, idx + i, n - i))) {
		unsigned int mark = nrec;
		const unsigned char *data = xt_rx_frame(xsk, idx + i, k, &len, chunks, &nrec, &bad);

		if (data && len > cap - used) {
			/* No room: leave this frame and the rest in the ring for the next call. */
			nrec = mark;
			no_room = 1;
			break;
		}
		if (data) {
			memcpy(buf + used, data, len);
			lens[got] = len;
			if (addrs)
				addrs[got] = xsk_ring__desc(r, idx + i)->addr;
			if (meta_len)
				xt_rx_meta(xsk, xsk_ring__desc(r, idx + i), meta + (size_t)got * meta_len, meta_len);
			used += len;
			got++;
			xsk->cnt.rx_bytes += len;
		}
		i += k;
	}
	(void)bad; /* xt_rx_check counted them in the socket's bad_rx_descs */
	if (i < n)
		xsk_cons__cancel(r, n - i);
	if (i)
		xsk_cons__release(r, i);
	xt_fill_recycle(xsk, chunks, nrec);
	xsk->cnt.rx_frames += got;
	return no_room && !got && !i ? -ENOBUFS : (int)got;
}

int xt_xsk_recv(struct xt_xsk *xsk, unsigned int max, unsigned char *buf,
		unsigned long long cap, unsigned int *lens, unsigned long long *addrs,
		unsigned char *meta, unsigned int meta_len, int timeout_ms)
{
	uint64_t deadline = xt_now_ns() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0) * 1000000ULL;
	struct pollfd pfd = { .fd = xsk->fd, .events = POLLIN };
	int got;

	if (!xsk->rx.map)
		return -EINVAL;
	for (;;) {
		/* Busy polling: NAPI runs only when we drive it, so drive it before every peek. */
		if (xsk->busy_poll)
			xt_xsk_kick_rx(xsk);
		got = xt_recv_once(xsk, max, buf, cap, lens, addrs, meta, meta_len);
		if (got)
			return got;
		if (!xsk->busy_poll && xt_rx_needs_kick(xsk))
			xt_xsk_kick_rx(xsk);
		if (timeout_ms == 0)
			return 0;
		if (timeout_ms > 0) {
			uint64_t now = xt_now_ns();

			if (now >= deadline)
				return 0;
			if (poll(&pfd, 1, (int)((deadline - now + 999999) / 1000000)) < 0)
				return -errno;
		} else if (poll(&pfd, 1, -1) < 0) {
			return -errno;
		}
	}
}

/* ---- batched loops ------------------------------------------------------------ */

int xt_tx_burst(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st)
{
	struct xt_umem *umem = xsk->umem;
	uint64_t addrs[XT_CHUNK];
	unsigned int n = xt_min(cfg->batch ? cfg->batch : 64, XT_CHUNK), res, i, t, per, used = 0;
	unsigned int max_len = cfg->gen ? cfg->gen_max_len : cfg->tmpl_stride;
	uint64_t realtime;
	uint32_t ts;
	__u32 idx;

	if (!xsk->tx.map || (!cfg->ntmpl && !cfg->gen))
		return -EINVAL;
	if (!xt_tx_len_ok(xsk, max_len))
		return -EMSGSIZE;
	/* Reserve for the longest frame; what shorter ones leave is given back. */
	per = xt_descs_for(xsk, max_len);
	if (cfg->count)
		n = xt_min(n, cfg->count > st->frames ? cfg->count - st->frames : 0);
	if (cfg->flags & XT_LOOP_TX_PCAPNG)
		n = xt_min(n, xt_pcapng_room(cfg, st, max_len));
	n = xt_min(n, XT_CHUNK / per);
	xt_reap(xsk, xsk->ctx->comp.size);
	res = n ? xt_tx_reserve(xsk, addrs, n * per, &idx) : 0;
	n = res / per;
	t = cfg->ntmpl ? (unsigned int)(st->next_tmpl % cfg->ntmpl) : 0;
	ts = cfg->gen && n ? (uint32_t)xt_now_ns() : 0;
	realtime = (cfg->flags & XT_LOOP_TX_PCAPNG) && n ? xt_realtime_ns() : 0;
	for (i = 0; i < n; i++) {
		const unsigned char *frame;
		unsigned int len, first = used;

		if (cfg->gen) {
			uint64_t k = st->next_tmpl + i;
			/* A frame longer than a UMEM frame is built aside, then split. */
			unsigned char *dst = per > 1 ? xsk->scratch : umem->area + addrs[used];

			xt_gen_build(cfg->gen, k, 1, (uint32_t)k, ts, dst, 0, &len);
			frame = dst;
		} else {
			len = cfg->tmpl_lens[t];
			frame = cfg->tmpl + (size_t)t * cfg->tmpl_stride;
		}
		if (per == 1) {
			struct xdp_desc *d = xsk_ring__desc(&xsk->tx, idx + used);

			if (!cfg->gen)
				memcpy(umem->area + addrs[used], frame, len);
			d->addr = addrs[used];
			d->len = len;
			d->options = 0;
			frame = umem->area + addrs[used];
			used++;
		} else {
			used += xt_tx_place(xsk, idx + used, addrs + used, frame, len);
		}
		st->bytes += len;
		if (realtime)
			xt_pcapng_append(cfg, st, frame, len, xsk_ring__desc(&xsk->tx, idx + first)->addr,
					 0, realtime);
		if (++t >= cfg->ntmpl)
			t = 0;
	}
	xt_tx_unreserve(xsk, addrs, used, res);
	if (n) {
		/* Timed replay: a frame counts as sent when it is handed to the kernel, before the
		 * kick, whose length depends on the receiver's work on this CPU (veth runs it here). */
		if (cfg->sched_n)
			st->sched_submit_ns = xt_now_ns();
		xsk_prod__submit(&xsk->tx, used);
		st->frames += n;
		st->next_tmpl += n;
		xsk->cnt.tx_frames += n;
	}
	xt_tx_flush(xsk, used / XT_KERNEL_TX_BATCH + 1);
	return (int)n;
}

static inline void xt_verify(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
			     const unsigned char *data, unsigned int len)
{
	unsigned int t = (unsigned int)(st->next_tmpl % cfg->ntmpl), k;

	if (len == cfg->tmpl_lens[t] && !memcmp(data, cfg->tmpl + (size_t)t * cfg->tmpl_stride, len)) {
		st->verified++;
		st->next_tmpl++;
		return;
	}
	for (k = 0; k < cfg->ntmpl; k++) {
		if (len == cfg->tmpl_lens[k] &&
		    !memcmp(data, cfg->tmpl + (size_t)k * cfg->tmpl_stride, len)) {
			st->verified++;
			st->resyncs++;
			st->next_tmpl = k + 1;
			return;
		}
	}
	st->mismatched++;
	st->next_tmpl++;
}

int xt_rx_burst(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st)
{
	struct xsk_ring *r = &xsk->rx;
	uint64_t chunks[XT_CHUNK];
	unsigned int n = xt_min(cfg->batch ? cfg->batch : 64, XT_CHUNK), avail, i = 0, k, nrec = 0, good = 0;
	unsigned int len;
	uint64_t now, realtime;
	__u32 idx;

	if (!xsk->rx.map || ((cfg->flags & XT_LOOP_VERIFY) && !cfg->ntmpl))
		return -EINVAL;
	if (cfg->count)
		n = xt_min(n, cfg->count > st->frames ? cfg->count - st->frames : 0);
	if (xsk->busy_poll)
		xt_xsk_kick_rx(xsk); /* drive NAPI before every peek, as in xt_xsk_recv */
	/* n frames; with XDP_USE_SG each may take several descriptors, so peek all there are. */
	avail = n ? xsk_cons__peek(r, (xsk->bind_flags & XT_BIND_SG) ? XT_CHUNK : n, &idx) : 0;
	if (!avail) {
		if (!xsk->busy_poll && xt_rx_needs_kick(xsk))
			xt_xsk_kick_rx(xsk);
		return 0;
	}
	now = cfg->verifier ? xt_now_ns() : 0;
	/* one receive time per batch: the frames of a batch reach the application together */
	realtime = (cfg->flags & XT_LOOP_COPY_OUT) && cfg->out_ts ? xt_realtime_ns() : 0;
	for (; i < avail && good < n && (k = xt_rx_span(xsk, idx + i, avail - i)); i += k) {
		const unsigned char *data = xt_rx_frame(xsk, idx + i, k, &len, chunks, &nrec, &st->bad_descs);

		if (!data)
			continue;
		if (cfg->flags & XT_LOOP_VERIFY)
			xt_verify(cfg, st, data, len);
		if (cfg->verifier) {
			unsigned int flen = len;

			xt_verifier_feed(cfg->verifier, data, 0, &flen, 1, now);
		}
		if ((cfg->flags & XT_LOOP_COPY_OUT) && st->out_frames < cfg->out_max &&
		    len <= cfg->out_cap - st->out_used) {
			memcpy(cfg->out + st->out_used, data, len);
			if (cfg->out_ts)
				cfg->out_ts[st->out_frames] = realtime;
			cfg->out_lens[st->out_frames++] = len;
			st->out_used += len;
		}
		st->bytes += len;
		xsk->cnt.rx_bytes += len;
		good++;
	}
	if (i < avail)
		xsk_cons__cancel(r, avail - i);
	if (i)
		xsk_cons__release(r, i);
	xt_fill_recycle(xsk, chunks, nrec);
	st->frames += good;
	xsk->cnt.rx_frames += good;
	return (int)i;
}

static int xt_loop_done(const struct xt_loop_cfg *cfg, const struct xt_loop_stats *st,
			uint64_t start, uint64_t last, uint64_t now)
{
	if (cfg->count && st->frames >= cfg->count)
		return 1;
	if (cfg->duration_ns && now - start >= cfg->duration_ns)
		return 1;
	return cfg->idle_ns && now - last >= cfg->idle_ns;
}

/*
 * Pacing: how many frames may go now at cfg->rate_pps (0: no limit). The bucket holds at
 * most one batch, so a stall never turns into a burst above the rate. When none may go yet,
 * sleep, then spin the last 20 us, until the next one is due.
 */
static unsigned int xt_tx_allowance(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
				    unsigned int batch)
{
	uint64_t now, due, sent;
	unsigned int want;
	double owed, depth;

	if (cfg->rate_pps <= 0)
		return batch;
	/* Send in bursts of about 50 us of traffic (at least one frame): a kick costs several
	 * microseconds in copy mode, so one kick per frame could not reach high rates. */
	want = (unsigned int)(cfg->rate_pps * 50e-6);
	want = want < 1 ? 1 : want > batch ? batch : want;
	now = xt_now_ns();
	if (!st->rate_start_ns) {
		xt_timer_slack_tight();
		st->rate_start_ns = now;
		st->rate_base = st->frames;
	}
	sent = st->frames - st->rate_base;
	owed = (double)(now - st->rate_start_ns) * cfg->rate_pps / 1e9 - (double)sent;
	depth = cfg->rate_pps * 0.01 > batch ? cfg->rate_pps * 0.01 : batch;
	if (owed > depth) {
		/* A stall (descheduled, slow kick) left more tokens than the bucket holds (10 ms of
		 * traffic, at least a batch): drop the excess so a catch-up stays short. */
		st->rate_start_ns = now - (uint64_t)((double)sent * 1e9 / cfg->rate_pps + depth * 1e9 / cfg->rate_pps);
		owed = depth;
	}
	if (owed >= want)
		return owed >= batch ? batch : (unsigned int)owed;
	due = st->rate_start_ns + (uint64_t)((double)(sent + want) * 1e9 / cfg->rate_pps);
	xt_wait_until(due, 20000);
	return want;
}

/*
 * Closed loop: may a batch go, with the receiver's count where it is? Waits while the window is
 * full, and 0 when the call's time ends first (the wait goes on in the next call). After
 * window_wait_ns without progress, with nothing queued in the receiver's ring, the frames still
 * out are given up as lost (window_lost; see struct xt_loop_cfg).
 */
static int xt_tx_window_open(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
			     unsigned int batch, uint64_t end_ns)
{
	if (!cfg->window || !cfg->peer_frames)
		return 1;
	for (;;) {
		/* Relaxed is enough: a stale count only makes us wait a little longer. */
		uint64_t got = __atomic_load_n(cfg->peer_frames, __ATOMIC_RELAXED);
		uint64_t now;

		if (st->frames + batch <= got + st->window_lost + cfg->window) {
			st->window_since_ns = 0;
			return 1;
		}
		now = xt_now_ns();
		if (!st->window_since_ns || got != st->window_seen) {
			st->window_seen = got;
			st->window_since_ns = now;
		}
		if (now - st->window_since_ns >= cfg->window_wait_ns) {
			/* Acquire pairs with the kernel's release of the RX producer (xskq_prod_submit)
			 * and the receiver's of its consumer: frames still queued mean a late receiver. */
			if (cfg->peer_rx_prod && __atomic_load_n(cfg->peer_rx_prod, __ATOMIC_ACQUIRE) !=
						 __atomic_load_n(cfg->peer_rx_cons, __ATOMIC_ACQUIRE)) {
				st->window_since_ns = now;
			} else {
				st->window_lost = st->frames - got;
				st->window_since_ns = 0;
				return 1;
			}
		}
		if (end_ns && now >= end_ns)
			return 0;
		sched_yield();
	}
}

int xt_tx_loop(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st)
{
	uint64_t start = xt_now_ns(), last = start, now = start;
	uint64_t end = cfg->duration_ns ? start + cfg->duration_ns : 0;
	struct xt_loop_cfg paced = *cfg;
	unsigned int batch = cfg->batch ? cfg->batch : 64;
	int ret;

	do {
		uint64_t first = st->frames;

		/* The burst takes its size from the batch, so pace by lowering it. */
		if (!xt_tx_window_open(cfg, st, batch, end))
			paced.batch = 0;
		else
			paced.batch = cfg->sched_n ? xt_sched_allowance(cfg, st, batch, end)
						   : xt_tx_allowance(cfg, st, batch);
		ret = paced.batch ? xt_tx_burst(xsk, &paced, st) : 0;
		if (ret < 0)
			return ret;
		now = xt_now_ns();
		if (ret)
			last = now;
		if (cfg->sched_n && ret)
			xt_sched_account(cfg, st, first, (unsigned int)ret, st->sched_submit_ns);
		/* A full capture buffer ends the call: the caller empties it and calls again. */
		if ((cfg->flags & XT_LOOP_TX_PCAPNG) &&
		    !xt_pcapng_room(cfg, st, cfg->gen ? cfg->gen_max_len : cfg->tmpl_stride))
			break;
	} while (!xt_loop_done(cfg, st, start, last, now));
	st->elapsed_ns += now - start;
	return 0;
}

int xt_rx_loop(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st)
{
	uint64_t start = xt_now_ns(), last = start, now = start;
	struct pollfd pfd = { .fd = xsk->fd, .events = POLLIN };
	int ret;

	do {
		ret = xt_rx_burst(xsk, cfg, st);
		if (ret < 0)
			return ret;
		/* No pause instruction when spinning: in a guest it can trap (pause-loop exiting). */
		if (!ret && !(cfg->flags & XT_LOOP_BUSY_SPIN) &&
		    poll(&pfd, 1, cfg->poll_ms > 0 ? cfg->poll_ms : 1) < 0 && errno != EINTR)
			return -errno;
		now = xt_now_ns();
		if (ret)
			last = now;
	} while (!xt_loop_done(cfg, st, start, last, now));
	st->elapsed_ns += now - start;
	return 0;
}

int xt_xsk_test_forge(struct xt_xsk *xsk, int which, unsigned long long addr, unsigned int len)
{
	struct xsk_ring *r = which == XT_RING_RX ? &xsk->rx : &xsk->ctx->comp;
	__u32 prod;

	if (!r->map || (which != XT_RING_RX && which != XT_RING_COMP))
		return -EINVAL;
	prod = xsk_ring__load(r->producer);
	if (which == XT_RING_RX) {
		xsk_ring__desc(r, prod)->addr = addr;
		xsk_ring__desc(r, prod)->len = len;
		xsk_ring__desc(r, prod)->options = 0;
	} else {
		*xsk_ring__addr(r, prod) = addr;
	}
	/* Release: the forged entry is written before the index that covers it (as the kernel's
	 * producer would); pairs with the acquire in xsk_cons__nb_avail. */
	__atomic_store_n(r->producer, prod + 1, __ATOMIC_RELEASE);
	return 0;
}

int xt_live_frames(int prog_fd, const void *data, unsigned int len, unsigned int ifindex,
		   unsigned int repeat, unsigned int batch)
{
	struct xdp_md ctx = { .data = 0, .data_end = len, .ingress_ifindex = ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = data,
		    .data_size_in = len,
		    .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx),
		    .repeat = repeat,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = batch);

	return bpf_prog_test_run_opts(prog_fd, &opts) ? -errno : 0;
}
