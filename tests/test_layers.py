"""The package's layers, checked on the source: lower layers never import upper ones.

``formats`` (file formats) knows nothing else; ``catalog``/``store``/``accounts`` build on
it; ``ingest``, ``grading``, ``transfer``, ``learn``… are services on those; ``web``,
``client`` and ``cli`` are thin layers on top. PyTorch is imported only inside ``learn``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "cryocurate"

# Rank of each top-level part of the package: a module may import from its own rank or lower.
RANKS = {
    "errors": 0,
    "atomic": 0,
    "__init__": 0,
    "formats": 1,
    "evaluation": 1,
    "catalog": 2,
    "store": 2,
    "portal": 2,
    "accounts": 3,
    "ingest": 4,
    "grading": 4,
    "transfer": 4,
    "synth": 4,
    "learn": 4,
    "demo": 5,
    "web": 6,
    "client": 6,
    "cli": 6,
    "__main__": 7,
}


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else "__init__"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _modules() -> list[tuple[str, Path]]:
    return [
        (".".join(("cryocurate", *p.relative_to(PACKAGE).with_suffix("").parts)), p)
        for p in sorted(PACKAGE.rglob("*.py"))
    ]


def test_every_part_has_a_rank():
    parts = {_part(name) for name, _ in _modules()}
    assert parts <= set(RANKS), parts - set(RANKS)


def test_lower_layers_never_import_upper_ones():
    wrong = []
    for name, path in _modules():
        rank = RANKS[_part(name)]
        for imported in _imports(path):
            if imported == "cryocurate" or not imported.startswith("cryocurate."):
                continue
            if RANKS[_part(imported)] > rank:
                wrong.append(f"{name} imports {imported}")
    assert wrong == []


def test_torch_only_inside_learn():
    users = [
        name
        for name, path in _modules()
        if any(i == "torch" or i.startswith("torch.") for i in _imports(path))
    ]
    assert all(name.startswith("cryocurate.learn.") for name in users), users
