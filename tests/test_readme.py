"""The README matches the tool: every flag it shows exists in that command's ``--help``, the metric, label-model
and selector names it gives are the ones the code uses and writes, its recipe error example is the error the tool
gives, and the jobs it says print their report path do."""

from __future__ import annotations

import csv
import re
import shlex
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from thresher.cli import main
from thresher.demo import sample_path
from thresher.run import Run

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _help(command: str) -> str:
    result = CliRunner().invoke(main, [command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, re.S | re.M)


def readme_commands() -> list[list[str]]:
    """Every ``thresher ...`` command line of the README's bash blocks, continuation lines joined, as argv."""
    commands = []
    for block in _code_blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if len(argv) > 1 and argv[0] == "thresher":
                commands.append(argv[1:])
    return commands


def _flags(argv: list[str]) -> set[str]:
    return {a.split("=")[0] for a in argv if a.startswith("--")}


def _help_flags(command: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", _help(command)))


COMMANDS = readme_commands()


def test_readme_shows_commands_of_every_job():
    assert {argv[0] for argv in COMMANDS} >= {"select", "score", "embed", "dedup", "evaluate", "label", "report"}


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a[:2]) for a in COMMANDS])
def test_every_flag_of_a_readme_command_is_in_its_help(argv):
    command = argv[0]
    assert command in main.commands, f"thresher {command} does not exist"
    missing = _flags(argv) - _help_flags(command)
    assert not missing, f"thresher {command}: README uses {sorted(missing)}, not in `thresher {command} --help`"


def test_every_flag_named_in_the_prose_exists():
    """Flags in inline code (`--on-error skip`, `--bands/--rows`) belong to at least one command."""
    known = set().union(*(_help_flags(c) for c in main.commands))
    named = {f for span in re.findall(r"`([^`\n]*)`", README) if span.startswith("--")
             for f in re.findall(r"--[a-z][a-z0-9-]*", span)}
    assert named, "no inline flags found: the pattern is wrong"
    not_thresher = {"--no-deps"}  # pip's, in the Development notes
    assert not named - known - not_thresher, sorted(named - known - not_thresher)


def _metric_bullets() -> dict[str, list[str]]:
    """The evaluate section's metric list: family -> the names results.csv reports it under."""
    bullets = re.findall(r"^  - `(\w+)` \(((?:reported as )?`[^)]*)\):", README, re.M)
    return {family: re.findall(r"`(\w+)`", names) for family, names in bullets}


def test_metric_names_in_the_readme_are_the_code_s():
    from thresher.evaluate import metrics as M

    documented = _metric_bullets()
    assert documented == {family: list(names) for family, names in M.FAMILIES.items()}
    help_text = " ".join(_help("evaluate").split())
    for family, names in M.FAMILIES.items():
        assert family in help_text and all(n in help_text for n in names)


def test_evaluate_takes_both_names_writes_the_documented_ones_and_prints_its_report(tmp_path):
    from thresher.evaluate.harness import EvaluateConfig

    documented = _metric_bullets()
    assert EvaluateConfig(metrics="kl_to_heldout,heldout_perplexity,lm").metrics == ["kl", "lm"]
    out = tmp_path / "ev"
    result = CliRunner().invoke(main, [
        "evaluate", "--pool", str(sample_path("pool.parquet")), "--target", str(sample_path("target_news.jsonl")),
        "--methods", "dsir,random", "--budgets", "2%", "--seeds", "2", "--n-boot", "100", "--workers", "2",
        "--metrics", "kl_to_heldout,precision,lm", "--label-column", "domain", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with (out / "results.csv").open() as f:
        written = {row["metric"] for row in csv.DictReader(f)}
    # target_loss needs a blend (--heldout-weights); one held-out group has no per-group rows
    assert written == set(documented["kl"] + documented["precision"] + documented["lm"]) - {"target_loss"}
    assert f"report: {out / 'report.html'}" in result.output and (out / "report.html").is_file()


def test_label_models_listed_are_the_registered_ones_and_the_default_is_named():
    from thresher.label.models import DEFAULT_LABEL_MODEL, LABEL_MODELS

    line = re.search(r"\*\*Label models\*\* \(`--model`\):(.*?)\.\n", README, re.S).group(1)
    assert set(re.findall(r"`(\w+)`", line)) == set(LABEL_MODELS)
    assert f"`{DEFAULT_LABEL_MODEL}` (the default)" in line


def test_recipe_error_example_is_what_the_tool_says(tmp_path):
    """The README's recipe with l3 for l2 fails naming the line and the valid parameters it quotes."""
    recipe = next(b for b in _code_blocks("yaml") if b.startswith("# recipe.yaml"))
    assert "    l2: " in recipe
    (tmp_path / "recipe.yaml").write_text(recipe.replace("    l2: ", "    l3: "))
    shutil.copy(sample_path("pool.parquet"), tmp_path / "pool.parquet")
    shutil.copy(sample_path("target_news.jsonl"), tmp_path / "target.jsonl")
    result = CliRunner().invoke(main, ["run", str(tmp_path / "recipe.yaml")])
    assert result.exit_code == 2
    quoted = " ".join(re.search(r"`(recipe\.yaml:\d+: scorer [^`]*?), \.\.\.`", README).group(1).split())
    said = result.output.strip().removeprefix("error: ").replace(str(tmp_path / "recipe.yaml"), "recipe.yaml")
    assert said.startswith(quoted), (quoted, said)


def test_from_run_keeps_the_run_s_selector_as_help_and_readme_say(tmp_path):
    import thresher as th

    help_text = " ".join(_help("select").split())
    assert "the run's own selector for a select or run directory, topk for a score or label run" in help_text
    assert "the new selection replaces the one in the `--from-run` directory" in " ".join(README.split())
    pool = th.read(sample_path("pool.parquet"))
    th.select(pool, target=sample_path("target_news.jsonl"), budget="1%", out=tmp_path / "dsir", workers=2,
              report=False)
    result = CliRunner().invoke(main, ["select", "--from-run", str(tmp_path / "dsir"), "--budget", "50",
                                       "--no-report"])
    assert result.exit_code == 0, result.output
    assert "method dsir | selector gumbel | budget 50" in result.output
    assert f"no --out: the new selection replaces the one in {tmp_path / 'dsir'}" in result.output
    th.score(pool, ["gopher"], out=tmp_path / "scored", workers=2, report=False)
    result = CliRunner().invoke(main, ["select", "--from-run", str(tmp_path / "scored"), "--score", "gopher_words",
                                       "--budget", "50", "--out", str(tmp_path / "top"), "--no-report"])
    assert result.exit_code == 0, result.output
    assert "selector topk" in result.output


def test_label_dev_where_and_report_path_as_documented(tmp_path):
    """The README's label example: dev rows from the bundled set's split column; the report path is printed."""
    argv = next(a for a in COMMANDS if a[0] == "label")
    assert argv[argv.index("--dev-where") + 1] == "split == 'dev'"
    data = sample_path("labeled/rotten_tomatoes.parquet")
    out = tmp_path / "rt"
    lfs = str(ROOT / "examples" / "label" / "rotten_tomatoes.py")
    result = CliRunner().invoke(main, ["label", "--pool", str(data), "--lfs", lfs, "--dev", str(data),
                                       "--dev-where", "split == 'dev'", "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    n_dev = pq.read_table(data, filters=[("split", "==", "dev")]).num_rows
    assert Run(out).manifest["config"]["dev_records"] == n_dev < pq.read_metadata(data).num_rows
    assert f"report: {out / 'report.html'}" in result.output
    bad = CliRunner().invoke(main, ["label", "--pool", str(data), "--lfs", lfs, "--dev", str(data),
                                    "--dev-where", "split == 'test'", "--workers", "1", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "keeps none of the 400 dev records" in bad.output
