"""Reliability: killed runs leave nothing running, scripts need no __main__ guard, YAML cannot explode, recipe
options and outputs fail in one line, damaged caches are recomputed, one job per run directory, and parameters
that would select nothing are refused. Each case reproduces a defect seen on real input (issue 11)."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import thresher as th
from thresher.demo import sample_path
from thresher.errors import ConfigError
from thresher.jobs.rundir import claim
from thresher.yaml_loading import MAX_NODES, load_yaml

TARGET = str(sample_path("target_news.jsonl"))
CLI = [sys.executable, "-m", "thresher.cli"]


def _cli(*args: str, timeout: float = 300, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **kw)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The CLI's error contract: exit 2, one 'error:' line, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---------------------------------------------------------------- killed runs leave nothing behind


@pytest.fixture(scope="module")
def bigger_pool(tmp_path_factory) -> Path:
    """The bundled pool four times over (ids made unique): long enough to kill mid-run."""
    table = pq.read_table(sample_path("pool.parquet"), columns=["id", "text", "domain"])
    parts = [table.set_column(0, "id", pc.binary_join_element_wise(table["id"], pa.scalar(f"#{i}"), ""))
             for i in range(4)]
    path = tmp_path_factory.mktemp("big") / "pool.parquet"
    pq.write_table(pa.concat_tables(parts), path, row_group_size=1000)
    return path


def _session_members(sid: int, leader: int) -> list[tuple[int, str]]:
    """Processes of session ``sid`` other than its leader: the job's fork server, workers and resource tracker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == leader:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            found.append((int(entry), fields[0]))
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killing_the_parent_leaves_nothing_running_and_the_rerun_is_identical(tmp_path, bigger_pool, sig):
    args = ["select", "--pool", str(bigger_pool), "--target", TARGET, "--budget", "5%", "--workers", "2",
            "--batch-size", "256", "--no-report", "--quiet"]
    proc = subprocess.Popen([*CLI, *args, "--out", str(tmp_path / "killed")], start_new_session=True,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while len(_session_members(proc.pid, proc.pid)) < 3 and time.time() < deadline:  # server + 2 workers
        time.sleep(0.05)
    assert len(_session_members(proc.pid, proc.pid)) >= 3, "the workers never started"
    time.sleep(0.5)
    os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGTERM:
        assert proc.returncode == 128 + signal.SIGTERM and "terminated (SIGTERM)" in stderr
        assert "Traceback" not in stderr
    else:
        assert proc.returncode == -signal.SIGKILL
    deadline = time.time() + 20
    while _session_members(proc.pid, proc.pid) and time.time() < deadline:
        time.sleep(0.1)
    assert _session_members(proc.pid, proc.pid) == []
    assert not (tmp_path / "killed" / "manifest.json").exists()

    rerun = _cli(*args, "--out", str(tmp_path / "killed"))
    clean = _cli(*args, "--out", str(tmp_path / "clean"))
    assert rerun.returncode == 0 and clean.returncode == 0, rerun.stderr + clean.stderr
    for name in ("selected/ids.txt", "scores/scores.parquet"):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()


# ---------------------------------------------------------------- scripts without a __main__ guard

SCRIPT = """\
import thresher as th
from thresher.demo import sample_path

print("START", flush=True)

@th.lf
def sport(text):
    return "sport" if " match " in text.lower() else None

@th.lf
def business(text):
    return "business" if " bank" in text.lower() else None

run = th.select(str(sample_path("pool.parquet")), target=str(sample_path("target_news.jsonl")), budget=50,
                out="sel", workers=2, report=False)
print("SELECTED", len(run.selected_ids()))
lab = th.label(str(sample_path("labeled/bbc_news.parquet")), [sport, business], classes=["sport", "business"],
               out="lab", workers=2, report=False)
print("WORKERS", lab.manifest["engine"]["workers"], "LABELLED", lab.counts["labelled"])
"""


@pytest.mark.parametrize("how", ["script", "piped", "exec"])
def test_a_script_without_a_main_guard_runs_once_with_worker_processes(tmp_path, how):
    script = tmp_path / "example.py"
    script.write_text(SCRIPT)
    if how == "script":
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
    elif how == "piped":
        proc = subprocess.run([sys.executable, "-"], stdin=script.open(), cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    else:  # as a notebook runs code: a __main__ with no __file__
        proc = subprocess.run([sys.executable, "-c", f"exec(open({str(script)!r}).read())"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("START") == 1  # no worker re-ran the script
    assert "SELECTED 50" in proc.stdout
    words = proc.stdout.split()
    assert words[words.index("WORKERS") + 1] == "2"  # the script's own LFs went to the workers
    assert int(words[words.index("LABELLED") + 1]) > 0


def test_labels_from_script_lfs_do_not_depend_on_workers(tmp_path):
    script = tmp_path / "lfs_script.py"
    script.write_text(textwrap.dedent("""\
        import sys
        import numpy as np
        import thresher as th
        from thresher.demo import sample_path

        @th.lf
        def long_text(text):
            return "sport" if len(text) > 2000 else None

        runs = [th.label(str(sample_path("labeled/bbc_news.parquet")), [long_text], classes=["sport", "other"],
                         out=f"lab{w}", workers=w, report=False) for w in (1, 2)]
        print(runs[0].scores().column("label").to_pylist() == runs[1].scores().column("label").to_pylist())
        """))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


# ---------------------------------------------------------------- YAML alias bombs

def _bomb(levels: int = 9, width: int = 9) -> str:
    """A flow-style alias bomb: width**levels values from a few hundred bytes."""
    names = [f"l{i}" for i in range(levels)]
    parts = [f"&{names[0]} [{', '.join(['lol'] * width)}]"]
    parts += [f"&{names[i]} [{', '.join([f'*{names[i - 1]}'] * width)}]" for i in range(1, levels)]
    return "[" + ", ".join(parts) + "]"


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(body)
    return path


@pytest.mark.parametrize("place", ["scorer_param", "pool", "filter", "text_field"])
def test_alias_bombs_in_a_recipe_are_refused_before_they_expand(tmp_path, small_pool, place):
    bomb = _bomb()
    pool = f"{{path: {small_pool}, text_field: {bomb}}}" if place == "text_field" else \
        bomb if place == "pool" else str(small_pool)
    steps = {"scorer_param": f"  - score: gopher\n    params: {{max_words: {bomb}}}\n",
             "filter": f"  - score: gopher\n  - filter: {bomb}\n"}.get(place, "  - score: gopher\n")
    recipe = _recipe(tmp_path, f"pool: {pool}\nout: {tmp_path / 'out'}\nsteps:\n{steps}")
    line = _one_line_error(_cli("run", str(recipe), timeout=60))
    assert "expands to more than" in line and str(recipe) in line


def test_alias_bomb_in_an_option_value_is_refused(tmp_path, small_pool):
    proc = _cli("select", "--pool", str(small_pool), "--target", TARGET, "--budget", "10", "--out",
                str(tmp_path / "o"), "--selector-param", f"allocation={_bomb()}", timeout=60)
    assert "expands to more than" in _one_line_error(proc)


def test_alias_bomb_in_an_lf_file_is_refused(tmp_path):
    lfs = tmp_path / "lfs.yaml"
    lfs.write_text(f"classes: [a, b]\nlfs:\n  - name: x\n    label: a\n    keywords: {_bomb()}\n")
    proc = _cli("label", "--pool", str(sample_path("labeled/bbc_news.parquet")), "--lfs", str(lfs), "--out",
                str(tmp_path / "o"), timeout=60)
    assert "expands to more than" in _one_line_error(proc)


def test_yaml_loader_keeps_ordinary_aliases_and_refuses_self_reference():
    data = load_yaml("base: &b {lr: 1, n: 2}\nother: *b\nlist: &l [1, 2]\n", "r.yaml")
    assert data["other"]["lr"] == 1 and data["other"]["__line__"] == 1
    big = "[" + ", ".join(["x"] * (MAX_NODES // 10)) + "]"
    assert len(load_yaml(big, "big.yaml")) == MAX_NODES // 10  # large but honest documents load
    with pytest.raises(ConfigError, match="refers to itself"):
        load_yaml("a: &a [1, *a]\n", "r.yaml")


# ---------------------------------------------------------------- recipe options checked up front

@pytest.mark.parametrize("option, value", [("seed", '"abc"'), ("seed", "1.5"), ("seed", "-1"), ("seed", "true"),
                                           ("workers", "abc"), ("workers", "-1"), ("pool_sample", "abc"),
                                           ("group_field", "[1, 2]")])
def test_recipe_top_level_options_are_checked_with_their_line(tmp_path, small_pool, option, value):
    recipe = _recipe(tmp_path, f"pool: {small_pool}\nout: {tmp_path / 'out'}\n{option}: {value}\n"
                               "steps:\n  - score: gopher\n")
    line = _one_line_error(_cli("run", str(recipe), timeout=60))
    assert f"{recipe}:3:" in line and repr(option) in line
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- output errors

def test_output_folder_that_cannot_exist_is_one_line(tmp_path, small_pool):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile / "run", Path("/proc/thresher-test/run")):
        proc = _cli("select", "--pool", str(small_pool), "--target", TARGET, "--budget", "10", "--out", str(out))
        assert "run directory" in _one_line_error(proc)


def test_a_disk_that_fills_up_gives_one_line_and_no_manifest(tmp_path, small_pool):
    def small_disk():  # every file this process writes is capped at 100 kB, as on a nearly full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    proc = subprocess.run([*CLI, "select", "--pool", str(small_pool), "--target", TARGET, "--budget", "10",
                           "--out", str(tmp_path / "full"), "--workers", "1"], preexec_fn=small_disk,
                          capture_output=True, text=True, timeout=300)
    line = _one_line_error(proc)
    assert "errno 27" in line and "no new manifest.json" in line
    assert not (tmp_path / "full" / "manifest.json").exists()


def test_two_jobs_cannot_write_one_run_directory_at_once(tmp_path, small_pool):
    out = tmp_path / "shared"
    args = ["select", "--pool", str(small_pool), "--target", TARGET, "--budget", "10", "--out", str(out),
            "--no-report"]
    with claim(out):  # another job holds it
        line = _one_line_error(_cli(*args))
        assert f"process {os.getpid()}" in line and "in use" in line
        with claim(out):  # the same process may re-enter (a job that runs another job into its folder)
            pass
    assert _cli(*args).returncode == 0  # free again


# ---------------------------------------------------------------- damaged caches

def _select(pool: Path, out: Path, workers: int = 1) -> subprocess.CompletedProcess:
    return _cli("select", "--pool", str(pool), "--target", TARGET, "--budget", "200", "--out", str(out),
                "--workers", str(workers), "--batch-size", "300", "--no-report", "--quiet")


def test_truncated_feature_shard_is_recomputed_and_said(tmp_path, small_pool):
    out = tmp_path / "run"
    assert _select(small_pool, out).returncode == 0
    first = (out / "selected" / "ids.txt").read_bytes()
    shard = next((out / "cache").glob("ngrams-*/shard-000000-0002.npz"))
    shard.write_bytes(shard.read_bytes()[:500])
    again = _select(small_pool, out, workers=2)
    assert again.returncode == 0, again.stderr
    assert "damaged cache file" in again.stderr and "shard-000000-0002.npz" in again.stderr
    assert (out / "selected" / "ids.txt").read_bytes() == first


def test_altered_feature_shard_is_named_removed_and_recomputed_on_rerun(tmp_path, small_pool):
    out = tmp_path / "run"
    assert _select(small_pool, out).returncode == 0
    first = (out / "selected" / "ids.txt").read_bytes()
    shard = next((out / "cache").glob("ngrams-*/shard-000000-0001.npz"))
    data = bytearray(shard.read_bytes())
    data[200:260] = bytes(b ^ 0xFF for b in data[200:260])  # inside the first array: caught by its CRC
    shard.write_bytes(bytes(data))
    again = _select(small_pool, out, workers=2)
    line = _one_line_error(again)
    assert "shard-000000-0001.npz is damaged" in line and "run the same command again" in line
    assert not shard.exists()
    third = _select(small_pool, out, workers=2)
    assert third.returncode == 0, third.stderr
    assert (out / "selected" / "ids.txt").read_bytes() == first


def test_truncated_embedding_shard_is_recomputed(tmp_path, small_pool, capfd):
    from thresher.jobs.embed import run_embedding

    cache = tmp_path / "cache"
    first = run_embedding(th.read(small_pool, batch_size=500), tmp_path / "a", workers=1, cache_dir=cache,
                          progress=False, report=False)
    shard = next(cache.glob("emb-*/shard-000000-0001.npy"))
    shard.write_bytes(shard.read_bytes()[:300])
    again = run_embedding(th.read(small_pool, batch_size=500), tmp_path / "b", workers=1, cache_dir=cache,
                          progress=False, report=False)
    assert np.array_equal(again.embeddings()[1], first.embeddings()[1])
    assert "shard-000000-0001.npy" in capfd.readouterr().err


# ---------------------------------------------------------------- parameters that would select nothing

@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, small_pool) -> Path:
    out = tmp_path_factory.mktemp("scored") / "run"
    assert _select(small_pool, out).returncode == 0
    return out


@pytest.mark.parametrize("args, words", [
    (["--budget", "5 tokens"], "smaller than the first record"),
    (["--budget", "10", "--selector", "threshold", "--threshold", "nan"], "finite"),
    (["--budget", "10", "--temperature", "inf"], "finite"),
])
def test_parameters_that_would_select_nothing_are_refused(tmp_path, scored_run, args, words):
    proc = _cli("select", "--from-run", str(scored_run), "--out", str(tmp_path / "o"), *args)
    assert words in _one_line_error(proc)
    assert json.loads((scored_run / "manifest.json").read_text())  # the source run is untouched


# ---------------------------------------------------------------- found by the review of the fixes above

def test_altered_feature_index_files_are_recomputed(tmp_path, small_pool):
    out = tmp_path / "run"
    assert _select(small_pool, out).returncode == 0
    first = (out / "selected" / "ids.txt").read_bytes()
    for name in ("counts.npy", "index.parquet"):
        path = next((out / "cache").glob(f"ngrams-*/{name}"))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF  # silently wrong scores before: the counts fit DSIR's pool distribution
        path.write_bytes(bytes(data))
        again = _select(small_pool, out)
        assert again.returncode == 0 and name in again.stderr and "damaged cache file" in again.stderr
        assert (out / "selected" / "ids.txt").read_bytes() == first


def test_altered_embedding_shard_is_named_and_recomputed(tmp_path, small_pool):
    from thresher.features.shards import CorruptShardError
    from thresher.jobs.embed import run_embedding

    cache = tmp_path / "cache"
    first = run_embedding(th.read(small_pool, batch_size=500), tmp_path / "a", workers=1, cache_dir=cache,
                          progress=False, report=False)
    expected = first.embeddings()[1]
    shard = next(cache.glob("emb-*/shard-000000-0001.npy"))
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0xFF  # one float changed: an .npy has no checksum of its own
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptShardError, match="shard-000000-0001.npy is damaged"):
        first.embeddings()
    again = run_embedding(th.read(small_pool, batch_size=500), tmp_path / "b", workers=1, cache_dir=cache,
                          progress=False, report=False)
    assert np.array_equal(again.embeddings()[1], expected)


def test_lfs_that_never_vote_are_one_line(tmp_path):
    lfs = tmp_path / "none.yaml"
    lfs.write_text("classes: [a, b]\nlfs:\n  - {name: x, label: a, keywords: [zzzzqqq]}\n"
                   "  - {name: y, label: b, keywords: [qqqqzzz]}\n")
    for model in ("class_conditional", "dawid_skene", "metal"):
        proc = _cli("label", "--pool", str(sample_path("labeled/bbc_news.parquet")), "--lfs", str(lfs), "--model",
                    model, "--out", str(tmp_path / model))
        assert "no LF voted on any of the 250 records" in _one_line_error(proc)


def test_an_infinite_lf_timeout_means_no_limit(tmp_path):
    proc = _cli("label", "--pool", str(sample_path("labeled/bbc_news.parquet")), "--lfs",
                str(Path(__file__).resolve().parents[1] / "examples" / "label" / "bbc_news.yaml"), "--lf-timeout",
                "inf", "--out", str(tmp_path / "l"), "--no-report", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["labelled"] > 100


@pytest.mark.parametrize("budget", ["1e400", "1e308k"])
def test_infinite_budgets_are_one_line(tmp_path, small_pool, budget):
    proc = _cli("select", "--pool", str(small_pool), "--target", TARGET, "--budget", budget, "--out",
                str(tmp_path / "o"))
    assert "finite" in _one_line_error(proc)


def test_an_unreachable_ray_address_is_one_line_at_once(tmp_path, small_pool):
    for address in ("127.0.0.1:1", "no-such-host.invalid:6379"):
        proc = _cli("select", "--pool", str(small_pool), "--target", TARGET, "--budget", "10", "--engine", "ray",
                    "--ray-address", address, "--out", str(tmp_path / "o"), timeout=60)
        assert "cannot reach the Ray cluster" in _one_line_error(proc)


def test_a_run_directory_inside_the_input_folder_is_not_read_as_input(tmp_path, small_pool):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "pool.parquet").write_bytes(small_pool.read_bytes())
    for _ in range(2):  # the second run would read the first run's manifest and scores as pool records
        proc = _cli("score", "--pool", str(folder), "--scorers", "gopher", "--out", str(folder / "run"),
                    "--no-report", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["counts"]["input_records"] == 1500


def test_recipe_out_that_is_a_file_names_its_line(tmp_path, small_pool):
    (tmp_path / "afile").write_text("x")
    recipe = _recipe(tmp_path, f"pool: {small_pool}\nseed: 1\nout: {tmp_path / 'afile'}\nsteps:\n  - score: gopher\n")
    assert f"{recipe}:3:" in _one_line_error(_cli("run", str(recipe)))


def test_a_closed_stdout_is_not_an_error(tmp_path, small_pool):
    proc = subprocess.run(f"{sys.executable} -m thresher.cli select --pool {small_pool} --target {TARGET} "
                          f"--budget 10 --out {tmp_path / 'o'} --no-report | head -1", shell=True,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.startswith("method") and "error" not in proc.stderr
    assert (tmp_path / "o" / "manifest.json").is_file()


def test_a_job_that_fails_before_writing_leaves_no_folder(tmp_path):
    lfs = tmp_path / "none.yaml"
    lfs.write_text("classes: [a, b]\nlfs:\n  - {name: x, label: a, keywords: [zzzzqqq]}\n")
    out = tmp_path / "new" / "run"
    _one_line_error(_cli("label", "--pool", str(sample_path("labeled/bbc_news.parquet")), "--lfs", str(lfs),
                         "--out", str(out), "--no-report"))
    assert not out.exists()  # it made the folder for its lock, and takes it away again
    out.mkdir(parents=True)
    _one_line_error(_cli("label", "--pool", str(sample_path("labeled/bbc_news.parquet")), "--lfs", str(lfs),
                         "--out", str(out), "--no-report"))
    assert out.is_dir()  # a folder the user made is never removed


def test_recipes_can_rename_duplicate_ids(tmp_path, small_pool):
    table = pq.read_table(small_pool).slice(0, 300)
    doubled = tmp_path / "doubled.parquet"
    pq.write_table(pa.concat_tables([table, table.slice(0, 10)]), doubled)
    body = f"out: {tmp_path / 'out'}\nsteps:\n  - score: gopher\n"
    refused = _recipe(tmp_path, f"pool: {doubled}\n{body}")
    assert "duplicate id" in _one_line_error(_cli("run", str(refused)))
    renamed = _recipe(tmp_path, f"pool: {{path: {doubled}, duplicate_ids: rename}}\n{body}")
    assert _cli("run", str(renamed), "--no-report").returncode == 0
    ids = pq.read_table(tmp_path / "out" / "scores" / "scores.parquet")["id"].to_pylist()
    assert len(ids) == 310 == len(set(ids)) and f"{table['id'][0].as_py()}#2" in ids
