"""The docs: generated reference pages in step with the code, every page in the site, a short README."""

from __future__ import annotations

import importlib.util
import re

import typer
import yaml

from sidepair.cli import app
from sidepair.experiment.config import ExperimentConfig
from tests.conftest import ROOT

spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "scripts" / "gen_reference.py")
gen_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen_reference)


def test_the_generated_references_are_current():
    """Fails when a command, an option or a setting changed and the pages were not regenerated."""
    for name, render in (("cli", gen_reference.render_cli), ("config", gen_reference.render_config)):
        committed = gen_reference.PAGES[name].read_text(encoding="utf-8")
        assert render() == committed, f"run: python scripts/gen_reference.py ({name} page stale)"
    assert gen_reference.main(["--check"]) == 0


def test_a_changed_option_makes_the_cli_page_stale():
    command = typer.main.get_command(app)
    option = next(p for p in command.commands["train"].params if p.name == "label_fraction")
    option.help = "A changed description."
    changed = gen_reference.render_cli(command)
    committed = gen_reference.PAGES["cli"].read_text(encoding="utf-8")
    assert changed != committed
    diff = [line for line in changed.splitlines() if line not in committed.splitlines()]
    assert diff == ["| <code>--label-fraction &lt;float&gt;</code> | A changed description. |"]


def test_a_changed_setting_makes_the_config_page_stale():
    class Changed(ExperimentConfig):
        extra_key: int = 3

    assert gen_reference.render_config(Changed) != gen_reference.PAGES["config"].read_text(encoding="utf-8")


def test_every_page_is_in_the_site_and_every_link_resolves():
    site = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def pages(nav):
        for entry in nav:
            for value in entry.values():
                yield from pages(value) if isinstance(value, list) else [value]

    listed = set(pages(site["nav"]))
    on_disk = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert listed == on_disk
    for page in on_disk:
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+\.md)", text):
            assert (ROOT / "docs" / page).parent.joinpath(target).resolve().is_file(), (page, target)


def test_the_readme_is_short_and_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150
    assert lines[2:6] == [
        "```bash",
        "make demo    # fresh machine: creates .venv, installs, runs `sidepair demo` on the built-in phantom",
        "make test    # fresh machine: creates .venv, installs, runs ruff and the test suite",
        "```",
    ]
    assert max(len(line) for line in lines) <= 300
    for target in re.findall(r"\]\((docs/[^)#]+)", "\n".join(lines)):
        assert (ROOT / target).is_file(), target


def test_every_benchmark_is_in_the_index_and_in_its_folder():
    index = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    scripts = [
        p for folder in ("speed", "studies") for p in (ROOT / "benchmarks" / folder).iterdir()
        if p.suffix in (".py", ".sh") and not p.name.startswith("_")
    ]  # fmt: skip
    assert len(scripts) > 20
    for script in scripts:
        assert f"| `{script.name}` |" in index, script.name
    loose = [p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "_common.py"]
    assert not loose, f"put {loose} in speed/ or studies/"


def test_every_result_file_the_docs_cite_is_committed():
    """A figure cited with its JSON must have that JSON in benchmarks/results/ (issue #32)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        # "writes `…json`" names what a command writes, not a committed file.
        for match in re.finditer(r"(writes )?`(?:benchmarks/)?results/([A-Za-z0-9_.*-]+\.json)`", text):
            if not match.group(1):
                cited.add((page.name, match.group(2)))
    assert len(cited) >= 5
    results = ROOT / "benchmarks" / "results"
    missing = [(page, name) for page, name in sorted(cited) if not list(results.glob(name))]
    assert not missing, f"cited but not in benchmarks/results/: {missing}"
