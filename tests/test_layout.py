"""The package's shape: every module imports on its own, no import cycles, no hidden local imports."""

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import sidepair
from sidepair.lazy import load
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
    assert " 0 cycles, 0 other problems" in result.stdout


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


def test_the_checker_finds_a_heavy_import_under_the_cli_and_a_deferred_import(tmp_path):
    pkg = tmp_path / "sidepair"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli.py").write_text("from sidepair import config\n")
    (pkg / "config.py").write_text("import json\n\nfrom sidepair import nets\n")
    (pkg / "nets.py").write_text("import torch\n")
    (pkg / "lazy.py").write_text(
        "import importlib\n\n\ndef load(t):\n    return importlib.import_module(t)\n"
    )
    (pkg / "other.py").write_text("import importlib\n\nm = importlib.import_module('json')\n")
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(pkg)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert "sidepair.cli imports torch at import: sidepair.cli -> sidepair.config -> sidepair.nets" in (
        result.stdout
    )
    assert "deferred import outside sidepair.lazy" in result.stdout and "other.py:3" in result.stdout
    assert "lazy.py" not in result.stdout


def test_the_checker_refuses_an_upward_import_and_a_part_outside_the_layers(tmp_path):
    pkg = tmp_path / "sidepair"
    for part in ("data", "training", "models", "experiment"):
        (pkg / part).mkdir(parents=True)
        (pkg / part / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "training" / "loop.py").write_text("from sidepair.data import reader\n")
    (pkg / "data" / "reader.py").write_text("import json\n")
    (pkg / "experiment" / "runner.py").write_text("RUN = 1\n")
    (pkg / "extras.py").write_text("from sidepair.data import reader\n")
    (pkg / "lazy.py").write_text(
        "import importlib\n\n\ndef load(t):\n    return importlib.import_module(t)\n"
    )
    checked = [sys.executable, str(CHECKER), str(pkg)]
    result = subprocess.run(checked, capture_output=True, text=True, timeout=60)
    # Downward imports only, but one part the layer order does not name.
    assert result.returncode == 1
    assert result.stdout.splitlines()[:-1] == [
        "sidepair.extras is in no layer of LAYERS (scripts/check_imports.py)"
    ]
    (pkg / "extras.py").unlink()
    assert subprocess.run(checked, capture_output=True, text=True, timeout=60).returncode == 0
    # data (layer 1) importing training (layer 5), and models lazily loading the experiment: both upward.
    (pkg / "data" / "reader.py").write_text("from sidepair.training import loop\n")
    (pkg / "models" / "net.py").write_text(
        'from sidepair.lazy import load\n\n\ndef f():\n    return load("sidepair.experiment.runner:RUN")\n'
    )
    result = subprocess.run(checked, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    problems = result.stdout.splitlines()[:-1]
    assert len(problems) == 4, problems
    upward = [p for p in problems if p.startswith("upward import")]
    assert "data (layer 1) -> training (layer 6)" in upward[0] and "reader.py:1" in upward[0]
    assert "models (layer 2) -> experiment (layer 7)" in upward[1] and "net.py:5" in upward[1]
    assert "cycle among the package's parts: data -> training" in problems
    assert "import cycle: sidepair.data.reader -> sidepair.training.loop" in problems


HEAVY_LOADED = "print(sorted(m for m in ('torch', 'monai', 'matplotlib', 'scipy') if m in sys.modules))"


def test_the_command_line_and_the_package_load_no_torch():
    code = f"import sys, sidepair, sidepair.cli\n{HEAVY_LOADED}\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--help"],
        ["train", "--store", "s", "--out", "o", "--preset", "demo", "--label-fraction", "1.5"],
        ["pretrain", "--store", "s", "--out", "o", "--sections", "kidney"],
        ["experiment", "demo"],
        ["predict", "-i", "x", "-o", "y", "-m", "m", "--labels", "left"],
    ],
)
def test_help_and_usage_errors_load_no_torch(argv):
    code = (
        "import sys\nfrom sidepair.cli import main\ntry:\n    main(sys.argv[1:])\n    print(0)\n"
        f"except SystemExit as e:\n    print(e.code)\n{HEAVY_LOADED}\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *argv], capture_output=True, encoding="utf-8", timeout=120
    )
    assert result.stdout.strip().splitlines()[-2:] == ["0" if "--help" in argv else "2", "[]"], result


def test_every_lazy_target_in_the_package_resolves():
    """Each ``load("module:attribute")`` names something that exists (a typo fails here, not in use)."""

    targets = set()
    for path in Path(sidepair.__file__).parent.rglob("*.py"):
        if path.name == "__init__.py" and path.parent.name == "sidepair":
            continue  # its targets are PUBLIC's, checked below
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "load" and node.args:
                assert isinstance(node.args[0], ast.Constant), f"{path}:{node.lineno}: a computed target"
                targets.add(node.args[0].value)
    assert len(targets) > 20 and "sidepair.training.segment:run_train" in targets
    for target in sorted(targets):
        assert load(target) is not None, target
    assert set(sidepair.PUBLIC) <= set(sidepair.__all__)
    for name in sidepair.PUBLIC:
        assert callable(getattr(sidepair, name)), name


def test_top_level_holds_only_the_shared_leaves():
    """The pipeline lives in its folders; the package top keeps the CLI and small shared modules."""
    top = sorted(p.stem for p in Path(sidepair.__file__).parent.glob("*.py"))
    assert top == [
        "__init__",
        "__main__",
        "api",
        "atomic",
        "choices",
        "cli",
        "config",
        "devices",
        "errors",
        "lazy",
        "nnunet_plans",
        "plotting",
        "version",
    ]
    folders = {m.name for m in pkgutil.iter_modules(sidepair.__path__) if m.ispkg}
    assert folders == {"data", "models", "training", "inference", "qc", "evaluation", "experiment"}
    importlib.import_module("sidepair.experiment.report")


def test_the_cli_test_server_preloads_every_verb_implementation():
    """tests.conftest.PRELOAD keeps forked CLI tests fast: every module a verb loads is imported up front."""
    from tests.conftest import PRELOAD

    cli = Path(sidepair.__file__).parent / "cli.py"
    modules = {
        node.args[0].value.split(":")[0]
        for node in ast.walk(ast.parse(cli.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "load"
    }
    code = (
        f"import importlib, sys\nfor m in {PRELOAD!r}:\n    importlib.import_module(m)\n"
        f"print(sorted(m for m in {sorted(modules)!r} if m not in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
