"""Stock kernels for guests: obtain, unpack and cache them, with netdevsim built and added.

A kernel is named ``debian-6.1`` (bookworm), ``debian-6.12`` (bookworm-backports) or by the path of
a kernel image. Debian kernels come from the Debian archive that the host's apt sources already
name: ``apt-get download`` fetches the image, headers, kbuild and source packages into the cache
(with an apt configuration of the kit's own under the cache, so the host's package lists and
sources are never changed: bookworm-backports, when the host does not list it, is added there with
the mirror and key of the host's own bookworm entry), and ``dpkg-deb -x`` unpacks them. Neither
Debian kernel ships netdevsim, so it is built out of tree from the source package's
``drivers/net/netdevsim`` against the matching headers, added to the module tree and indexed with
``depmod``. Only the kernel image and its module tree stay in the cache; a second run uses them as
they are, without any network access (``refresh=True`` looks for a newer kernel).

Cache: ``$XDPTEST_CACHE``, else ``/var/cache/xdptest`` for root, ``~/.cache/xdptest`` otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from xdptest.errors import ConfigError, XdpTestError

DEBIAN_KERNELS = {
    # name: (major.minor, suite relative to the host's release, extra suites the host may list)
    "debian-6.1": ("6.1", ""),
    "debian-6.12": ("6.12", "-backports"),
}
CODENAME = "bookworm"
TOOLS = {  # command -> Debian package
    "apt-get": "apt", "dpkg-deb": "dpkg", "make": "make", "depmod": "kmod", "xz": "xz-utils",
    "tar": "tar", "gcc-12": "gcc-12",
}


class KernelUnavailableError(XdpTestError, OSError):
    """A guest kernel could not be obtained or prepared (the message says what is missing)."""

    def __str__(self) -> str:
        return str(self.strerror)


@dataclass(frozen=True)
class KernelSpec:
    """What ``--xdptest-kernel`` names: a Debian kernel series, or a kernel image on disk."""

    name: str  # "debian-6.12", or the image's absolute path
    series: str | None = None  # "6.12" for a Debian kernel
    image: Path | None = None

    @classmethod
    def parse(cls, text: str) -> KernelSpec:
        text = text.strip()
        if text in DEBIAN_KERNELS:
            return cls(text, series=DEBIAN_KERNELS[text][0])
        if "/" in text or os.path.exists(text):
            path = Path(text).expanduser().resolve()
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
    with open(image, "rb") as f:
        head = f.read(0x4000)
        if head[0x202:0x206] != b"HdrS":
            raise ConfigError(f"{image} is not an x86 bzImage (no 'HdrS' setup header)")
        offset = int.from_bytes(head[0x20E:0x210], "little") + 0x200
        f.seek(offset)
        raw = f.read(256)
    release = raw.split(b" ", 1)[0].split(b"\0", 1)[0].decode(errors="replace")
    if not release:
        raise ConfigError(f"{image}: the setup header names no kernel version")
    return release


def _module_tree(image: Path, release: str) -> Path | None:
    here = image.parent
    for base in (here, here.parent, here / "..", Path("/")):
        for sub in ("lib/modules", "usr/lib/modules", "modules"):
            cand = (base / sub / release).resolve()
            if (cand / "modules.dep").is_file() or (cand / "modules.order").is_file():
                return cand
    return None


def has_module(modules: Path | None, name: str) -> bool:
    if modules is None:
        return False
    pattern = re.compile(rf"(^|/){re.escape(name)}\.ko(\.\w+)?(:|$)", re.M)
    for index in ("modules.dep", "modules.builtin"):
        path = modules / index
        if path.is_file() and pattern.search(path.read_text(errors="replace")):
            return True
    return False


def kernel_from_image(spec: KernelSpec) -> Kernel:
    assert spec.image is not None
    release = image_release(spec.image)
    modules = _module_tree(spec.image, release)
    return Kernel(spec.name, release, spec.image, modules, has_module(modules, "netdevsim"))


def missing_tools(names: Sequence[str] = tuple(TOOLS)) -> list[str]:
    """Debian packages that provide the commands that are missing on this machine."""
    return sorted({TOOLS[n] for n in names if shutil.which(n) is None and os.path.basename(n) in TOOLS})


def cached_kernel(spec: KernelSpec) -> Kernel | None:
    """The prepared kernel for ``spec`` from the cache (a path: the image itself), or None."""
    if spec.image is not None:
        return kernel_from_image(spec)
    return _load_current(cache_dir() / "kernels" / spec.name / "current.json")


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
    pass


def _load_current(path: Path) -> Kernel | None:
    try:
        data = json.loads(path.read_text())
        kernel = Kernel(data["name"], data["release"], path.parent / data["image"],
                        path.parent / data["modules"], bool(data["netdevsim"]))
    except (OSError, ValueError, KeyError):
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
    """Downloads, unpacks and prepares one Debian kernel series into the cache."""

    def __init__(self, spec: KernelSpec, root: Path, say: Callable[[str], None]) -> None:
        assert spec.series is not None
        self.spec = spec
        self.series = spec.series
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
        suffix = DEBIAN_KERNELS[self.spec.name][1]
        entries = host_debian_entries()
        if not entries:
            raise KernelUnavailableError(2, offline_message(
                self.spec.name, f"the host's apt sources name no Debian {CODENAME} archive", ""))
        parts = self.apt_dir / "sources.list.d"
        shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(parents=True)
        for d in ("lists/partial", "cache/archives/partial", "preferences.d"):
            (self.apt_dir / d).mkdir(parents=True, exist_ok=True)
        suites = [f"{CODENAME}{suffix}"] if suffix else [CODENAME, f"{CODENAME}-updates"]
        lines = []
        for uri, signed_by in entries:
            opts = f" [signed-by={signed_by}]" if signed_by else ""
            lines += [f"deb{opts} {uri} {s} main" for s in suites]
        if not suffix:  # security updates carry the newest 6.1 kernels
            lines += security_lines()
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

    def resolve(self) -> dict[str, str]:
        """Package names and the version for the newest kernel of the series."""
        opts = self.apt_options()
        show = self._run(["apt-cache", *opts, "show", "--no-all-versions", "linux-headers-amd64"],
                         "apt-cache show linux-headers-amd64")
        version, depends = _field(show, "Version"), _field(show, "Depends")
        m = re.search(r"linux-headers-(\S+)-amd64\b", depends)
        if not m or not version.startswith(self.series + "."):
            raise KernelUnavailableError(2, offline_message(
                self.spec.name, f"the archive offers no Linux {self.series} kernel", f"found {version or 'none'}"))
        abi = m.group(1)
        headers = self._run(["apt-cache", *opts, "show", "--no-all-versions", f"linux-headers-{abi}-amd64"],
                            f"apt-cache show linux-headers-{abi}-amd64")
        kbuild = re.search(r"(linux-kbuild-[^\s,(]+)", _field(headers, "Depends"))
        common = re.search(r"(linux-headers-[^\s,(]+-common)\b", _field(headers, "Depends"))
        if not kbuild or not common:
            raise KernelUnavailableError(2, f"linux-headers-{abi}-amd64 names no kbuild/common package")
        return {"version": version, "abi": abi, "image": f"linux-image-{abi}-amd64-unsigned",
                "headers": f"linux-headers-{abi}-amd64", "common": common.group(1),
                "kbuild": kbuild.group(1), "source": f"linux-source-{self.series}"}

    # --- the whole preparation -------------------------------------------------------------

    def build(self) -> Kernel:
        missing = missing_tools()
        if missing:
            raise KernelUnavailableError(2, f"preparing {self.spec.name} needs: apt-get install {' '.join(missing)}")
        self.say(f"xdptest-vm: looking up the newest {self.spec.name} kernel in the Debian archive")
        self.write_sources()
        self.update_lists()
        pkgs = self.resolve()
        version = pkgs["version"]
        kdir = self.root / "kernels" / self.spec.name
        target = kdir / version
        work = Path(tempfile.mkdtemp(prefix="build-", dir=kdir))
        try:
            debs = work / "debs"
            debs.mkdir()
            names = [f"{pkgs[k]}={version}" for k in ("image", "headers", "common", "kbuild", "source")]
            self.say(f"xdptest-vm: downloading {', '.join(names)}")
            self._run(["apt-get", *self.apt_options(), "download", *names], "apt-get download", cwd=debs)
            tree = work / "root"
            self.say("xdptest-vm: unpacking")
            for deb in sorted(debs.glob("*.deb")):
                if "linux-source" not in deb.name:
                    self._run(["dpkg-deb", "-x", str(deb), str(tree)], f"dpkg-deb -x {deb.name}")
            release = f"{pkgs['abi']}-amd64"
            modules = _first_dir(tree / "lib/modules" / release, tree / "usr/lib/modules" / release)
            image = tree / "boot" / f"vmlinuz-{release}"
            src = self._netdevsim_source(next(debs.glob("linux-source-*.deb")), work)
            self.say(f"xdptest-vm: building netdevsim for {release}")
            ko = self._build_netdevsim(tree, release, src)
            final = target / "root"
            shutil.rmtree(target, ignore_errors=True)
            (final / "boot").mkdir(parents=True)
            (final / "lib/modules").mkdir(parents=True)
            os.replace(image, final / "boot" / image.name)
            for link in ("build", "source"):
                with contextlib.suppress(FileNotFoundError):
                    (modules / link).unlink()
            modules = final / "lib/modules" / release
            os.replace(_first_dir(tree / "lib/modules" / release, tree / "usr/lib/modules" / release), modules)
            (modules / "extra").mkdir(exist_ok=True)
            shutil.copy2(ko, modules / "extra" / "netdevsim.ko")
            self._run(["depmod", "-b", str(final), release], "depmod")
            if not has_module(modules, "netdevsim"):
                raise KernelUnavailableError(5, "depmod did not index the netdevsim module")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        info = {"name": self.spec.name, "release": release, "version": version,
                "image": str((final / "boot" / image.name).relative_to(kdir)),
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

    def _netdevsim_source(self, deb: Path, work: Path) -> Path:
        member = f"./usr/src/linux-source-{self.series}.tar.xz"
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
        top = f"linux-source-{self.series}"
        self._run(["tar", "-xJf", str(tarball), "-C", str(work), "--wildcards", f"{top}/drivers/net/netdevsim/*"],
                  "extracting drivers/net/netdevsim from the kernel source")
        tarball.unlink()
        return work / top / "drivers/net/netdevsim"

    def _build_netdevsim(self, tree: Path, release: str, src: Path) -> Path:
        headers = tree / "usr/src" / f"linux-headers-{release}"
        makefile = headers / "Makefile"
        # The headers' Makefile includes the -common tree by absolute path: point it into ours.
        text = makefile.read_text()
        makefile.write_text(re.sub(r"^include /usr/src/", f"include {tree}/usr/src/", text, flags=re.M))
        argv = ["make", "-s", "-C", str(headers), f"M={src}", "CONFIG_NETDEVSIM=m",
                # module BTF needs pahole; netdevsim works without it
                "CONFIG_DEBUG_INFO_BTF_MODULES=", f"-j{os.cpu_count() or 2}", "modules"]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        ko = src / "netdevsim.ko"
        if proc.returncode != 0 or not ko.is_file():
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise KernelUnavailableError(5, f"building netdevsim for {release} failed:\n{tail}")
        return ko


def _first_dir(*paths: Path) -> Path:
    for path in paths:
        if path.is_dir():
            return path
    raise KernelUnavailableError(2, f"the kernel package has no module tree ({paths[0]})")


def _field(text: str, name: str) -> str:
    m = re.search(rf"^{name}: (.*)$", text, re.M)
    return m.group(1).strip() if m else ""


def _source_files() -> list[Path]:
    files = [Path("/etc/apt/sources.list")]
    parts = Path("/etc/apt/sources.list.d")
    if parts.is_dir():
        files += sorted(parts.glob("*.list")) + sorted(parts.glob("*.sources"))
    return [f for f in files if f.is_file()]


def parse_sources(text: str, deb822: bool) -> list[tuple[str, list[str], str | None]]:
    """(URI, suites, signed-by) for each ``deb`` entry in one apt sources file."""
    out: list[tuple[str, list[str], str | None]] = []
    if deb822:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split() or fields.get("enabled", "yes") == "no":
                continue
            for uri in fields.get("uris", "").split():
                out.append((uri, fields.get("suites", "").split(), _keyring(fields.get("signed-by"))))
        return out
    for line in text.splitlines():
        m = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)", line)
        if m:
            signed = re.search(r"signed-by=(\S+)", m.group(1) or "")
            out.append((m.group(2), [m.group(3)], _keyring(signed.group(1) if signed else None)))
    return out


def _keyring(value: str | None) -> str | None:
    """A Signed-By keyring path (an inline key is left to apt's default keyrings)."""
    return value if value and value.startswith("/") else None


def _all_entries() -> list[tuple[str, list[str], str | None]]:
    entries = []
    for f in _source_files():
        with contextlib.suppress(OSError):
            entries += parse_sources(f.read_text(), f.suffix == ".sources")
    return entries


def host_debian_entries() -> list[tuple[str, str | None]]:
    """Mirrors (URI, signed-by) of the host's Debian bookworm entries."""
    seen: list[tuple[str, str | None]] = []
    for uri, suites, signed in _all_entries():
        if CODENAME in suites and (uri, signed) not in seen:
            seen.append((uri, signed))
    return seen


def security_lines() -> list[str]:
    lines = []
    for uri, suites, signed in _all_entries():
        if f"{CODENAME}-security" in suites:
            opts = f" [signed-by={signed}]" if signed else ""
            lines.append(f"deb{opts} {uri} {CODENAME}-security main")
    return lines
