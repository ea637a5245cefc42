// SPDX-License-Identifier: MIT
/*
 * Verification of verbatim frames (a capture replayed unchanged, no stamp):
 * each frame received is looked up by content among the frames sent. The k-th
 * arrival of a content is taken as its k-th occurrence in the sending order, so
 * loss, duplicates and reordering are counted per content as the stamp's
 * sequence numbers count them; an unknown frame close to a frame sent (same
 * length, at most a quarter of its bytes different) is that frame corrupted,
 * anything else is not ours (ARP, ND from the kernel).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "verifier.h"

#define XT_NEAREST_TRIES 1024	/* frames of the same length compared with an unknown one */

struct xt_content {
	const struct xt_gen_tmpl *frames;	/* the frames sent, in order (caller-owned) */
	uint32_t nframes;
	uint32_t ncontents;		/* distinct contents */
	uint32_t *content_of;		/* per frame: its content */
	uint32_t *first;		/* per content: where its frames start in by_content */
	uint32_t *mult;			/* per content: its frames per pass over the capture */
	uint32_t *by_content;		/* frame indices grouped by content, in sending order */
	uint64_t *got;			/* per content: arrivals */
	uint32_t *slots;		/* open-addressing table: content + 1, 0 for empty */
	uint32_t mask;
	uint64_t highest;		/* the latest sending position seen + 1 */
	uint64_t reordered;
};

static uint64_t xt_hash(const uint8_t *p, uint32_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len, w;
	uint32_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 29;
	}
	for (; i < len; i++)
		h = (h ^ p[i]) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static int xt_same(const struct xt_gen_tmpl *t, const uint8_t *f, uint32_t len)
{
	return t->len == len && !memcmp(t->data, f, len);
}

/* The content of frame f, or -1. */
static int64_t xt_lookup(const struct xt_content *c, const uint8_t *f, uint32_t len, uint32_t *slot)
{
	uint32_t i = (uint32_t)xt_hash(f, len) & c->mask;

	for (; c->slots[i]; i = (i + 1) & c->mask) {
		uint32_t k = c->slots[i] - 1;

		if (xt_same(&c->frames[c->by_content[c->first[k]]], f, len))
			return k;
	}
	*slot = i;
	return -1;
}

void xt_content_reset(struct xt_content *c)
{
	if (!c)
		return;
	memset(c->got, 0, c->nframes * sizeof(uint64_t));
	c->highest = 0;
	c->reordered = 0;
}

void xt_content_free(struct xt_content *c)
{
	if (!c)
		return;
	free(c->content_of);
	free(c->first);
	free(c->mult);
	free(c->by_content);
	free(c->got);
	free(c->slots);
	free(c);
}

int xt_verifier_expect_frames(struct xt_verifier *v, const struct xt_gen_tmpl *frames, unsigned int n)
{
	struct xt_content *c;
	uint32_t size = 2, i, *fill;

	if (!n)
		return -EINVAL;
	while (size < 2 * n)
		size <<= 1;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->frames = frames;
	c->nframes = n;
	c->mask = size - 1;
	c->content_of = calloc(n, sizeof(uint32_t));
	c->first = calloc(n, sizeof(uint32_t));
	c->mult = calloc(n, sizeof(uint32_t));
	c->by_content = calloc(n, sizeof(uint32_t));
	c->got = calloc(n, sizeof(uint64_t));
	c->slots = calloc(size, sizeof(uint32_t));
	fill = calloc(n, sizeof(uint32_t));
	if (!c->content_of || !c->first || !c->mult || !c->by_content || !c->got || !c->slots || !fill) {
		free(fill);
		xt_content_free(c);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {	/* number the contents, count each one's frames */
		uint32_t slot;
		int64_t k;

		/* by_content is not built yet: look up through a frame of each content, kept in fill */
		for (slot = (uint32_t)xt_hash(frames[i].data, frames[i].len) & c->mask, k = -1; c->slots[slot];
		     slot = (slot + 1) & c->mask) {
			if (xt_same(&frames[fill[c->slots[slot] - 1]], frames[i].data, frames[i].len)) {
				k = c->slots[slot] - 1;
				break;
			}
		}
		if (k < 0) {
			k = c->ncontents++;
			c->slots[slot] = (uint32_t)k + 1;
			fill[k] = i;
		}
		c->content_of[i] = (uint32_t)k;
		c->mult[k]++;
	}
	for (i = 1; i < c->ncontents; i++)
		c->first[i] = c->first[i - 1] + c->mult[i - 1];
	memset(fill, 0, n * sizeof(uint32_t));
	for (i = 0; i < n; i++) {	/* each content's frames in sending order */
		uint32_t k = c->content_of[i];

		c->by_content[c->first[k] + fill[k]++] = i;
	}
	free(fill);
	xt_content_free(v->content);
	v->content = c;
	return 0;
}

/* The frame sent that an unknown one is closest to (same length, at most len/4 bytes apart), or -1. */
static int64_t xt_nearest(const struct xt_content *c, const uint8_t *f, uint32_t len)
{
	uint32_t i, tries = 0, best_diff = len / 4 + 1;
	int64_t best = -1;

	for (i = 0; i < c->nframes && tries < XT_NEAREST_TRIES; i++) {
		const struct xt_gen_tmpl *t = &c->frames[i];
		uint32_t j, diff = 0;

		if (t->len != len || c->by_content[c->first[c->content_of[i]]] != i)
			continue;	/* another length, or not the first frame of its content */
		tries++;
		for (j = 0; j < len && diff < best_diff; j++)
			diff += t->data[j] != f[j];
		if (diff < best_diff) {
			best_diff = diff;
			best = i;
		}
	}
	return best;
}

void xt_content_feed(struct xt_verifier *v, const uint8_t *f, uint32_t len, uint64_t now)
{
	struct xt_content *c = v->content;
	struct xt_stream_result *r = &v->streams[0].r;
	uint32_t slot;
	int64_t k = xt_lookup(c, f, len, &slot), near;
	uint64_t n, pos;

	if (k < 0) {
		near = xt_nearest(c, f, len);
		if (near < 0) {
			v->t.foreign++;
			return;
		}
		xt_count_bad(v, xt_diff_classes(&c->frames[near], f, len, c->frames[near].data, len), 0,
			     (uint64_t)near, f, len, c->frames[near].data, len);
		return;
	}
	n = c->got[k]++;
	/* the n-th arrival of this content is its n-th occurrence in the sending order */
	pos = (n / c->mult[k]) * c->nframes + c->by_content[c->first[k] + n % c->mult[k]];
	if (pos < c->highest) {
		c->reordered++;
	} else {
		c->highest = pos + 1;
	}
	r->received++;
	v->t.stamped++;
	if (!v->t.first_ns)
		v->t.first_ns = now;
	v->t.last_ns = now;
}

/* How many frames of content k were among the first `sent` frames sent. */
static uint64_t xt_sent_of(const struct xt_content *c, uint32_t k, uint64_t sent)
{
	uint64_t want = sent / c->nframes * c->mult[k], rest = sent % c->nframes;
	uint32_t i;

	for (i = 0; i < c->mult[k] && c->by_content[c->first[k] + i] < rest; i++)
		want++;
	return want;
}

void xt_verifier_frames_sent(struct xt_verifier *v, unsigned long long sent)
{
	struct xt_content *c = v->content;
	struct xt_stream_result *r = &v->streams[0].r;
	uint64_t unique = 0, dup = 0;
	uint32_t k;

	if (!c)
		return;
	for (k = 0; k < c->ncontents; k++) {
		uint64_t want = xt_sent_of(c, k, sent);

		unique += c->got[k] < want ? c->got[k] : want;
		dup += c->got[k] > want ? c->got[k] - want : 0;
	}
	r->unique = unique;
	r->duplicated = dup;
	r->reordered = c->reordered;
	r->highest = c->highest;
}

unsigned int xt_verifier_missing(const struct xt_verifier *v, unsigned long long sent, unsigned int *frames,
				 unsigned long long *missing, unsigned int max)
{
	const struct xt_content *c = v->content;
	unsigned int n = 0;
	uint32_t k;

	for (k = 0; c && k < c->ncontents && n < max; k++) {
		uint64_t want = xt_sent_of(c, k, sent);

		if (c->got[k] < want) {
			frames[n] = c->by_content[c->first[k]];
			missing[n++] = want - c->got[k];
		}
	}
	return n;
}
