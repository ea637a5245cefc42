"""``xdptest-leftovers``: find, and optionally remove, what the kit left on this machine.

Lists ``xt*`` network namespaces, ``xt*`` links in the current namespace, XDP programs of the
kit (names starting ``xt_``) attached to interfaces here, and the kit's private bpffs mounts (pin
roots, with their pins). ``--check`` exits 1 when anything is found (CI runs it after the suite);
``--remove`` removes the namespaces and pin roots recorded by processes that died, and with
``--all`` every ``xt*`` namespace and kit pin root that no live kit process owns.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass, field

from xdptest import registry
from xdptest.nsexec import NETNS_RUN_DIR


@dataclass
class Leftovers:
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    programs: list[str] = field(default_factory=list)
    pin_roots: list[str] = field(default_factory=list)  # private bpffs mounts, with their pins

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.links or self.programs or self.pin_roots)


def _live_owned() -> set[str]:
    """Namespaces and pin roots recorded by kit processes that are still running."""
    owned: set[str] = set()
    if not registry.STATE_DIR.is_dir():
        return owned
    for path in registry.STATE_DIR.glob("*.json"):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if registry._is_alive(int(body.get("pid", 0)), body.get("start")):
            owned.update(body.get("netns", []))
            owned.update(body.get("pins", []))
    return owned


def find(include_live: bool = False) -> Leftovers:
    """What the kit left behind; namespaces of live kit processes count only with include_live."""
    found = Leftovers()
    live = set() if include_live else _live_owned()
    with contextlib.suppress(FileNotFoundError):
        found.namespaces = sorted(
            n for n in os.listdir(NETNS_RUN_DIR) if n.startswith(registry.PREFIX) and n not in live
        )
    from pyroute2 import IPRoute

    from xdptest.pins import leftover_roots

    found.pin_roots = [root for root in leftover_roots() if include_live or root not in live]

    from xdptest._native.bpf import prog_info_by_id
    from xdptest.bpf import _Iface as Iface
    from xdptest.bpf import _xdp_state

    with IPRoute() as ipr:
        for link in ipr.get_links():
            name = link.get_attr("IFLA_IFNAME")
            if name.startswith(registry.PREFIX):
                found.links.append(name)
            for mode, prog_id in _xdp_state(Iface(None, link["index"], name)).items():
                prog_name = prog_info_by_id(prog_id)
                if prog_name.startswith("xt_"):
                    found.programs.append(f"{prog_name} (id {prog_id}) on {name} ({mode})")
    return found


def remove(all_unowned: bool = False) -> list[str]:
    """Remove namespaces and pin roots of dead kit processes (and with all_unowned, any unowned
    xt* namespace or kit pin root)."""
    from xdptest.netns import _remove_netns, reap_leftovers
    from xdptest.pins import remove_root

    removed = reap_leftovers()
    if all_unowned:
        unowned = find()
        for name in unowned.namespaces:
            with contextlib.suppress(FileNotFoundError):
                _remove_netns(name)
                removed.append(name)
        for root in unowned.pin_roots:
            with contextlib.suppress(OSError):
                remove_root(root)
                removed.append(root)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="xdptest-leftovers", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is left behind")
    parser.add_argument("--remove", action="store_true",
                        help="remove namespaces recorded by kit processes that died")
    parser.add_argument("--all", action="store_true",
                        help="with --remove: also every xt* namespace no live kit process owns")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("xdptest-leftovers: run as root (it reads and removes namespaces)", file=sys.stderr)
        return 2
    if args.remove:
        for name in remove(args.all):
            print(f"removed {name}")
    found = find()
    for kind, items in (("namespace", found.namespaces), ("link", found.links),
                        ("attached program", found.programs), ("pin root (bpffs)", found.pin_roots)):
        for item in items:
            print(f"left behind: {kind} {item}")
    if not found:
        print("xdptest-leftovers: nothing left behind")
    return 1 if (args.check and found) else 0


if __name__ == "__main__":
    sys.exit(main())
