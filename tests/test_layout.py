"""The package's shape: every module imports on its own, no import cycles, no hidden local imports."""

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import sidepair
from tests.conftest import ROOT

CHECKER = ROOT / "scripts" / "check_imports.py"


def all_modules() -> list[str]:
    # ``sidepair.__main__`` runs the command line when imported; it is the one module left out.
    names = (m.name for m in pkgutil.walk_packages(sidepair.__path__, "sidepair."))
    return sorted(n for n in names if n != "sidepair.__main__")


def test_every_module_imports_in_a_fresh_interpreter():
    modules = all_modules()
    assert len(modules) > 50 and "sidepair.inference.predictor" in modules
    # In a fresh interpreter, in two orders: a module that imports only after another one was loaded fails
    # in one of them (the cycle check below finds the rest without importing anything).
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    for order in (modules, modules[::-1]):
        result = subprocess.run(
            [sys.executable, "-c", code, *order], capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr


def test_the_package_has_no_cycles_and_no_local_imports_of_its_own():
    result = subprocess.run([sys.executable, str(CHECKER)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert " 0 cycles, 0 local-import problems" in result.stdout


def test_the_checker_finds_a_cycle_and_a_local_import(tmp_path):
    pkg = tmp_path / "sidepair"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from sidepair.sub import b\n")
    (pkg / "sub" / "b.py").write_text(
        "from sidepair import a\n\n\ndef f():\n    from sidepair.sub import c\n"
    )
    (pkg / "sub" / "c.py").write_text(
        "def g():\n    import json\n\n\ndef h():\n    import onnx  # optional\n"
    )
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(pkg)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "import cycle: sidepair.a -> sidepair.sub.b" in result.stdout
    assert "function-local import of the package's own module" in result.stdout and "b.py:5" in result.stdout
    assert "without a comment saying why" in result.stdout and "c.py:2" in result.stdout
    assert "c.py:6" not in result.stdout


def test_top_level_holds_only_the_shared_leaves():
    """The pipeline lives in its folders; the package top keeps the CLI and small shared modules."""
    top = sorted(p.stem for p in Path(sidepair.__file__).parent.glob("*.py"))
    assert top == [
        "__init__",
        "__main__",
        "atomic",
        "cli",
        "config",
        "devices",
        "errors",
        "plotting",
        "version",
    ]
    folders = {m.name for m in pkgutil.iter_modules(sidepair.__path__) if m.ispkg}
    assert folders == {"data", "models", "training", "inference", "evaluation", "experiment"}
    importlib.import_module("sidepair.experiment.report")
