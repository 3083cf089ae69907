#!/usr/bin/env python
"""Near-duplicate detection end to end as users run it: the ``thresher dedup`` CLI vs a datasketch script (issue 18).

Every timed run is a subprocess timed from start to exit, every process of it counted:

* thresher: ``thresher dedup --pool DIR/docs.parquet --out TMP --method minhash --threshold T --workers N --seed S``
  (the ``thresher`` on PATH, as a user types it; under pyenv that is the entry script, and the shim's extra start-up
  is in the start-up table), N = 1 and 2; also the bare default (``thresher dedup --pool ... --out ...``: exact then
  MinHash, all cores), ``--no-report`` (what report.html costs), a lean run (``--format ids --no-report
  --batch-size 4096``: decisions only, as the datasketch script writes), ``--no-verify`` (the same algorithm as
  datasketch) and, when verified thresher finds fewer planted pairs than datasketch at 0.7, the highest lower
  threshold (from ``--match``) whose mean planted-pair recall and dropped precision both match or beat
  datasketch's.
* datasketch: bench/peers/datasketch_peer.py (pyarrow + datasketch only): Parquet in, ``MinHash(num_perm=128)``
  per doc from bench_dedup's word 5-gram shingles, ``MinHashLSH`` with the bands and rows it picks for the threshold
  (the same as thresher's ``optimal_bands``), query then insert, union-find, keep first, Parquet out.

Measured per run: wall seconds until the launched process exits (what the user waits for); CPU seconds of the whole
process tree = user + system from ``wait4`` rusage of the launched process and of every orphan reparented to this
process (it makes itself a child subreaper, so the worker fork server and the resource tracker, which the CLI
does not wait for, are counted with the workers they reaped), cross-checked against per-process ``cpu_times``
sampled with psutil every 0.1 s; peak RSS of the process tree (bench/_measure.py's ``tree_rss_bytes``, sampled
every 0.1 s). Decisions are read from TMP/scores/scores.parquet (``dup_cluster``, ``dup_keep``) or the peer's Parquet
and scored with bench_dedup's functions (``load_truth``, ``score``): dropped precision, planted-pair recall and
recall over the planted pairs with 5-gram Jaccard >= 0.7, always at the comparison threshold 0.7. Timings are
medians over ``--seeds`` runs (LSH seed s for thresher, s + 1 for datasketch), qualities are means. Beside them,
the in-process figures of bench_dedup (``run_thresher``, ``datasketch_minhashes`` + ``datasketch_lsh``: CPU time of
the work alone, no interpreter start, imports or output). One untimed warm-up run of each command comes first.

Sets: ../shared/data/dedup (word edits) and /tmp/dedup_edits (crawl-like edits: typos, sentence deletions and
repeats, truncation, containment, numbers and dates, case / whitespace / punctuation; built by
bench/build_dedup_edits.py if missing).

Reproduce (about 10 minutes on 2 cores; run nothing else heavy meanwhile):

    pip install -e . && pip install datasketch psutil
    python bench/build_dedup_edits.py --out /tmp/dedup_edits     # optional: built on demand
    python bench/bench_dedup_e2e.py                               # -> bench/results/dedup_e2e.{md,json}
    python bench/bench_dedup_e2e.py --data ../shared/data/dedup --seeds 1    # quick look
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
import bench_dedup as bd  # noqa: E402
from _measure import tree_rss_bytes  # noqa: E402

from thresher.dedup import MinHashConfig, optimal_bands  # noqa: E402

EDITS_DATA = Path("/tmp/dedup_edits")
PEER = HERE / "peers" / "datasketch_peer.py"
THRESHOLD = 0.7


# ------------------------------------------------------------------------------------------------ measurement


def become_subreaper() -> bool:
    """Orphaned descendants of our children come to us (not to init), so their rusage can be collected."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    return False


def _reap_zombies(reaped: dict) -> None:
    """Collect every exited child of ours (orphans reparented to us included) with its rusage."""
    while True:
        try:
            pid, status, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        reaped[pid] = (status, ru)


def run_measured(cmd: list[str], log: Path, interval: float = 0.1, straggler_timeout: float = 30.0) -> dict:
    """Run ``cmd``: wall seconds to its exit, CPU seconds of every process of its tree (rusage, and sampled),
    peak summed RSS of the tree, and stdout."""
    _reap_zombies({})  # nothing of an earlier run may be counted here
    out_path = log.with_suffix(".out")
    with open(out_path, "wb") as out, open(log, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        done: dict = {}

        def wait_main() -> None:
            _, status, ru = os.wait4(proc.pid, 0)
            done.update(t=time.perf_counter(), status=status, ru=ru)

        waiter = threading.Thread(target=wait_main, daemon=True)
        waiter.start()
        peak, cpu_seen, seen = 0, {}, set()
        me = psutil.Process()
        while True:
            with contextlib.suppress(Exception):
                if "t" not in done:
                    peak = max(peak, tree_rss_bytes(proc.pid))
                for p in me.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        key = (p.pid, p.create_time())
                        c = p.cpu_times()
                        cpu_seen[key] = c.user + c.system
                        seen.add(p.pid)
            if "t" in done:
                break
            waiter.join(interval)
        waiter.join()
        proc.returncode = os.waitstatus_to_exitcode(done["status"])
        # orphans (the fork server, the resource tracker) exit once the CLI has: wait for those we saw and reap all
        reaped: dict = {proc.pid: (done["status"], done["ru"])}
        deadline = time.perf_counter() + straggler_timeout
        while time.perf_counter() < deadline:
            _reap_zombies(reaped)
            alive = [p for p in me.children() if p.pid in seen and p.pid not in reaped]
            if not alive:
                break
            time.sleep(0.01)
        t_all = time.perf_counter()
        _reap_zombies(reaped)
    cpu = sum(ru.ru_utime + ru.ru_stime for _, ru in reaped.values())
    return {"returncode": proc.returncode, "wall_s": done["t"] - t0, "wall_all_exited_s": t_all - t0,
            "cpu_s": cpu, "cpu_sampled_s": sum(cpu_seen.values()), "peak_rss_mb": peak / 2**20,
            "max_single_rss_mb": max(ru.ru_maxrss for _, ru in reaped.values()) / 1024,
            "processes_reaped": len(reaped), "processes_seen": len(seen),
            "stdout": out_path.read_text(errors="replace")}


# ------------------------------------------------------------------------------------------------------ tools


THRESHER: list[str] = []  # the command that runs thresher (--thresher; default: `thresher` on this PATH)


def thresher_exe() -> str:
    if not THRESHER:
        exe = shutil.which("thresher")
        if exe is None:
            raise SystemExit("thresher is not on PATH: pip install -e .")
        THRESHER.append(exe)
    return THRESHER[0]


def thresher_cmd(docs: Path, out: Path, threshold: float | None, workers: int | None, seed: int,
                 method: str | None = "minhash", verify: bool = True, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [thresher_exe(), "dedup", "--pool", str(docs), "--out", str(out)]
    if method:
        cmd += ["--method", method]
    if threshold is not None:
        cmd += ["--threshold", str(threshold)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    if not verify:
        cmd += ["--no-verify"]
    return cmd + ["--seed", str(seed), *extra]


def run_cli(cmd: list[str], out: Path, ids: list[str], truth: dict, work: Path) -> dict:
    """One timed ``thresher dedup`` run, scored from its scores.parquet; the manifest's stage times kept."""
    m = run_measured(cmd, work / "log.txt")
    if m["returncode"]:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(work / 'log.txt').read_text()[-3000:]}")
    scores = pq.read_table(out / "scores" / "scores.parquet", columns=["id", "dup_cluster", "dup_keep"])
    got = scores.column("id").to_pylist()
    labels = scores.column("dup_cluster").to_numpy()
    keep = scores.column("dup_keep").to_numpy(zero_copy_only=False)
    if got != ids:  # reading order is the file's order; map by id if it ever is not
        pos = {x: i for i, x in enumerate(got)}
        order = np.array([pos[x] for x in ids])
        back = {i: ids.index(got[i]) for i in set(labels.tolist())}
        labels = np.array([back[c] for c in labels[order]])
        keep = keep[order]
    manifest = json.loads((out / "manifest.json").read_text())
    m["quality"] = bd.score(labels, ~keep, truth, THRESHOLD)
    m["cluster_not_kept"] = int((~keep & ~keep[labels]).sum())  # dropped for a record that is dropped too
    m["stages"] = manifest["timings"]
    m["bands_rows"] = manifest["config"]["minhash"]["bands_rows"]
    m["engine"] = manifest["engine"]
    m["minhash_stats"] = manifest["metrics"].get("minhash", {})
    m.pop("stdout")
    shutil.rmtree(out, ignore_errors=True)
    return m


def run_peer(docs: Path, threshold: float, seed: int, ids: list[str], truth: dict, work: Path) -> dict:
    out = work / "datasketch_keep.parquet"
    cmd = [sys.executable, str(PEER), "--docs", str(docs), "--out", str(out), "--threshold", str(threshold),
           "--seed", str(seed)]
    m = run_measured(cmd, work / "log.txt")
    if m["returncode"]:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{(work / 'log.txt').read_text()[-3000:]}")
    info = json.loads(m.pop("stdout").strip().splitlines()[-1])
    t = pq.read_table(out)
    assert t.column("id").to_pylist() == ids
    m["quality"] = bd.score(t.column("cluster").to_numpy(), ~t.column("keep").to_numpy(zero_copy_only=False),
                            truth, THRESHOLD)
    m["bands_rows"] = [info["bands"], info["rows"]]
    m["stages"] = info["seconds"]
    out.unlink()
    return m


def in_process(docs: Path, seeds: int, thresholds: list[float], truth: dict) -> dict:
    """bench_dedup's own in-process figures (CPU of the work alone), medians of time, means of quality."""
    rows: dict[str, list[dict]] = {}
    bd.run_thresher(docs, MinHashConfig(threshold=THRESHOLD))  # warm-up, as bench_dedup does
    for seed in range(seeds):
        mh, clock = bd.datasketch_minhashes(docs, 128, 5, seed=seed + 1)
        b, r = optimal_bands(THRESHOLD, 128)
        rows.setdefault(f"datasketch @ {THRESHOLD}", []).append(bd.run_datasketch(mh, clock, THRESHOLD, 128, b, r))
        del mh
        for th in thresholds:
            for verify in (True, False):
                if not verify and th != THRESHOLD:
                    continue
                name = f"thresher{'' if verify else ' --no-verify'} @ {th}"
                rows.setdefault(name, []).append(bd.run_thresher(docs, MinHashConfig(threshold=th, verify=verify,
                                                                                      seed=seed)))
    out = {}
    for name, runs in rows.items():
        qs = [bd.score(x["labels"], x["dropped"], truth, THRESHOLD) for x in runs]
        out[name] = {"cpu_s": statistics.median(x["cpu_s"] for x in runs),
                     "wall_s": statistics.median(x["wall_s"] for x in runs), "quality": _mean_quality(qs)}
    return out


# --------------------------------------------------------------------------------------------------- summaries


QKEYS = ("dropped", "dropped_precision", "pair_recall", "pair_recall_at_threshold", "natural_pair_recall")


def _mean_quality(qs: list[dict]) -> dict:
    out = {k: None if any(q[k] is None for q in qs) else float(np.mean([q[k] for q in qs])) for k in QKEYS}
    out["pair_recall_by_seed"] = [q["pair_recall"] for q in qs]
    edits = sorted(qs[0]["recall_by_edit"])
    out["recall_by_edit"] = {e: float(np.mean([q["recall_by_edit"][e] for q in qs])) for e in edits}
    return out


def summarize(runs: list[dict]) -> dict:
    keys = ("wall_s", "wall_all_exited_s", "cpu_s", "cpu_sampled_s", "peak_rss_mb", "max_single_rss_mb")
    s = {k: statistics.median(r[k] for r in runs) for k in keys}
    s |= {"runs": len(runs), "wall_s_all": [r["wall_s"] for r in runs], "cpu_s_all": [r["cpu_s"] for r in runs],
          "processes_reaped": max(r["processes_reaped"] for r in runs),
          "cluster_not_kept": max(r.get("cluster_not_kept", 0) for r in runs), "quality": _mean_quality(
              [r["quality"] for r in runs])}
    if runs[0].get("stages") is not None:
        s["stages"] = {k: statistics.median(r["stages"][k] for r in runs) for k in runs[0]["stages"]}
    for k in ("bands_rows", "engine"):
        if k in runs[0]:
            s[k] = runs[0][k]
    return s


def startup(work: Path, repeats: int) -> dict:
    """Bare start-up costs, medians: the interpreter, datasketch's imports, ``thresher --help`` (the entry script
    the runs use) and, if pyenv manages this Python, through its shim (what ``thresher`` resolves to in a pyenv
    user's shell), and ``thresher dedup --help``."""
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import datasketch, pyarrow.parquet'": [sys.executable, "-c",
                                                               "import datasketch, pyarrow.parquet"],
            "thresher --help": [thresher_exe(), "--help"],
            "thresher dedup --help": [thresher_exe(), "dedup", "--help"]}
    shim = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "shims" / "thresher"
    if shim.exists():
        cmds["thresher --help through the pyenv shim"] = [str(shim), "--help"]
    out = {}
    for name, cmd in cmds.items():
        runs = [run_measured(cmd, work / "startup.txt", interval=0.05) for _ in range(repeats + 1)][1:]
        out[name] = {"wall_s": statistics.median(r["wall_s"] for r in runs),
                     "cpu_s": statistics.median(r["cpu_s"] for r in runs),
                     "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs)}
    out["_paths"] = {"thresher": thresher_exe(), "pyenv shim": str(shim) if shim.exists() else None}
    return out


# ---------------------------------------------------------------------------------------------------------- run


def bench_set(data: Path, args: argparse.Namespace, work: Path) -> dict:
    docs = data / "docs.parquet"
    ids = pq.read_table(docs, columns=["id"]).column("id").to_pylist()
    truth = bd.load_truth(data, ids)
    n = len(ids)
    texts = pq.read_table(docs, columns=["text"]).column("text").to_pylist()
    import datasketch_peer

    assert all(datasketch_peer.shingles(t, 5) == bd._shingles(t, 5) for t in texts[:2000]), "shingles differ"
    del texts
    b, r = optimal_bands(THRESHOLD, 128)
    print(f"== {data}: {n:,} docs, {len(truth['planted'])} planted + {len(truth['natural'])} natural pairs, "
          f"{b} bands x {r} rows", file=sys.stderr, flush=True)

    def tmp() -> Path:
        return Path(tempfile.mkdtemp(dir=work, prefix="run-"))

    variants: dict[str, dict] = {}  # name -> command maker (seed, out) and metadata
    for w in args.workers:
        variants[f"thresher --method minhash @ {THRESHOLD}, workers {w}"] = {
            "tool": "thresher", "workers": w, "threshold": THRESHOLD,
            "cmd": lambda s, o, w=w: thresher_cmd(docs, o, THRESHOLD, w, s)}
    variants[f"thresher --method minhash --no-verify @ {THRESHOLD}, workers 1"] = {
        "tool": "thresher", "workers": 1, "threshold": THRESHOLD, "verify": False,
        "cmd": lambda s, o: thresher_cmd(docs, o, THRESHOLD, 1, s, verify=False)}
    variants[f"thresher --method minhash --no-report @ {THRESHOLD}, workers 1"] = {
        "tool": "thresher", "workers": 1, "threshold": THRESHOLD, "no_report": True,
        "cmd": lambda s, o: thresher_cmd(docs, o, THRESHOLD, 1, s, extra=("--no-report",))}
    variants[f"thresher --method minhash --format ids --no-report --batch-size 4096 @ {THRESHOLD}, workers 1"] = {
        "tool": "thresher", "workers": 1, "threshold": THRESHOLD, "lean": True,
        "cmd": lambda s, o: thresher_cmd(docs, o, THRESHOLD, 1, s, extra=("--format", "ids", "--no-report",
                                                                          "--batch-size", "4096"))}
    variants["thresher (defaults: exact + minhash @ 0.7, all cores)"] = {
        "tool": "thresher", "workers": os.cpu_count(), "threshold": THRESHOLD, "default": True,
        "cmd": lambda s, o: thresher_cmd(docs, o, None, None, s, method=None)}
    for th in args.match:
        variants[f"thresher --method minhash @ {th}, workers 1"] = {
            "tool": "thresher", "workers": 1, "threshold": th, "sweep": True,
            "cmd": lambda s, o, th=th: thresher_cmd(docs, o, th, 1, s)}

    # warm-up: page cache, byte code, the fork server's first start
    run_peer(docs, THRESHOLD, 1, ids, truth, work)
    for v in list(variants.values())[:2]:
        o = tmp()
        run_cli(v["cmd"](0, o), o, ids, truth, work)

    runs: dict[str, list[dict]] = {name: [] for name in variants}
    runs[f"datasketch @ {THRESHOLD}"] = []
    for seed in range(args.seeds):
        print(f"  seed {seed}: datasketch ...", file=sys.stderr, flush=True)
        runs[f"datasketch @ {THRESHOLD}"].append(run_peer(docs, THRESHOLD, seed + 1, ids, truth, work))
        for name, v in variants.items():
            o = tmp()
            runs[name].append(run_cli(v["cmd"](seed, o), o, ids, truth, work))
            last = runs[name][-1]
            print(f"  seed {seed}: {name}: {last['wall_s']:.2f} s wall, {last['cpu_s']:.2f} CPU s "
                  f"(sampled {last['cpu_sampled_s']:.2f}), recall {last['quality']['pair_recall']:.3f}",
                  file=sys.stderr, flush=True)
    summary = {name: summarize(rs) for name, rs in runs.items()}
    for name, v in variants.items():
        summary[name] |= {k: v[k] for k in ("tool", "workers", "threshold") if k in v}
        summary[name]["kind"] = ("sweep" if v.get("sweep") else "default" if v.get("default") else
                                 "no-report" if v.get("no_report") else "lean" if v.get("lean") else
                                 "no-verify" if v.get("verify") is False else "main")
    ds = summary[f"datasketch @ {THRESHOLD}"]
    ds |= {"tool": "datasketch", "workers": 1, "threshold": THRESHOLD, "kind": "main"}

    # equal recall and precision: the highest threshold of verified thresher matching or beating datasketch on both
    verified = [summary[f"thresher --method minhash @ {THRESHOLD}, workers 1"]] + [
        summary[f"thresher --method minhash @ {th}, workers 1"] for th in args.match]
    dq = ds["quality"]
    matched = None
    if verified[0]["quality"]["pair_recall"] < dq["pair_recall"]:
        ok = [v for v in verified if v["quality"]["pair_recall"] >= dq["pair_recall"]
              and v["quality"]["dropped_precision"] >= dq["dropped_precision"]]
        matched = max(ok, key=lambda v: v["threshold"])["threshold"] if ok else None
    else:
        matched = THRESHOLD
    if matched is not None and matched != THRESHOLD:
        summary[f"thresher --method minhash @ {matched}, workers 1"]["kind"] = "matched"
        for w in args.workers:
            if w == 1:
                continue
            name = f"thresher --method minhash @ {matched}, workers {w}"
            rs = []
            for seed in range(args.seeds):
                o = tmp()
                rs.append(run_cli(thresher_cmd(docs, o, matched, w, seed), o, ids, truth, work))
            summary[name] = summarize(rs) | {"tool": "thresher", "workers": w, "threshold": matched,
                                             "kind": "matched"}

    print("  in-process (bench_dedup's functions) ...", file=sys.stderr, flush=True)
    inproc = in_process(docs, args.seeds, sorted({THRESHOLD, matched or THRESHOLD}, reverse=True), truth)
    return {"data": str(data), "docs": n, "planted_pairs": len(truth["planted"]),
            "natural_pairs": len(truth["natural"]), "ideal_dropped": truth["ideal_dropped"],
            "bands_rows": [b, r], "expected_lsh_recall": bd.expected_recall(truth, THRESHOLD, 128),
            "matched_threshold": matched, "cli": summary, "in_process": inproc}


# ------------------------------------------------------------------------------------------------------ report


def _pct(x: float | None) -> str:
    return bd._pct(x)


def render(report: dict) -> str:
    L = [f"## thresher dedup vs datasketch, end to end (CLI / script as a user runs it) and in-process "
         f"(thresher {report['versions']['thresher']}, datasketch {report['versions']['datasketch']})", "",
         f"{report['machine']}, {report['cpus']} cores (shared). Threshold {THRESHOLD}, num_perm 128, word 5-grams, "
         "keep first. End to end = a subprocess from launch to exit: wall until it exits, CPU of every process "
         "(wait4 rusage of the CLI and of the orphans it leaves, the worker fork server included), peak summed RSS "
         f"of the process tree. Medians of {report['seeds']} runs (timing), means (quality); quality is always "
         f"scored at J >= {THRESHOLD}. Ratio = datasketch's / thresher's (x times faster), CPU and wall.", ""]
    order = {"main": 0, "no-verify": 1, "matched": 2, "default": 3, "no-report": 4, "lean": 5, "sweep": 6}
    for s in report["sets"]:
        n = s["docs"]
        ds = s["cli"][f"datasketch @ {THRESHOLD}"]
        L += [f"### {s['data']} ({n:,} docs, {s['planted_pairs']:,} planted pairs, {s['natural_pairs']} natural "
              f"pairs; {s['bands_rows'][0]} bands x {s['bands_rows'][1]} rows)", "",
              "| run | workers | threshold | wall s | CPU s | peak RSS MB | docs/s per CPU-s | ratio vs datasketch "
              "(CPU) | ratio (wall) | dropped precision | planted-pair recall | recall, J >= 0.7 |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        rows = sorted(s["cli"].items(), key=lambda kv: (kv[1]["tool"] != "datasketch", order[kv[1]["kind"]],
                                                       -kv[1]["threshold"], kv[1]["workers"]))
        for name, r in rows:
            q = r["quality"]
            tag = {"matched": " (equal recall & precision)", "sweep": " (sweep)"}.get(r["kind"], "")
            L.append(f"| {name}{tag} | {r['workers']} | {r['threshold']} | {r['wall_s']:.2f} | {r['cpu_s']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {n / r['cpu_s']:,.0f} | {ds['cpu_s'] / r['cpu_s']:.2f}x | "
                     f"{ds['wall_s'] / r['wall_s']:.2f}x | {_pct(q['dropped_precision'])} | "
                     f"{_pct(q['pair_recall'])} | {_pct(q['pair_recall_at_threshold'])} |")
        ip = s["in_process"]
        ids = ip[f"datasketch @ {THRESHOLD}"]
        L += ["", "In-process (bench_dedup's functions: the work alone, CPU time of this process):", "",
              "| run | CPU s | wall s | docs/s per CPU-s | ratio vs datasketch (CPU) | dropped precision | "
              "planted-pair recall | recall, J >= 0.7 |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for name, r in ip.items():
            q = r["quality"]
            L.append(f"| {name} | {r['cpu_s']:.2f} | {r['wall_s']:.2f} | {n / r['cpu_s']:,.0f} | "
                     f"{ids['cpu_s'] / r['cpu_s']:.2f}x | {_pct(q['dropped_precision'])} | "
                     f"{_pct(q['pair_recall'])} | {_pct(q['pair_recall_at_threshold'])} |")
        m = s["matched_threshold"]
        main1 = s["cli"][f"thresher --method minhash @ {THRESHOLD}, workers 1"]
        L += ["", f"CPU accounting check (rusage vs psutil samples, CLI workers 1 / 2 at {THRESHOLD}): "
              + "; ".join(f"{r['workers']} worker(s): {r['cpu_s']:.2f} vs {r['cpu_sampled_s']:.2f} s, "
                          f"{r['processes_reaped']} processes reaped"
                          for r in s["cli"].values() if r["kind"] == "main" and r["tool"] == "thresher")
              + f". datasketch: {ds['cpu_s']:.2f} vs {ds['cpu_sampled_s']:.2f} s.",
              "", f"Equal recall and precision: verified thresher at {THRESHOLD} finds "
              f"{_pct(main1['quality']['pair_recall'])} of planted pairs vs datasketch's "
              f"{_pct(ds['quality']['pair_recall'])}; " + (
                  f"the highest threshold matching datasketch on both is {m}." if m not in (None, THRESHOLD) else
                  "no lower threshold tried matches it." if m is None else "it already matches."),
              f"Expected recall of any unbiased LSH without verification here: "
              f"{_pct(s['expected_lsh_recall']['mean'])} (sd of one run {100 * s['expected_lsh_recall']['sd']:.1f} "
              "points).", ""]
        stages = main1.get("stages", {})
        up = report["startup"]["thresher dedup --help"]["wall_s"]
        L += [f"thresher CLI, workers 1 at {THRESHOLD}: wall {main1['wall_s']:.2f} s = start-up ({up:.2f} s for "
              "`thresher dedup --help`) + the manifest's stages (" + ", ".join(
                  f"{k} {v:.2f} s" for k, v in stages.items() if v) + ") + the rest "
              f"({main1['wall_s'] - up - sum(stages.values()):.2f} s: writing scores, the kept records, manifest and "
              "report.html, and teardown)."]
        odd = {name: r["cluster_not_kept"] for name, r in s["cli"].items() if r.get("cluster_not_kept")}
        if odd:
            L += ["Records whose `dup_cluster` names a record that is itself dropped (a chain the scores file does "
                  "not resolve; scored as written): " + "; ".join(f"{k}: {v}" for k, v in odd.items()) + "."]
        L.append("")
        edits = sorted(ds["quality"]["recall_by_edit"])
        cols = [("datasketch", ds), (f"thresher @ {THRESHOLD}", main1)]
        if m not in (None, THRESHOLD):
            cols.append((f"thresher @ {m}", s["cli"][f"thresher --method minhash @ {m}, workers 1"]))
        L += ["Planted-pair recall by edit (CLI runs, mean of seeds):", "",
              "| edit | " + " | ".join(c for c, _ in cols) + " |", "| --- |" + " ---: |" * len(cols)]
        for e in edits:
            L.append(f"| {e} | " + " | ".join(_pct(r["quality"]["recall_by_edit"].get(e)) for _, r in cols) + " |")
        L.append("")
    st = report["startup"]
    L += ["### Start-up alone (medians)", "", "| command | wall s | CPU s | peak RSS MB |",
          "| --- | ---: | ---: | ---: |"]
    for name, r in st.items():
        if not name.startswith("_"):
            L.append(f"| {name} | {r['wall_s']:.3f} | {r['cpu_s']:.3f} | {r['peak_rss_mb']:.0f} |")
    L += ["", f"`thresher` run as {st['_paths']['thresher']} (the entry script pip installs); pyenv shim: "
          f"{st['_paths']['pyenv shim']}.",
          f"Load average at start / end: {report['loadavg_start']} / {report['loadavg_end']}."]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, action="append", help="a set folder (docs/pairs/natural_pairs.parquet); "
                    f"repeatable; default {bd.DEFAULT_DATA} and {EDITS_DATA} (built if missing)")
    ap.add_argument("--seeds", type=int, default=3, help="timed runs per command (median time, mean quality)")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--match", default="0.65,0.6,0.55,0.5",
                    help="lower thresholds for verified thresher, to match datasketch's recall at 0.7")
    ap.add_argument("--startup-repeats", type=int, default=5)
    ap.add_argument("--thresher", default=None, help="the thresher executable (default: `thresher` on PATH)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "dedup_e2e.json")
    args = ap.parse_args(argv)
    args.workers = [int(x) for x in args.workers.split(",")]
    args.match = [float(x) for x in args.match.split(",") if x]
    datas = args.data or [bd.DEFAULT_DATA, EDITS_DATA]
    if args.thresher:
        THRESHER[:] = [args.thresher]
    subreaper = become_subreaper()
    load0 = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-e2e-"))
    try:
        for d in datas:
            if not (d / "docs.parquet").exists():
                print(f"building {d} ...", file=sys.stderr, flush=True)
                subprocess.run([sys.executable, str(HERE / "build_dedup_edits.py"), "--out", str(d)], check=True)
        st = startup(work, args.startup_repeats)
        sets = [bench_set(d, args, work) for d in datas]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {"seeds": args.seeds, "threshold": THRESHOLD, "subreaper": subreaper, "cpus": os.cpu_count(),
              "machine": bd._cpu_name(), "python": platform.python_version(),
              "versions": {"thresher": bd._version("thresher"), "datasketch": bd._version("datasketch"),
                           "psutil": psutil.__version__},
              "loadavg_start": [round(x, 2) for x in load0], "loadavg_end": [round(x, 2) for x in os.getloadavg()],
              "startup": st, "sets": sets}
    md = render(report)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o)))
    args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
