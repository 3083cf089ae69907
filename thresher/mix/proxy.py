"""RegMix over a pool with proxies that run on a CPU in seconds: ``thresher mix --pool ... --method regmix``.

The plan (:data:`REGMIX_PLAN`):

1. ``index_pool`` (map): each engine task reads its own piece of the pool and returns, per record, its group, its
   whitespace tokens and a hash of its text; no text travels back.
2. ``read_targets`` (global): the target files' token hashes (small: a few hundred records each).
3. ``sample_mixtures`` (global): per group, a seeded held-out slice that no proxy is ever trained on (to measure
   each group's loss); pool records whose text is also a target record are set aside too (they are neither trained
   on nor measured). The mixtures are RegMix's sample (:func:`~thresher.mix.search.sample_run_mixtures`: the
   natural mixture first, then Dirichlet draws around it), and for each the records it trains on: per group, a
   seeded permutation of the group's training records, taken until the group's share of ``--proxy-tokens`` is met
   (a further permutation if a group is repeated, at most ``--max-epochs`` passes).
4. ``gather`` (map): the pool is read a second time and each task keeps the token hashes of only the records some
   run draws or some held-out slice holds. Record positions are chosen first and the pool is read once more, rather
   than keeping all its text in memory: a pool of any size costs memory only for the records the proxies use.
5. ``proxy_runs`` (map): one engine task per mixture trains the n-gram proxy (interpolated modified Kneser-Ney,
   :class:`~thresher.lm.ngram.KneserNeyLM`) on its records and measures cross-entropy (nats per token) on each
   target and each group's held-out slice, over one vocabulary shared by all runs (so losses are comparable).
6. ``fit`` and ``search`` (global): the very stages of ``--from-runs``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

from thresher.engine.pieces import map_pieces
from thresher.engine.plan import GLOBAL, MAP, Plan, Stage, Values
from thresher.errors import ConfigError
from thresher.features.lengths import whitespace_token_counts
from thresher.io.errors import ErrorLog
from thresher.lm.ngram import KneserNeyConfig, KneserNeyLM, NgramCounts
from thresher.mix.runs import MixtureRuns
from thresher.mix.search import sample_run_mixtures

PROXIES = ("ngram", "tiny_lm")
#: Fewest proxy runs: k-fold cross-validation of the regressor needs 4.
MIN_RUNS = 4


@dataclass(frozen=True)
class ProxySettings:
    """How proxies are trained and measured.

    proxy_tokens: whitespace tokens each proxy trains on. order: the n-gram order (and the tokens' hashing for
    tiny_lm). proxy: ``ngram`` or ``tiny_lm`` (configured by ``tiny``). max_epochs: passes over a
    group's training records a mixture may ask for at the proxy budget. heldout_fraction, heldout_tokens: each
    group's held-out slice is its first records in a seeded order up to ``min(heldout_fraction × the group's
    tokens, heldout_tokens)`` tokens (at least one record; none for a group of one record).
    """

    proxy_tokens: float
    order: int = 3
    max_epochs: float = 1.0
    heldout_fraction: float = 0.1
    heldout_tokens: int = 20_000
    proxy: str = "ngram"  # or tiny_lm: a small transformer (thresher.mix.tiny_lm)
    tiny: object = None  # the tiny LM's TinyLMConfig


@dataclass(frozen=True)
class Target:
    """One target set: its name (in metric names), file paths and weight in the objective."""

    name: str
    dataset: object
    weight: float


def target_names(paths: Sequence[str]) -> list[str]:
    """A metric name per target file: its file name without extension, made unique with ``-2``, ``-3``..."""
    names: list[str] = []
    for path in paths:
        base = str(path).rstrip("/").rsplit("/", 1)[-1].split(".", 1)[0] or "target"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def index_records(batch, where, group_field: str) -> tuple[list, np.ndarray, np.ndarray]:
    """Engine task: per record of one batch, its group (None without one), whitespace tokens and text hash."""
    texts = batch.column("text")
    hashes = np.fromiter((xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in texts.to_pylist()),
                         dtype=np.uint64, count=len(texts))
    return batch.column(group_field).to_pylist(), whitespace_token_counts(texts), hashes


def check_groups(names: Sequence[str], group_field: str) -> None:
    """A pool to mix must have records, and some of them the ``group_field``."""
    if not names:
        raise ConfigError("the pool has no records to count tokens in")
    if set(names) == {"(missing)"}:
        raise ConfigError(f"no record has the field {group_field!r} (--group-field) to group by")


def _index(v: Values) -> dict:
    errors = ErrorLog(v.pool.on_error)
    labels: list = []
    tokens, hashes, batches = [], [], []
    for _, parts in map_pieces(v.pool, v.engine, index_records, (v.group_field,), errors, [v.group_field]):
        batches.append([len(p[1]) for p in parts])
        for groups, n, h in parts:
            labels.extend(groups)
            tokens.append(n)
            hashes.append(h)
    labels = ["(missing)" if g is None else g for g in labels]
    names = sorted(set(labels))
    check_groups(names, v.group_field)
    code = {g: i for i, g in enumerate(names)}
    return {"names": names, "group_of": np.array([code[g] for g in labels], dtype=np.int64),
            "tokens_of": np.concatenate(tokens) if tokens else np.zeros(0, np.int64),
            "text_hash_of": np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
            "piece_batches": batches, "failed": errors.to_dict()}


def _read_targets(v: Values) -> dict:
    featurizer = KneserNeyConfig(order=v.settings.order).featurizer()
    sets, text_hashes, counts = [], [], []
    for target in v.targets:
        errors = ErrorLog(target.dataset.on_error)
        parts, n = [], 0
        for batch in target.dataset.iter_batches(errors):
            parts.append(featurizer.token_hashes(batch.column("text")))
            text_hashes.extend(xxhash.xxh3_64_intdigest(t.encode("utf-8")) for t in batch.column("text").to_pylist())
            n += batch.num_rows
        if n == 0:
            raise ConfigError(f"target {', '.join(target.dataset.paths)} has no records to measure the proxies on")
        sets.append(_concat(parts))
        counts.append({"name": target.name, "records": n, "failed": errors.to_dict()})
    return {"target_sets": sets, "target_text_hashes": np.array(sorted(set(text_hashes)), dtype=np.uint64),
            "target_counts": counts}


def _heldout_slice(positions: np.ndarray, tokens: np.ndarray, settings: ProxySettings, rng) -> np.ndarray:
    """A group's held-out records: a seeded order's first records up to the held-out token amount."""
    if len(positions) < 2:
        return positions[:0]
    order = rng.permutation(len(positions))
    want = min(settings.heldout_fraction * tokens.sum(), settings.heldout_tokens)
    k = int(np.searchsorted(np.cumsum(tokens[order]), want)) + 1
    return np.sort(positions[order[:min(max(k, 1), len(positions) - 1)]])


def _draw(positions: np.ndarray, tokens: np.ndarray, need: float, rng) -> np.ndarray:
    """Record positions in draw order until ``need`` tokens are met: a seeded permutation, another if repeated."""
    chosen, left = [], need
    while left > 0:
        order = rng.permutation(len(positions))
        cumulative = np.cumsum(tokens[order])
        k = min(int(np.searchsorted(cumulative, left)) + 1, len(order))
        chosen.append(positions[order[:k]])
        left -= cumulative[k - 1]
    return np.concatenate(chosen) if chosen else positions[:0]


def heldout_and_train(v: Values) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per group, its held-out records (a seeded slice no proxy trains on), the records proxies may train on and
    their tokens; pool records whose text is also a target record are in neither. A proxy budget larger than all
    the training tokens is an error."""
    overlap = np.isin(v.text_hash_of, v.target_text_hashes)
    heldout, train = [], []
    for g in range(len(v.names)):
        members = np.flatnonzero((v.group_of == g) & ~overlap)
        held = _heldout_slice(members, v.tokens_of[members], v.settings, np.random.default_rng([v.seed, 1, g]))
        heldout.append(held)
        train.append(np.setdiff1d(members, held, assume_unique=True))
    train_tokens = np.array([v.tokens_of[t].sum() for t in train], dtype=float)
    if v.settings.proxy_tokens > train_tokens.sum():
        raise ConfigError(f"--proxy-tokens {v.settings.proxy_tokens:,.0f} is more than the pool's "
                          f"{train_tokens.sum():,.0f} whitespace tokens left to train on (after each group's held-out "
                          "slice); lower it")
    return heldout, train, train_tokens


def needed_rows(needed: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The rows of the gathered records (``needed``: their sorted pool positions) at pool ``positions``, which are
    all among them."""
    return np.searchsorted(needed, positions)


def _sample(v: Values) -> dict:
    s: ProxySettings = v.settings
    tokens_of = v.tokens_of
    overlap = np.isin(v.text_hash_of, v.target_text_hashes)
    heldout, train, train_tokens = heldout_and_train(v)
    if v.n_runs < MIN_RUNS:
        raise ConfigError(f"--runs {v.n_runs}: regmix needs at least {MIN_RUNS} proxy runs (the regressor is "
                          "cross-validated on them)")
    prior = train_tokens / train_tokens.sum()
    mixtures = sample_run_mixtures(prior, v.n_runs, seed=v.seed,
                                   max_weight=train_tokens * s.max_epochs / s.proxy_tokens)
    draws = [[_draw(train[g], tokens_of[train[g]], w * s.proxy_tokens, np.random.default_rng([v.seed, 2, r, g]))
              if w > 0 else train[g][:0] for g, w in enumerate(row)] for r, row in enumerate(mixtures)]
    return {"mixtures": mixtures, "draws": draws, "heldout_rows": heldout, "prior_weights": prior,
            "prior_name": "natural token shares of the pool's training records",
            "train_tokens": train_tokens, "target_overlap": int(overlap.sum())}


def hash_records(batch, where, wanted: dict, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Engine task: the token hashes and offsets of the records of one batch some proxy needs (``wanted``: the
    piece's batch index -> positions in the batch)."""
    rows = wanted.get(where[1])
    if rows is None:
        return np.zeros(0, np.uint64), np.zeros(1, np.int64)
    return KneserNeyConfig(order=order).featurizer().token_hashes(batch.column("text").take(rows))


def wanted_rows(v: Values) -> tuple[np.ndarray, list[dict]]:
    """The pool positions some run draws or some held-out slice holds (sorted), and per piece of the pool, its
    batch index -> the rows of that batch among them."""
    needed = np.unique(np.concatenate([*(d for run in v.draws for d in run), *v.heldout_rows]))
    piece_start = np.cumsum([0] + [sum(b) for b in v.piece_batches])
    wanted_by_piece = []
    for p, batches in enumerate(v.piece_batches):
        starts = piece_start[p] + np.cumsum([0] + batches)
        wanted = {}
        for b in range(len(batches)):
            rows = needed[(needed >= starts[b]) & (needed < starts[b + 1])] - starts[b]
            if len(rows):
                wanted[b] = rows
        wanted_by_piece.append(wanted)
    return needed, wanted_by_piece


def _gather(v: Values) -> dict:
    needed, wanted_by_piece = wanted_rows(v)
    parts = []
    for _, out in map_pieces(v.pool, v.engine, hash_records,
                             lambda piece: (wanted_by_piece[piece.index], v.settings.order),
                             ErrorLog(v.pool.on_error), [v.group_field]):
        parts.extend(out)
    hashes, offsets = _concat(parts)
    return {"needed": needed, "needed_hashes": hashes, "needed_offsets": offsets}


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes and offsets of several batches as one."""
    hashes = [h for h, _ in parts]
    offsets, base = [np.zeros(1, np.int64)], 0
    for h, o in parts:
        offsets.append(o[1:] + base)
        base += len(h)
    return (np.concatenate(hashes) if hashes else np.zeros(0, np.uint64)), np.concatenate(offsets)


def _take(hashes: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The records ``rows`` (indices, repeats allowed, in that order) of a hashes/offsets collection."""
    lengths = offsets[rows + 1] - offsets[rows]
    out_offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_offsets[1:])
    starts = np.repeat(offsets[rows] - out_offsets[:-1], lengths)
    return hashes[np.arange(out_offsets[-1]) + starts], out_offsets


def ngram_proxy_run(hashes: np.ndarray, offsets: np.ndarray, evals: list[tuple[np.ndarray, np.ndarray]],
                    order: int, vocab_size: int) -> tuple[list[float], float]:
    """Engine task: train a Kneser-Ney n-gram LM on one mixture's records and return the cross-entropy (nats per
    predicted token, ``</s>`` included) of each evaluation set, and the seconds it took."""
    started = time.perf_counter()
    config = KneserNeyConfig(order=order)
    counts = NgramCounts(config)
    counts.add_hashes(hashes, offsets)
    lm = KneserNeyLM(config).fit_counts(counts)
    lm.vocab_size_ = max(lm.vocab_size_, vocab_size)  # one vocabulary for every run: comparable losses
    losses = []
    for h, o in evals:
        logp, _ = lm.token_log_probs_hashes(h, o)
        losses.append(float(-logp.sum() / len(logp)))
    return losses, time.perf_counter() - started


def _proxy_runs(v: Values) -> dict:
    names = v.names

    def rows_of(positions: np.ndarray) -> np.ndarray:
        return needed_rows(v.needed, positions)

    heldout_groups = [g for g, rows in enumerate(v.heldout_rows) if len(rows)]
    evals = [*v.target_sets, *(_take(v.needed_hashes, v.needed_offsets, rows_of(v.heldout_rows[g]))
                              for g in heldout_groups)]
    def training(run):
        return _take(v.needed_hashes, v.needed_offsets, np.concatenate([rows_of(d) for d in run if len(d)]))

    # generators: the engine holds only the runs in flight (2 per worker), not every run's training records
    if v.settings.proxy == "tiny_lm":
        from dataclasses import replace

        from thresher.mix.tiny_lm import build_vocabulary, tiny_lm_proxy_run

        trained = np.unique(np.concatenate([d for run in v.draws for d in run]))  # what some run trains on
        vocabulary = build_vocabulary(_take(v.needed_hashes, v.needed_offsets, rows_of(trained))[0],
                                      v.settings.tiny.vocab_size)
        vocab_size = len(vocabulary) + 2  # + <unk> and </s>
        tiny = replace(v.settings.tiny, seed=v.seed)  # one seed for every run: they differ by their data only
        results = list(v.engine.map(tiny_lm_proxy_run, ((*training(run), evals, vocabulary, tiny)
                                                        for run in v.draws)))
    else:
        vocab = np.unique(np.concatenate([v.needed_hashes, *(h for h, _ in v.target_sets)]))
        vocab_size = len(vocab) + 2  # + </s> and <unk>, as the LM counts its own
        results = list(v.engine.map(ngram_proxy_run, ((*training(run), evals, v.settings.order, vocab_size)
                                                       for run in v.draws)))
    losses = np.array([r[0] for r in results])
    weights = np.array([t.weight for t in v.targets])
    objective = losses[:, :len(v.targets)] @ weights
    metric_names = ["target", *(f"target:{t.name}" for t in v.targets),
                    *(f"group:{names[g]}" for g in heldout_groups)]
    runs = MixtureRuns(index=[str(r) for r in range(len(v.draws))], groups=list(names), weights=v.mixtures,
                       metric_names=metric_names, metrics=np.column_stack([objective, losses]),
                       mixtures_path="(proxy runs)", metrics_path="(proxy runs)")
    drawn = np.array([[int(v.tokens_of[d].sum()) for d in run] for run in v.draws], dtype=np.int64)
    return {"runs": runs, "y": objective, "run_tokens": drawn, "run_seconds": [r[1] for r in results],
            "vocab_size": vocab_size}


INDEX = Stage("index_pool", MAP, "each task reads its piece of the pool: group, whitespace tokens and text hash per "
              "record", _index, ("pool", "group_field", "engine"),
              ("names", "group_of", "tokens_of", "text_hash_of", "piece_batches", "failed"))
TARGETS = Stage("read_targets", GLOBAL, "the target sets' token hashes", _read_targets, ("targets", "settings"),
                ("target_sets", "target_text_hashes", "target_counts"))
SAMPLE = Stage("sample_mixtures", GLOBAL, "held-out slice per group; RegMix's Dirichlet mixtures around the natural "
               "one; each run's records drawn per group", _sample,
               ("names", "group_of", "tokens_of", "text_hash_of", "target_text_hashes", "settings", "n_runs", "seed"),
               ("mixtures", "draws", "heldout_rows", "prior_weights", "prior_name", "train_tokens",
                "target_overlap"))
GATHER = Stage("gather", MAP, "each task reads its piece again and keeps the token hashes of the records the runs "
               "draw or hold out", _gather,
               ("pool", "engine", "group_field", "draws", "heldout_rows", "piece_batches", "settings"),
               ("needed", "needed_hashes", "needed_offsets"))
PROXY_RUNS = Stage("proxy_runs", MAP, "one engine task per mixture: an n-gram LM trained on its records, its "
                   "cross-entropy on each target and each group's held-out slice", _proxy_runs,
                   ("engine", "names", "draws", "mixtures", "heldout_rows", "needed", "needed_hashes",
                    "needed_offsets", "target_sets", "targets", "tokens_of", "settings"),
                   ("runs", "y", "run_tokens", "run_seconds", "vocab_size"))


def regmix_plan(fit: Stage, search: Stage) -> Plan:
    """The plan of ``mix --method regmix``: proxies on the pool, then ``--from-runs``'s own fit and search stages."""
    return Plan("mix --method regmix", ("pool", "group_field", "engine", "targets", "settings", "n_runs", "seed",
                                        "regressor", "folds", "n_samples", "top_k", "strength"),
                (INDEX, TARGETS, SAMPLE, GATHER, PROXY_RUNS, fit, search))
