"""The package's import graph flows one way (design.md, "Contracts, second version"):
cli -> serving/export/tune -> runner/sweep -> tasks/experiment -> training -> evaluation loop, significance
tests and reports -> models -> kinds -> modules/data/ops/metrics -> config -> errors. An import against that direction is a design bug."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "polytask"

LAYERS = {"errors": 0, "config": 0, "catalog": 0, "data": 1, "modules": 1, "ops": 1, "evaluation": 1, "kinds": 2,
          "models": 3, "evaluation.evaluate": 4, "evaluation.significance": 4, "evaluation.report": 4,
          "training": 5, "tasks": 6, "experiment": 6, "data_check": 7, "runner": 7, "sweep": 7, "serving": 8,
          "export": 8, "tune": 8, "cli": 9}


def layer(module: str) -> int:
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in LAYERS:
            return LAYERS[".".join(parts[:n])]
    raise KeyError(f"{module}: not placed in a layer; add it to LAYERS")


def imports(path: Path) -> list[str]:
    """Every polytask module ``path`` imports, at the top or inside a function."""
    module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if path.name == "__init__.py":
        package = package[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - node.level + 1]
            names = [node.module] if node.module else [a.name for a in node.names]
            out += [".".join(base + [n]) for n in names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("polytask."):
            out.append(node.module[len("polytask."):])
        elif isinstance(node, ast.Import):
            out += [a.name[len("polytask."):] for a in node.names if a.name.startswith("polytask.")]
    return out


def test_no_module_imports_against_the_layers():
    back = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue                                   # the package's front door re-exports
        module = ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for target in imports(path):
            if layer(target) > layer(module):
                back.append(f"{module} -> {target}")
    assert back == []


def test_the_layer_rule_catches_a_back_edge(tmp_path):
    assert layer("config") < layer("models.meta_lstm") < layer("training.trainer") < layer("cli")
    assert layer("kinds.qa") < layer("models") and layer("evaluation.metrics") < layer("kinds")


def test_reading_the_config_module_imports_no_model_and_no_torch():
    code = "import sys, polytask.config; print(sorted(m for m in sys.modules if m == 'torch' or " \
           "m.startswith(('polytask.models', 'polytask.training'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
