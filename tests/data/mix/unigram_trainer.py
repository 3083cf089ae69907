"""A user's trainer for thresher mix --proxy-command tests: an add-one unigram LM on {train}, its cross-entropy on
every target set of {heldout}, written to {out}/metrics.json as loss:NAME (and the train size, as another metric)."""

import json
import math
import sys
from collections import Counter

import pyarrow.parquet as pq

train, heldout, out = sys.argv[1], sys.argv[2], sys.argv[3]
counts = Counter(w for text in pq.read_table(train)["text"].to_pylist() for w in text.lower().split())
total, vocab = sum(counts.values()), len(counts) + 1
held = pq.read_table(heldout).to_pydict()
metrics = {"train_words": float(total)}
for name in sorted(set(held["set"])):
    words = [w for text, s in zip(held["text"], held["set"]) if s == name for w in text.lower().split()]
    loss = -sum(math.log((counts[w] + 1) / (total + vocab)) for w in words) / max(len(words), 1)
    metrics["loss:" + name.split(":", 1)[1] if name.startswith("target:") else name] = loss
with open(f"{out}/metrics.json", "w") as f:
    json.dump(metrics, f)
