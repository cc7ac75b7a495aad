"""The import graph runs one way: no module imports from a layer above its own.

Every ``import musegen.x`` and ``from musegen.x import ...`` counts, also the
ones inside functions (they are how the lazy heavy imports are written, and an
upward arrow is just as real there).
"""

from __future__ import annotations

import ast
from pathlib import Path

import musegen

PACKAGE = Path(musegen.__file__).parent

#: lowest first; a module may import from its own layer and the ones before it
LAYERS = [
    {"", "errors", "limits", "atomic", "cache", "memory", "theory", "tomlout", "outputs"},
    {"midi", "audio"},
    {"render", "presets"},
    {"engines"},
    {"style", "provenance"},
    {"pipeline", "actions"},
    {"batch"},
    {"api", "studio"},
    {"cli", "__main__"},
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _part(module: str) -> str:
    """``musegen.engines.symbolic.tokens`` -> ``engines``; ``musegen`` -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "musegen":  # from musegen import api, limits
                yield from (f"musegen.{a.name}" for a in node.names)
            elif node.module.startswith("musegen."):
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("musegen."))


def _graph() -> list[tuple[str, str, str]]:
    """``(file, importer part, imported part)`` for every import inside the package."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        for target in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            part = _part(target)
            if part == "__version__":
                part = ""
            out.append((str(path.relative_to(PACKAGE)), _part(module), part))
    return out


def test_every_package_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    parts = {"" if p == "__init__" else p for p in parts}
    assert parts - LAYER_OF.keys() == set(), "give each new module a layer in LAYERS"


def test_no_import_runs_up_the_layers():
    upward = [f"{file}: {src} (layer {LAYER_OF[src]}) imports {dst} (layer {LAYER_OF[dst]})"
              for file, src, dst in _graph()
              if src in LAYER_OF and dst in LAYER_OF and LAYER_OF[dst] > LAYER_OF[src]]
    assert not upward, "\n".join(upward)


def test_the_check_sees_function_level_imports(tmp_path):
    """The walker finds an import written inside a function (the lazy style used here)."""
    tree = ast.parse("def f():\n    from musegen.cli.main import main\n    import musegen.api\n")
    assert list(_imports(tree)) == ["musegen.cli.main", "musegen.api"]
