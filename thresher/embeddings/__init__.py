"""Text embeddings: back-ends (MiniLM, static model2vec), and an on-disk cache of a dataset's embeddings.

Importing this package does not import torch; a model is loaded on first use. Install with
``pip install 'thresher[embed]'``.
"""

from thresher.embeddings.backends import (
    BACKENDS,
    EmbeddingBackend,
    SentenceTransformerBackend,
    StaticBackend,
    cache_dir,
    make_backend,
)
from thresher.embeddings.store import EmbeddingStore, embed_shard, embed_texts

__all__ = ["BACKENDS", "EmbeddingBackend", "SentenceTransformerBackend", "StaticBackend", "cache_dir",
           "make_backend", "EmbeddingStore", "embed_shard", "embed_texts"]
