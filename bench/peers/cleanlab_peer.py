"""cleanlab 2.9 end to end, as its text tutorial runs it: TF-IDF uni+bigrams, scikit-learn's LogisticRegression,
``CleanLearning(...).find_label_issues`` (5-fold cross-validated probabilities, then confident learning with its
defaults). Prints one JSON object: the flagged row numbers and the seconds spent after reading the file.

    python bench/peers/cleanlab_peer.py --data noisy.parquet [--label-field label] [--folds 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pyarrow.parquet as pq


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--label-field", default="label")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    t = pq.read_table(args.data, columns=["text", args.label_field])
    texts = t.column("text").to_pylist()
    names = t.column(args.label_field).to_pylist()
    classes = sorted(set(names))
    labels = np.array([classes.index(v) for v in names])
    start = time.perf_counter()
    from cleanlab.classification import CleanLearning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    x = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    issues = CleanLearning(LogisticRegression(max_iter=1000), cv_n_folds=args.folds, seed=0).find_label_issues(
        x, labels)
    flagged = np.flatnonzero(issues["is_label_issue"].to_numpy())
    print(json.dumps({"flagged": flagged.tolist(), "seconds": time.perf_counter() - start,
                      "classes": classes}))


if __name__ == "__main__":
    main()
