"""Stock kernels for guests: obtain, unpack and cache them, with netdevsim built and added.

A kernel is named by one of these names, or by the path of a kernel image:

``debian-5.10``
    The newest Linux 5.10 of Debian 11 (``bullseye`` and ``bullseye-security``).
``debian-6.1``
    The newest Linux 6.1 of Debian 12 (``bookworm``, ``bookworm-updates``, ``bookworm-security``).
``debian-6.12``
    The newest Linux 6.12 of ``bookworm-backports``.
``debian-latest``
    The newest kernel of Debian unstable (``sid``), whatever its series (the one that
    ``linux-headers-amd64`` depends on there).

Debian kernels come from the Debian archive that the host's apt sources already name: the kit
writes an apt configuration of its own under the cache (so the host's package lists and sources
are never changed), with the mirror and key of the host's own Debian entries (those of its release,
e.g. ``bookworm``) for the suites above, and the host's ``-security`` mirror for the security suite;
``apt-get download`` fetches just what is needed: the kernel image and its modules (one
``linux-image-ABI-amd64-unsigned`` package, or ``linux-binary-ABI-amd64``, ``linux-modules-ABI-amd64``
and ``linux-base-ABI-amd64`` where the archive splits them), the headers, ``-common`` headers,
kbuild and source packages; ``dpkg-deb -x`` unpacks them. No Debian kernel ships netdevsim, so it is
built out of tree from the source package's ``drivers/net/netdevsim`` against the matching headers
with the host's compiler (``gcc-12``): compiler options that it does not know are avoided through the
kernel's own fallbacks, and kbuild programs that cannot run on the host (built for a newer C
library) are rebuilt from the source package. The module is added to the module tree, which is
indexed with ``depmod``. Only the kernel image and its module tree stay in the cache; a second run
uses them as they are, without any network access (``refresh=True`` looks for a newer kernel).
Host packages that are missing (``hostpkgs``) are installed when running as root.

A kernel by path is an x86 bzImage (its release is read from its setup header) with its module
tree, as a kernel package unpacked with ``dpkg-deb -x`` lays them out, which is looked for beside
and above the image: ``boot/vmlinuz-RELEASE`` with ``lib/modules/RELEASE`` or
``usr/lib/modules/RELEASE``, or ``usr/lib/modules/RELEASE/vmlinuz`` with the modules in that same
directory. The path may also be such an unpacked directory, when it holds exactly one image. A
module tree without ``modules.dep`` (``depmod`` runs only when a package is installed) is copied
(hard links where possible) into the cache's ``by-path/RELEASE-HASH`` and indexed there, once per
image path and modification time. The guest needs 9p, 9pnet_virtio, virtio_pci, virtio_console
and overlay as modules or built in: a tree that lacks one while its ``modules.builtin`` (or its
``config``) shows it is not built in either is refused, naming the kernel options to enable, before
any guest boots (a tree without both, such as ``linux-modules`` unpacked without ``linux-base``,
is used as it is, as is an image without any module tree: all it needs must then be built in).

Cache: ``$XDPTEST_CACHE``, else ``/var/cache/xdptest`` for root, ``~/.cache/xdptest`` otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from xdptest.errors import ConfigError
from xdptest.vm.debian import (
    CODENAME,
    DEBIAN_CODENAMES,
    DEBIAN_KERNELS,
    HOST_PROGRAMS,
    DebianKernel,
    KernelPackages,
    NetdevsimBuild,
    broken_host_programs,
    config_options,
    debian_mirrors,
    decompress_module,
    first_dir,
    first_file,
    offsets_header,
    parse_sources,
    resolve_packages,
    source_lines,
)
from xdptest.vm.hostpkgs import KERNEL_PACKAGES, KernelUnavailableError, ensure_host_packages, missing_packages

TOOLS = {"apt-get": "apt", "dpkg-deb": "dpkg", "make": "make", "depmod": "kmod",  # command -> Debian package
         "xz": "xz-utils", "tar": "tar", "gcc-12": "gcc-12"}
# What the guest's initramfs loads (module name, kernel option that provides it).
GUEST_MODULES = (("9p", "CONFIG_9P_FS"), ("9pnet_virtio", "CONFIG_NET_9P_VIRTIO"),
                 ("virtio_pci", "CONFIG_VIRTIO_PCI"), ("virtio_console", "CONFIG_VIRTIO_CONSOLE"),
                 ("overlay", "CONFIG_OVERLAY_FS"))


@dataclass(frozen=True)
class KernelSpec:
    """What ``--xdptest-kernel`` names: a Debian kernel, or a kernel image on disk."""

    name: str  # "debian-6.12", or the image's absolute path
    series: str | None = None  # "6.12" for a Debian kernel of a fixed series (None for debian-latest)
    image: Path | None = None

    @classmethod
    def parse(cls, text: str) -> KernelSpec:
        text = text.strip()
        if text in DEBIAN_KERNELS:
            return cls(text, series=DEBIAN_KERNELS[text].series)
        if text and ("/" in text or os.path.exists(text)):
            path = Path(text).expanduser().resolve()
            if path.is_dir():
                path = image_in_dir(path)
            if not path.is_file():
                raise ConfigError(f"kernel {text!r}: no such kernel image ({path} is not a file)")
            return cls(str(path), image=path)
        raise ConfigError(
            f"kernel {text!r}: use {', '.join(DEBIAN_KERNELS)} or the path of a kernel image "
            "(a bzImage/vmlinuz, with its modules in lib/modules/RELEASE beside it or above it)"
        )


@dataclass(frozen=True)
class Kernel:
    """A kernel ready to boot: image, release and module tree (``modules/RELEASE``)."""

    name: str
    release: str
    image: Path
    modules: Path | None  # the lib/modules/RELEASE directory, None where there is none
    netdevsim: bool  # a netdevsim module is in the tree (or built in)


def cache_dir() -> Path:
    env = os.environ.get("XDPTEST_CACHE")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/cache/xdptest")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xdptest"


def image_release(image: Path) -> str:
    """The release string of a bzImage (from its setup header), e.g. ``6.12.95+deb12-amd64``."""
    try:
        with open(image, "rb") as f:
            head = f.read(0x4000)
            if head[0x202:0x206] != b"HdrS":
                raise ConfigError(f"{image} is not an x86 bzImage (no 'HdrS' setup header)")
            offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
            f.seek(offset)
            raw = f.read(256)
    except OSError as exc:
        raise ConfigError(f"{image}: cannot read the kernel image ({exc.strerror})") from None
    release = raw.split(b" ", 1)[0].split(b"\0", 1)[0].decode(errors="replace")
    if not release or not re.fullmatch(r"[0-9][\w.+~-]*", release):
        raise ConfigError(f"{image}: the setup header names no kernel release (is it a kernel image?)")
    return release


def image_in_dir(root: Path) -> Path:
    """The one kernel image in an unpacked kernel package (``dpkg-deb -x`` output)."""
    found = sorted({p.resolve() for pattern in ("boot/vmlinuz-*", "usr/lib/modules/*/vmlinuz",
                                                "lib/modules/*/vmlinuz", "vmlinuz-*", "vmlinuz", "bzImage")
                    for p in root.glob(pattern) if p.is_file()})
    if len(found) != 1:
        what = "no kernel image" if not found else f"{len(found)} kernel images"
        raise ConfigError(f"kernel {root}: the directory holds {what} (boot/vmlinuz-RELEASE or "
                          "usr/lib/modules/RELEASE/vmlinuz); give the image's path")
    return found[0]


def _is_module_tree(path: Path) -> bool:
    return path.is_dir() and any((path / n).exists() for n in ("modules.dep", "modules.order", "kernel"))


def find_module_tree(image: Path, release: str) -> Path | None:
    """The module tree for ``image``: beside it (split packages) or lib/modules/RELEASE above it."""
    here = image.parent
    if here.name == release and _is_module_tree(here):  # usr/lib/modules/RELEASE/vmlinuz
        return here.resolve()
    for base in (here, here.parent, here.parent.parent):
        for sub in ("lib/modules", "usr/lib/modules", "modules"):
            cand = base / sub / release
            if _is_module_tree(cand):
                return cand.resolve()
    return None


def has_module(modules: Path | None, name: str) -> bool:
    """``name`` is in the tree's modules.dep or modules.builtin (``-`` and ``_`` alike)."""
    if modules is None:
        return False
    alt = name.replace("-", "_")
    names = "|".join(re.escape(n) for n in dict.fromkeys((name, alt, alt.replace("_", "-"))))
    pattern = re.compile(rf"(^|/)({names})\.ko(\.\w+)?(:|$)", re.M)
    for index in ("modules.dep", "modules.builtin"):
        path = modules / index
        if path.is_file() and pattern.search(path.read_text(errors="replace")):
            return True
    return False


def missing_guest_modules(modules: Path) -> list[tuple[str, str]]:
    """The (module, kernel option) pairs the guest needs that ``modules`` neither has nor builds in."""
    config = config_options(modules / "config")  # the split layout's linux-base has it (and modules.builtin)
    return [(name, option) for name, option in GUEST_MODULES
            if not has_module(modules, name) and config.get(option) != "y"]


def check_guest_modules(name: str, modules: Path) -> None:
    # a tree that cannot say what is built in (linux-modules without linux-base) is let through
    missing = missing_guest_modules(modules)
    if missing and ((modules / "modules.builtin").is_file() or (modules / "config").is_file()):
        raise KernelUnavailableError(2, (
            f"kernel {name}: its module tree {modules} lacks what the guest needs to boot: "
            f"{', '.join(m for m, _ in missing)}, neither modules nor built in. "
            f"Build the kernel with {', '.join(f'{o}=m (or y)' for _, o in missing)}."))


def kernel_from_image(spec: KernelSpec) -> Kernel:
    """The kernel at ``spec.image`` with its module tree (indexed in the cache where needed)."""
    assert spec.image is not None
    release = image_release(spec.image)
    modules = find_module_tree(spec.image, release)
    if modules is not None:
        if not (modules / "modules.dep").is_file():
            modules = _indexed_copy(spec.image, release, modules)
        check_guest_modules(spec.name, modules)
    return Kernel(spec.name, release, spec.image, modules, has_module(modules, "netdevsim"))


def by_path_dir(image: Path, release: str) -> Path:
    """Where the indexed copy of the module tree of ``image`` goes in the cache."""
    st = image.stat()
    digest = hashlib.sha256(f"{image}\0{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return cache_dir() / "by-path" / f"{release}-{digest}"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _indexed_copy(image: Path, release: str, modules: Path) -> Path:
    """A copy of ``modules`` with ``modules.dep``, made once in the cache."""
    base = by_path_dir(image, release)
    tree = base / "lib/modules" / release
    if (tree / "modules.dep").is_file():
        return tree
    missing = missing_packages(("kmod",))
    if missing:
        ensure_host_packages(f"indexing the modules of {image}", None, missing)
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KernelUnavailableError(exc.errno, f"cache {base.parent}: {exc.strerror} (set XDPTEST_CACHE)") from None
    with _locked(base.parent / ".lock"):
        if (tree / "modules.dep").is_file():
            return tree
        work = Path(tempfile.mkdtemp(prefix=f".{base.name}-", dir=base.parent))
        try:
            copy = work / "lib/modules" / release
            shutil.copytree(modules, copy, symlinks=True, copy_function=_link_or_copy,
                            ignore=lambda d, names: [n for n in names if Path(d) == modules
                                                     and n in ("build", "source", "vmlinuz")])
            proc = subprocess.run(["depmod", "-b", str(work), release], capture_output=True, text=True, check=False)
            if proc.returncode != 0 or not (copy / "modules.dep").is_file():
                raise KernelUnavailableError(5, f"depmod for {modules} failed: {proc.stderr.strip()}")
            shutil.rmtree(base, ignore_errors=True)
            os.replace(work, base)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tree


def missing_tools(names: Sequence[str] = tuple(TOOLS)) -> list[str]:
    """Debian packages that provide the commands that are missing on this machine."""
    return sorted({TOOLS[n] for n in names if shutil.which(n) is None and os.path.basename(n) in TOOLS})


def cached_kernel(spec: KernelSpec) -> Kernel | None:
    """The prepared kernel for ``spec`` from the cache (a path: the image itself), or None."""
    if spec.image is not None:
        return kernel_from_image(spec)
    return _load_current(cache_dir() / "kernels" / spec.name / "current.json")


@dataclass(frozen=True)
class KernelListing:
    """One named kernel and what the cache holds of it."""

    name: str
    what: str
    cached: bool
    release: str | None = None  # "6.12.95+deb12-amd64"
    version: str | None = None  # the Debian package version, "6.12.95-1~bpo12+1"
    netdevsim: bool = False


def list_kernels() -> list[KernelListing]:
    """Each named kernel, and whether (and which version of it) the cache holds."""
    out = []
    for name, policy in DEBIAN_KERNELS.items():
        current = cache_dir() / "kernels" / name / "current.json"
        kernel = _load_current(current)
        if kernel is None:
            out.append(KernelListing(name, policy.what, False))
            continue
        version = None
        with contextlib.suppress(OSError, ValueError, AttributeError):
            version = json.loads(current.read_text()).get("version")
        out.append(KernelListing(name, policy.what, True, kernel.release, version, kernel.netdevsim))
    return out


def format_kernels(kernels: Sequence[KernelListing]) -> list[str]:
    """One short line per kernel: name, what it is, and the cached version (or "not cached")."""
    width = max((len(k.name) for k in kernels), default=0)
    lines = []
    for k in kernels:
        if k.cached:
            state = f"cached: {k.release}" + (f" ({k.version})" if k.version else "")
            state += "" if k.netdevsim else ", no netdevsim"
        else:
            state = "not cached (downloaded on first use)"
        lines.append(f"{k.name:<{width}}  {k.what}; {state}")
    return lines


def prepare(spec: KernelSpec, *, refresh: bool = False, log: Callable[[str], None] | None = None) -> Kernel:
    """A bootable kernel for ``spec``: from the cache, or obtained and prepared into it."""
    if spec.image is not None:
        return kernel_from_image(spec)
    root = cache_dir()
    kdir = root / "kernels" / spec.name
    current = kdir / "current.json"
    if not refresh:
        found = _load_current(current)
        if found is not None:
            return found
    try:
        kdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KernelUnavailableError(exc.errno, f"cache {root}: {exc.strerror} (set XDPTEST_CACHE)") from None
    with _locked(kdir / ".lock"):
        found = None if refresh else _load_current(current)
        if found is not None:
            return found
        return DebianKernelBuilder(spec, root, log or _quiet).build()


def _quiet(text: str) -> None:
    """No progress lines."""


def _load_current(path: Path) -> Kernel | None:
    try:
        data = json.loads(path.read_text())
        kernel = Kernel(data["name"], data["release"], path.parent / data["image"],
                        path.parent / data["modules"], bool(data["netdevsim"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not kernel.image.is_file() or not (kernel.modules and (kernel.modules / "modules.dep").is_file()):
        return None
    return kernel


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def offline_message(spec_name: str, what: str, detail: str) -> str:
    """The error for a Debian kernel that is neither cached nor obtainable."""
    detail = detail.strip().splitlines()[-1] if detail.strip() else "no output"
    return (
        f"cannot obtain kernel {spec_name}: {what} ({detail}).\n"
        f"The kit needs the Debian package archive named in the host's apt sources once, to download "
        f"the kernel image, headers, kbuild and source packages (then it works from its cache in "
        f"{cache_dir()}). Without access to it, give a kernel image by path instead: "
        f"--xdptest-kernel /path/to/boot/vmlinuz-RELEASE, with its modules in "
        f"/path/to/lib/modules/RELEASE (e.g. a linux-image .deb unpacked with dpkg-deb -x)."
    )


class DebianKernelBuilder:
    """Downloads, unpacks and prepares one named Debian kernel into the cache."""

    def __init__(self, spec: KernelSpec, root: Path, say: Callable[[str], None]) -> None:
        self.spec = spec
        self.policy = DEBIAN_KERNELS[spec.name]
        self.root = root
        self.say = say
        self.apt_dir = root / "apt" / spec.name

    # --- apt with the kit's own configuration -----------------------------------------------

    def apt_options(self) -> list[str]:
        d = self.apt_dir
        return [
            "-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={d / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={d / 'lists'}", "-o", f"Dir::Cache={d / 'cache'}",
            "-o", "Dir::Etc::Preferences=/dev/null", "-o", f"Dir::Etc::PreferencesParts={d / 'preferences.d'}",
            "-o", "APT::Sandbox::User=root", "-o", "Acquire::Retries=3", "-q",
        ]

    def _run(self, argv: list[str], what: str, cwd: Path | None = None) -> str:
        try:
            proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=False)
        except FileNotFoundError:
            raise KernelUnavailableError(
                2, f"{argv[0]} not found: apt-get install {TOOLS.get(argv[0], argv[0])}") from None
        if proc.returncode != 0:
            raise KernelUnavailableError(5, offline_message(self.spec.name, what, proc.stderr or proc.stdout))
        return proc.stdout

    def write_sources(self) -> None:
        entries = host_debian_entries()
        if not entries:
            raise KernelUnavailableError(2, offline_message(
                self.spec.name, "the host's apt sources name no Debian archive", ""))
        parts = self.apt_dir / "sources.list.d"
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        for d in ("lists/partial", "cache/archives/partial", "preferences.d"):
            (self.apt_dir / d).mkdir(parents=True, exist_ok=True)
        security = host_security_entries() if self.policy.security else []
        lines = source_lines(self.policy, entries, security)
        (parts / "xdptest.list").write_text("\n".join(lines) + "\n")

    def update_lists(self) -> None:
        """``apt-get update`` into the kit's own lists; fails where no index could be fetched."""
        argv = ["apt-get", *self.apt_options(), "update"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        lists = self.apt_dir / "lists"
        fetched = [p for p in lists.glob("*_Packages*") if p.stat().st_size > 0]
        if proc.returncode != 0 or not fetched:
            failed = [line for line in (proc.stderr + proc.stdout).splitlines() if line.startswith(("E:", "W:", "Err"))]
            raise KernelUnavailableError(5, offline_message(
                self.spec.name, "apt-get update could not fetch the package lists",
                failed[0] if failed else (proc.stderr or proc.stdout)))

    def show(self, package: str) -> str | None:
        proc = subprocess.run(["apt-cache", *self.apt_options(), "show", "--no-all-versions", package],
                              capture_output=True, text=True, check=False)
        return proc.stdout if proc.returncode == 0 and proc.stdout.strip() else None

    def resolve(self) -> KernelPackages:
        """The packages of the newest kernel for this name."""
        return resolve_packages(self.show, self.policy.series, functools.partial(offline_message, self.spec.name))

    # --- the whole preparation -------------------------------------------------------------

    def build(self) -> Kernel:
        ensure_host_packages(f"preparing kernel {self.spec.name}", self.say, KERNEL_PACKAGES)
        self.say(f"xdptest-vm: looking up the newest {self.spec.name} kernel in the Debian archive")
        self.write_sources()
        self.update_lists()
        pkgs = self.resolve()
        version, release = pkgs.version, pkgs.release
        kdir = self.root / "kernels" / self.spec.name
        target = kdir / version
        work = Path(tempfile.mkdtemp(prefix="build-", dir=kdir))
        try:
            debs = work / "debs"
            debs.mkdir()
            names = [f"{n}={version}" for n in pkgs.names]
            self.say(f"xdptest-vm: downloading {', '.join(names)}")
            self._run(["apt-get", *self.apt_options(), "download", *names], "apt-get download", cwd=debs)
            tree = work / "root"
            self.say("xdptest-vm: unpacking")
            for deb in sorted(debs.glob("*.deb")):
                if not deb.name.startswith(pkgs.source + "_"):
                    self._run(["dpkg-deb", "-x", str(deb), str(tree)], f"dpkg-deb -x {deb.name}")
            image = first_file(tree / "boot" / f"vmlinuz-{release}", tree / "usr/lib/modules" / release / "vmlinuz",
                                tree / "lib/modules" / release / "vmlinuz")
            kbuild = tree / "usr/lib" / pkgs.kbuild
            broken = broken_host_programs(kbuild)
            src = self._source(next(debs.glob(pkgs.source + "_*.deb")), pkgs.series, work, bool(broken))
            self.say(f"xdptest-vm: building netdevsim for {release}")
            builder = NetdevsimBuild(tree, release, kbuild, src, self.say)
            if broken:
                builder.rebuild_host_programs(broken)
            ko = builder.build()
            final = target / "root"
            shutil.rmtree(target, ignore_errors=True)
            (final / "boot").mkdir(parents=True)
            (final / "lib/modules").mkdir(parents=True)
            os.replace(image, final / "boot" / f"vmlinuz-{release}")
            modules = first_dir(tree / "lib/modules" / release, tree / "usr/lib/modules" / release)
            for link in ("build", "source"):
                with contextlib.suppress(FileNotFoundError):
                    (modules / link).unlink()
            os.replace(modules, final / "lib/modules" / release)
            modules = final / "lib/modules" / release
            (modules / "extra").mkdir(exist_ok=True)
            shutil.copy2(ko, modules / "extra" / "netdevsim.ko")
            self._run(["depmod", "-b", str(final), release], "depmod")
            if not has_module(modules, "netdevsim"):
                raise KernelUnavailableError(5, "depmod did not index the netdevsim module")
            check_guest_modules(self.spec.name, modules)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        info = {"name": self.spec.name, "release": release, "version": version,
                "image": str((final / "boot" / f"vmlinuz-{release}").relative_to(kdir)),
                "modules": str(modules.relative_to(kdir)), "netdevsim": True}
        tmp = kdir / "current.json.tmp"
        tmp.write_text(json.dumps(info, indent=1) + "\n")
        os.replace(tmp, kdir / "current.json")
        for old in kdir.iterdir():  # older versions of the series
            if old.is_dir() and old.name != version and not old.name.startswith("build-"):
                shutil.rmtree(old, ignore_errors=True)
        kernel = _load_current(kdir / "current.json")
        assert kernel is not None
        return kernel

    def _source(self, deb: Path, series: str, work: Path, host_programs: bool) -> Path:
        """Unpack what is needed of the kernel source: netdevsim, and what rebuilds kbuild programs."""
        member = f"./usr/src/linux-source-{series}.tar.xz"
        tarball = work / "linux-source.tar.xz"
        with open(tarball, "wb") as out:
            dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
            assert dpkg.stdout is not None
            tar = subprocess.run(["tar", "-x", "-O", member], stdin=dpkg.stdout, stdout=out,
                                 stderr=subprocess.PIPE, check=False)
            dpkg.stdout.close()
            dpkg.wait()
        if tar.returncode != 0 or dpkg.returncode != 0:
            raise KernelUnavailableError(5, f"{deb.name}: no {member} ({tar.stderr.decode(errors='replace')})")
        top = f"linux-source-{series}"
        wanted = [f"{top}/drivers/net/netdevsim"]
        if host_programs:
            wanted += [f"{top}/scripts", f"{top}/tools", f"{top}/include/linux", f"{top}/include/uapi"]
        self._run(["tar", "-xJf", str(tarball), "-C", str(work), *wanted],
                  "extracting drivers/net/netdevsim from the kernel source")
        tarball.unlink()
        return work / top


def _source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        files += sorted(parts.glob("*.list")) + sorted(parts.glob("*.sources"))
    return [f for f in files if f.is_file()]


def _all_entries() -> list[tuple[str, list[str], str | None]]:
    entries = []
    for f in _source_files():
        with contextlib.suppress(OSError):
            entries += parse_sources(f.read_text(), f.suffix == ".sources")
    return entries


def host_debian_entries() -> list[tuple[str, str | None]]:
    """Mirrors (URI, signed-by) of the host's Debian archive entries (its release's first)."""
    return debian_mirrors(_all_entries())


def host_security_entries() -> list[tuple[str, str | None]]:
    """Mirrors (URI, signed-by) of the host's Debian security entries."""
    return debian_mirrors(_all_entries(), security=True)


def security_lines() -> list[str]:
    """The host's security entries for its own release (``CODENAME``), as one-line entries."""
    return source_lines(DEBIAN_KERNELS["debian-6.1"], [], host_security_entries())


__all__ = [  # with what lives in .debian and .hostpkgs
    "CODENAME", "DEBIAN_CODENAMES", "DEBIAN_KERNELS", "GUEST_MODULES", "HOST_PROGRAMS", "DebianKernel",
    "DebianKernelBuilder", "Kernel", "KernelListing", "KernelPackages", "KernelSpec", "KernelUnavailableError",
    "NetdevsimBuild", "cache_dir", "cached_kernel", "check_guest_modules", "debian_mirrors", "decompress_module",
    "find_module_tree", "format_kernels", "has_module", "host_debian_entries", "host_security_entries",
    "image_in_dir", "image_release", "kernel_from_image", "list_kernels", "missing_guest_modules",
    "missing_tools", "offline_message", "offsets_header", "parse_sources", "prepare", "resolve_packages",
    "security_lines", "source_lines",
]
