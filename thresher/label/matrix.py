"""The label matrix: which class each labelling function (LF) voted for on each record, stored sparse.

Votes are a CSR matrix whose stored values are ``class index + 1``; an abstain is simply not stored, so memory is
O(number of votes) however many LFs abstain. Dense int arrays use ``ABSTAIN = -1`` and convert both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from thresher.errors import ConfigError

ABSTAIN = -1

_VOTE_DTYPE = np.int32


class LabelMatrix:
    """n records × m LFs votes, sparse: CSR whose stored data are class index + 1 (0 = abstain, not stored)."""

    def __init__(self, votes: sp.csr_matrix | sp.csr_array, n_classes: int, lf_names: Sequence[str] | None = None):
        if not sp.issparse(votes):
            raise ConfigError("LabelMatrix needs a scipy.sparse matrix; use LabelMatrix.from_dense for numpy arrays")
        n_classes = int(n_classes)
        if n_classes < 2:
            raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
        csr = sp.csr_matrix(votes, dtype=_VOTE_DTYPE)
        csr.eliminate_zeros()
        csr.sum_duplicates()
        csr.sort_indices()
        m = csr.shape[1]
        if lf_names is None:
            lf_names = [f"lf_{j}" for j in range(m)]
        lf_names = [str(name) for name in lf_names]
        if len(lf_names) != m:
            raise ConfigError(f"{len(lf_names)} LF names for {m} LF columns")
        if len(set(lf_names)) != len(lf_names):
            dupes = sorted({name for name in lf_names if lf_names.count(name) > 1})
            raise ConfigError(f"duplicate LF names: {', '.join(dupes)}")
        bad = (csr.data < 1) | (csr.data > n_classes)
        if bad.any():
            col = int(csr.indices[np.flatnonzero(bad)[0]])
            value = int(csr.data[np.flatnonzero(bad)[0]]) - 1
            raise ConfigError(f"LF {lf_names[col]!r} voted class {value}, outside 0..{n_classes - 1} "
                              f"(use {ABSTAIN} to abstain)")
        self._votes = csr
        self._n_classes = n_classes
        self._lf_names = lf_names

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_dense(cls, L: np.ndarray, n_classes: int | None = None,
                   lf_names: Sequence[str] | None = None) -> LabelMatrix:
        """Build from a dense (n, m) int array where -1 means abstain; n_classes defaults to max vote + 1."""
        L = np.asarray(L)
        if L.ndim != 2:
            raise ConfigError(f"a label matrix must be 2-D (records × LFs), got shape {L.shape}")
        if L.size and not np.issubdtype(L.dtype, np.integer) and not np.all(np.equal(np.mod(L, 1), 0)):
            raise ConfigError("label matrix votes must be integers (class index, -1 = abstain)")
        L = L.astype(np.int64, copy=False)
        if L.size and L.min() < ABSTAIN:
            col = int(np.argwhere(L < ABSTAIN)[0, 1])
            name = lf_names[col] if lf_names is not None else f"lf_{col}"
            raise ConfigError(f"LF {name!r} voted {int(L.min())}; votes are class indices >= 0 or {ABSTAIN} to abstain")
        if n_classes is None:
            n_classes = max(int(L.max()) + 1 if L.size else 0, 2)
        return cls(sp.csr_matrix(L + 1, dtype=_VOTE_DTYPE), n_classes, lf_names)

    @classmethod
    def from_columns(cls, columns: Sequence[np.ndarray], n_classes: int,
                     lf_names: Sequence[str] | None = None) -> LabelMatrix:
        """Build from one int array per LF (-1 = abstain) without materialising the dense matrix."""
        if not columns:
            raise ConfigError("from_columns needs at least one LF column")
        n = len(columns[0])
        rows, cols, data = [], [], []
        for j, column in enumerate(columns):
            column = np.asarray(column)
            if len(column) != n:
                name = lf_names[j] if lf_names is not None else f"lf_{j}"
                raise ConfigError(f"LF {name!r} has {len(column)} votes, expected {n}")
            voted = np.flatnonzero(column != ABSTAIN)
            rows.append(voted)
            cols.append(np.full(len(voted), j, dtype=np.int64))
            data.append(column[voted].astype(np.int64) + 1)
        r, c, d = np.concatenate(rows), np.concatenate(cols), np.concatenate(data)
        if (d < 1).any():
            j = int(c[np.flatnonzero(d < 1)[0]])
            name = lf_names[j] if lf_names is not None else f"lf_{j}"
            raise ConfigError(f"LF {name!r} voted {int(d.min()) - 1}; votes are class indices >= 0 or {ABSTAIN}")
        votes = sp.csr_matrix((d, (r, c)), shape=(n, len(columns)), dtype=_VOTE_DTYPE)
        return cls(votes, n_classes, lf_names)

    # ---------------------------------------------------------------- properties
    @property
    def votes(self) -> sp.csr_matrix:
        """The CSR matrix of votes (class index + 1; abstains not stored)."""
        return self._votes

    @property
    def n_records(self) -> int:
        return self._votes.shape[0]

    @property
    def n_lfs(self) -> int:
        return self._votes.shape[1]

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def lf_names(self) -> list[str]:
        return list(self._lf_names)

    @property
    def shape(self) -> tuple[int, int]:
        return self._votes.shape

    @property
    def nnz(self) -> int:
        """Number of non-abstain votes."""
        return int(self._votes.nnz)

    def coo(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record, lf, class) index arrays of every vote, row-major; class is 0-based."""
        v = self._votes
        rows = np.repeat(np.arange(v.shape[0], dtype=np.int64), np.diff(v.indptr))
        return rows, v.indices.astype(np.int64, copy=False), v.data.astype(np.int64) - 1

    def n_votes(self) -> np.ndarray:
        """Non-abstain votes per record."""
        return np.diff(self._votes.indptr)

    # ---------------------------------------------------------------- conversion and slicing
    def to_dense(self) -> np.ndarray:
        """Dense (n, m) int array, -1 = abstain. Only for matrices that fit in memory densely."""
        return self._votes.toarray().astype(np.int64) - 1

    def rows(self, idx) -> LabelMatrix:
        """The label matrix restricted to the given records (index array, boolean mask or slice)."""
        return LabelMatrix(self._votes[idx], self._n_classes, self._lf_names)

    def columns(self, idx) -> LabelMatrix:
        """The label matrix restricted to the given LFs (index array or boolean mask)."""
        idx = np.arange(self.n_lfs)[idx]
        return LabelMatrix(self._votes[:, idx], self._n_classes, [self._lf_names[j] for j in idx])

    def __len__(self) -> int:
        return self.n_records

    def __repr__(self) -> str:
        return f"LabelMatrix({self.n_records} records × {self.n_lfs} LFs, {self.n_classes} classes, {self.nnz} votes)"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelMatrix):
            return NotImplemented
        return (self.shape == other.shape and self.n_classes == other.n_classes and self.lf_names == other.lf_names
                and (self._votes != other._votes).nnz == 0)

    __hash__ = None  # type: ignore[assignment]

    # ---------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Write to an .npz file (uncompressed, so the bytes depend only on the votes: deterministic)."""
        path = Path(path)
        v = self._votes
        with open(path, "wb") as f:
            np.savez(f, indptr=v.indptr.astype(np.int64), indices=v.indices.astype(np.int32),
                     data=v.data.astype(_VOTE_DTYPE), shape=np.asarray(v.shape, dtype=np.int64),
                     n_classes=np.asarray(self._n_classes, dtype=np.int64),
                     lf_names=np.asarray(self._lf_names, dtype=str))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LabelMatrix:
        """Read a matrix written by :meth:`save`."""
        with np.load(Path(path), allow_pickle=False) as z:
            shape = tuple(int(s) for s in z["shape"])
            votes = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=shape)
            return cls(votes, int(z["n_classes"]), [str(s) for s in z["lf_names"]])


def as_label_matrix(L: LabelMatrix | np.ndarray | sp.spmatrix, n_classes: int | None = None) -> LabelMatrix:
    """Accept a LabelMatrix or a dense int array (-1 = abstain) and return a LabelMatrix."""
    if isinstance(L, LabelMatrix):
        if n_classes is not None and L.n_classes != n_classes:
            raise ConfigError(f"label matrix has {L.n_classes} classes, the model was fitted with {n_classes}")
        return L
    if sp.issparse(L):
        raise ConfigError("pass sparse votes wrapped in LabelMatrix(votes, n_classes) (stored values = class + 1)")
    return LabelMatrix.from_dense(np.asarray(L), n_classes)
