"""Label apply speed on the real LF sets (issue 12, item 2): thresher vs snorkel's LF applier, same LFs, same votes.

    python bench/bench_label_apply.py [--data ../shared/data/labeled] [--peer-mb 0.5] [--repeats 3]

For each LF set in examples/label/ on its dataset (and rotten_tomatoes' keyword and regex LFs alone, without its
two Python LFs): thresher's in-process apply (``apply_lfs``, one worker: MB of
UTF-8 text per CPU second = MB/s per core; best of ``--repeats``), the CLI end to end (``thresher label ... --workers
1 --no-report`` as a subprocess, start to exit: imports, reading, apply, label model, writing), and the peer:
snorkel's ``PandasLFApplier`` with one snorkel LF per thresher LF that does what snorkel LFs do, a Python ``re``
search per record (with the very pattern thresher's Python reference uses, so both give the same votes; Python LFs
are called as they are). The peer runs on the first records holding ``--peer-mb`` MB of text (Python ``re`` is slow
on long articles), and the speed ratio compares both on exactly those records, where every run also checks that
thresher's votes equal snorkel's. Results: bench/results/label_apply.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import thresher as th  # noqa: E402
from thresher.label.apply import apply_lfs  # noqa: E402
from thresher.label.lf_files import LFSet, load_lfs  # noqa: E402
from thresher.label.lfs import CallableLF, RegexLF, ScoreLF  # noqa: E402

TASKS = {"bbc_news": "bbc_news.yaml", "brown_genre": "brown_genre.yaml", "rotten_tomatoes": "rotten_tomatoes.py",
         "rotten_tomatoes/keyword+regex": "rotten_tomatoes.py"}
#: A task named ``dataset/keyword+regex`` runs only the keyword and regex LFs of its file (no CLI run: the CLI
#: takes a whole LF file).
ONLY_RE = "/keyword+regex"


def text_mb(table: pa.Table) -> float:
    return pc.sum(pc.binary_length(table["text"])).as_py() / 1e6


def time_thresher(path: Path, lfs, repeats: int) -> tuple[float, float, np.ndarray]:
    """Best CPU and wall seconds of an in-process apply with one worker, and the dense votes."""
    best_cpu = best_wall = float("inf")
    dense = None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        applied = apply_lfs(th.read(str(path)), lfs, workers=1)
        best_cpu, best_wall = min(best_cpu, time.process_time() - c0), min(best_wall, time.perf_counter() - w0)
        dense = applied.matrix.to_dense()
    return best_cpu, best_wall, dense


def time_cli(path: Path, lf_file: Path) -> float:
    """Wall seconds of ``thresher label`` from start to exit (one worker, no report)."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "thresher.cli", "label", "--pool", str(path), "--lfs", str(lf_file),
                        "--out", out, "--workers", "1", "--no-report", "--quiet"], check=True, env=env)
        return time.perf_counter() - t0


def snorkel_lfs(lfs) -> list:
    """One snorkel LF per thresher LF: a Python ``re`` search per record (regex/keyword), or the Python function."""
    from snorkel.labeling import labeling_function

    out = []
    for f in lfs.lfs:
        if isinstance(f, RegexLF):
            label = lfs.classes.index(f.label) if isinstance(f.label, str) else int(f.label)

            def fn(x, rx=f._python, label=label):
                return label if rx.search(x.text) else -1
        elif isinstance(f, CallableLF):
            index = {c: i for i, c in enumerate(lfs.classes)}

            def fn(x, call=f.fn, index=index):
                v = call(x.text)
                return -1 if v is None else index[v] if isinstance(v, str) else int(v)
        elif isinstance(f, ScoreLF):
            raise SystemExit(f"{f.name}: score LFs are not part of this benchmark")
        out.append(labeling_function(name=f.name)(fn))
    return out


def time_snorkel(table: pa.Table, lfs, repeats: int) -> tuple[float, np.ndarray]:
    """Best CPU seconds of snorkel's PandasLFApplier over ``table``, and its label matrix."""
    from snorkel.labeling import PandasLFApplier

    applier = PandasLFApplier(snorkel_lfs(lfs))
    df = table.select(["id", "text"]).to_pandas()
    best, L = float("inf"), None
    for _ in range(max(1, repeats - 1)):
        c0 = time.process_time()
        L = applier.apply(df, progress_bar=False)
        best = min(best, time.process_time() - c0)
    return best, np.asarray(L)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "labeled"))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--peer-mb", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "label_apply"))
    args = ap.parse_args()

    rows = []
    for task in args.tasks.split(","):
        path = Path(args.data) / f"{task.removesuffix(ONLY_RE)}.parquet"
        lf_file = ROOT / "examples" / "label" / TASKS[task]
        table = pq.read_table(path)
        lfs = load_lfs(lf_file)
        if task.endswith(ONLY_RE):
            lfs = LFSet(lfs.classes, [f for f in lfs.lfs if isinstance(f, RegexLF)])
        mb = text_mb(table)
        cpu, wall, dense = time_thresher(path, lfs, args.repeats)
        cli = None if task.endswith(ONLY_RE) else time_cli(path, lf_file)
        sizes = np.cumsum(pc.binary_length(table["text"]).to_numpy(zero_copy_only=False))
        head = table.slice(0, int(np.searchsorted(sizes, args.peer_mb * 1e6)) + 1)
        peer_cpu, peer_L = time_snorkel(head, lfs, args.repeats)
        same = bool(np.array_equal(peer_L, dense[:head.num_rows]))
        head_mb = text_mb(head)
        ours_head_cpu = min(time_thresher_table(head, lfs) for _ in range(args.repeats))
        row = {"task": task, "records": table.num_rows, "text_mb": round(mb, 3), "lfs": len(lfs),
               "apply_cpu_s": round(cpu, 4), "apply_wall_s": round(wall, 4), "apply_mb_s_per_core": round(mb / cpu, 1),
               "cli_wall_s": cli and round(cli, 2), "cli_mb_s": cli and round(mb / cli, 2),
               "peer_records": head.num_rows, "peer_mb": round(head_mb, 3),
               "snorkel_cpu_s": round(peer_cpu, 3), "snorkel_mb_s_per_core": round(head_mb / peer_cpu, 2),
               "thresher_same_records_cpu_s": round(ours_head_cpu, 4),
               "ratio_vs_snorkel": round(peer_cpu / ours_head_cpu, 1), "same_votes_as_snorkel": same}
        rows.append(row)
        print(json.dumps(row), flush=True)

    lines = ["| task | records | MB text | LFs | thresher apply MB/s per core | CLI end to end (s) | snorkel MB/s per "
             "core | thresher / snorkel speed | same votes |", "|---|---:|---:|---:|---:|---:|---:|---:|:---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['records']:,} | {r['text_mb']} | {r['lfs']} | {r['apply_mb_s_per_core']} "
                     f"| {r['cli_wall_s'] or '-'} | {r['snorkel_mb_s_per_core']} ({r['peer_records']} records) | "
                     f"{r['ratio_vs_snorkel']}x | {'yes' if r['same_votes_as_snorkel'] else 'NO'} |")
    meta = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_avg": os.getloadavg(), "argv": sys.argv[1:]}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def time_thresher_table(table: pa.Table, lfs) -> float:
    """CPU seconds of thresher applying ``lfs`` to an in-memory table (the records snorkel labelled)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "head.parquet"
        pq.write_table(table, path)
        c0 = time.process_time()
        apply_lfs(th.read(str(path)), lfs, workers=1)
        return time.process_time() - c0


if __name__ == "__main__":
    main()
