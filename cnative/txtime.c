// SPDX-License-Identifier: MIT
/*
 * Extras of the batched TX loop in txrx.c: waiting for a due time (paced and timed sends),
 * timed replay (frames leave at the gaps of a schedule, usually a capture's, and the error of
 * every gap is counted) and TX capture (every frame sent is appended to a buffer as a pcapng
 * Enhanced Packet Block whose comment holds the TX descriptor, so what an AF_XDP socket
 * transmitted can be read in tcpdump or Wireshark).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>

#include "xsk_int.h"
#include "xt_stamp.h"

#define XT_EPB_TYPE 6u
#define XT_EPB_FIXED 28u	/* type, length, interface, ts high, ts low, caplen, len */
#define XT_EPB_COMMENT_MAX 96u	/* our comment, padded */
#define XT_EPB_TAIL 12u		/* end-of-options and the trailing length, plus the comment header */
#define XT_OPT_COMMENT 1u
#define XT_SCHED_SPIN_NS 200000ull	/* timed replay spins this long before a frame is due */

static inline uint64_t xt_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t xt_pad4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

/* ---- waiting (paced and timed TX) ------------------------------------------------------ */

static void xt_sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

void xt_timer_slack_tight(void)
{
	/* The default timer slack (50 us) lets nanosleep wake that late: ask for 1 us. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
}

uint64_t xt_wait_until(uint64_t due_ns, uint64_t spin_ns)
{
	uint64_t now = xt_clock_ns(CLOCK_MONOTONIC);

	/* Sleep to spin_ns before due_ns, then spin: a wake-up can come tens of microseconds late
	 * (more in a guest), which spinning the last stretch absorbs. */
	if (due_ns > now + spin_ns + 30000)
		xt_sleep_ns(due_ns - now - spin_ns);
	while ((now = xt_clock_ns(CLOCK_MONOTONIC)) < due_ns)
		;
	return now;
}

/* ---- timed replay --------------------------------------------------------------------- */

static inline uint64_t xt_sched_due(const struct xt_loop_cfg *cfg, uint64_t k)
{
	return cfg->sched_ns[k % cfg->sched_n] + (k / cfg->sched_n) * cfg->sched_period_ns;
}

/*
 * Timed replay: how many frames may go now. Waits until the next frame is due (sleeping, then
 * spinning the last XT_SCHED_SPIN_NS), then allows it and every later one already due, up to
 * batch. Returns 0 when the next frame is not due before end_ns (0: no end), having waited
 * until then.
 */
unsigned int xt_sched_allowance(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
				unsigned int batch, uint64_t end_ns)
{
	uint64_t k = st->frames, now = xt_clock_ns(CLOCK_MONOTONIC), due;
	unsigned int n;

	if (!st->sched_start_ns) {
		xt_timer_slack_tight();
		st->sched_start_ns = now - xt_sched_due(cfg, k);
	}
	due = st->sched_start_ns + xt_sched_due(cfg, k);
	if (end_ns && due > end_ns) {
		/* Not due within this call: wait out the call and let the caller look around. */
		if (end_ns > now)
			xt_sleep_ns(end_ns - now);
		return 0;
	}
	now = xt_wait_until(due, XT_SCHED_SPIN_NS);
	for (n = 1; n < batch && st->sched_start_ns + xt_sched_due(cfg, k + n) <= now; n++)
		;
	return n;
}

void xt_sched_account(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st, uint64_t first,
		      unsigned int n, uint64_t now)
{
	uint64_t k;

	for (k = first; k < first + n; k++) {
		if (k > 0 && st->sched_last_ns) {
			int64_t actual = (int64_t)(now - st->sched_last_ns);
			int64_t want = (int64_t)(xt_sched_due(cfg, k) - xt_sched_due(cfg, k - 1));
			uint64_t err = (uint64_t)(actual > want ? actual - want : want - actual);

			if (cfg->gap_hist)
				cfg->gap_hist[xt_hist_index(err)]++;
			st->gap_samples++;
			st->gap_err_sum_ns += err;
			if (err > st->gap_err_max_ns)
				st->gap_err_max_ns = err;
		}
		st->sched_last_ns = now;
	}
}

/* ---- TX capture ------------------------------------------------------------------------ */

unsigned int xt_pcapng_room(const struct xt_loop_cfg *cfg, const struct xt_loop_stats *st,
			    unsigned int max_len)
{
	uint64_t per = XT_EPB_FIXED + xt_pad4(max_len) + XT_EPB_COMMENT_MAX + XT_EPB_TAIL;
	uint64_t left = cfg->out_cap > st->out_used ? cfg->out_cap - st->out_used : 0;

	return left / per > UINT32_MAX ? UINT32_MAX : (unsigned int)(left / per);
}

static inline void xt_put_u32(unsigned char **p, uint32_t v)
{
	memcpy(*p, &v, 4);	/* host order, as the section header's byte-order magic says */
	*p += 4;
}

void xt_pcapng_append(const struct xt_loop_cfg *cfg, struct xt_loop_stats *st,
		      const unsigned char *frame, unsigned int len, uint64_t addr,
		      unsigned int options, uint64_t realtime_ns)
{
	char comment[XT_EPB_COMMENT_MAX];
	unsigned char *start = cfg->out + st->out_used, *p = start;
	uint32_t clen, total;
	int w;

	w = snprintf(comment, sizeof(comment), "AF_XDP TX desc addr=0x%llx len=%u options=0x%x",
		     (unsigned long long)addr, len, options);
	clen = w < 0 ? 0 : (uint32_t)w >= sizeof(comment) ? (uint32_t)sizeof(comment) - 1 : (uint32_t)w;
	total = XT_EPB_FIXED + xt_pad4(len) + 4 + xt_pad4(clen) + 4 + 4;
	xt_put_u32(&p, XT_EPB_TYPE);
	xt_put_u32(&p, total);
	xt_put_u32(&p, cfg->pcap_if);
	xt_put_u32(&p, (uint32_t)(realtime_ns >> 32));
	xt_put_u32(&p, (uint32_t)realtime_ns);
	xt_put_u32(&p, len);
	xt_put_u32(&p, len);
	memcpy(p, frame, len);
	memset(p + len, 0, xt_pad4(len) - len);
	p += xt_pad4(len);
	xt_put_u32(&p, XT_OPT_COMMENT | (clen << 16));	/* option code, then length (host order) */
	memcpy(p, comment, clen);
	memset(p + clen, 0, xt_pad4(clen) - clen);
	p += xt_pad4(clen);
	xt_put_u32(&p, 0);	/* opt_endofopt */
	xt_put_u32(&p, total);
	st->out_used += (uint64_t)(p - start);
	st->out_frames++;
}

uint64_t xt_realtime_ns(void)
{
	return xt_clock_ns(CLOCK_REALTIME);
}
