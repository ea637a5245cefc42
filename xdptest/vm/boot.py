"""Boot a prepared kernel under QEMU and run one command inside it.

The guest is a bare ``qemu-system-x86_64`` with direct kernel boot: no disk image and no init
system. A small initramfs (a static busybox, an init script and the few modules it needs: virtio
PCI and console, 9p, overlay) mounts the host's ``/`` read-only over virtio-9p, puts tmpfs on
``/tmp``, ``/run``, ``/var/tmp`` and ``/dev/shm``, mounts proc, sysfs, devtmpfs, bpffs, debugfs,
makes the kernel's own modules appear at ``/lib/modules/RELEASE`` and chroots into the host's tree
to run the command. Directories named as writable are shared read-write at the same path, so
reports written there reach the host. The command's output goes through a virtio console to the
host's standard output; the kernel's console goes to a log whose end is shown when the guest dies.

With ``GuestRun.stdio`` the command's standard input and output are instead a raw byte stream to
the host process's own standard input and output (a virtio serial port, which has no terminal
line discipline), and the command's other output goes to the host's standard error: that makes a
guest an ``execnet`` popen gateway, which is how ``pytest --xdptest-kernel A,B`` makes each guest
a pytest-xdist worker.

Accelerator: KVM where ``/dev/kvm`` exists and a probe boot shows that it can boot this kernel
(the answer is cached per host and kernel), otherwise emulation (TCG), 10-15 times slower.
"""

from __future__ import annotations

import contextlib
import json
import lzma
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from xdptest.errors import XdpTestError
from xdptest.vm.kernels import Kernel, cache_dir

EXIT_TIMEOUT = 124  # the guest did not finish within the timeout
EXIT_GUEST_DIED = 125  # the guest stopped without reporting the command's status (panic, crash)
EXIT_INTERRUPTED = 130
INITRD_MODULES = ("virtio_pci", "virtio_console", "virtio_rng", "9pnet_virtio", "9p", "overlay")
RUN_DIR = "/run/xdptest-vm"  # in the guest: the command script and its exit status
STARTED = "started"  # in RUN_DIR: the guest reached the command (its kernel booted)
BOOT_ATTEMPTS = 2  # a kernel that dies before the command starts is booted once more
STDIO_PORT = "xdptest.stdio"  # the virtio serial port that carries GuestRun.stdio
BUSYBOX = ("/bin/busybox", "/usr/bin/busybox")
QBOOT = "/usr/share/qemu/qboot.rom"
HIDDEN = ("/tmp", "/run", "/var/tmp", "/dev", "/proc", "/sys")  # the guest mounts its own there


class GuestError(XdpTestError, OSError):
    """QEMU or the initramfs could not be set up (the message says what is missing)."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass
class GuestRun:
    """One command to run in a guest."""

    argv: Sequence[str]
    cwd: str
    env: Mapping[str, str]
    writable: list[str] = field(default_factory=list)  # host dirs shared read-write at the same path
    readable: list[str] = field(default_factory=list)  # extra dirs under HIDDEN shared read-only
    timeout: float = 3600.0
    tty: bool = False  # the command's output goes to a terminal in the guest (else a pipe)
    memory_mb: int = 2048
    cpus: int = 2
    stdio: bool = False  # the command's stdin/stdout are the host's, as a raw byte stream


def _busybox() -> str:
    for path in BUSYBOX:
        if os.path.isfile(path):
            return path
    raise GuestError(2, "no busybox for the guest's initramfs: apt-get install busybox-static")


def qemu_binary() -> str:
    path = shutil.which("qemu-system-x86_64")
    if not path:
        raise GuestError(2, "qemu-system-x86_64 not found: apt-get install qemu-system-x86")
    return path


def _module_paths(modules: Path | None, names: Sequence[str]) -> list[Path]:
    """The modules ``names`` need, dependencies first (built-in ones are left out)."""
    if modules is None or not (modules / "modules.dep").is_file():
        return []
    deps: dict[str, list[str]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
    by_name = {_mod_name(p): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        found = by_name.get(name.replace("-", "_"))
        if found is not None:
            visit(found)
    return [modules / p for p in order]


def _mod_name(path: str) -> str:
    return re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(path)).replace("-", "_")


INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
say() { echo "xdptest-init: $*" > /dev/console; }
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.list); do insmod /mod/$m || say "insmod $m failed"; done
R=/newroot; O="trans=virtio,version=9p2000.L,msize=512000"
mkdir -p $R /ov
mount -t 9p -o ro,$O,cache=loose xdptest-root $R || { say "cannot mount the host's root over 9p"; poweroff -f; }
for d in run tmp var/tmp dev/shm; do mount -t tmpfs -o mode=1777 tmpfs $R/$d; done
mount -t proc proc $R/proc; mount -t sysfs sysfs $R/sys; mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm; mount -t devpts devpts $R/dev/pts; mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t bpf bpf $R/sys/fs/bpf; mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mkdir -p $R/run/netns $R{run_dir}; mount -t 9p -o $O xdptest-run $R{run_dir}
if [ -n "{release}" ]; then
  if [ ! -d $R/usr/lib/modules ]; then
    mount -t tmpfs tmpfs /ov && mkdir -p /ov/u /ov/w && \
      mount -t overlay overlay -o lowerdir=$R/usr/lib,upperdir=/ov/u,workdir=/ov/w $R/usr/lib || say "no overlay"
    mkdir -p $R/usr/lib/modules 2>/dev/null
  else
    mount -t tmpfs tmpfs $R/usr/lib/modules
  fi
  mkdir -p $R/usr/lib/modules/{release} && mount -t 9p -o ro,$O,cache=loose xdptest-mod $R/usr/lib/modules/{release}
fi
while read -r tag path; do
  mkdir -p "$R$path"; mount -t 9p -o $O,{share_opts} "$tag" "$R$path" || say "cannot mount $path"
done < /shares.list
# The kernel loads modules on demand (veth, ...) with a helper that runs outside the chroot.
printf '#!/bin/sh\nexec /bin/chroot %s /sbin/modprobe "$@"\n' "$R" > /bin/xdptest-modprobe
chmod 755 /bin/xdptest-modprobe; echo /bin/xdptest-modprobe > /proc/sys/kernel/modprobe
echo 1 > /proc/sys/kernel/sysrq; hostname xdptest-vm; ip link set lo up
stty -F /dev/hvc0 -onlcr 2>/dev/null
if [ -e /tty ]; then  # the host prints to a terminal: so does the command
  chroot $R /bin/sh {run_dir}/guest.sh > /dev/hvc0 2>&1 < /dev/null
else
  chroot $R /bin/sh {run_dir}/guest.sh 2>&1 < /dev/null | cat > /dev/hvc0
fi
sync; poweroff -f
"""


def _cpio_entry(out: BinaryIO, name: str, mode: int, data: bytes = b"", ino: int = 1) -> None:
    """One entry of a ``newc`` cpio archive (what the kernel unpacks as initramfs)."""
    raw = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), 0)
    out.write(b"070701" + b"".join(f"{v:08x}".encode() for v in fields) + raw)
    out.write(b"\0" * (-(110 + len(raw)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))


def build_initramfs(kernel: Kernel, shares: Sequence[tuple[str, str]], out: Path, tty: bool = False) -> None:
    """Write the guest's initramfs: busybox, /init, the boot modules, the list of shares."""
    files: list[tuple[str, int, bytes]] = [
        ("bin", 0o40755, b""), ("proc", 0o40755, b""), ("sys", 0o40755, b""), ("dev", 0o40755, b""),
        ("mod", 0o40755, b""),
        ("bin/busybox", 0o100755, Path(_busybox()).read_bytes()),
    ]
    names = []
    for path in _module_paths(kernel.modules, INITRD_MODULES):
        data = path.read_bytes()
        if path.suffix == ".xz":
            data = lzma.decompress(data)
        elif path.suffix in (".zst", ".gz"):
            continue  # not seen in the kernels the kit prepares; the kernel may have it built in
        name = _mod_name(path.name) + ".ko"
        names.append(name)
        files.append((f"mod/{name}", 0o100644, data))
    init = (INIT.replace("{run_dir}", RUN_DIR).replace("{release}", kernel.release if kernel.modules else "")
            .replace("{share_opts}", "cache=none"))
    files += [
        ("init", 0o100755, init.encode()),
        ("modules.list", 0o100644, ("\n".join(names) + "\n").encode()),
        ("shares.list", 0o100644, "".join(f"{tag} {path}\n" for tag, path in shares).encode()),
    ]
    if tty:
        files.append(("tty", 0o100644, b""))
    with open(out, "wb") as f:
        for ino, (name, mode, data) in enumerate(files, start=1):
            _cpio_entry(f, name, mode, data, ino)
        _cpio_entry(f, "TRAILER!!!", 0, b"", 0)


def guest_script(run: GuestRun) -> str:
    """The shell script the guest runs (in the host's tree, as root)."""
    lines = ["#!/bin/sh", "set -u"]
    for key, value in sorted(run.env.items()):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            lines.append(f"export {key}={shlex.quote(value)}")
    status = f"{RUN_DIR}/status"
    lines.append(f": > {RUN_DIR}/{STARTED}")  # from here on the command's side effects count
    lines.append(f"cd {shlex.quote(run.cwd)} || {{ echo 126 > {status}; exit 126; }}")
    if run.stdio:  # no udev in the guest: find the port's device by its name in sysfs
        lines += ["port=", "for p in /sys/class/virtio-ports/*; do",
                  f'  [ "$(cat "$p/name" 2>/dev/null)" = {STDIO_PORT} ] && port=/dev/${{p##*/}}', "done",
                  f'[ -n "$port" ] || {{ echo "xdptest-vm: no {STDIO_PORT} port" >&2; exit 125; }}',
                  'exec 3<>"$port"',  # a port opens once: one descriptor for both directions
                  f'{shlex.join(run.argv)} <&3 >&3 3>&-']
    else:
        lines.append(shlex.join(run.argv))
    lines.append(f"rc=$?; echo $rc > {status}.tmp && mv {status}.tmp {status}; exit $rc")
    return "\n".join(lines) + "\n"


def _fsdev(tag: str, path: str, readonly: bool) -> list[str]:
    ro = ",readonly=on" if readonly else ""
    return ["-fsdev", f"local,id={tag},path={path},security_model=none,multidevs=remap{ro}",
            "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]


def qemu_argv(kernel: Kernel, initrd: Path, run_dir: Path, console: Path, shares: Sequence[tuple[str, str, bool]],
              accel: str, memory_mb: int, cpus: int, output_fifo: Path | None = None) -> list[str]:
    """QEMU's command line. The command's output goes to QEMU's standard output, or with
    ``output_fifo`` to that FIFO, QEMU's standard input and output then carrying the stdio port."""
    argv = [qemu_binary(), "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
            "-m", str(memory_mb), "-smp", str(cpus)]
    if accel == "kvm":
        argv += ["-accel", "kvm", "-cpu", "host"]
    else:
        argv += ["-accel", "tcg,thread=multi", "-cpu", "max"]
    if os.path.isfile(QBOOT):
        argv += ["-bios", QBOOT]
    argv += ["-kernel", str(kernel.image), "-initrd", str(initrd),
             # hugepages: 16 MB of 2 MB pages reserved at boot, so hugepage UMEMs can be tested.
             "-append", "console=ttyS0 panic=-1 oops=panic loglevel=5 net.ifnames=0 rdinit=/init "
                        "mitigations=off tsc=reliable no_timer_check hugepages=8",
             "-serial", f"file:{console}", "-monitor", "none", "-device", "virtio-serial-pci"]
    if output_fifo is None:
        argv += ["-chardev", "stdio,id=out,signal=off"]
    else:
        argv += ["-chardev", f"pipe,id=out,path={output_fifo}",
                 "-chardev", "stdio,id=stdio,signal=off", "-device", f"virtserialport,chardev=stdio,name={STDIO_PORT}"]
    argv += ["-device", "virtconsole,chardev=out", "-device", "virtio-rng-pci"]
    argv += _fsdev("xdptest-root", "/", True)
    argv += _fsdev("xdptest-run", str(run_dir), False)
    if kernel.modules is not None:
        argv += _fsdev("xdptest-mod", str(kernel.modules), True)
    for tag, path, readonly in shares:
        argv += _fsdev(tag, path, readonly)
    return argv


def console_tail(console: Path, lines: int = 40) -> str:
    with contextlib.suppress(OSError):
        text = console.read_text(errors="replace").replace("\r", "")
        return "\n".join(text.strip().splitlines()[-lines:])
    return "(no console output)"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shares(run: GuestRun) -> list[tuple[str, str, bool]]:
    shares: list[tuple[str, str, bool]] = []
    for i, path in enumerate(dict.fromkeys(run.writable)):
        shares.append((f"xdptest-rw{i}", path, False))
    for i, path in enumerate(dict.fromkeys(run.readable)):
        shares.append((f"xdptest-ro{i}", path, True))
    return shares


def boot(kernel: Kernel, run: GuestRun, accel: str, out: BinaryIO | None = None, report: bool = True) -> int:
    """Run ``run`` in a guest; return its exit status, or EXIT_TIMEOUT / EXIT_GUEST_DIED.

    With ``report``, a guest that timed out or died is explained on stderr (with QEMU's own
    messages and the end of the kernel console).
    """
    status, started = _boot_once(kernel, run, accel, out, report)
    for attempt in range(2, BOOT_ATTEMPTS + 1):
        if status != EXIT_GUEST_DIED or started:
            break
        # Nothing of the command ran and nothing was read from the host (the stdio port opens
        # only once it runs): booting again is safe. Emulated SMP guests rarely die in early boot
        # (seen once with 7.2 under TCG: a fault in code the kernel was patching at that moment).
        if report:
            sys.stderr.write(f"xdptest-vm: the guest's kernel stopped before the command started; "
                             f"booting it again (attempt {attempt} of {BOOT_ATTEMPTS})\n")
        status, started = _boot_once(kernel, run, accel, out, report)
    return status


def _boot_once(kernel: Kernel, run: GuestRun, accel: str, out: BinaryIO | None,
               report: bool) -> tuple[int, bool]:
    """One boot: the exit status, and whether the command started."""
    out = out if out is not None else sys.stdout.buffer
    work = Path(tempfile.mkdtemp(prefix="xdptest-vm-"))
    try:
        run_dir = work / "run"
        run_dir.mkdir()
        (run_dir / "guest.sh").write_text(guest_script(run))
        shares = _shares(run)
        initrd = work / "initrd.cpio"
        build_initramfs(kernel, [(t, p) for t, p, _ in shares], initrd, tty=run.tty)
        console = work / "console.log"
        fifo = None
        if run.stdio:  # QEMU's pipe chardev writes PATH.out (and opens PATH.in)
            fifo = work / "output"
            for end in (".in", ".out"):
                os.mkfifo(f"{fifo}{end}", 0o600)
            out = sys.stderr.buffer
        argv = qemu_argv(kernel, initrd, run_dir, console, shares, accel, run.memory_mb, run.cpus, fifo)
        status, qemu_err = _supervise(argv, run.timeout, out, run_dir / "status", fifo)
        if report and status in (EXIT_TIMEOUT, EXIT_GUEST_DIED):
            if qemu_err.strip():
                sys.stderr.write(qemu_err.decode(errors="replace"))
            what = (f"did not finish within {run.timeout:.0f} s" if status == EXIT_TIMEOUT
                    else "stopped without reporting the command's status")
            sys.stderr.write(f"\nxdptest-vm: the guest ({kernel.name}, {kernel.release}) {what}; "
                             f"end of its kernel console:\n{console_tail(console)}\n")
        return status, (run_dir / STARTED).exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def signal_on_parent_death(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when the process that started it dies."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signum, 0, 0, 0)


def _die_with_parent() -> None:
    """In QEMU's child process before exec: a SIGKILL when the process that started it dies, so a
    killed ``xdptest-vm`` (or pytest-xdist killing a gateway) never leaves a guest running."""
    signal_on_parent_death(signal.SIGKILL)


def _supervise(argv: list[str], timeout: float, out: BinaryIO, status_file: Path,
               output_fifo: Path | None = None) -> tuple[int, bytes]:
    """Run QEMU, copy the command's output to ``out`` and collect QEMU's own messages.

    The output comes from QEMU's standard output, or with ``output_fifo`` from that FIFO (QEMU's
    standard input and output are then this process's own, untouched: the stdio port).
    """
    stdio = output_fifo is not None
    try:
        proc = subprocess.Popen(argv, stdin=None if stdio else subprocess.DEVNULL,
                                stdout=None if stdio else subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True, preexec_fn=_die_with_parent)
    except OSError as exc:
        raise GuestError(exc.errno or 2, f"cannot start {argv[0]}: {exc.strerror}") from None
    assert proc.stderr is not None
    # Read and write ends both held here: the FIFO never reads as ended before QEMU opens it.
    output_fd = (os.open(f"{output_fifo}.out", os.O_RDWR | os.O_NONBLOCK) if stdio
                 else (proc.stdout.fileno() if proc.stdout else -1))
    deadline = time.monotonic() + timeout
    err = b""
    timed_out = False
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(output_fd, selectors.EVENT_READ)
            sel.register(proc.stderr, selectors.EVENT_READ)
            # Until both streams end; the FIFO never ends, so there QEMU's standard error decides.
            waiting = {proc.stderr.fileno()} | (set() if stdio else {output_fd})
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(min(left, 1.0)):
                    chunk = os.read(key.fd, 65536)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        waiting.discard(key.fd)
                    elif key.fd == output_fd:
                        out.write(chunk)
                        out.flush()
                    else:
                        err += chunk
            if stdio:
                with contextlib.suppress(BlockingIOError):
                    while chunk := os.read(output_fd, 65536):
                        out.write(chunk)
                out.flush()
        if not timed_out:
            proc.wait(max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    except KeyboardInterrupt:
        _stop(proc)
        return EXIT_INTERRUPTED, err
    finally:
        _stop(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        proc.stderr.close()
        if stdio:
            os.close(output_fd)
    if timed_out:
        return EXIT_TIMEOUT, err
    with contextlib.suppress(OSError, ValueError):
        return int(status_file.read_text().strip()), err
    return EXIT_GUEST_DIED, err


# --- choosing the accelerator -----------------------------------------------------------------

def choose_accel(kernel: Kernel, say: Callable[[str], None] | None = None) -> str:
    """``kvm`` where it can boot ``kernel`` here (probed once, cached), else ``tcg``."""
    forced = os.environ.get("XDPTEST_VM_ACCEL", "").strip().lower()
    if forced in ("kvm", "tcg"):
        return forced
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        _note(say, "no usable /dev/kvm: running the guest under emulation (TCG), 10-15x slower")
        return "tcg"
    key = f"{platform.release()} {kernel.release} {kernel.image}"
    path = cache_dir() / "kvm-probe.json"
    cached: dict[str, bool] = {}
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(path.read_text())
    if key not in cached:
        ok = _probe_kvm(kernel)
        cached[key] = ok
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(cached, indent=1) + "\n")
    if cached[key]:
        return "kvm"
    _note(say, f"KVM on this host cannot boot {kernel.release} (probe boot failed; cached in {path}): "
               "running the guest under emulation (TCG), 10-15x slower")
    return "tcg"


def _note(say: Callable[[str], None] | None, text: str) -> None:
    if say is not None:
        say(f"xdptest-vm: {text}")


def _probe_kvm(kernel: Kernel) -> bool:
    """A trivial boot under KVM; a stock kernel boots in a few seconds where KVM really works."""
    run = GuestRun(argv=["true"], cwd="/", env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                   timeout=float(os.environ.get("XDPTEST_VM_KVM_PROBE_S", "20")), memory_mb=512, cpus=1)
    try:
        with open(os.devnull, "wb") as sink:
            return _boot_once(kernel, run, "kvm", sink, report=False)[0] == 0
    except GuestError:
        return False
