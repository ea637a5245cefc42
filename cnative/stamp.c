// SPDX-License-Identifier: MIT
/* Verification of stamped frames: sequence accounting per stream and a latency histogram. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "verifier.h"

#define XT_WINDOW (1u << XT_SEQ_WINDOW_BITS)

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

/* Forget every count and kept frame; the expected frames and the keeping limits stay. */
void xt_verifier_reset(struct xt_verifier *v)
{
	unsigned int i;

	for (i = 0; i < XT_MAX_STREAMS; i++) {
		free(v->streams[i].seen);
		v->streams[i].seen = NULL;
		memset(&v->streams[i].r, 0, sizeof(v->streams[i].r));
	}
	memset(&v->t, 0, sizeof(v->t));
	memset(v->hist, 0, sizeof(v->hist));
	v->t.latency_min = UINT64_MAX;
	v->nkept = 0;
	xt_content_reset(v->content);
}

void xt_verifier_free(struct xt_verifier *v)
{
	if (!v)
		return;
	xt_verifier_reset(v);
	free(v->scratch);
	free(v->kept);
	free(v->bad);
	xt_content_free(v->content);
	free(v);
}

int xt_verifier_expect(struct xt_verifier *v, const struct xt_gen *g, unsigned int max_len)
{
	uint8_t *scratch = NULL;

	if (g) {
		if (!g->ntmpl || !max_len)
			return -EINVAL;
		scratch = malloc(max_len);
		if (!scratch)
			return -ENOMEM;
	}
	free(v->scratch);
	v->scratch = scratch;
	v->expect = g;
	return 0;
}

int xt_verifier_keep_bad(struct xt_verifier *v, unsigned int frames, unsigned int bytes)
{
	uint8_t *kept = NULL;
	struct xt_bad_frame *bad = NULL;

	if (frames && bytes) {
		kept = malloc((size_t)frames * bytes * 2);
		bad = calloc(frames, sizeof(*bad));
		if (!kept || !bad) {
			free(kept);
			free(bad);
			return -ENOMEM;
		}
	}
	free(v->kept);
	free(v->bad);
	v->kept = kept;
	v->bad = bad;
	v->keep_max = kept ? frames : 0;
	v->keep_bytes = kept ? bytes : 0;
	v->nkept = 0;
	return 0;
}

unsigned int xt_verifier_bad_count(const struct xt_verifier *v)
{
	return v->nkept;
}

int xt_verifier_bad(const struct xt_verifier *v, unsigned int i, struct xt_bad_frame *out)
{
	if (i >= v->nkept)
		return -EINVAL;
	*out = v->bad[i];
	return 0;
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

/* The stamp's 32-bit sequence number extended to the 64-bit one nearest the highest seen. */
static inline uint64_t xt_extend_seq(const struct xt_stream_state *st, uint32_t seq32)
{
	uint64_t next = st->r.highest, seq = (next & ~0xffffffffull) | seq32;

	if (seq + 0x80000000ull < next)
		seq += 0x100000000ull;
	else if (seq > next + 0x80000000ull && seq >= 0x100000000ull)
		seq -= 0x100000000ull;
	return seq;
}

/* Sequence bookkeeping for one good frame; returns 0 or -ENOMEM. */
static int xt_account(struct xt_stream_state *st, uint64_t seq)
{
	struct xt_stream_result *r = &st->r;
	uint64_t next = r->highest, bit;

	if (!st->seen) {
		st->seen = calloc(XT_WINDOW / 64, sizeof(uint64_t));
		if (!st->seen)
			return -ENOMEM;
	}
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

/* Which parts of frame f differ from the expected frame e (XT_DIFF_* bits; 0: none). */
unsigned int xt_diff_classes(const struct xt_gen_tmpl *t, const uint8_t *f, uint32_t len,
			     const uint8_t *e, uint32_t elen)
{
	/* the parts' ends, as laid out in the expected frame */
	uint32_t l3 = t->l3_off >= 0 ? (uint32_t)t->l3_off : (uint32_t)t->stamp_off;
	uint32_t l4 = t->l4_off >= 0 ? (uint32_t)t->l4_off : (uint32_t)t->stamp_off;
	uint32_t ends[4] = { l3, l4 < l3 ? l3 : l4, (uint32_t)t->stamp_off, elen };
	unsigned int classes = len != elen ? XT_DIFF_LENGTH : 0, i;
	uint32_t from = 0, common = len < elen ? len : elen;

	for (i = 0; i < 4; i++) {
		uint32_t to = ends[i] < common ? ends[i] : common;

		if (to > from && memcmp(f + from, e + from, to - from))
			classes |= 1u << i;
		if (ends[i] > from)
			from = ends[i];
	}
	return classes;
}

void xt_count_bad(struct xt_verifier *v, unsigned int classes, uint16_t stream, uint64_t seq,
		  const uint8_t *f, uint32_t len, const uint8_t *e, uint32_t elen)
{
	struct xt_bad_frame *b;
	uint8_t *slot;
	unsigned int i;

	v->t.corrupted++;
	for (i = 0; i < XT_DIFF_CLASSES; i++)
		if (classes & (1u << i))
			v->t.corrupted_by[i]++;
	if (v->nkept >= v->keep_max)
		return;
	slot = v->kept + (size_t)v->nkept * v->keep_bytes * 2;
	b = &v->bad[v->nkept++];
	b->stream = stream;
	b->seq = seq;
	b->classes = classes;
	b->len = len;
	b->expected_len = e ? elen : 0;
	memcpy(slot, f, len < v->keep_bytes ? len : v->keep_bytes);
	b->actual = slot;
	b->expected = NULL;
	if (e) {
		memcpy(slot + v->keep_bytes, e, elen < v->keep_bytes ? elen : v->keep_bytes);
		b->expected = slot + v->keep_bytes;
	}
}

/*
 * The stamp of frame f (at off) names its stream and sequence number: is the frame the one
 * expected for them? Returns 0, or the classes where it differs. *seq gets the extended number.
 */
static unsigned int xt_check_whole(struct xt_verifier *v, const uint8_t *f, uint32_t len, int off,
				   uint16_t stream, uint64_t *seq_out, uint32_t *elen_out)
{
	const struct xt_gen *g = v->expect;
	const uint8_t *s = f + off;
	uint64_t seq = xt_extend_seq(&v->streams[stream], xt_get32(s + 4));
	const struct xt_gen_tmpl *t = &g->tmpl[seq % g->ntmpl];
	uint32_t elen = xt_gen_frame_of(g, t, v->scratch, seq, stream, xt_get32(s + 4), xt_get32(s + 8));

	*seq_out = seq;
	*elen_out = elen;
	if (elen == len && !memcmp(f, v->scratch, len))
		return 0;
	return xt_diff_classes(t, f, len, v->scratch, elen);
}

void xt_verifier_feed(struct xt_verifier *v, const unsigned char *frames, unsigned int stride,
		      const unsigned int *lens, unsigned int n, unsigned long long now_ns)
{
	uint64_t now = now_ns ? now_ns : xt_now_ns();
	unsigned int i;

	for (i = 0; i < n; i++) {
		const uint8_t *f = frames + (size_t)i * stride;
		uint32_t len = lens[i], seq32, ts, lat, elen;
		uint16_t stream;
		int off = xt_find_stamp(f, len);
		const uint8_t *s;
		unsigned int classes;
		uint64_t seq;

		v->t.frames++;
		v->t.bytes += len;
		if (v->content) {	/* verbatim frames: no stamp, matched by content */
			xt_content_feed(v, f, len, now);
			continue;
		}
		if (off < 0 || xt_get16(f + off) != XT_STAMP_MAGIC) {
			v->t.foreign++;
			continue;
		}
		s = f + off;
		stream = xt_get16(s + 2);
		seq32 = xt_get32(s + 4);
		ts = xt_get32(s + 8);
		if (stream >= XT_MAX_STREAMS) {
			xt_count_bad(v, XT_DIFF_STAMP, stream, seq32, f, len, NULL, 0);
			continue;
		}
		if (v->expect) {
			classes = xt_check_whole(v, f, len, off, stream, &seq, &elen);
			if (classes) {
				xt_count_bad(v, classes, stream, seq, f, len, v->scratch, elen);
				continue;
			}
		} else {
			seq = xt_extend_seq(&v->streams[stream], seq32);
			if (xt_get32(s + 12) != xt_stamp_check(stream, seq32, ts, len,
							       xt_sum16(s + XT_STAMP_SIZE, len - off - XT_STAMP_SIZE))) {
				xt_count_bad(v, XT_DIFF_STAMP, stream, seq, f, len, NULL, 0);
				continue;
			}
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
	for (i = 0; i < XT_DIFF_CLASSES; i++)
		into->t.corrupted_by[i] += from->t.corrupted_by[i];
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
