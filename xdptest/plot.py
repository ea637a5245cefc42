"""A traffic report drawn for people (``xdptest-gen --plot FILE``): the latency histogram and its
percentile curve (HDR style, log axes), the rate and the missing frames over time (``--interval``
rows), and the run's configuration and result as the caption.

``.png`` and ``.svg`` are matplotlib's own output; ``.html`` is one self-contained page (the SVG
inline, the summary table and the configuration beside it) that any browser opens offline.
matplotlib is an optional extra (``pip install 'xdptest[plot]'``), imported only here.
"""

from __future__ import annotations

import html
import io
import json
from pathlib import Path
from typing import Any

from xdptest.errors import ConfigError
from xdptest.report import TrafficReport

FORMATS = (".html", ".png", ".svg")
INSTALL_HINT = "pip install 'xdptest[plot]' (matplotlib)"


def check_plot_path(path: str) -> None:
    """Refuse, before any traffic, a format the kit cannot draw or a missing matplotlib."""
    if Path(path).suffix.lower() not in FORMATS:
        raise ConfigError(f"--plot {path}: the name must end in {', '.join(FORMATS)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ConfigError(f"--plot needs matplotlib: {INSTALL_HINT}") from None


def caption(report: TrafficReport) -> str:
    """The run's configuration and result in two lines."""
    c, env = report.config, report.environment
    rate = f"{c['rate']:,.0f} pps" if c.get("rate") else "as fast as possible"
    how = (f"{report.engine} engine, {report.queues} queue(s), {report.packet_size}-byte frames, "
           f"rate {rate}, window {c.get('window')}, {report.bind_mode} mode, "
           f"need_wakeup {'on' if report.need_wakeup else 'off'}, busy poll {c.get('busy_poll') or 'off'}, "
           f"attach {c.get('attach_mode')}; kernel {report.kernel}, libbpf {env.get('libbpf', '?')}, "
           f"xdptest {report.xdptest_version}")
    result = (f"sent {report.sent}, received {report.received}, lost {report.lost}, corrupted {report.corrupted}, "
              f"{report.tx_pps / 1e6:.3f} Mpps sent, p50 {report.latency_ns['p50'] / 1000:.1f} us, "
              f"p99 {report.latency_ns['p99'] / 1000:.1f} us, max {report.latency_ns['max'] / 1000:.1f} us")
    return f"{how}\n{result}"


def _figure(report: TrafficReport, title: bool) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ((hist, hdr), (rate, miss)) = plt.subplots(2, 2, figsize=(13, 8.5), layout="constrained")
    buckets = report.latency_histogram
    if buckets:
        edges = [b[0] for b in buckets]
        widths = [max(1.0, (b[0] >> 6)) for b in buckets]  # a bucket spans 1/64 of its power of two
        hist.bar([e / 1000 for e in edges], [b[1] for b in buckets], width=[w / 1000 for w in widths],
                 align="edge", color="#3b6ea5")
        hist.set_xscale("log")
        hist.set_yscale("log")
        for key, color in (("p50", "#2a9d8f"), ("p99", "#e9c46a"), ("p999", "#e76f51")):
            value = report.latency_ns[key] / 1000
            hist.axvline(value, color=color, linestyle="--", label=f"{key} {value:.1f} us")
        hist.legend(loc="upper right")
        total = sum(b[1] for b in buckets)
        seen, xs, ys = 0, [], []
        for value, count in buckets:  # the percentile of each bucket's upper end
            seen += count
            share = seen / total
            if share < 1:
                xs.append(1 / (1 - share))
                ys.append(value / 1000)
        hdr.plot(xs, ys, color="#3b6ea5", marker=".")
        hdr.set_xscale("log")
        hdr.set_yscale("log")
        ticks = [q for q in (2, 10, 100, 1000, 10_000, 100_000) if not xs or q <= max(xs) * 10]
        hdr.set_xticks(ticks, [f"{100 * (1 - 1 / q):g}%" for q in ticks])
    else:
        for ax in (hist, hdr):
            ax.text(0.5, 0.5, "no latency (no stamped frame arrived)", ha="center", va="center")
    hist.set(title="latency histogram", xlabel="latency (us, log)", ylabel="frames (log)")
    hdr.set(title="latency by percentile (HDR)", xlabel="percentile", ylabel="latency (us, log)")
    rows = report.intervals
    if rows:
        ends = [r["end_s"] for r in rows]
        rate.plot(ends, [r["tx_pps"] / 1e6 for r in rows], marker="o", label="sent", color="#3b6ea5")
        rate.plot(ends, [r["rx_pps"] / 1e6 for r in rows], marker="x", label="received", color="#2a9d8f")
        rate.legend()
        width = (rows[0]["end_s"] - rows[0]["start_s"]) * 0.8  # a full interval (the last may be short)
        miss.bar(ends, [r["missing"] for r in rows], width=width, color="#e76f51", label="missing (in flight or lost)")
        miss.bar(ends, [r["corrupted"] for r in rows], width=width / 2, color="#264653", label="corrupted")
        miss.legend()
    else:
        for ax in (rate, miss):
            ax.text(0.5, 0.5, "run with --interval S for the timeline", ha="center", va="center")
    rate.set(title="rate over time", xlabel="time (s)", ylabel="Mpps")
    if rows:
        rate.set_ylim(0, max(max(r["tx_pps"], r["rx_pps"]) for r in rows) / 1e6 * 1.15 or 1)
    miss.set(title="missing and corrupted frames over time", xlabel="time (s)", ylabel="frames")
    if title:  # an HTML page has the caption under the figure instead
        fig.suptitle(caption(report), fontsize=9)
    return fig


def write_plot(report: TrafficReport, path: str) -> None:
    """Draw ``report`` to ``path`` (.html, .png or .svg)."""
    check_plot_path(path)
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lower()
    fig = _figure(report, title=suffix != ".html")
    try:
        if suffix != ".html":
            fig.savefig(path, dpi=110)
            return
        svg = io.StringIO()
        fig.savefig(svg, format="svg")
    finally:
        plt.close(fig)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>xdptest: {html.escape(report.kernel)}</title>
<style>body{{font-family:sans-serif;margin:1.5em;color:#222}} pre{{background:#f4f4f4;padding:1em}}
figure{{margin:0}} figcaption{{font-size:0.9em;white-space:pre-line}}</style></head>
<body><h1>xdptest traffic run</h1>
<figure>{svg.getvalue()[svg.getvalue().index("<svg"):]}
<figcaption>{html.escape(caption(report))}</figcaption></figure>
<h2>Summary</h2><pre>{html.escape(report.summary())}</pre>
<h2>Configuration</h2><pre>{html.escape(json.dumps({"config": report.config, "environment": report.environment},
                                                     indent=1, default=str))}</pre>
</body></html>
"""
    Path(path).write_text(page)
