#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages xdptest needs, only those that are missing.
# Safe to run again: with everything present it changes nothing and needs no network.
set -euo pipefail

packages=(
  clang llvm            # compile bpf/*.bpf.c (clang -target bpf)
  libbpf-dev libelf-dev zlib1g-dev pkg-config gcc  # build the cffi extension against libbpf
  linux-libc-dev        # kernel UAPI headers (linux/if_xdp.h, linux/bpf.h)
  iproute2 ethtool      # ip netns exec, ethtool -S in tests and docs
  tcpdump               # reading captures in tests
  bpftool               # tests list every BPF program and map to prove nothing leaked
  strace                # a test proves that sessions not using the plugin make no bpf() call
  chromium              # a test opens xdptest-gen --plot's page in a real headless browser
)

# A Python without venv or headers needs the distribution's packages too.
python=${PYTHON:-python3}
command -v "$python" >/dev/null || packages+=(python3)
if command -v "$python" >/dev/null; then
  "$python" -c 'import venv, ensurepip' 2>/dev/null || packages+=(python3-venv)
  inc=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] || packages+=(python3-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "xdptest: missing Debian packages: ${missing[*]}; run as root (sudo) to install them" >&2
  exit 2
fi
echo "xdptest: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
