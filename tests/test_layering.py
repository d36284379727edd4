"""Imports point downward through the layers of DESIGN.md section 3, and only L4 uses sklearn."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "sklearn_diffusion"

#: Layer of each module; a module not listed is an estimator-layer (L4) module.
LAYERS = {
    "_utils": 0, "_threads": 0,
    "schedules": 1, "networks": 1, "ode": 1, "marginals": 1,
    "losses": 2, "localization": 2, "hybrid": 2,
    "training": 3, "sampling": 3, "likelihood": 3, "anomaly": 3,
}


def _imports(path):
    """(package module, line) for each ``from .x import`` and ``sklearn`` import of ``path``."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            yield (node.module or "").split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0] + ":external", node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0] + ":external", node.lineno


MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module):
    layer = LAYERS.get(module, 4)
    for name, line in _imports(PACKAGE / f"{module}.py"):
        if name == "sklearn:external":
            assert layer == 4, f"{module}.py:{line} (L{layer}) imports scikit-learn"
        elif not name.endswith(":external"):
            target = LAYERS.get(name, 4)
            assert target <= layer, f"{module}.py:{line} (L{layer}) imports {name} (L{target})"


def test_the_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from .training import fit_noise_model\nimport sklearn.base\n")
    assert sorted(_imports(bad)) == [("sklearn:external", 2), ("training", 1)]
