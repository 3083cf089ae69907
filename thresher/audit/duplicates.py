"""Near-duplicates inside a labelled pool, for an audit: the same text under two labels is a label conflict, and
the same text in the train and test splits is leakage (a test score that measures memory).

Near-duplicates are thresher's MinHash LSH clusters with Jaccard verification (:mod:`thresher.dedup`, word
5-grams, Jaccard 0.7 by default). Each record in a cluster points at one other member: the first (in reading
order) in a different split when splits are given and the cluster spans several, else the first other member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class DuplicateLinks:
    """partner[i]: the row of a near-duplicate of record i, -1 for none; cross_split[i]: that partner is in
    another split; conflict[i]: its cluster holds more than one given label."""

    partner: np.ndarray
    cross_split: np.ndarray
    conflict: np.ndarray

    def counts(self, splits: np.ndarray | None) -> dict:
        """Records with a near-duplicate, in label-conflicting clusters, and (with splits) across splits, by
        split."""
        out = {"records_with_near_duplicate": int((self.partner >= 0).sum()),
               "records_in_label_conflicts": int(self.conflict.sum())}
        if splits is not None:
            values, n = np.unique(splits[self.cross_split], return_counts=True)
            out["cross_split_records"] = {str(v): int(c) for v, c in zip(values, n)}
        return out


def duplicate_links(texts: pa.Array, labels: np.ndarray, splits: np.ndarray | None = None, engine=None,
                    threshold: float = 0.7) -> DuplicateLinks:
    """Near-duplicate partners of every record of ``texts`` (see the module docstring). ``labels``: given class
    indices, -1 for none (unlabelled records never conflict)."""
    from thresher.dedup import MinHashConfig, near_duplicates

    n = len(texts)
    partner = np.full(n, -1, dtype=np.int64)
    cross = np.zeros(n, dtype=bool)
    conflict = np.zeros(n, dtype=bool)
    if n < 2:
        return DuplicateLinks(partner, cross, conflict)
    result = near_duplicates([texts], MinHashConfig(threshold=threshold), engine=engine)
    order = np.lexsort((result.members, result.kept_of))  # members grouped by cluster, reading order inside
    members, clusters = result.members[order], result.kept_of[order]
    starts = np.flatnonzero(np.r_[True, clusters[1:] != clusters[:-1]])
    for group in np.split(members, starts[1:]):
        if len(group) < 2:
            continue
        given = labels[group]
        given = given[given >= 0]
        conflict[group] = len(np.unique(given)) > 1
        for row in group:
            others = group[group != row]
            if splits is not None:
                elsewhere = others[splits[others] != splits[row]]
                if len(elsewhere):
                    partner[row], cross[row] = elsewhere[0], True
                    continue
            partner[row] = others[0]
    return DuplicateLinks(partner, cross, conflict)
