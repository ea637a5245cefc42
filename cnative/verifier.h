/* SPDX-License-Identifier: MIT */
/*
 * The verifier's state, shared by its two modes: stamped frames (stamp.c) and
 * verbatim frames matched by content (verbatim.c). Private: not read by cdef.
 */
#ifndef XDPTEST_VERIFIER_H
#define XDPTEST_VERIFIER_H

#include "stamp.h"

struct xt_stream_state {
	struct xt_stream_result r;
	uint64_t *seen;		/* bitmap of the last 2**XT_SEQ_WINDOW_BITS sequence numbers */
};

struct xt_content;

struct xt_verifier {
	struct xt_verify_totals t;
	uint64_t hist[XT_HIST_BUCKETS];
	struct xt_stream_state streams[XT_MAX_STREAMS];
	const struct xt_gen *expect;	/* builds the frame expected for a stamp, or NULL */
	uint8_t *scratch;		/* room for the longest frame expect builds */
	unsigned int keep_max, keep_bytes, nkept;
	uint8_t *kept;			/* keep_max slots of 2 * keep_bytes: actual, then expected */
	struct xt_bad_frame *bad;
	struct xt_content *content;	/* verbatim frames expected, or NULL */
};

/* Count a corrupted frame in its classes and keep it (with e, the frame expected, if any). */
void xt_count_bad(struct xt_verifier *v, unsigned int classes, uint16_t stream, uint64_t seq,
		  const uint8_t *f, uint32_t len, const uint8_t *e, uint32_t elen);
/* Which parts of f differ from e, laid out as template t (XT_DIFF_* bits). */
unsigned int xt_diff_classes(const struct xt_gen_tmpl *t, const uint8_t *f, uint32_t len,
			     const uint8_t *e, uint32_t elen);

void xt_content_feed(struct xt_verifier *v, const uint8_t *f, uint32_t len, uint64_t now);
void xt_content_reset(struct xt_content *c);
void xt_content_free(struct xt_content *c);

#endif
