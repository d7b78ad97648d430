"""The dependency rules of vqcodec/ARCHITECTURE.md, checked by reading each module's imports with ast.

Every module of ``vqcodec/`` and ``cli/`` (installed as ``vqcodec.cli``)
belongs to one layer; a module may import modules of the layers below its
own, and within its layer only the peers listed in :data:`PEERS`.  A module
the table does not know fails the test (it fails closed): a new module is
placed in a layer on purpose.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# lowest first
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {"errors", "limits", "_threads", "_native", "space"}),
    ("algorithms", {"pixels", "fileio", "metrics", "packing", "quantize", "quantize.histogram",
                    "quantize.kmeans", "quantize.nearest", "quantize.learn", "quantize.remap",
                    "quantize.rdo", "quantize.codebook", "quantize.blocks", "quantize.dither"}),
    ("coders", {"coders", "coders.zstd", "coders.bzip2", "coders.rans", "coders.ctx", "coders.cand"}),
    ("format", {"container", "vqb"}),
    ("pipeline", {"options", "choose", "target", "codec", "books"}),
    ("tools", {"rd", "rd.rows", "rd.codecs", "rd.sweep", "rd.bdrate", "rd.present", "batch", "pillow_plugin",
               "training", "tokenizer"}),
    ("facade", {"__init__"}),
    ("cli", {"__main__", "cli", "cli.errors", "cli.commands", "cli.io", "cli.report", "cli.batch",
             "cli.progress", "cli.rd", "cli.train", "cli.tokens", "cli.parsers"}),
]
LAYER = {module: i for i, (_, modules) in enumerate(LAYERS) for module in modules}

# imports allowed inside a layer (the algorithms are leaves: they never import each other)
PEERS: dict[str, set[str]] = {
    "limits": {"errors"},
    "quantize": {"quantize.histogram", "quantize.kmeans", "quantize.nearest", "quantize.learn",
                 "quantize.remap", "quantize.rdo", "quantize.codebook", "quantize.blocks",
                 "quantize.dither"},
    "quantize.histogram": {"quantize.blocks"},
    "quantize.kmeans": {"quantize.nearest", "quantize.histogram"},
    "quantize.learn": {"quantize.kmeans", "quantize.nearest", "quantize.histogram", "quantize.codebook"},
    "quantize.remap": {"quantize.nearest", "quantize.rdo", "quantize.codebook", "quantize.histogram",
                       "quantize.blocks", "quantize.dither"},
    "coders.zstd": {"coders"},
    "coders.bzip2": {"coders"},
    "coders.rans": {"coders"},
    "coders.ctx": {"coders", "coders.rans"},
    "coders.cand": {"coders", "coders.rans", "coders.ctx", "coders.zstd"},
    "container": {"vqb"},
    "choose": {"options"},
    "options": {"books"},
    "target": {"options"},
    "codec": {"options", "choose", "books", "target"},
    "rd": {"rd.rows", "rd.codecs", "rd.sweep", "rd.bdrate", "rd.present"},
    "rd.codecs": {"rd.rows"},
    "rd.sweep": {"batch", "rd.codecs", "rd.rows", "rd.bdrate"},
    "rd.present": {"rd.codecs", "rd.rows", "rd.sweep"},
    "training": {"batch", "tokenizer"},
    "tokenizer": {"batch"},
    "__main__": {"cli"},
    "cli": {"cli.errors", "cli.commands", "cli.io"},
    "cli.commands": {"cli.errors", "cli.io", "cli.report", "cli.batch", "cli.rd", "cli.progress", "cli.train",
                     "cli.tokens", "cli.parsers"},
    "cli.parsers": {"cli.rd"},  # the parsers import no handler
    "cli.tokens": {"cli.errors", "cli.progress", "cli.commands", "cli.batch", "cli.parsers"},
    "cli.train": {"cli.errors", "cli.progress", "cli.commands", "cli.batch", "cli.io", "cli.parsers"},
    "cli.io": {"cli.errors"},
    "cli.batch": {"cli.errors", "cli.progress", "cli.commands", "cli.io", "cli.parsers"},
    "cli.rd": {"cli.errors", "cli.progress", "cli.io"},
}


def module_name(path: Path, root: Path = ROOT) -> str:
    """'errors', 'coders.ctx', 'cli.commands', '__init__' for vqcodec/__init__.py."""
    rel = path.relative_to(root).with_suffix("")
    parts = list(rel.parts)
    if parts[0] == "vqcodec":
        parts = parts[1:]
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def package_of(path: Path, root: Path = ROOT) -> list[str]:
    """The dotted package a module's relative imports start from, as a list."""
    name = module_name(path, root)
    parts = [] if name == "__init__" else name.split(".")
    return parts if path.name == "__init__.py" else parts[:-1]


def resolve(name: str) -> str | None:
    """A dotted name below vqcodec ('cli.x' for vqcodec.cli.x) -> the module it is, if ours."""
    while name:
        if name in LAYER or name == "":
            return name
        name = name.rpartition(".")[0]
    return None


def package_imports(path: Path, root: Path = ROOT) -> set[str]:
    """The modules of vqcodec (and its CLI) that *path* imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = package_of(path, root)
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                assert node.level - 1 <= len(package), f"{path}: relative import above the package"
                base = package[: len(package) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            elif node.module and (node.module == "vqcodec" or node.module.startswith("vqcodec.")):
                prefix = node.module[len("vqcodec."):] if node.module != "vqcodec" else ""
            else:
                continue
            for alias in node.names:
                full = f"{prefix}.{alias.name}" if prefix else alias.name
                targets.append(full if resolve(full) == full else prefix)
        elif isinstance(node, ast.Import):
            targets = [a.name[len("vqcodec."):] for a in node.names if a.name.startswith("vqcodec.")]
        for target in targets:
            module = resolve(target) if target else "__init__"
            assert module is not None, f"{path}: imports vqcodec.{target}, a module the layer table does not know"
            found.add(module)
    return found


MODULES = sorted([*(ROOT / "vqcodec").rglob("*.py"), *(ROOT / "cli").rglob("*.py")])


def test_every_module_is_in_a_layer():
    names = {module_name(p) for p in MODULES}
    unknown = sorted(names - set(LAYER))
    assert not unknown, f"modules in no layer of tests/test_layering.py: {unknown}"
    gone = sorted(set(LAYER) - names)
    assert not gone, f"the layer table names modules that do not exist: {gone}"


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down(path):
    name = module_name(path)
    assert name in LAYER, f"{name} is in no layer (add it to LAYERS on purpose)"
    for imported in package_imports(path) - {name}:
        if imported == "__init__" and name.startswith("cli"):
            continue  # the CLI uses the facade (the layer below it)
        here, there = LAYER[name], LAYER[imported]
        allowed = there < here or imported in PEERS.get(name, set())
        assert allowed, (f"{name} ({LAYERS[here][0]}) imports {imported} ({LAYERS[there][0]}): "
                         "dependencies point down, and peers only as PEERS lists")


def test_the_library_never_imports_the_cli():
    for path in MODULES:
        name = module_name(path)
        if LAYER[name] < LAYER["__main__"]:
            assert not {m for m in package_imports(path) if m.startswith("cli")}, name


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


def test_the_checker_sees_relative_and_absolute_imports(tmp_path):
    """package_imports on made-up modules, one in a package and one at the top."""
    folder = tmp_path / "vqcodec" / "coders"
    folder.mkdir(parents=True)
    (folder / "ctx.py").write_text(
        "from .. import packing\nfrom . import Coder\nfrom ..errors import FormatError\n"
        "import vqcodec.container\nfrom vqcodec.cli import errors\nimport numpy\n")
    assert package_imports(folder / "ctx.py", tmp_path) == {
        "packing", "coders", "errors", "container", "cli.errors"}
    (tmp_path / "vqcodec" / "codec.py").write_text("from . import coders, options\nfrom .coders import zstd\n")
    assert package_imports(tmp_path / "vqcodec" / "codec.py", tmp_path) == {"coders", "options", "coders.zstd"}
    (tmp_path / "vqcodec" / "bad.py").write_text("from .nowhere import something\n")
    with pytest.raises(AssertionError, match="does not know"):
        package_imports(tmp_path / "vqcodec" / "bad.py", tmp_path)
