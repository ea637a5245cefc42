/* SPDX-License-Identifier: MIT */
/*
 * Per-frame work of the traffic generator and verifier, inline for the TX and
 * RX loops: copy a template, apply field variations, write the stamp, and keep
 * every IP and L4 checksum right by incremental update (RFC 1624); on the
 * receiving side, find the stamp and check it. Layout: xdptest/packets.py.
 */
#ifndef XDPTEST_STAMP_H
#define XDPTEST_STAMP_H

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "xt_stamp.h"

#define XT_STAMP_SIZE 16
#define XT_STAMP_MAGIC 0x5854

static inline uint64_t xt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint16_t xt_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void xt_put16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static inline uint32_t xt_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void xt_put32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

/* Ones'-complement sum of big-endian 16-bit words (odd tail padded with zero), unfolded. */
static inline uint32_t xt_sum16(const uint8_t *p, uint32_t len)
{
	uint64_t sum = 0;
	uint32_t i;

	for (i = 0; i + 1 < len; i += 2)
		sum += xt_get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)sum;
}

/*
 * Checksum delta accumulator: add ~old and new for each changed word; fold
 * into the stored checksum with xt_csum_apply (RFC 1624, eqn. 3).
 */
static inline uint32_t xt_delta_words(uint32_t acc, const uint8_t *old, const uint8_t *new, uint32_t len)
{
	uint32_t i;

	for (i = 0; i + 1 < len; i += 2)
		acc += (uint16_t)~xt_get16(old + i) + xt_get16(new + i);
	if (len & 1)
		acc += (uint16_t)~(old[len - 1] << 8) + (uint16_t)(new[len - 1] << 8);
	return acc;
}

static inline uint32_t xt_delta16(uint32_t acc, uint16_t old, uint16_t new)
{
	return acc + (uint16_t)~old + new;
}

static inline void xt_csum_apply(uint8_t *field, uint32_t acc, int udp)
{
	uint32_t sum = (uint16_t)~xt_get16(field) + acc;
	uint16_t res;

	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	res = (uint16_t)~sum;
	if (udp && res == 0)
		res = 0xffff;	/* UDP sends a computed zero as all ones */
	xt_put16(field, res);
}

/* The stamp's check: a mix of its fields, the frame length and the rest of the payload. */
static inline uint32_t xt_stamp_check(uint16_t stream, uint32_t seq, uint32_t ts, uint32_t len,
				      uint32_t pad_sum)
{
	uint32_t h = seq * 0x9e3779b1u + ts;

	h ^= ((uint32_t)stream << 16 | (len & 0xffff)) * 0x85ebca6bu;
	h = (h << 13 | h >> 19) * 5 + 0xe6546b64u;
	h ^= (pad_sum + XT_STAMP_MAGIC) * 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

/* splitmix64: a stateless mix, so frame n gets the same random fields in any batch. */
static inline uint64_t xt_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Offset of frame n's value in the range of variation number i (count 0: all 2**64 values). */
static inline uint64_t xt_vary_value(const struct xt_gen *g, unsigned int i, uint64_t n)
{
	const struct xt_vary *v = &g->vary[i];
	uint64_t k = v->random ? xt_mix64(g->seed ^ xt_mix64(n * 64 + i)) : n;

	if (v->count == 1)
		return 0;
	return v->count ? k % v->count : k;
}

/*
 * Build frame number n of a stream into dst; returns its length. t->data holds
 * the template padded with zeros to the longest frame g builds. The receiver
 * builds the frame it expects the same way, from templates of expected frames.
 */
static inline uint32_t xt_gen_frame_of(const struct xt_gen *g, const struct xt_gen_tmpl *t, uint8_t *dst,
				       uint64_t n, uint16_t stream, uint32_t seq, uint32_t ts)
{
	uint32_t ip_acc = 0, l4_acc = 0, len = t->len;
	uint8_t stamp[XT_STAMP_SIZE];
	int has_l4 = t->l4_csum_off >= 0;
	uint32_t i;

	for (i = 0; i < g->nvary; i++) {
		const struct xt_vary *v = &g->vary[i];

		if (v->kind == XT_KIND_SIZE)	/* the sent frame's size */
			len = (uint32_t)((int64_t)(v->lo + xt_vary_value(g, i, n)) - t->check_len_delta);
	}
	memcpy(dst, t->data, len);

	for (i = 0; i < g->nvary; i++) {
		const struct xt_vary *v = &g->vary[i];
		uint64_t k = xt_vary_value(g, i, n);
		uint8_t *p = dst + t->vary_off[i];
		const uint8_t *old = t->data + t->vary_off[i];
		uint8_t buf[16];
		uint64_t lo_hi = v->lo_hi, lo = v->lo + k;
		int j;

		switch (v->kind) {
		case XT_KIND_MAC:
			for (j = 5; j >= 0; j--, lo >>= 8)
				p[j] = lo & 0xff;
			break;
		case XT_KIND_IPV4:
			xt_put32(buf, (uint32_t)lo);
			ip_acc = xt_delta_words(ip_acc, old, buf, 4);
			l4_acc = xt_delta_words(l4_acc, old, buf, 4);
			memcpy(p, buf, 4);
			break;
		case XT_KIND_IPV6:
			if (lo < v->lo)
				lo_hi++;	/* carry out of the low 64 bits */
			for (j = 7; j >= 0; j--, lo_hi >>= 8)
				buf[j] = lo_hi & 0xff;
			for (j = 15; j >= 8; j--, lo >>= 8)
				buf[j] = lo & 0xff;
			l4_acc = xt_delta_words(l4_acc, old, buf, 16);
			memcpy(p, buf, 16);
			break;
		case XT_KIND_U16:
			xt_put16(buf, (uint16_t)lo);
			l4_acc = xt_delta_words(l4_acc, old, buf, 2);
			memcpy(p, buf, 2);
			break;
		case XT_KIND_U8:	/* ip.ttl: the high byte of the TTL/protocol word */
			buf[0] = (uint8_t)lo;
			buf[1] = old[1];
			ip_acc = xt_delta_words(ip_acc, old, buf, 2);
			p[0] = buf[0];
			break;
		default:
			break;
		}
	}

	if (len != t->len && t->l3_off >= 0) {
		uint16_t grow = (uint16_t)(len - t->len);
		uint8_t *l3 = dst + t->l3_off;

		if (t->l3_version == 4) {
			uint16_t old = xt_get16(l3 + 2);

			xt_put16(l3 + 2, old + grow);
			ip_acc = xt_delta16(ip_acc, old, old + grow);
		} else if (t->l3_version == 6) {
			uint16_t old = xt_get16(l3 + 4);

			xt_put16(l3 + 4, old + grow);
		}
		if (t->l4_proto == 17 && t->l4_off >= 0) {
			uint16_t old = xt_get16(dst + t->l4_off + 4);

			xt_put16(dst + t->l4_off + 4, old + grow);
			/* the UDP length counts twice: in the header and the pseudo-header */
			l4_acc = xt_delta16(l4_acc, old, old + grow);
			l4_acc = xt_delta16(l4_acc, old, old + grow);
		} else if (t->l4_proto == 6) {
			l4_acc = xt_delta16(l4_acc, 0, grow);	/* pseudo-header length */
		}
	}

	xt_put16(stamp, XT_STAMP_MAGIC);
	xt_put16(stamp + 2, stream);
	xt_put32(stamp + 4, seq);
	xt_put32(stamp + 8, ts);
	xt_put32(stamp + 12, xt_stamp_check(stream, seq, ts, (uint32_t)((int64_t)len + t->check_len_delta),
					    t->pad_sum));
	l4_acc = xt_delta_words(l4_acc, t->data + t->stamp_off, stamp, XT_STAMP_SIZE);
	memcpy(dst + t->stamp_off, stamp, XT_STAMP_SIZE);

	if (t->l3_version == 4 && ip_acc)
		xt_csum_apply(dst + t->l3_off + 10, ip_acc, 0);
	if (has_l4 && !(t->l4_proto == 17 && t->l3_version == 4 && xt_get16(t->data + t->l4_csum_off) == 0))
		xt_csum_apply(dst + t->l4_csum_off, l4_acc, t->l4_proto == 17);
	return len;
}

static inline uint32_t xt_gen_frame(const struct xt_gen *g, const struct xt_gen_tmpl *t, uint8_t *dst,
				    uint64_t n, uint32_t seq, uint32_t ts)
{
	return xt_gen_frame_of(g, t, dst, n, (uint16_t)g->stream, seq, ts);
}

/* Where the stamp of a received frame is: L4 payload of UDP/TCP, else L3 payload; -1 if none. */
static inline int xt_find_stamp(const uint8_t *f, uint32_t len)
{
	uint32_t off = 12;
	uint16_t type;
	uint8_t proto;

	if (len < 14)
		return -1;
	type = xt_get16(f + off);
	off += 2;
	while ((type == 0x8100 || type == 0x88a8) && len >= off + 4) {
		type = xt_get16(f + off + 2);
		off += 4;
	}
	if (type == 0x0800 && len >= off + 20) {
		uint32_t ihl = (f[off] & 0x0f) * 4u;

		proto = f[off + 9];
		off += ihl;
	} else if (type == 0x86dd && len >= off + 40) {
		proto = f[off + 6];
		off += 40;
	} else {
		return len >= off + XT_STAMP_SIZE ? (int)off : -1;
	}
	if (proto == 17)
		off += 8;
	else if (proto == 6 && len >= off + 20)
		off += (f[off + 12] >> 4) * 4u;
	return len >= off + XT_STAMP_SIZE ? (int)off : -1;
}

#endif
