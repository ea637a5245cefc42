"""The kit's layering, checked: each module imports only from its own layer or the ones below.

Lowest first (README, "Development" has the same list):

0. base: errors, the version, limits, teardown, signals, capabilities, the name registry, pcap files
1. data: packet templates, expected frames, traffic options, the report, frame diffs and the
   assertions, BTF
2. native: the private tier over the compiled part (``xdptest._native``, the only user of ffi/lib)
3. system: namespaces and links, netdevsim, private bpffs mounts, the guests (``xdptest.vm``)
4. programs: BPF objects, their maps and global variables, built-in programs, feature probes
5. sockets: UMEM and AF_XDP sockets
6. engines: traffic runs, live frames, failure artifacts
7. faces: the command, the pytest plugin, the leftover reaper, the package's lazy facade
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS: dict[str, int] = {
    "xdptest.errors": 0, "xdptest._version": 0, "xdptest.limits": 0, "xdptest.teardown": 0,
    "xdptest.signals": 0, "xdptest.caps": 0, "xdptest.registry": 0, "xdptest.pcapfile": 0,
    "xdptest._toolchain": 0,
    "xdptest.packets": 1, "xdptest.options": 1, "xdptest.report": 1, "xdptest.assertions": 1,
    "xdptest.strategies": 1, "xdptest.btf": 1, "xdptest.framediff": 1, "xdptest.expect": 1, "xdptest.plot": 1,
    "xdptest._native": 2,
    "xdptest.nsexec": 3, "xdptest.netns": 3, "xdptest.netdev": 3, "xdptest.netdevsim": 3, "xdptest.vm": 3,
    "xdptest.pins": 3,
    "xdptest.bpf": 4, "xdptest.builtin": 4, "xdptest.features": 4, "xdptest.maps": 4, "xdptest.variables": 4,
    "xdptest.veth_peer": 4,
    "xdptest.umem": 5, "xdptest.xsk": 5, "xdptest.xsk_shared": 5, "xdptest.framelen": 5,
    "xdptest.traffic": 6, "xdptest.runreport": 6, "xdptest.intervals": 6, "xdptest.live": 6, "xdptest.artifacts": 6,
    "xdptest.cli": 7, "xdptest.plugin": 7, "xdptest.plugin_report": 7, "xdptest.plugin_guest": 7,
    "xdptest.plugin_matrix": 7, "xdptest.leftovers": 7,
    "xdptest": 7,
}
MAX_LINES = 600


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    """A module's layer: its own entry, or its package's (xdptest.vm.boot is in xdptest.vm's)."""
    name = module
    while name not in LAYERS:
        name = name.rsplit(".", 1)[0]
        if name == "xdptest":  # the facade's layer is not a default: every module is placed
            raise KeyError(f"{module} has no layer: add it to LAYERS (and README)")
    return LAYERS[name]


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every xdptest import in a file, at any depth (function-level too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("xdptest")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xdptest"):
            if node.module == "xdptest":  # from xdptest import packets: the submodule is what counts
                found += [(node.lineno, f"xdptest.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


SOURCES = sorted(p for p in (ROOT / "xdptest").rglob("*.py"))


def _upward(module: str, path: Path) -> list[str]:
    own = _layer(module)
    return [f"line {line}: {imported} (layer {_layer(imported)} above {own})"
            for line, imported in _imports(path) if _layer(imported) > own]


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_module_imports_from_a_layer_above_it(path: Path) -> None:
    module = _module_name(path)
    upward = _upward(module, path)
    assert not upward, f"{module} imports from above: " + "; ".join(upward)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_only_the_native_tier_touches_ffi_and_lib(path: Path) -> None:
    module = _module_name(path)
    if module.startswith("xdptest._native"):
        return
    imported = [m for _, m in _imports(path)]
    assert "xdptest._native._ffi" not in imported
    text = path.read_text()
    assert "import ffi" not in text and "ffi, lib" not in text


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: _module_name(p))
def test_no_module_is_over_600_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def test_the_layer_check_can_fail(tmp_path: Path) -> None:
    """The check itself: a base module importing an engine, even inside a function, is reported."""
    bad = tmp_path / "errors.py"
    bad.write_text("def f():\n    from xdptest import traffic\n    import xdptest.vm.boot\n")
    assert _upward("xdptest.errors", bad) == ["line 2: xdptest.traffic (layer 6 above 0)",
                                               "line 3: xdptest.vm.boot (layer 3 above 0)"]
    with pytest.raises(KeyError):
        _layer("xdptest.newmodule")  # a module nobody placed fails the test that meets it
