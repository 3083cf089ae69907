"""Language models used by scorers. The word n-gram model (interpolated modified Kneser-Ney) is exported here; other
models are imported from their own modules, so their optional dependencies load only when asked for."""

from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, NgramCounts, Texts

__all__ = ["KneserNeyConfig", "KneserNeyLM", "NgramCounts", "Texts"]
