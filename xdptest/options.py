"""``TrafficOptions``: every knob of a traffic run, validated once for the CLI, Python and pytest."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args, get_origin, get_type_hints

from xdptest.errors import ConfigError, RingSizeError
from xdptest.limits import MAX_FRAME, check_frame_size, check_headroom, max_frame_len

BindModeOption = Literal["auto", "copy", "zerocopy"]
# Closed loop by default: the sender stays at most this many frames ahead of the verifying
# receiver, so a receiver the scheduler sets aside for a few milliseconds (a busy CI machine)
# costs rate, not frames. 0 runs open loop, where such a stall shows as loss.
DEFAULT_WINDOW = 4096
EngineOption = Literal["afxdp", "live", "auto"]
MAX_KEEP_BAD = 1024
MIN_INTERVAL = 0.05  # the traffic threads report every 50 ms: rows cannot be finer
VerifyOption = Literal["frame", "stamp"]


def _power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class TrafficOptions:
    """What to send and how. Defaults give 64-byte UDP frames as fast as possible."""

    packet: str | None = None  # scapy expression
    pcap: str | None = None  # replay templates from a capture
    size: int | None = None  # frame size in bytes (without FCS); default 64, or the pcap's own
    vary: tuple[str, ...] = ()
    count: int | None = None
    duration: float | None = None
    rate: float | None = None  # packets per second, None: as fast as possible
    # Closed loop: the sender stays at most this many frames ahead of the receiver's count
    # (0, or None, runs open loop; see DEFAULT_WINDOW).
    window: int = DEFAULT_WINDOW
    queues: int = 1
    frame_size: int = 4096
    frames: int = 4096
    ring_size: int = 2048
    rx_ring_size: int | None = None  # receiver's RX and fill rings; default max(ring_size, 8192)
    batch: int = 64
    headroom: int = 0
    unaligned: bool = False
    mode: BindModeOption = "auto"
    need_wakeup: bool = True
    busy_poll: int | None = None  # SO_BUSY_POLL microseconds
    busy_poll_budget: int | None = None
    allow_loss: float = 0.0  # percent
    attach_mode: Literal["native", "generic"] = "native"
    seed: int = 0
    engine: EngineOption = "afxdp"  # live: frames generated in the kernel (BPF_PROG_TEST_RUN)
    replay_timing: bool = False  # --pcap frames leave at the capture's gaps (divided by speedup)
    speedup: float = 1.0
    loop: int | None = None  # --pcap: send the capture this many times (instead of count)
    write_tx_pcap: str | None = None  # pcapng of every frame sent, its TX descriptor in a comment
    keep_bad: int = 8  # corrupted frames kept with the frame expected, for the report
    verbatim: bool = False  # --pcap frames sent unchanged (no stamp), matched by content
    interval: float | None = None  # seconds per row of the report's ``intervals`` (None: no rows)
    # "frame": every byte of every frame is checked against the frame expected; "stamp": only the
    # stamp and the payload after it (for programs whose rewrites no per-template rule describes)
    verify: VerifyOption = "frame"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.window is None:
            object.__setattr__(self, "window", 0)  # None and 0 both mean open loop
        self.validate()

    def _check_types(self) -> None:
        """A value of the wrong type is a ConfigError naming the option, not a TypeError later."""
        hints = get_type_hints(TrafficOptions)
        for f in fields(self):
            value, want = getattr(self, f.name), hints[f.name]
            allowed = tuple(t for t in get_args(want) if isinstance(t, type)) or (
                (get_origin(want) or want),)
            if Literal in (get_origin(want),) or f.name in ("vary", "extra"):
                continue
            accepted = (*allowed, int) if float in allowed else allowed
            wrong_bool = isinstance(value, bool) and bool not in allowed  # True is an int to Python
            if wrong_bool or not isinstance(value, accepted):
                kinds = " or ".join("None" if t is type(None) else t.__name__ for t in allowed)
                raise ConfigError(f"{f.name}={value!r}: expected {kinds}")

    def validate(self) -> None:
        self._check_types()
        if self.packet is not None and self.pcap is not None:
            raise ConfigError("--packet and --pcap exclude each other: choose one source of templates")
        if self.count is not None and self.count < 1:
            raise ConfigError(f"--count must be at least 1, got {self.count}")
        if self.duration is not None and not self.duration > 0:
            raise ConfigError(f"--duration must be positive, got {self.duration}")
        if self.rate is not None and not self.rate > 0:
            raise ConfigError(f"--rate must be a positive number of packets per second, got {self.rate}")
        if self.verbatim:
            self._check_verbatim()
        if self.interval is not None and not self.interval >= MIN_INTERVAL:
            raise ConfigError(f"--interval is in seconds, at least {MIN_INTERVAL}, got {self.interval}")
        if self.verify not in ("frame", "stamp"):
            raise ConfigError(f"--verify {self.verify!r}: use frame (every byte) or stamp")
        if self.engine not in ("afxdp", "live", "auto"):
            raise ConfigError(f"--engine {self.engine!r}: use afxdp, live or auto")
        if self.replay_timing and not self.pcap:
            raise ConfigError("--replay-timing replays a capture's gaps: give --pcap FILE")
        if self.replay_timing and self.rate is not None:
            raise ConfigError("--rate and --replay-timing exclude each other: the capture sets the pace "
                              "(use --speedup to scale it)")
        if self.replay_timing and self.queues != 1:
            raise ConfigError("--replay-timing sends one ordered stream: use --queues 1")
        if not self.speedup > 0:
            raise ConfigError(f"--speedup must be positive, got {self.speedup}")
        if self.speedup != 1.0 and not self.replay_timing:
            raise ConfigError("--speedup scales the capture's gaps: add --replay-timing")
        if self.loop is not None:
            if not self.pcap:
                raise ConfigError("--loop repeats a capture: give --pcap FILE")
            if self.loop < 1:
                raise ConfigError(f"--loop must be at least 1, got {self.loop}")
            if self.count is not None:
                raise ConfigError("--loop and --count exclude each other: --loop N sends the capture N times")
        if self.window and not self.batch <= self.window:
            raise ConfigError(f"--window {self.window} is smaller than a batch ({self.batch}): use at "
                              f"least {self.batch}, or 0 for open loop")
        if not 1 <= self.queues <= 64:
            raise ConfigError(f"--queues must be from 1 to 64, got {self.queues}")
        if not _power_of_two(self.ring_size):
            raise RingSizeError(f"--ring-size {self.ring_size} is not a power of two (try "
                                f"{1 << max(0, self.ring_size.bit_length() - 1) or 1} or "
                                f"{1 << self.ring_size.bit_length()})")
        if self.rx_ring_size is not None and not _power_of_two(self.rx_ring_size):
            raise RingSizeError(f"--rx-ring-size {self.rx_ring_size} is not a power of two")
        check_frame_size(self.frame_size, self.unaligned, "--frame-size")
        if self.frames < 2 * self.batch:
            raise ConfigError(f"--frames {self.frames}: a UMEM needs at least two batches of frames "
                              f"({2 * self.batch})")
        if not 1 <= self.batch <= self.ring_size:
            raise ConfigError(f"--batch must be from 1 to the ring size ({self.ring_size}), got {self.batch}")
        check_headroom(self.headroom, self.frame_size, "--headroom")
        if self.size is not None and not 1 <= self.size <= MAX_FRAME:
            raise ConfigError(f"--size {self.size}: frames have 1 to {MAX_FRAME} bytes (longer than one "
                              f"UMEM frame holds, {max_frame_len(self.frame_size, self.headroom)}, they "
                              "take several: AF_XDP multi-buffer, Linux 6.6+)")
        if not 0 <= self.allow_loss <= 100:
            raise ConfigError(f"--allow-loss is a percentage from 0 to 100, got {self.allow_loss}")
        if not 0 <= self.keep_bad <= MAX_KEEP_BAD:
            raise ConfigError(f"--keep-bad must be from 0 to {MAX_KEEP_BAD}, got {self.keep_bad}")
        if self.busy_poll is not None and self.busy_poll < 0:
            raise ConfigError(f"--busy-poll is in microseconds (>= 0), got {self.busy_poll}")
        if self.busy_poll_budget is not None and not 1 <= self.busy_poll_budget <= 65535:
            raise ConfigError(f"--busy-poll-budget must be from 1 to 65535, got {self.busy_poll_budget}")

    def _check_verbatim(self) -> None:
        """--verbatim sends a capture's own frames: nothing may change them, one ordered stream."""
        if not self.pcap:
            raise ConfigError("--verbatim sends a capture's frames unchanged: give --pcap FILE")
        for given, option in ((self.vary, "--vary"), (self.size is not None, "--size"),
                              (self.verify != "frame", "--verify stamp")):
            if given:
                raise ConfigError(f"--verbatim sends the capture's frames unchanged: {option} cannot apply")
        if self.queues != 1:
            raise ConfigError("--verbatim checks one ordered stream: use --queues 1")
        if self.engine == "live":
            raise ConfigError("--verbatim frames are sent from an AF_XDP socket: use --engine afxdp")

    def with_(self, **changes: Any) -> TrafficOptions:
        return replace(self, **changes)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> TrafficOptions:
        """Options from keyword arguments, refusing unknown names with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown traffic option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if isinstance(kwargs.get("vary"), str):
            kwargs["vary"] = (kwargs["vary"],)
        elif "vary" in kwargs:
            kwargs["vary"] = tuple(kwargs["vary"])
        return cls(**kwargs)
