/*
 * AF_XDP engine: UMEM, sockets, rings and the batched TX/RX loops. Read by
 * cffi's cdef, so declarations only. Functions return 0 (or a count) on
 * success and a negative errno on failure.
 */
#define XT_XSK_ABI 5

#define XT_UMEM_UNALIGNED 1
#define XT_UMEM_HUGEPAGES 2

#define XT_BIND_SHARED_UMEM 1
#define XT_BIND_COPY 2
#define XT_BIND_ZEROCOPY 4
#define XT_BIND_NEED_WAKEUP 8
#define XT_BIND_SG 16		/* XDP_USE_SG: a frame may span several descriptors (Linux 6.6+) */

/* The longest frame the RX path reassembles from several descriptors, and TX splits. */
#define XT_MAX_FRAME 65536

#define XT_RING_FILL 0
#define XT_RING_RX 1
#define XT_RING_TX 2
#define XT_RING_COMP 3

#define XT_LOOP_VERIFY 1
#define XT_LOOP_COPY_OUT 2
#define XT_LOOP_BUSY_SPIN 4
#define XT_LOOP_TX_PCAPNG 8

struct xt_umem;
struct xt_xsk;
struct xt_gen;		/* xt_stamp.h: the stamping frame generator */
struct xt_verifier;	/* xt_stamp.h: the stamp verifier */

struct xt_umem_info {
	unsigned long long size;	/* registered length: frames * frame_size */
	unsigned long long map_size;	/* mmap()ed length (page or hugepage multiple) */
	unsigned int frame_size;
	unsigned int frames;
	unsigned int headroom;
	unsigned int flags;		/* XT_UMEM_* actually in effect */
	unsigned int free_frames;	/* frames the allocator holds */
	int fd;				/* registering socket, -1 when unregistered */
	int sockets;			/* sockets using this UMEM */
};

struct xt_xsk_config {
	int fd;			/* AF_XDP socket made by the caller (in the device's netns); owned from now on */
	unsigned int ifindex;
	unsigned int queue;
	unsigned int rx_size;	/* 0: no RX ring */
	unsigned int tx_size;	/* 0: no TX ring */
	unsigned int fill_size;
	unsigned int comp_size;
};

struct xt_desc {
	unsigned long long addr;
	unsigned int len;
	unsigned int options;
};

struct xt_ring_state {
	unsigned int producer;		/* the shared indices as the kernel sees them */
	unsigned int consumer;
	unsigned int cached_prod;	/* our cached copies */
	unsigned int cached_cons;
	unsigned int size;		/* 0: the ring does not exist */
	unsigned int flags;		/* XDP_RING_NEED_WAKEUP (1) ... */
};

struct xt_xdp_stats {
	unsigned long long rx_dropped;
	unsigned long long rx_invalid_descs;
	unsigned long long tx_invalid_descs;
	unsigned long long rx_ring_full;
	unsigned long long rx_fill_ring_empty_descs;
	unsigned long long tx_ring_empty_descs;
	unsigned int nfields;		/* how many of the above the kernel filled */
};

/* Counters the C side keeps per socket (never reset; callers take differences). */
struct xt_xsk_counters {
	unsigned long long tx_frames;
	unsigned long long tx_bytes;
	unsigned long long tx_kicks;
	unsigned long long tx_kick_errors;
	unsigned long long completed;
	unsigned long long rx_frames;
	unsigned long long rx_bytes;
	unsigned long long rx_kicks;
	unsigned long long bad_rx_descs;	/* RX descriptors outside the UMEM (counted, not read) */
	unsigned long long bad_comp_addrs;	/* completion addresses outside the UMEM */
	unsigned long long foreign_comp_addrs;	/* inside, but not a frame we sent (raw TX) */
	unsigned long long fill_shortfall;	/* RX frames that could not go back to the fill ring */
};

/* The batched loops: templates are concatenated in tmpl, lengths in tmpl_lens. */
struct xt_loop_cfg {
	const unsigned char *tmpl;
	const unsigned int *tmpl_lens;
	unsigned int tmpl_stride;	/* template i starts at tmpl + i * tmpl_stride */
	unsigned int ntmpl;
	unsigned int batch;
	unsigned long long count;	/* stop after this many frames (0: no limit) */
	unsigned long long duration_ns;	/* stop after this long (0: no limit) */
	unsigned long long idle_ns;	/* RX: stop after this long without a frame (0: no limit) */
	int poll_ms;			/* RX wait when idle: poll() for this long */
	unsigned int flags;		/* XT_LOOP_* */
	unsigned char *out;		/* XT_LOOP_COPY_OUT: frames copied here back to back */
	unsigned long long out_cap;
	unsigned int *out_lens;
	unsigned long long *out_ts;	/* RX copy-out: each frame's CLOCK_REALTIME (ns), or NULL */
	unsigned int out_max;
	/* TX: build frames with this generator (frame number and sequence = next_tmpl) instead
	 * of copying templates; gen_max_len bounds what it builds (checked against the frame). */
	const struct xt_gen *gen;
	unsigned int gen_max_len;
	/* RX: feed every valid frame to this verifier (stamps, sequences, latency). */
	struct xt_verifier *verifier;
	/* TX: packets per second (0: as fast as possible); a token bucket, batch-granular. */
	double rate_pps;
	/* TX closed loop: keep at most window frames sent but not yet counted at *peer_frames
	 * (the receiver's loop counter). After window_wait_ns without progress, and with the
	 * receiver's RX ring empty (peer_rx_prod == peer_rx_cons: nothing queued for it), the frames
	 * still out are given up as lost, so frames the kernel dropped cannot stall the sender; a
	 * receiver whose ring holds frames is only late, and is waited for. window 0: open loop. */
	const unsigned long long *peer_frames;
	const unsigned int *peer_rx_prod;	/* NULL: no ring to look at, give up on time alone */
	const unsigned int *peer_rx_cons;
	unsigned long long window;
	unsigned long long window_wait_ns;
	/* TX capture (XT_LOOP_TX_PCAPNG): every frame sent is appended to out as a pcapng Enhanced
	 * Packet Block on interface pcap_if (CLOCK_REALTIME, ns) whose comment holds its TX
	 * descriptor. The loop returns when out cannot hold another frame: the caller writes
	 * out_used bytes away and sets it to 0. */
	unsigned int pcap_if;
	/* TX timed replay: frame k is due sched_ns[k % sched_n] + (k / sched_n) * sched_period_ns
	 * after the first frame went; the error of each gap between consecutive frames (actual
	 * against scheduled, ns) is counted in gap_hist (XT_HIST_BUCKETS buckets, the latency
	 * histogram's). sched_n 0: no schedule. */
	const unsigned long long *sched_ns;
	unsigned int sched_n;
	unsigned long long sched_period_ns;
	unsigned long long *gap_hist;
};

struct xt_loop_stats {
	unsigned long long frames;	/* sent (TX) or received (RX) by the loop */
	unsigned long long bytes;
	unsigned long long verified;	/* RX frames equal to the expected template */
	unsigned long long mismatched;	/* RX frames equal to no template */
	unsigned long long resyncs;	/* RX frames equal to another template than expected (gaps) */
	unsigned long long bad_descs;	/* RX descriptors outside the UMEM (skipped) */
	unsigned long long out_used;	/* bytes written to out */
	unsigned long long out_frames;
	unsigned long long elapsed_ns;
	unsigned long long next_tmpl;	/* rotation position, carried across calls */
	unsigned long long rate_start_ns;	/* TX pacing: when the rate was first applied */
	unsigned long long rate_base;		/* TX pacing: frames sent before that */
	unsigned long long sched_start_ns;	/* timed replay: when frame 0 went (0: not yet) */
	unsigned long long sched_last_ns;	/* timed replay: when the previous frame went */
	unsigned long long sched_submit_ns;	/* timed replay: when the last burst was handed over */
	unsigned long long gap_samples;		/* timed replay: gaps measured */
	unsigned long long gap_err_max_ns;
	unsigned long long gap_err_sum_ns;
	unsigned long long window_lost;		/* closed loop: frames given up on (no receiver progress) */
	unsigned long long window_seen;		/* closed loop: the receiver's count when the wait began */
	unsigned long long window_since_ns;	/* closed loop: when it began (0: not waiting); kept
						   across calls, which are shorter than the wait */
};

int xt_xsk_abi(void);
/* The RX ring's shared producer and consumer words, for a closed-loop sender to watch. */
void xt_xsk_rx_ring_words(struct xt_xsk *xsk, const unsigned int **prod, const unsigned int **cons);

int xt_umem_create(unsigned int frame_size, unsigned int frames, unsigned int headroom,
		   unsigned int flags, struct xt_umem **out);
int xt_umem_destroy(struct xt_umem *umem);
void xt_umem_info(const struct xt_umem *umem, struct xt_umem_info *info);
unsigned char *xt_umem_area(const struct xt_umem *umem);
int xt_umem_write(struct xt_umem *umem, unsigned long long offset, const void *data,
		  unsigned int len);
int xt_umem_read(const struct xt_umem *umem, unsigned long long offset, void *data,
		 unsigned int len);

int xt_xsk_open(struct xt_umem *umem, const struct xt_xsk_config *cfg, struct xt_xsk **out);
int xt_xsk_bind(struct xt_xsk *xsk, unsigned int flags);
int xt_xsk_populate_fill(struct xt_xsk *xsk, int frames);
int xt_xsk_close(struct xt_xsk *xsk);
int xt_xsk_fd(const struct xt_xsk *xsk);
int xt_xsk_is_zerocopy(const struct xt_xsk *xsk);
int xt_xsk_statistics(const struct xt_xsk *xsk, struct xt_xdp_stats *stats);
void xt_xsk_ring_state(const struct xt_xsk *xsk, int which, struct xt_ring_state *state);
void xt_xsk_counters(const struct xt_xsk *xsk, struct xt_xsk_counters *counters);
int xt_xsk_set_busy_poll(struct xt_xsk *xsk, int usecs, int budget, int prefer);
int xt_xsk_poll(struct xt_xsk *xsk, short events, int timeout_ms);

int xt_xsk_kick_tx(struct xt_xsk *xsk);
int xt_xsk_kick_rx(struct xt_xsk *xsk);
int xt_xsk_complete(struct xt_xsk *xsk, unsigned int max);
int xt_xsk_send(struct xt_xsk *xsk, const unsigned char *data, const unsigned int *lens,
		unsigned int n);
int xt_xsk_send_raw(struct xt_xsk *xsk, const struct xt_desc *descs, unsigned int n, int kick);
/* meta_len > 0: also copy the meta_len bytes of XDP metadata in front of each frame to meta. */
int xt_xsk_recv(struct xt_xsk *xsk, unsigned int max, unsigned char *buf,
		unsigned long long cap, unsigned int *lens, unsigned long long *addrs,
		unsigned char *meta, unsigned int meta_len, int timeout_ms);

int xt_tx_burst(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st);
int xt_rx_burst(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st);
int xt_tx_loop(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st);
int xt_rx_loop(struct xt_xsk *xsk, const struct xt_loop_cfg *cfg, struct xt_loop_stats *st);

/* Test hook: forge one descriptor in the RX (which = XT_RING_RX) or completion ring as if the
 * kernel had produced it, to prove bad descriptors are counted and skipped. Leaves the ring
 * out of step with the kernel: close the socket afterwards. */
int xt_xsk_test_forge(struct xt_xsk *xsk, int which, unsigned long long addr, unsigned int len);

/* In-kernel frame source for RX benchmarks: BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES
 * runs prog_fd (e.g. one returning XDP_TX) 'repeat' times on 'data' as if it arrived on ifindex
 * (in the calling thread's namespace), so its XDP_TX/REDIRECT frames really leave. Blocks. */
int xt_live_frames(int prog_fd, const void *data, unsigned int len, unsigned int ifindex,
		   unsigned int repeat, unsigned int batch);
