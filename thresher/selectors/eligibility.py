"""Which records a selection may choose: pipeline filters, ``where``, the length floor and token-budget pricing.

Selection, reselection, evaluation and the report all ask the same question, so the answer lives here, below them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from thresher.io.columns import as_float
from thresher.selectors.budget import Budget
from thresher.selectors.where import WhereExpression


def eligibility(scores: pa.Table, where: str | None, min_tokens: int, budget: str | None,
                token_column: str = "n_words") -> tuple[np.ndarray, dict[str, int]]:
    """Which records a selection may choose, and how many each filter removed; a record is counted under the first
    reason that removed it: pipeline filters, ``where``, the length floor, then (token budgets) a missing token
    count. The report uses it too, so its "not selected" are the eligible records that were not chosen."""
    n = scores.num_rows
    lengths = scores["n_tokens" if "n_tokens" in scores.column_names else "n_words"].to_numpy()
    filtered: dict[str, int] = {}
    eligible = np.ones(n, dtype=bool)
    if "filtered_by" in scores.column_names:
        by = scores["filtered_by"]
        eligible = ~np.asarray(by.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        filtered.update({str(k): int(v) for k, v in
                         zip(*np.unique(np.asarray(by.drop_null().to_pylist(), dtype=object), return_counts=True))})
    if where is not None:
        passed = WhereExpression(where).mask(scores)
        filtered["where"] = int((eligible & ~passed).sum())
        eligible &= passed
    long_enough = lengths >= min_tokens
    if min_tokens:
        filtered["too_short"] = int((eligible & ~long_enough).sum())
    eligible &= long_enough
    counted = np.isfinite(as_float(scores[token_column]))
    if budget is not None and Budget.parse(budget).kind == "tokens" and not counted[eligible].all():
        filtered["no_token_count"] = int((eligible & ~counted).sum())  # a token budget cannot price them
        eligible &= counted
    return eligible, filtered



def resolve_min_tokens(setting: int | str, target_tokens_path: Path) -> int:
    """The minimum record length in tokens. ``auto``: half the 5th percentile of the target's record lengths.

    DSIR filters records under a fixed 100 tokens. That keeps hash-collision noise of very short records out of
    long-text targets, but makes short-text targets (tweets, titles) impossible. ``auto`` derives the bar from
    the target: records much shorter than nearly all target records are not what the user asked for.
    """
    if setting != "auto":
        return int(setting)
    if not target_tokens_path.exists():
        return 0
    return auto_min_tokens(np.load(target_tokens_path))



def auto_min_tokens(target_tokens: np.ndarray) -> int:
    """``--min-tokens auto`` from the target's tokens per record: half their 5th percentile."""
    return int(np.percentile(target_tokens, 5) // 2)
