"""A deterministic random sample of a dataset's texts in one streaming pass (bottom-k by a seeded hash of the id).

Each record gets the key ``xxh3_64(id, seed)`` and the ``k`` smallest keys win, so the sample depends only on the
ids, ``k`` and the seed: not on batch size, file order within a glob, or worker count.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import xxhash

from thresher.io.dataset import Dataset
from thresher.io.errors import ErrorLog


def sample_texts(dataset: Dataset, k: int, seed: int = 0) -> pa.Table:
    """Up to ``k`` records (columns ``id``, ``text``) drawn uniformly without replacement, in key order."""
    keys = np.zeros(0, dtype=np.uint64)
    kept: pa.Table | None = None
    errors = ErrorLog("skip")  # the main pass reports bad records under the user's policy; don't count them twice
    for batch in dataset.iter_batches(errors):
        ids = batch.column("id").to_pylist()
        batch_keys = np.fromiter((xxhash.xxh3_64_intdigest(i.encode(), seed) for i in ids), dtype=np.uint64,
                                 count=len(ids))
        table = pa.Table.from_batches([batch]).select(["id", "text"])
        keys = np.concatenate([keys, batch_keys])
        kept = table if kept is None else pa.concat_tables([kept, table])
        if len(keys) > k:
            best = np.argpartition(keys, k - 1)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
            best.sort()
            keys, kept = keys[best], kept.take(pa.array(best))
    if kept is None:
        return pa.table({"id": pa.array([], pa.large_string()), "text": pa.array([], pa.large_string())})
    order = np.argsort(keys, kind="stable")
    return kept.take(pa.array(order)).combine_chunks()
