"""Mixture regression on RegMix's published proxy runs (issue 14): how well does each regressor rank unseen mixtures?

Fits each regressor on RegMix's 512 training runs of 1M-parameter proxies (17 Pile domains), or on seeded random
subsets of 128 and 64 of them, and reports Spearman's rank correlation between predicted and actual loss on the 256
test runs: for the Pile-CC loss (RegMix's objective) and the mean and minimum over all 13 losses. Subsets are
averaged over --subsets seeds. Hyper-parameters are never chosen on the test runs: LightGBM uses RegMix's settings,
the Gaussian process chooses its own by marginal likelihood on the training runs, the mixing law has none.
Least squares (weights -> loss, no intercept since the weights sum to 1) is printed as the reference.

    python bench/bench_mix_regression.py [--data ../shared/data/mixing/regmix] [--subsets 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from thresher.mix.regression import _spearman, make_regressor
from thresher.mix.runs import read_runs

PILE_CC = "metric/the_pile_pile_cc_val_loss"


class LeastSquares:
    """The reference: ordinary least squares from weights to loss."""

    def fit(self, X, y):
        self.coef_ = np.linalg.lstsq(X, y, rcond=None)[0]
        return self

    def predict(self, X):
        return X @ self.coef_


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--data", default=str(here.parent / "shared" / "data" / "mixing" / "regmix"))
    parser.add_argument("--subsets", type=int, default=3, help="seeded subsets averaged for 128 and 64 runs")
    parser.add_argument("--sizes", default="512,128,64")
    parser.add_argument("--regressors", default="least_squares,mixing_law,lightgbm,gp")
    args = parser.parse_args()
    data = Path(args.data)
    train = read_runs(data / "train_mixture_1m.csv", data / "train_pile_loss_1m.csv")
    test = read_runs(data / "test_mixture_1m.csv", data / "test_pile_loss_1m.csv")
    assert train.groups == test.groups and train.metric_names == test.metric_names
    columns = train.metric_names
    print(f"{len(train.index)} train runs, {len(test.index)} test runs, {len(train.groups)} groups, "
          f"{len(columns)} losses\n")
    print(f"{'regressor':<14}{'runs':>6}{'subsets':>9}{'Pile-CC':>10}{'mean 13':>10}{'min 13':>9}{'fit s/loss':>12}")
    for size in (int(s) for s in args.sizes.split(",")):
        seeds = [None] if size >= len(train.index) else list(range(args.subsets))
        for name in args.regressors.split(","):
            pile_cc, means, mins, seconds = [], [], [], []
            for seed in seeds:
                rows = np.arange(len(train.index)) if seed is None else \
                    np.sort(np.random.default_rng(seed).choice(len(train.index), size, replace=False))
                rhos = []
                for column in columns:
                    model = LeastSquares() if name == "least_squares" else make_regressor(name, seed=0)
                    start = time.perf_counter()
                    model.fit(train.weights[rows], train.objective(column)[rows])
                    seconds.append(time.perf_counter() - start)
                    rhos.append(_spearman(model.predict(test.weights), test.objective(column)))
                pile_cc.append(rhos[columns.index(PILE_CC)])
                means.append(np.mean(rhos))
                mins.append(np.min(rhos))
            print(f"{name:<14}{size:>6}{len(seeds):>9}{np.mean(pile_cc):>10.4f}{np.mean(means):>10.4f}"
                  f"{np.mean(mins):>9.4f}{np.mean(seconds):>12.2f}", flush=True)


if __name__ == "__main__":
    main()
