"""The dependency rules of GUIDE.md, checked by reading each module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEAVES = {"errors", "pixels", "quantize", "packing", "container", "metrics", "fileio", "rdo",
          "ctxcoder"}
# The index coders are the container's business, as zstd and bzip2 are: the
# container may use the context-model coder, and that coder its C loops.
LEAF_EXTRAS = {"container": {"ctxcoder"}, "ctxcoder": {"_ctxcoder"}, "rdo": {"_rdo"},
               "metrics": {"_ssim"}, "quantize": {"_quantize"}}
# what any module may import: the error family, and the one thread helper
SHARED = {"errors", "_threads"}
# what each non-leaf module may import from the package
ALLOWED = {
    "codec": LEAVES,
    "rd": LEAVES | {"codec"},
    "batch": LEAVES | {"codec"},
    "pillow_plugin": LEAVES | {"codec"},
    "__init__": LEAVES | {"codec", "pillow_plugin"},
    "__main__": {"cli"},
}


def package_imports(path: Path) -> set[str]:
    """Names of vqcodec modules that *path* imports (relative or absolute)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("vqcodec"):
                parts = node.module.split(".")
                if len(parts) > 1:
                    found.add(parts[1])
                else:
                    found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "vqcodec" and len(parts) > 1:
                    found.add(parts[1])
    return found


MODULES = sorted(p for p in (ROOT / "vqcodec").glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.stem)
def test_module_imports_point_one_way(path):
    name = path.stem
    imports = package_imports(path) - {name}
    if name in LEAVES:
        assert imports <= SHARED | LEAF_EXTRAS.get(name, set()), f"leaf {name} imports {sorted(imports)}"
    else:
        allowed = ALLOWED.get(name, LEAVES | {"codec"})
        assert imports <= allowed | SHARED, f"{name} imports {sorted(imports - allowed)}"
    assert "cli" not in imports or name == "__main__", f"{name} imports the CLI"


def test_nothing_under_vqcodec_imports_cli_except_main_shim():
    for path in MODULES:
        if path.stem == "__main__":
            continue
        assert "cli" not in package_imports(path), path


def test_scipy_not_imported_at_module_level():
    """scipy costs ~0.6 s of start-up; the library must not import it eagerly."""
    for path in MODULES:
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.split(".")[0] in {"scipy", "matplotlib"} for n in names), path
