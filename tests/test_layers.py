"""The layout is the architecture: a module imports only from its own layer or the layers below it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "saro"
# Lowest first. Within a layer, modules may import each other.
LAYERS = [
    {"errors", "config", "records", "policy", "chat", "refusal", "generation", "data"},
    {"sources", "models", "teachers", "sampling", "preference"},
    {"synthesis", "training"},
    {"evaluation"},
    {"reporting", "analysis", "sweep", "pipeline", "serve", "check"},
    {"cli"},
]


def _layer(name: str) -> int:
    top = name.split(".")[1] if name.startswith("saro.") else name
    return next(i for i, layer in enumerate(LAYERS) if top in layer)


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) == 2:
            continue
        own = _layer(parts[1])
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                if name.startswith("saro.") and _layer(name) > own:
                    wrong.append(f"{'/'.join(parts)} imports {name}")
    assert not wrong, "\n".join(wrong)
