"""Benchmark 2 of issue 6: label models on synthetic votes with known LF accuracies, against snorkel and the oracle.

    python bench/bench_label_synthetic.py   # writes bench/results/label_synthetic.{md,json}; ~5 minutes

Accuracy is over ALL records (all-abstain rows get the predicted prior class for every model, snorkel included).
Timings are single-threaded fits (BLAS and torch pinned to one thread).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import json  # noqa: E402
import multiprocessing as mp  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from thresher.label import DEFAULT_LABEL_MODEL, LABEL_MODELS, label_metrics, make_label_model  # noqa: E402
from thresher.label.synthetic import make_bursty, make_synthetic, make_unipolar  # noqa: E402

OUT = Path(__file__).parent / "results"
PLAIN = f"{DEFAULT_LABEL_MODEL} (anchor=none)"


def snorkel_fit_predict(L_dense: np.ndarray, k: int, class_balance, queue=None):
    """Fit snorkel's LabelModel; returns (predictions with all-abstain rows -> prior argmax, fit seconds)."""
    import torch
    from snorkel.labeling.model import LabelModel

    torch.set_num_threads(1)
    model = LabelModel(cardinality=k, verbose=False)
    start = time.perf_counter()
    model.fit(L_dense, class_balance=class_balance, seed=0, progress_bar=False)
    seconds = time.perf_counter() - start
    pred = model.predict(L_dense, tie_break_policy="random")
    pred = np.where(pred < 0, int(np.argmax(model.p if hasattr(model, "p") else np.ones(k))), pred)
    if queue is not None:
        queue.put(("ok", seconds))
    return pred, seconds


def _guarded(L_dense, k, limit_bytes, queue):
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))
    try:
        snorkel_fit_predict(L_dense, k, None, queue)
    except BaseException as exc:  # noqa: BLE001 -- report whatever snorkel dies of
        queue.put(("failed", f"{type(exc).__name__}: {str(exc)[:200]}"))


def snorkel_guarded(L_dense, k, timeout: float = 180, limit_gb: float = 16) -> dict:
    """snorkel in a child process with an address-space cap and a timeout, so a blow-up is reported, not suffered."""
    queue = mp.get_context("fork").Queue()
    proc = mp.get_context("fork").Process(target=_guarded, args=(L_dense, k, int(limit_gb * 2**30), queue))
    proc.start()
    proc.join(timeout)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return {"status": f"timeout after {timeout:.0f} s"}
    if queue.empty():
        return {"status": f"died (exit code {proc.exitcode})"}
    status, value = queue.get()
    return {"status": "ok", "fit_s": value} if status == "ok" else {"status": value}


def accuracy(y, pred, k) -> float:
    return round(label_metrics(y, pred, k)["accuracy"], 4)


def scenario(name: str, data, k: int) -> dict:
    """Accuracy of every model, snorkel with and without the true class balance, and the oracle."""
    row = {"scenario": name, "n": data.L.n_records, "m": data.L.n_lfs, "k": k,
           "oracle": accuracy(data.y, data.oracle_predict(), k)}
    for model_name in LABEL_MODELS:
        model = make_label_model(model_name).fit(data.L)
        row[model_name] = accuracy(data.y, model.predict(data.L, abstain="prior"), k)
        if model_name == DEFAULT_LABEL_MODEL:
            row["misfit"] = round(float(model.misfit_), 2)
    plain = make_label_model(DEFAULT_LABEL_MODEL, anchor="none").fit(data.L)  # without the fit check's anchor
    row[PLAIN] = accuracy(data.y, plain.predict(data.L, abstain="prior"), k)
    dense = data.L.to_dense()
    row["snorkel"] = accuracy(data.y, snorkel_fit_predict(dense, k, None)[0], k)
    row["snorkel_true_balance"] = accuracy(data.y, snorkel_fit_predict(dense, k, list(data.prior))[0], k)
    print(row, flush=True)
    return row


def timed_fit(name: str, L, **params) -> float:
    start = time.perf_counter()
    make_label_model(name, **params).fit(L)
    return round(time.perf_counter() - start, 3)


def main() -> None:
    rng = np.random.default_rng(0)
    results: dict = {"default_model": DEFAULT_LABEL_MODEL, "accuracy": [], "timing": []}
    acc10, prop10 = rng.uniform(0.55, 0.85, 10), rng.uniform(0.2, 0.6, 10)
    weak_dup = acc10.copy()
    weak_dup[0] = 0.4
    cases = [
        ("balanced k=4", make_synthetic(100_000, 10, 4, accuracy=acc10, propensity=prop10, seed=1), 4),
        ("skewed [.7,.2,.1]", make_synthetic(100_000, 10, 3, prior=[.7, .2, .1], accuracy=acc10, propensity=prop10,
                                             seed=2), 3),
        ("very skewed k=4 [.85,.1,.04,.01]", make_synthetic(100_000, 10, 4, prior=[.85, .1, .04, .01], accuracy=acc10,
                                                            propensity=prop10, seed=3), 4),
        ("weak LF duplicated 5x, skewed", make_synthetic(100_000, 10, 3, prior=[.7, .2, .1], accuracy=weak_dup,
                                                         propensity=prop10, n_copies=5, seed=4), 3),
        ("weak LFs (acc .3-.5, k=4)", make_synthetic(100_000, 20, 4, prior=[.4, .3, .2, .1],
                                                     accuracy=rng.uniform(0.3, 0.5, 20), propensity=0.3, seed=5), 4),
        # keyword-like LFs: each votes one class only, fires on a fraction α of its class and β of the others, so
        # silences carry information and one-coin models are misspecified (the structure of examples/label/)
        ("unipolar LFs, skewed [.5,.3,.15,.05]",
         make_unipolar(100_000, 4, np.repeat(np.arange(4), 3), rng.uniform(0.1, 0.5, 12), rng.uniform(0.005, 0.05, 12),
                       prior=[.5, .3, .15, .05], seed=9), 4),
        ("unipolar LFs, k=10, 2 per class", make_unipolar(100_000, 10, np.repeat(np.arange(10), 2),
                                                          rng.uniform(0.05, 0.4, 20), rng.uniform(0.002, 0.03, 20),
                                                          prior=rng.dirichlet(np.full(10, 2.0)), seed=10), 10),
        # LFs of one class firing together in latent bursts, as keyword LFs for one topic do on off-topic stories:
        # the conditional independence every model assumes fails, and the default's fit check should notice
        ("class-0 LFs fire together (bursts), [.7,.3]", make_bursty(100_000, seed=11), 2),
    ]
    for name, data, k in cases:
        results["accuracy"].append(scenario(name, data, k))

    # ---- timings
    big = make_synthetic(1_000_000, 20, 4, prior=[.4, .3, .2, .1], accuracy=rng.uniform(0.55, 0.85, 20),
                         propensity=0.3, seed=6)
    row = {"case": "1M × 20 LFs × 4 classes"}
    for model_name in LABEL_MODELS:
        row[model_name] = timed_fit(model_name, big.L)
    runs = [row[DEFAULT_LABEL_MODEL]] + [timed_fit(DEFAULT_LABEL_MODEL, big.L) for _ in range(2)]
    row[DEFAULT_LABEL_MODEL] = float(np.median(runs))  # the machine may be shared: median of 3 fits
    row[f"{DEFAULT_LABEL_MODEL} runs"] = runs
    row["snorkel"] = round(snorkel_fit_predict(big.L.to_dense(), 4, None)[1], 3)
    row["snorkel / default"] = round(row["snorkel"] / row[DEFAULT_LABEL_MODEL], 1)
    print(row, flush=True)
    results["timing"].append(row)
    del big

    mid = make_synthetic(100_000, 100, 10, accuracy=rng.uniform(0.3, 0.8, 100), propensity=0.1, seed=7)
    row = {"case": "100k × 100 LFs × 10 classes"}
    for model_name in LABEL_MODELS:
        row[model_name] = timed_fit(model_name, mid.L)
    row["snorkel"] = round(snorkel_fit_predict(mid.L.to_dense(), 10, None)[1], 3)
    row["snorkel / default"] = round(row["snorkel"] / row[DEFAULT_LABEL_MODEL], 1)
    print(row, flush=True)
    results["timing"].append(row)

    prior = rng.dirichlet(np.full(200, 2.0))
    huge = make_synthetic(50_000, 1000, 200, prior=prior, accuracy=rng.uniform(0.3, 0.8, 1000), propensity=0.02, seed=8)
    row = {"case": "50k × 1000 LFs × 200 classes"}
    for model_name in ("majority_vote", "dawid_skene", "triplet", "weighted_majority_vote", "class_conditional"):
        start = time.perf_counter()
        model = make_label_model(model_name).fit(huge.L)
        row[model_name] = round(time.perf_counter() - start, 3)
        row[f"{model_name} accuracy"] = accuracy(huge.y, model.predict(huge.L, abstain="prior"), 200)
    row["oracle accuracy"] = accuracy(huge.y, huge.oracle_predict(), 200)
    row["metal"] = "refused: (m·k)² overlap matrix = 200,000² entries"
    row["snorkel"] = snorkel_guarded(huge.L.to_dense(), 200)
    print(row, flush=True)
    results["timing"].append(row)
    write(results)


def write(results: dict) -> None:
    OUT.mkdir(exist_ok=True)
    (OUT / "label_synthetic.json").write_text(json.dumps(results, indent=2) + "\n")
    models = list(LABEL_MODELS)
    cols = ["oracle", *models, PLAIN, "snorkel", "snorkel_true_balance"]
    lines = ["# Label models on synthetic votes (issue 6, benchmark 2)", "",
             f"Default model: `{results['default_model']}`. Accuracy over all records, abstains included (all-abstain "
             "rows get the prior's top class for every model). Reproduce: `python bench/bench_label_synthetic.py`.",
             f"Python {sys.version.split()[0]}, single-threaded BLAS/torch. `misfit`: the default's fit check (χ² per "
             "cell of the LFs' co-firing, model vs votes); above 2 the default is anchored on the majority vote.", "",
             "| scenario | n | m | k | misfit | " + " | ".join(cols) + " |", "|" + "---|" * (5 + len(cols))]
    for r in results["accuracy"]:
        lines.append(f"| {r['scenario']} | {r['n']} | {r['m']} | {r['k']} | {r['misfit']} | "
                     + " | ".join(f"{r[c]:.4f}" for c in cols) + " |")
    lines += ["", "## Fit time (seconds, single thread)", ""]
    for r in results["timing"]:
        cells = ", ".join(f"{key} = {value}" for key, value in r.items() if key != "case")
        lines.append(f"- **{r['case']}**: {cells}")
    (OUT / "label_synthetic.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
