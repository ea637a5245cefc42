/*
 * "gen_live": the in-kernel traffic generator. Run with BPF_PROG_TEST_RUN in
 * live-frames mode (BPF_F_TEST_XDP_LIVE_FRAMES), it turns each repetition of
 * the input frame into a stamped frame and sends it out of the ingress device
 * with XDP_TX. The frames are the ones the C generator (cnative/stamp.h,
 * xt_gen_frame) builds for one template, byte for byte: the same --vary
 * values for frame number n, the same stamp (stream, seq = n, CLOCK_MONOTONIC
 * timestamp, check) and checksums kept right by incremental update.
 *
 * The kernel recycles live-frame pages without re-initialising their contents
 * (and the receiver may have written into them), so nothing is read from the
 * packet: each run first rewrites the template's first copy_len bytes, then
 * writes every varied field and the stamp, and computes the checksums from
 * constants prepared by the loader (xdptest/live.py):
 *   ip_base/l4_base = ~(template checksum) + sum of ~(template word) over
 *   every 16-bit word this program rewrites (RFC 1624, eqn. 3),
 * so that checksum = ~fold(base + sum of the new words).
 *
 * config[0] holds the template and variations; cpu_state (per CPU) holds the
 * stream id of the thread pinned there and the next frame number.
 *
 * Reading the clock costs more than the rest of the program (35 ns of 72 in a
 * guest here), so one reading stamps ts_every frames: the kernel sends a batch
 * of frames together when the batch ends, and the AF_XDP engine also stamps a
 * whole TX burst with one reading. Each kernel call starts with a new reading.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define XT_LIVE_TMPL_MAX 256	/* template bytes rewritten per frame, at most */
#define XT_LIVE_MAX_VARY 16
#define XT_LIVE_MAX_CPUS 1024
#define XT_STAMP_SIZE 16
#define XT_STAMP_MAGIC 0x5854

/* Variation kinds: the values of XT_KIND_* in cnative/xt_stamp.h. */
#define XT_KIND_MAC 0
#define XT_KIND_IPV4 1
#define XT_KIND_IPV6 2
#define XT_KIND_U16 3
#define XT_KIND_U8 4

/* Which checksums a variation feeds. */
#define XT_LIVE_IP 1
#define XT_LIVE_L4 2

struct xt_live_vary {
	__u64 lo;		/* first value (IPv6: low 64 bits) */
	__u64 lo_hi;		/* IPv6: high 64 bits of the first value */
	__u64 count;		/* values in the range (0 means 2**64) */
	__u32 kind;		/* XT_KIND_* */
	__u32 offset;		/* in the frame */
	__u32 random;		/* random order (splitmix64 of the frame number) */
	__u16 low_byte;		/* XT_KIND_U8: the other byte of its word (ip.ttl: protocol) */
	__u8 csums;		/* XT_LIVE_IP | XT_LIVE_L4 */
	__u8 pad;
};

struct xt_live_config {
	__u32 len;		/* frame length: the input frame's, checked per run */
	__u32 copy_len;		/* template bytes rewritten per run: 8 <= copy_len <= TMPL_MAX */
	__u32 stamp_off;	/* stamp_off + 16 <= copy_len */
	__u32 pad_sum;		/* ones'-complement sum of the template after the stamp */
	__s32 ip_csum_off;	/* -1: no IPv4 checksum to rewrite */
	__s32 l4_csum_off;	/* -1: no L4 checksum to rewrite */
	__u32 ip_base;
	__u32 l4_base;
	__u32 l4_udp;		/* a computed UDP checksum of zero is sent as 0xffff */
	__u32 nvary;
	__u32 ts_every;		/* frames stamped with one clock reading (the batch size) */
	__u32 pad;
	__u64 seed;
	struct xt_live_vary vary[XT_LIVE_MAX_VARY];
	__u64 tmpl[XT_LIVE_TMPL_MAX / 8];
};

struct xt_live_cpu {
	__u64 next;		/* frame number (and sequence number) of the next frame */
	__u64 frames;		/* frames generated on this CPU */
	__u64 bad_len;		/* runs whose input frame did not have config->len bytes */
	__u32 stream;
	__u32 ts;		/* the clock reading frames are stamped with */
	__u64 ts_call;		/* call_id[cpu] when ts was read */
	__u32 ts_left;		/* frames that may still use ts */
	__u32 pad;
};

/*
 * call_id[cpu]: written by the sending thread before each BPF_PROG_TEST_RUN call,
 * so that the first frame of a call reads the clock afresh.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XT_LIVE_MAX_CPUS);
	__type(key, __u32);
	__type(value, __u64);
} call_id SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xt_live_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xt_live_cpu);
} cpu_state SEC(".maps");

/* splitmix64, as xt_mix64 in cnative/stamp.h. */
static __always_inline __u64 xt_mix64(__u64 x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* As xt_stamp_check in cnative/stamp.h: what the receiver recomputes. */
static __always_inline __u32 xt_stamp_check(__u32 stream, __u32 seq, __u32 ts, __u32 len, __u32 pad_sum)
{
	__u32 h = seq * 0x9e3779b1u + ts;

	h ^= (stream << 16 | (len & 0xffff)) * 0x85ebca6bu;
	h = (h << 13 | h >> 19) * 5 + 0xe6546b64u;
	h ^= (pad_sum + XT_STAMP_MAGIC) * 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 xt_words32(__u32 v)
{
	return (v >> 16) + (v & 0xffff);
}

static __always_inline __u32 xt_words64(__u64 v)
{
	return xt_words32((__u32)(v >> 32)) + xt_words32((__u32)v);
}

static __always_inline __u16 xt_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)((sum & 0xffff) + (sum >> 16));
}

/*
 * Big-endian stores at even offsets, as 16/32-bit stores: packet access need not be aligned
 * (the verifier enforces alignment only with BPF_F_STRICT_ALIGNMENT).
 */
static __always_inline void xt_put16(__u8 *p, __u16 v)
{
	*(__u16 *)p = bpf_htons(v);
}

static __always_inline void xt_put32(__u8 *p, __u32 v)
{
	*(__u32 *)p = bpf_htonl(v);
}

static __always_inline void xt_put64(__u8 *p, __u64 v)
{
	xt_put32(p, v >> 32);
	xt_put32(p + 4, (__u32)v);
}

SEC("xdp")
int xt_gen_live(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct xt_live_config *cfg;
	struct xt_live_cpu *cpu;
	__u64 ip_acc = 0, l4_acc = 0, n;
	__u32 key = 0, cpu_id = bpf_get_smp_processor_id(), i, copy_len, words, seq, ts, check, off;
	__u64 *call;
	__u8 *p;

	cfg = bpf_map_lookup_elem(&config, &key);
	cpu = bpf_map_lookup_elem(&cpu_state, &key);
	call = bpf_map_lookup_elem(&call_id, &cpu_id);
	if (!cfg || !cpu || !call)
		return XDP_ABORTED;
	if (data + cfg->len != data_end) {
		cpu->bad_len++;
		return XDP_DROP;
	}

	/* The template, in 8-byte words; a last partial word is written over its neighbour. */
	copy_len = cfg->copy_len;
	if (copy_len < 8 || copy_len > XT_LIVE_TMPL_MAX)
		return XDP_ABORTED;
	words = copy_len / 8;
	for (i = 0; i < XT_LIVE_TMPL_MAX / 8; i++) {
		__u64 *w = data + i * 8;

		if (i >= words || (void *)(w + 1) > data_end)
			break;
		*w = cfg->tmpl[i];
	}
	if (copy_len & 7) {
		off = copy_len - 8;
		if (off > XT_LIVE_TMPL_MAX - 8)
			return XDP_ABORTED;
		p = data + off;
		if ((void *)(p + 8) > data_end)
			return XDP_ABORTED;
		__builtin_memcpy(p, (__u8 *)cfg->tmpl + off, 8);
	}

	n = cpu->next++;
	cpu->frames++;

	for (i = 0; i < XT_LIVE_MAX_VARY; i++) {
		struct xt_live_vary *v = &cfg->vary[i];
		__u64 k, lo, hi;
		__u32 sum = 0;

		if (i >= cfg->nvary)
			break;
		k = v->random ? xt_mix64(cfg->seed ^ xt_mix64(n * 64 + i)) : n;
		if (v->count == 1)
			k = 0;
		else if (v->count)
			k %= v->count;
		lo = v->lo + k;
		off = v->offset;
		if (off > XT_LIVE_TMPL_MAX - 16)
			continue;
		p = data + off;
		if ((void *)(p + 16) > data_end)
			continue;
		switch (v->kind) {
		case XT_KIND_MAC:
			xt_put16(p, (__u16)(lo >> 32));
			xt_put32(p + 2, (__u32)lo);
			break;
		case XT_KIND_IPV4:
			xt_put32(p, (__u32)lo);
			sum = xt_words32((__u32)lo);
			break;
		case XT_KIND_IPV6:
			hi = v->lo_hi + (lo < v->lo);	/* carry out of the low 64 bits */
			xt_put64(p, hi);
			xt_put64(p + 8, lo);
			sum = xt_words64(hi) + xt_words64(lo);
			break;
		case XT_KIND_U16:
			xt_put16(p, (__u16)lo);
			sum = (__u16)lo;
			break;
		case XT_KIND_U8:
			p[0] = (__u8)lo;
			sum = ((__u32)(__u8)lo << 8) | (v->low_byte & 0xff);
			break;
		default:
			continue;
		}
		if (v->csums & XT_LIVE_IP)
			ip_acc += sum;
		if (v->csums & XT_LIVE_L4)
			l4_acc += sum;
	}

	seq = (__u32)n;
	if (!cpu->ts_left || cpu->ts_call != *call) {
		cpu->ts = (__u32)bpf_ktime_get_ns();
		cpu->ts_call = *call;
		cpu->ts_left = cfg->ts_every;
	}
	if (cpu->ts_left)
		cpu->ts_left--;
	ts = cpu->ts;
	check = xt_stamp_check(cpu->stream & 0xffff, seq, ts, cfg->len, cfg->pad_sum);
	off = cfg->stamp_off;
	if (off > XT_LIVE_TMPL_MAX - XT_STAMP_SIZE)
		return XDP_ABORTED;
	p = data + off;
	if ((void *)(p + XT_STAMP_SIZE) > data_end)
		return XDP_ABORTED;
	xt_put16(p, XT_STAMP_MAGIC);
	xt_put16(p + 2, (__u16)cpu->stream);
	xt_put32(p + 4, seq);
	xt_put32(p + 8, ts);
	xt_put32(p + 12, check);
	l4_acc += XT_STAMP_MAGIC + (cpu->stream & 0xffff) + xt_words32(seq) + xt_words32(ts) + xt_words32(check);

	if (cfg->ip_csum_off >= 0) {
		off = cfg->ip_csum_off;
		if (off > XT_LIVE_TMPL_MAX - 2)
			return XDP_ABORTED;
		p = data + off;
		if ((void *)(p + 2) > data_end)
			return XDP_ABORTED;
		xt_put16(p, (__u16)~xt_fold(cfg->ip_base + ip_acc));
	}
	if (cfg->l4_csum_off >= 0) {
		__u16 csum;

		off = cfg->l4_csum_off;
		if (off > XT_LIVE_TMPL_MAX - 2)
			return XDP_ABORTED;
		p = data + off;
		if ((void *)(p + 2) > data_end)
			return XDP_ABORTED;
		csum = (__u16)~xt_fold(cfg->l4_base + l4_acc);
		if (cfg->l4_udp && csum == 0)
			csum = 0xffff;
		xt_put16(p, csum);
	}
	return XDP_TX;
}

char LICENSE[] SEC("license") = "GPL";
