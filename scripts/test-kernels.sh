#!/usr/bin/env bash
# CI stage after the host suite: the kernel subset inside debian-5.10, debian-6.1, debian-6.12 and
# debian-latest guests, one kernel after another; the same subset in two kernels given by path as
# unpacked packages (5.10's old layout and the newest split one); then the host tests that boot
# guests themselves: a failing test in a guest fails the host run, the two-kernel matrix (one
# pytest command, each result per kernel), and trees the kit must refuse. Prints one line per
# kernel at the end and exits non-zero if anything failed. The first run downloads the kernels and
# builds netdevsim (25-60 s each); later runs use the cache ($XDPTEST_CACHE, default
# /var/cache/xdptest).
#   scripts/test-kernels.sh                 # all four kernels, and two by path
#   XDPTEST_KERNELS=debian-6.12 scripts/test-kernels.sh
#   XDPTEST_NO_BY_PATH=1 scripts/test-kernels.sh
set -uo pipefail
cd "$(dirname "$0")/.."

# What the guests need on the host, installed only when missing.
packages=(
  qemu-system-x86       # the guest (KVM where it can boot a stock kernel, emulation otherwise)
  busybox-static        # the guest's initramfs
  kmod                  # depmod for netdevsim, modprobe inside the guest
  gcc-12 make xz-utils  # building netdevsim against the kernel's headers
  ethtool iproute2      # used by the tests inside the guest
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "xdptest: missing Debian packages: ${missing[*]}; run as root to install them" >&2
    exit 2
  fi
  echo "xdptest: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || exit 2
fi
if [ ! -x .venv/bin/xdptest-gen ]; then
  scripts/install-deps.sh && scripts/venv.sh || exit $?
fi

# The subset (about 8 minutes per kernel under emulation, about 230 tests): netdevsim (tests/vm)
# and the tests that exercise the kernel rather than the host's Python: attach modes, programs,
# topology, AF_XDP rings, poll, busy poll, loops, XDP_STATISTICS and the invalid-descriptor tables
# and fuzzer (their expected values per kernel), traffic, whole-frame and verbatim verification,
# the live-frames program and engine, replay and TX capture. The same on every kernel: what a
# kernel lacks skips naming the feature and the Linux version that brought it. Left out: the slow
# end-to-end command, README, plugin and cleanup tests (they test Python the host run already
# covers).
subset=(
  tests/vm
  tests/kernel/test_programs.py
  tests/kernel/test_probes.py
  tests/kernel/test_topology.py
  tests/kernel/test_attach.py
  tests/kernel/test_xsk_programs.py
  tests/kernel/test_xsk_loops.py
  tests/kernel/test_xsk_poll.py
  tests/kernel/test_xsk_busy_poll.py
  tests/kernel/test_xsk_traffic.py
  tests/kernel/test_xsk_lifecycle.py
  --deselect tests/kernel/test_xsk_lifecycle.py::test_no_leaks_over_1000_cycles
  tests/kernel/test_xsk_stats.py
  tests/kernel/test_fault_descriptors.py
  tests/kernel/test_traffic.py
  tests/kernel/test_whole_frame.py
  tests/kernel/test_verbatim.py
  tests/kernel/test_live_program.py
  tests/kernel/test_live_traffic.py
  tests/kernel/test_replay_and_tx_capture.py
  tests/kernel/test_veth_peer.py
  tests/kernel/test_pins.py
  tests/kernel/test_global_data.py
)
read -r -a kernels <<< "${XDPTEST_KERNELS:-debian-5.10 debian-6.1 debian-6.12 debian-latest}"
export XDPTEST_VM_TIMEOUT=${XDPTEST_VM_TIMEOUT:-900}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

summary() {  # junit file, label, pytest status
  .venv/bin/python - "$@" <<'PY'
import sys
import xml.etree.ElementTree as ET

path, label, rc = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    root = ET.parse(path).getroot()
except (OSError, ET.ParseError):
    print(f"{label}: failed (no report; exit status {rc})")
    sys.exit(1)
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
failed = n["failures"] + n["errors"]
passed = n["tests"] - failed - n["skipped"]
print(f"{label}: {passed} passed, {failed} failed, {n['skipped']} skipped")
sys.exit(1 if failed or rc not in (0,) or passed == 0 else 0)
PY
}

status=0
lines=()
run_subset() {  # label, kernel argument
  local label=$1 kernel=$2 start=$SECONDS rc line
  echo "=== $label"
  .venv/bin/python -m pytest --xdptest-kernel "$kernel" -q -rfEs --junitxml="$out/${label// /_}.xml" "${subset[@]}"
  rc=$?
  line=$(summary "$out/${label// /_}.xml" "$label" "$rc") || status=1
  lines+=("$line ($((SECONDS - start)) s)")
}
for k in "${kernels[@]}"; do
  run_subset "kernel $k" "$k"
done

# Kernels given by path, laid out as their unpacked packages (no modules.dep): bullseye's
# linux-image (old layout, by image) and sid's linux-binary + linux-modules (split, by directory).
# Their module indexes are written to a throw-away cache.
if [ -z "${XDPTEST_NO_BY_PATH:-}" ]; then
  for spec in "old debian-5.10 unpacked-5.10" "split debian-latest unpacked-latest"; do
    read -r layout name label <<< "$spec"
    case " ${kernels[*]} " in *" $name "*) ;; *) continue ;; esac
    if path=$(.venv/bin/python -m tests.vm.unpacked "$layout" "$name" "$out/$label"); then
      XDPTEST_CACHE="$out/cache" run_subset "kernel $label ($layout layout, by path)" "$path"
    else
      lines+=("kernel $label: failed (could not lay out $name)"); status=1
    fi
  done
fi

echo "=== host tests that boot guests: exit status, the matrix, kernels by path"
start=$SECONDS
matrix=$(IFS=,; echo "${kernels[*]:0:2}")
[ ${#kernels[@]} -ge 2 ] || matrix="debian-6.1,debian-6.12"
XDPTEST_GUEST_TESTS=1 XDPTEST_STATUS_KERNEL=${kernels[-1]} XDPTEST_MATRIX_KERNELS=$matrix \
  .venv/bin/python -m pytest -q -rfEs \
  -p no:cacheprovider --junitxml="$out/status.xml" \
  tests/vm/test_guest_status.py tests/vm/test_kernel_matrix.py tests/vm/test_kernel_by_path.py
rc=$?
line=$(summary "$out/status.xml" "guests from the host" "$rc") || status=1
lines+=("$line ($((SECONDS - start)) s)")

printf '%s\n' "${lines[@]}"
exit $status
