"""Deduplication: exact (hash of normalised text) and near-duplicate (MinHash LSH with Jaccard verification).

Both return a :class:`DedupResult`: per record, in reading order, the cluster (index of the kept record), whether
the record is kept, and the reason it is not (``exact_duplicate_of:<id>`` / ``near_duplicate_of:<id>``).
"""

from thresher.dedup.clusters import KEEP_POLICIES, DedupResult, connected_components
from thresher.dedup.exact import ExactConfig, exact_duplicates
from thresher.dedup.minhash import MinHashConfig, MinHashDeduplicator, near_duplicates, optimal_bands

__all__ = ["KEEP_POLICIES", "DedupResult", "ExactConfig", "MinHashConfig", "MinHashDeduplicator",
           "connected_components", "exact_duplicates", "near_duplicates", "optimal_bands"]
