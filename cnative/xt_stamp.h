/*
 * Traffic generation and verification: templates with field variation and the
 * payload stamp (sender), stamp checks, sequence accounting and the latency
 * histogram (receiver). Read by cffi's cdef: declarations only.
 */
#define XT_STAMP_ABI 3

#define XT_KIND_MAC 0
#define XT_KIND_IPV4 1
#define XT_KIND_IPV6 2
#define XT_KIND_U16 3
#define XT_KIND_U8 4
#define XT_KIND_SIZE 5

#define XT_MAX_VARY 16
#define XT_MAX_STREAMS 256
#define XT_HIST_BUCKETS 2048
#define XT_SEQ_WINDOW_BITS 20

/* Where a corrupted frame differs from the frame expected (bits of xt_bad_frame.classes). */
#define XT_DIFF_L2 1		/* before the L3 header */
#define XT_DIFF_L3 2		/* the IPv4/IPv6 header */
#define XT_DIFF_L4 4		/* the UDP/TCP header */
#define XT_DIFF_PAYLOAD 8	/* the stamp and what follows it */
#define XT_DIFF_LENGTH 16	/* a frame longer or shorter than expected */
#define XT_DIFF_STAMP 32	/* a stamp whose check fails (no expected frame to compare with) */
#define XT_DIFF_CLASSES 6

struct xt_vary {
	int kind;			/* XT_KIND_* (its offset is the template's: vary_off) */
	unsigned long long lo;		/* first value (IPv6: low 64 bits) */
	unsigned long long lo_hi;	/* IPv6: high 64 bits of the first value */
	unsigned long long count;	/* values in the range (0 means 2**64) */
	int random;
};

struct xt_gen_tmpl {
	const unsigned char *data;	/* template, zero-padded to the largest frame it may give */
	unsigned int len;		/* its own length */
	int stamp_off;
	int l3_off;			/* -1: none */
	int l3_version;			/* 4, 6, 0 */
	int l4_off;			/* -1: none */
	int l4_proto;			/* 17, 6, 0 */
	int l4_csum_off;		/* -1: no L4 checksum to keep */
	unsigned int pad_sum;		/* xt_sum16 of the template after the stamp */
	/* An expected frame (the receiver's side): how much longer the sent frame is than this
	 * one; the stamp's check covers the sent length. 0 for frames that are sent. */
	int check_len_delta;
	int vary_off[16];		/* where variation i lies in this template (-1 for size) */
};

struct xt_gen {
	const struct xt_gen_tmpl *tmpl;
	unsigned int ntmpl;
	struct xt_vary vary[16];
	unsigned int nvary;
	unsigned int stream;
	unsigned long long seed;
};

/* Receiver side. */
struct xt_verifier;

struct xt_stream_result {
	unsigned long long received;	/* frames with a valid stamp, duplicates included */
	unsigned long long unique;	/* distinct sequence numbers */
	unsigned long long duplicated;
	unsigned long long reordered;	/* arrived after a later sequence number */
	unsigned long long late;	/* too late to check for duplication (beyond the window) */
	unsigned long long highest;	/* highest sequence number seen + 1 */
};

struct xt_verify_totals {
	unsigned long long frames;	/* every frame fed */
	unsigned long long bytes;
	unsigned long long stamped;	/* with a valid stamp */
	unsigned long long corrupted;	/* magic present, but not the frame expected */
	unsigned long long corrupted_by[6];	/* per class: bit i of XT_DIFF_* (a frame may count in several) */
	unsigned long long foreign;	/* not ours (no stamp: ARP, ND, ...) */
	unsigned long long latency_min;
	unsigned long long latency_max;
	unsigned long long latency_sum;
	unsigned long long latency_samples;
	unsigned long long first_ns;	/* CLOCK_MONOTONIC of the first and last stamped frame */
	unsigned long long last_ns;
};

/* A corrupted frame kept for the report: both frames' bytes (up to the bytes kept). */
struct xt_bad_frame {
	unsigned int stream;
	unsigned long long seq;		/* extended sequence number (the stamp's, if readable) */
	unsigned int classes;		/* XT_DIFF_* */
	unsigned int len;		/* the frame's length as received */
	unsigned int expected_len;	/* 0: no expected frame (stamp unreadable) */
	const unsigned char *actual;	/* the first min(len, bytes kept) bytes */
	const unsigned char *expected;
};

int xt_stamp_abi(void);
unsigned long long xt_monotonic_ns(void);

/* Build n frames (numbers first..first+n-1) back to back into out (stride bytes apart). */
int xt_gen_build(const struct xt_gen *g, unsigned long long first, unsigned int n, unsigned int seq0,
		 unsigned int ts, unsigned char *out, unsigned int stride, unsigned int *lens);

struct xt_verifier *xt_verifier_new(void);
void xt_verifier_free(struct xt_verifier *v);
void xt_verifier_reset(struct xt_verifier *v);
/* Check n frames laid out stride bytes apart; now_ns 0 means read the clock once. */
void xt_verifier_feed(struct xt_verifier *v, const unsigned char *frames, unsigned int stride,
		      const unsigned int *lens, unsigned int n, unsigned long long now_ns);
void xt_verifier_totals(const struct xt_verifier *v, struct xt_verify_totals *out);
int xt_verifier_stream(const struct xt_verifier *v, unsigned int stream, struct xt_stream_result *out);
void xt_verifier_histogram(const struct xt_verifier *v, unsigned long long *buckets);
void xt_verifier_merge(struct xt_verifier *into, const struct xt_verifier *from);
/*
 * Whole-frame checks: every stamped frame is compared byte for byte with the frame g builds
 * for its stream and sequence number (g's templates being the frames the receiver must see).
 * g must outlive the verifier's use; max_len: the longest frame g builds. 0 or -ENOMEM.
 */
int xt_verifier_expect(struct xt_verifier *v, const struct xt_gen *g, unsigned int max_len);
/* Keep the first `frames` corrupted frames, up to `bytes` of each frame. 0 or -ENOMEM. */
int xt_verifier_keep_bad(struct xt_verifier *v, unsigned int frames, unsigned int bytes);
unsigned int xt_verifier_bad_count(const struct xt_verifier *v);
/*
 * Verbatim frames: the frames sent in order, unstamped (only data and len are read; the
 * offsets classify corruption). Received frames are then matched by content; the per-stream
 * counts (stream 0) are complete once xt_verifier_frames_sent says how many were sent.
 */
int xt_verifier_expect_frames(struct xt_verifier *v, const struct xt_gen_tmpl *frames, unsigned int n);
void xt_verifier_frames_sent(struct xt_verifier *v, unsigned long long sent);
/* Verbatim frames that did not all arrive: up to max of them, in content order, as the index of
 * the first frame with that content and how many of its copies are missing. Returns how many. */
unsigned int xt_verifier_missing(const struct xt_verifier *v, unsigned long long sent, unsigned int *frames,
				 unsigned long long *missing, unsigned int max);
int xt_verifier_bad(const struct xt_verifier *v, unsigned int i, struct xt_bad_frame *out);
unsigned long long xt_hist_bucket_value(unsigned int index);
unsigned int xt_hist_index(unsigned long long value);
