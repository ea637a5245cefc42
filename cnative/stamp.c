// SPDX-License-Identifier: MIT
/* Verification of stamped frames: sequence accounting per stream and a latency histogram. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "stamp.h"

#define XT_WINDOW (1u << XT_SEQ_WINDOW_BITS)

struct xt_stream_state {
	struct xt_stream_result r;
	uint64_t *seen;		/* bitmap of the last XT_WINDOW sequence numbers */
};

struct xt_verifier {
	struct xt_verify_totals t;
	uint64_t hist[XT_HIST_BUCKETS];
	struct xt_stream_state streams[XT_MAX_STREAMS];
};

int xt_stamp_abi(void)
{
	return XT_STAMP_ABI;
}

unsigned long long xt_monotonic_ns(void)
{
	return xt_now_ns();
}

int xt_gen_build(const struct xt_gen *g, unsigned long long first, unsigned int n, unsigned int seq0,
		 unsigned int ts, unsigned char *out, unsigned int stride, unsigned int *lens)
{
	unsigned int i;

	if (!g->ntmpl)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		uint64_t k = first + i;
		const struct xt_gen_tmpl *t = &g->tmpl[k % g->ntmpl];

		lens[i] = xt_gen_frame(g, t, out + (size_t)i * stride, k, seq0 + i, ts);
	}
	return (int)n;
}

struct xt_verifier *xt_verifier_new(void)
{
	struct xt_verifier *v = calloc(1, sizeof(*v));

	if (v)
		v->t.latency_min = UINT64_MAX;
	return v;
}

void xt_verifier_reset(struct xt_verifier *v)
{
	unsigned int i;

	for (i = 0; i < XT_MAX_STREAMS; i++)
		free(v->streams[i].seen);
	memset(v, 0, sizeof(*v));
	v->t.latency_min = UINT64_MAX;
}

void xt_verifier_free(struct xt_verifier *v)
{
	if (!v)
		return;
	xt_verifier_reset(v);
	free(v);
}

unsigned long long xt_hist_bucket_value(unsigned int index)
{
	unsigned int shift;

	if (index < 128)
		return index;
	shift = (index - 128) / 64 + 1;
	return (unsigned long long)(64 + (index - 128) % 64) << shift;
}

unsigned int xt_hist_index(unsigned long long v)
{
	unsigned int msb, shift;

	if (v < 128)
		return (unsigned int)v;
	msb = 63 - (unsigned int)__builtin_clzll(v);
	shift = msb - 6;
	return 128 + (shift - 1) * 64 + (unsigned int)((v >> shift) - 64);
}

static inline void xt_bit_clear_range(uint64_t *seen, uint64_t from, uint64_t to)
{
	uint64_t s;

	if (to - from >= XT_WINDOW) {
		memset(seen, 0, XT_WINDOW / 8);
		return;
	}
	for (s = from; s < to; s++)
		seen[(s % XT_WINDOW) / 64] &= ~(1ull << (s % 64));
}

/* Sequence bookkeeping for one stamped frame; returns 0 or -ENOMEM. */
static int xt_account(struct xt_stream_state *st, uint32_t seq32)
{
	struct xt_stream_result *r = &st->r;
	uint64_t next = r->highest, seq, bit;

	if (!st->seen) {
		st->seen = calloc(XT_WINDOW / 64, sizeof(uint64_t));
		if (!st->seen)
			return -ENOMEM;
	}
	/* Extend the 32-bit number to the 64-bit one nearest the highest seen. */
	seq = (next & ~0xffffffffull) | seq32;
	if (seq + 0x80000000ull < next)
		seq += 0x100000000ull;
	else if (seq > next + 0x80000000ull && seq >= 0x100000000ull)
		seq -= 0x100000000ull;

	r->received++;
	bit = 1ull << (seq % 64);
	if (seq >= next) {
		xt_bit_clear_range(st->seen, next, seq);
		st->seen[(seq % XT_WINDOW) / 64] |= bit;
		r->highest = seq + 1;
		r->unique++;
		return 0;
	}
	if (next - seq > XT_WINDOW) {
		r->late++;
		r->reordered++;
		r->unique++;
		return 0;
	}
	if (st->seen[(seq % XT_WINDOW) / 64] & bit) {
		r->duplicated++;
		return 0;
	}
	st->seen[(seq % XT_WINDOW) / 64] |= bit;
	r->reordered++;
	r->unique++;
	return 0;
}

void xt_verifier_feed(struct xt_verifier *v, const unsigned char *frames, unsigned int stride,
		      const unsigned int *lens, unsigned int n, unsigned long long now_ns)
{
	uint64_t now = now_ns ? now_ns : xt_now_ns();
	unsigned int i;

	for (i = 0; i < n; i++) {
		const uint8_t *f = frames + (size_t)i * stride;
		uint32_t len = lens[i], seq, ts, lat;
		uint16_t stream;
		int off = xt_find_stamp(f, len);
		const uint8_t *s;

		v->t.frames++;
		v->t.bytes += len;
		if (off < 0 || xt_get16(f + off) != XT_STAMP_MAGIC) {
			v->t.foreign++;
			continue;
		}
		s = f + off;
		stream = xt_get16(s + 2);
		seq = xt_get32(s + 4);
		ts = xt_get32(s + 8);
		if (stream >= XT_MAX_STREAMS ||
		    xt_get32(s + 12) != xt_stamp_check(stream, seq, ts, len,
						       xt_sum16(s + XT_STAMP_SIZE, len - off - XT_STAMP_SIZE))) {
			v->t.corrupted++;
			continue;
		}
		v->t.stamped++;
		if (xt_account(&v->streams[stream], seq) < 0) {
			v->t.corrupted++;	/* out of memory: counted, not hidden */
			continue;
		}
		lat = (uint32_t)now - ts;
		v->hist[xt_hist_index(lat)]++;
		v->t.latency_sum += lat;
		v->t.latency_samples++;
		if (lat < v->t.latency_min)
			v->t.latency_min = lat;
		if (lat > v->t.latency_max)
			v->t.latency_max = lat;
		if (!v->t.first_ns)
			v->t.first_ns = now;
		v->t.last_ns = now;
	}
}

void xt_verifier_totals(const struct xt_verifier *v, struct xt_verify_totals *out)
{
	*out = v->t;
	if (out->latency_samples == 0)
		out->latency_min = 0;
}

int xt_verifier_stream(const struct xt_verifier *v, unsigned int stream, struct xt_stream_result *out)
{
	if (stream >= XT_MAX_STREAMS)
		return -EINVAL;
	*out = v->streams[stream].r;
	return v->streams[stream].r.received ? 1 : 0;
}

void xt_verifier_histogram(const struct xt_verifier *v, unsigned long long *buckets)
{
	memcpy(buckets, v->hist, sizeof(v->hist));
}

/* Fold one verifier's counts into another (streams must not be split between them). */
void xt_verifier_merge(struct xt_verifier *into, const struct xt_verifier *from)
{
	unsigned int i;

	into->t.frames += from->t.frames;
	into->t.bytes += from->t.bytes;
	into->t.stamped += from->t.stamped;
	into->t.corrupted += from->t.corrupted;
	into->t.foreign += from->t.foreign;
	into->t.latency_sum += from->t.latency_sum;
	into->t.latency_samples += from->t.latency_samples;
	if (from->t.latency_samples && from->t.latency_min < into->t.latency_min)
		into->t.latency_min = from->t.latency_min;
	if (from->t.latency_max > into->t.latency_max)
		into->t.latency_max = from->t.latency_max;
	if (from->t.first_ns && (!into->t.first_ns || from->t.first_ns < into->t.first_ns))
		into->t.first_ns = from->t.first_ns;
	if (from->t.last_ns > into->t.last_ns)
		into->t.last_ns = from->t.last_ns;
	for (i = 0; i < XT_HIST_BUCKETS; i++)
		into->hist[i] += from->hist[i];
	for (i = 0; i < XT_MAX_STREAMS; i++) {
		struct xt_stream_result *a = &into->streams[i].r;
		const struct xt_stream_result *b = &from->streams[i].r;

		a->received += b->received;
		a->unique += b->unique;
		a->duplicated += b->duplicated;
		a->reordered += b->reordered;
		a->late += b->late;
		if (b->highest > a->highest)
			a->highest = b->highest;
	}
}
