"""Diversity and quota selectors: k-center, facility location, quotas, k-means clusters, QuaDMix-style sampling."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.parquet as pq
import pytest
from scipy import sparse

from thresher.errors import ConfigError
from thresher.features.hashed_ngrams import HashedNgramConfig, HashedNgramFeaturizer
from thresher.selectors.budget import Budget
from thresher.selectors.clusters import ClusterBalanced
from thresher.selectors.diversity import (
    make_diversity_selector,
    normalize_rows,
    run_diversity_selector,
    token_upper_bound,
)
from thresher.selectors.facility import FacilityLocation, dense_objective, graph_objective, knn_graph
from thresher.selectors.kcenter import KCenter
from thresher.selectors.kmeans import kmeans
from thresher.selectors.quotas import QualityDiversity, Quotas, allocate, apportion, quality_percentiles


def blobs(n: int = 600, d: int = 16, centers: int = 8, spread: float = 0.15, seed: int = 0):
    """L2-normalised points around ``centers`` well-separated directions, and each point's blob."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d))
    label = rng.integers(centers, size=n)
    x = c[label] / np.linalg.norm(c[label], axis=1, keepdims=True) + spread * rng.normal(size=(n, d)) / np.sqrt(d)
    return normalize_rows(x), label


# ---- k-center


def test_kcenter_takes_one_point_per_cluster_first_and_the_radius_shrinks():
    X, label = blobs()
    res = KCenter(seed=3).run(X, 40)
    assert len(set(label[res.order[:8]])) == 8
    assert np.all(np.diff(res.radii) <= 1e-7)
    assert len(set(res.order.tolist())) == 40
    # the radius is the true covering radius of the picks
    d = np.sqrt(np.maximum(2 - 2 * X @ X[res.order[:10]].T, 0)).min(axis=1)
    assert res.radii[9] == pytest.approx(d.max(), abs=1e-3)


def test_kcenter_is_seeded_and_can_start_from_the_best_score():
    X, _ = blobs(200)
    assert np.array_equal(KCenter(seed=1).select(X, 20), KCenter(seed=1).select(X, 20))
    assert not np.array_equal(KCenter(seed=1).select(X, 20), KCenter(seed=2).select(X, 20))
    scores = np.arange(200.0)
    assert KCenter(start="score").select(X, 5, scores)[0] == 199
    with pytest.raises(ConfigError, match="needs a score"):
        KCenter(start="score").select(X, 5)
    with pytest.raises(ConfigError, match="only 200 are eligible"):
        KCenter().select(X, 201)
    with pytest.raises(ConfigError, match="tokens"):
        KCenter().select(X, "1k tokens")
    assert len(KCenter().select(X, "10%")) == 20


# ---- facility location


def brute_knn(X: np.ndarray, k: int) -> np.ndarray:
    sim = X @ X.T
    np.fill_diagonal(sim, np.inf)
    top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    np.fill_diagonal(sim, np.einsum("ij,ij->i", X, X))
    dense = np.zeros_like(sim)
    np.put_along_axis(dense, top, np.maximum(np.take_along_axis(sim, top, axis=1), 0), axis=1)
    return dense


def test_knn_graph_is_exact_and_independent_of_the_block_size():
    X, _ = blobs(700, d=12, spread=0.6)
    ref = brute_knn(X, 10)
    for block in (None, 64, 333):
        g = knn_graph(X, 10, block_rows=block)
        assert g.shape == (700, 700)
        np.testing.assert_allclose(g.toarray(), ref, atol=1e-6)
    assert (knn_graph(X, 10).diagonal() > 0.99).all()  # every record is its own neighbour
    assert knn_graph(X[:5], 50).nnz <= 25


def test_lazy_greedy_equals_plain_greedy_exactly():
    X, _ = blobs(400, spread=0.5)
    graph = knn_graph(X, 15)
    greedy = FacilityLocation(optimizer="greedy").maximize(None, 40, graph=graph)
    lazy = FacilityLocation(optimizer="lazy").maximize(None, 40, graph=graph)
    assert np.array_equal(greedy.order, lazy.order)
    assert np.array_equal(greedy.gains, lazy.gains)
    assert lazy.evaluations < greedy.evaluations / 3
    dense_greedy = FacilityLocation(None, optimizer="greedy").maximize(X, 15)
    dense_lazy = FacilityLocation(None, optimizer="lazy").maximize(X, 15)
    assert np.array_equal(dense_greedy.order, dense_lazy.order)


def test_objective_curve_matches_the_objective_and_greedy_gains_shrink():
    X, _ = blobs(500, spread=0.5)
    graph = knn_graph(X, 20)
    res = FacilityLocation().maximize(None, 60, graph=graph)
    assert res.curve[-1] == pytest.approx(graph_objective(graph, res.order))
    assert res.curve[9] == pytest.approx(graph_objective(graph, res.order[:10]))
    assert np.all(res.gains >= 0) and np.all(np.diff(res.gains) <= 1e-9)
    dense = FacilityLocation(None).maximize(X, 20)
    assert dense.objective == pytest.approx(dense_objective(X, dense.order), rel=1e-5)
    brute = np.maximum(X @ X[dense.order].T, 0).max(axis=1).sum()
    assert dense_objective(X, dense.order) == pytest.approx(brute, rel=1e-5)


def test_stochastic_and_greedi_come_close_to_greedy():
    X, _ = blobs(1500, d=16, centers=12, spread=0.6)
    graph = knn_graph(X, 20)
    k = 60
    greedy = FacilityLocation().maximize(None, k, graph=graph).objective
    for seed in range(3):
        stochastic = FacilityLocation(optimizer="stochastic", seed=seed).maximize(None, k, graph=graph)
        assert stochastic.objective >= 0.95 * greedy
        assert stochastic.evaluations < 0.5 * k * 1500
        assert graph_objective(graph, FacilityLocation(optimizer="greedi", seed=seed).select(X, k)) >= 0.9 * greedy
        on_graph = FacilityLocation(optimizer="greedi", parts=5, seed=seed).maximize(None, k, graph=graph)
        assert on_graph.objective >= 0.9 * greedy
        assert len(set(on_graph.order.tolist())) == k
    a = FacilityLocation(optimizer="stochastic", seed=7).select(X, 30)
    assert np.array_equal(a, FacilityLocation(optimizer="stochastic", seed=7).select(X, 30))


def test_facility_objective_is_monotone_and_submodular():
    X, _ = blobs(120, spread=0.7)
    graph = knn_graph(X, 12)
    rng = np.random.default_rng(0)
    for _ in range(50):
        big = rng.choice(120, 20, replace=False)
        small = big[:8]
        x = int(rng.choice(np.setdiff1d(np.arange(120), big)))
        for f in (lambda s: graph_objective(graph, s), lambda s: dense_objective(X, s)):
            assert f(small) <= f(big) + 1e-9
            gain_small = f(np.append(small, x)) - f(small)
            gain_big = f(np.append(big, x)) - f(big)
            assert gain_small >= gain_big - 1e-5


def test_facility_location_checks_its_inputs():
    X, _ = blobs(50)
    with pytest.raises(ConfigError, match="optimizer"):
        FacilityLocation(optimizer="magic")
    with pytest.raises(ConfigError, match="non-negative"):
        FacilityLocation().maximize(None, 3, graph=sparse.csr_matrix(-np.eye(4)))
    with pytest.raises(ConfigError, match="GiB"):
        FacilityLocation(None, max_dense_bytes=1000).select(X, 3)
    with pytest.raises(ConfigError, match="2-D"):
        FacilityLocation().select(X[0], 3)


# ---- quotas


def test_apportion_is_exact_and_redistributes():
    np.testing.assert_array_equal(allocate(np.array([60, 30, 10]), 20), [12, 6, 2])
    np.testing.assert_array_equal(allocate(np.array([1, 50, 49, 2]), 20), [0, 10, 10, 0])  # largest remainder
    np.testing.assert_array_equal(allocate(np.array([1, 50, 49, 2]), 20, "equal"), [1, 9, 8, 2])
    np.testing.assert_array_equal(apportion(10, np.array([1.0, 0.0, 3.0]), np.array([2, 50, 50])), [2, 0, 8])
    rng = np.random.default_rng(0)
    for _ in range(200):
        sizes = rng.integers(0, 30, size=rng.integers(1, 8))
        if sizes.sum() == 0:
            continue
        k = int(rng.integers(1, sizes.sum() + 1))
        for mode in ("proportional", "equal", "sqrt"):
            q = allocate(sizes, k, mode)
            assert q.sum() == k and (q <= sizes).all() and (q >= 0).all()
        q = allocate(sizes, k, "proportional")
        assert (np.abs(q - k * sizes / sizes.sum()) < 1).all()  # within one of the exact share
    with pytest.raises(ConfigError, match="positive weight"):
        apportion(10, np.array([1.0, 0.0]), np.array([5, 50]))


def test_quotas_give_exact_counts_per_group():
    rng = np.random.default_rng(1)
    labels = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50)
    scores = rng.normal(size=1000)
    for within in ("topk", "random", "gumbel"):
        for allocation, weights, expect in (("proportional", None, {"a": 50, "b": 30, "c": 15, "d": 5}),
                                            ("equal", None, {"a": 25, "b": 25, "c": 25, "d": 25}),
                                            ("weights", {"a": 1, "d": 1}, {"a": 50, "b": 0, "c": 0, "d": 50})):
            q = Quotas(allocation, weights, within=within, seed=2)
            sel = q.select(labels, 100, scores)
            assert len(sel) == len(set(sel.tolist())) == 100
            got = {g: int((labels[sel] == g).sum()) for g in "abcd"}
            assert got == expect == {g: v for g, v in q.counts(labels, 100).items()} | {
                g: 0 for g in "abcd" if g not in q.counts(labels, 100)}
    # equal, with a group too small for its share: the surplus goes to the others
    assert Quotas("equal").counts(labels, 240) == {"a": 64, "b": 63, "c": 63, "d": 50}
    top = Quotas(within="topk").select(labels, 100, scores)
    for g in "abcd":  # top-k inside each group
        mine = np.flatnonzero(labels == g)
        chosen = np.intersect1d(top, mine)
        assert scores[chosen].min() >= np.sort(scores[mine])[::-1][len(chosen) - 1]
    # any prefix stays near the proportions
    first = labels[top[:20]]
    assert {g: int((first == g).sum()) for g in "abcd"} == {"a": 10, "b": 6, "c": 3, "d": 1}
    with pytest.raises(ConfigError, match="needs a score"):
        Quotas(within="topk").select(labels, 10)
    with pytest.raises(ConfigError, match="positive weight"):
        Quotas("weights", {"d": 1.0}).select(labels, 60, scores)
    with pytest.raises(ConfigError, match="not in the data"):
        Quotas("weights", {"zz": 1.0}).select(labels, 10, scores)


def test_quotas_random_is_seeded():
    labels = np.repeat(["x", "y"], 100)
    assert np.array_equal(Quotas(within="random", seed=4).select(labels, 30),
                          Quotas(within="random", seed=4).select(labels, 30))
    assert not np.array_equal(Quotas(within="random", seed=4).select(labels, 30),
                              Quotas(within="random", seed=5).select(labels, 30))


# ---- clusters


def test_kmeans_is_deterministic_and_finds_the_blobs():
    X, label = blobs(800, centers=6, spread=0.2, seed=3)
    a, b = kmeans(X, 6, seed=11), kmeans(X, 6, seed=11)
    assert np.array_equal(a.labels, b.labels) and np.array_equal(a.centroids, b.centroids)
    purity = sum(np.bincount(label[a.labels == c]).max() for c in range(6)) / len(X)
    assert purity > 0.95
    assert kmeans(X, 30, seed=1).inertia < a.inertia


def test_kmeans_over_blocks_on_worker_processes_equals_in_process_and_is_a_lloyd_fixed_point():
    """Every pass is a map over row blocks: on two worker processes the clusters are bit for bit those of one
    process; at convergence each row is at its nearest centroid and each centroid is its members' mean."""
    from thresher.engine import LocalEngine
    from thresher.selectors.kmeans import blocks_of

    X, _ = blobs(3000, centers=12, spread=0.6, seed=5)
    blocks = blocks_of(X, 250)
    here = kmeans(blocks, 12, seed=4)
    with LocalEngine(2) as engine:
        there = kmeans(blocks, 12, seed=4, engine=engine)
    assert np.array_equal(here.labels, there.labels) and here.centroids.tobytes() == there.centroids.tobytes()
    assert np.array_equal(here.sq_dist, there.sq_dist) and here.n_iter == there.n_iter
    d = ((X[:, None, :] - here.centroids[None]) ** 2).sum(-1)
    assert np.array_equal(here.labels, d.argmin(1)) or (d.min(1) >= d[np.arange(len(X)), here.labels] - 1e-4).all()
    if here.n_iter < 25:  # converged: the centroids are the members' means
        for c in range(12):
            np.testing.assert_allclose(here.centroids[c], X[here.labels == c].mean(0), atol=1e-4)


def test_kmeans_initialises_on_a_seeded_sample_and_reseeds_emptied_clusters(monkeypatch):
    import thresher.selectors.kmeans as km

    X, label = blobs(2000, centers=5, spread=0.2, seed=8)
    monkeypatch.setattr(km, "INIT_SAMPLE", 100)  # 100 rows (32 per cluster is less) of 2,000 seed k-means++
    a, b = kmeans(X, 5, seed=3), kmeans(X, 5, seed=3)
    assert np.array_equal(a.labels, b.labels)
    purity = sum(np.bincount(label[a.labels == c]).max() for c in range(5)) / len(X)
    assert purity > 0.95
    # a centre far from every row gets no member: it is re-seeded at the row farthest from its centroid (the lone
    # outlier here, in another block than the first), and every cluster ends with members
    Y = np.concatenate([X[:999], [[40.0] * X.shape[1]], X[999:1999]]).astype(np.float32)
    real = km._kmeans_pp
    monkeypatch.setattr(km, "_kmeans_pp", lambda S, k, rng: np.concatenate([real(S, k - 1, rng),
                                                                           np.full((1, S.shape[1]), -1e3, np.float32)]))
    res = kmeans(km.blocks_of(Y, 300), 6, seed=3)
    assert (np.bincount(res.labels, minlength=6) > 0).all()
    assert res.labels[999] == 5 and (res.labels == 5).sum() == 1  # the outlier took the emptied cluster


def test_cluster_balanced_spreads_the_budget():
    X, _ = blobs(900, centers=3, spread=0.3)
    scores = np.random.default_rng(0).normal(size=900)
    for allocation in ("proportional", "equal", "sqrt"):
        for within in ("random", "score", "centroid"):
            order, km = ClusterBalanced(6, allocation, within, seed=2).run(X, 60, scores)
            sizes = np.bincount(km.labels, minlength=6)
            np.testing.assert_array_equal(np.bincount(km.labels[order], minlength=6), allocate(sizes, 60, allocation))
            assert len(set(order.tolist())) == 60
    order, km = ClusterBalanced(6, "equal", "centroid").run(X, 12)
    for c in range(6):  # the two most central records of each cluster
        mine = np.flatnonzero(km.labels == c)
        assert set(order[km.labels[order] == c]) == set(mine[np.argsort(km.sq_dist[mine], kind="stable")[:2]])


# ---- QuaDMix-style


def test_quality_diversity_weights_follow_the_documented_formula():
    labels = np.repeat(["a", "b"], 100)
    scores = np.concatenate([np.arange(100.0), np.arange(100.0)])
    r = quality_percentiles(scores, np.repeat([0, 1], 100))
    assert r[99] == pytest.approx(0.01) and r[0] == pytest.approx(1.0)
    qd = QualityDiversity(group_weights={"b": 2.0}, sharpness=5.0, threshold=0.5)
    w = qd.weights(labels, scores)
    expected = np.where(r <= 0.5, np.repeat([1.0, 2.0], 100) * np.exp(-5.0 * r), 0)
    np.testing.assert_allclose(w, expected)
    assert (w[:50] == 0).all() and (w[50:100] > 0).all()
    np.testing.assert_allclose(QualityDiversity(sharpness=0).weights(labels, scores), 1.0)


def test_quality_diversity_samples_exactly_with_caps_and_seeds():
    rng = np.random.default_rng(0)
    labels = np.array(["big"] * 800 + ["small"] * 200)
    scores = rng.normal(size=1000)
    qd = QualityDiversity(sharpness=20, threshold=0.5, seed=1)
    sel = qd.select(labels, 100, scores)
    assert len(set(sel.tolist())) == 100
    assert np.array_equal(sel, QualityDiversity(sharpness=20, threshold=0.5, seed=1).select(labels, 100, scores))
    r = quality_percentiles(scores, (labels == "small").astype(int))
    assert r[sel].max() <= 0.5 and np.median(r[sel]) < 0.2  # high quality within each group
    capped = QualityDiversity(max_share=0.6, seed=1).select(labels, 100, scores)
    assert (labels[capped] == "big").sum() == 60
    boosted = QualityDiversity(group_weights={"small": 8.0}, seed=1).select(labels, 100, scores)
    assert (labels[boosted] == "small").sum() > 50  # 200 * 8 vs 800 * 1: about two thirds
    multi = QualityDiversity(score_weights=(1.0, 0.0)).select(labels, 10, np.c_[scores, rng.normal(size=1000)])
    assert len(multi) == 10
    with pytest.raises(ConfigError, match="can be drawn"):
        QualityDiversity(threshold=0.05).select(labels, 100, scores)


# ---- real text: the bundled sample


@pytest.fixture(scope="module")
def sample_embeddings(sample_pool):
    """Hashed n-gram TF-IDF of the bundled pool, randomly projected to 128 dims and L2-normalised."""
    table = pq.read_table(sample_pool, columns=["text", "domain"])
    config = HashedNgramConfig(num_buckets=2**14)
    features = HashedNgramFeaturizer(config).transform(table.column("text"))
    counts = features.to_csr(config.num_buckets).astype(np.float32)
    idf = np.log((1 + counts.shape[0]) / (1 + np.bincount(counts.indices, minlength=counts.shape[1]))) + 1
    counts.data = np.log1p(counts.data)
    tfidf = counts @ sparse.diags(idf.astype(np.float32))
    proj = np.random.default_rng(0).standard_normal((config.num_buckets, 128)).astype(np.float32)
    return normalize_rows(np.asarray(tfidf @ proj)), table.column("domain").to_numpy(zero_copy_only=False), \
        features.n_tokens


def test_diversity_covers_more_domains_than_top_k_on_real_text(sample_embeddings):
    X, domain, n_tokens = sample_embeddings
    k = 50
    top = np.argsort(-n_tokens, kind="stable")[:k]  # top-k by a score: the longest records
    graph = knn_graph(X, 32)
    facility = FacilityLocation().maximize(None, k, graph=graph).order
    covered = {name: len(set(domain[sel])) for name, sel in (
        ("topk", top), ("kcenter", KCenter(seed=0).select(X, k)), ("facility", facility),
        ("stochastic", FacilityLocation(optimizer="stochastic").maximize(None, k, graph=graph).order),
        ("clusters", ClusterBalanced(20, "equal").select(X, k)))}
    assert covered["topk"] <= 5
    for name in ("kcenter", "facility", "stochastic", "clusters"):
        assert covered[name] >= 8 > covered["topk"], covered
    # facility location on the kNN graph also beats top-k on the dense objective
    assert dense_objective(X, facility) > 1.05 * dense_objective(X, top)


def test_same_seed_same_selection_on_real_text(sample_embeddings):
    X = sample_embeddings[0][:2000]
    for make in (lambda s: KCenter(seed=s), lambda s: FacilityLocation(optimizer="greedi", seed=s),
                 lambda s: ClusterBalanced(10, seed=s)):
        a, b, c = (make(s).select(X, 40) for s in (0, 0, 1))
        assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_group_labels_may_be_any_values():
    sel = Quotas("equal", within="random").select([None, "x", 3, None, "x", 3], 3)
    assert sorted(np.array(["None", "x", "3", "None", "x", "3"])[sel]) == ["3", "None", "x"]
    assert list(itertools.islice(Quotas().counts(np.array([1, 1, 2]), 2).items(), 2)) == [("1", 1), ("2", 1)]


def test_one_entry_point_for_the_pipeline_with_record_and_token_budgets():
    X, label = blobs(300)
    labels = label.astype(str)
    scores = np.random.default_rng(0).normal(size=300)
    n_tokens = np.random.default_rng(1).integers(10, 100, size=300)
    for name, params in (("kcenter", {"seed": 1}), ("facility", {"k_neighbors": 10, "seed": None}),
                         ("clusters", {"n_clusters": 5}), ("quotas", {"allocation": "equal", "within": "gumbel"}),
                         ("quadmix", {"sharpness": 2.0})):
        sel = make_diversity_selector(name, **params)
        order = run_diversity_selector(sel, "10%", embeddings=X, labels=labels, scores=scores)
        assert len(order) == 30 == len(set(order.tolist()))
        by_tokens = run_diversity_selector(sel, "1000 tokens", embeddings=X, labels=labels, scores=scores,
                                           n_tokens=n_tokens)
        assert n_tokens[by_tokens].sum() <= 1000 < n_tokens[by_tokens].sum() + n_tokens.max()
    assert token_upper_bound(Budget.parse("25 tokens"), np.array([10, 5, 30, 10])) == 3
    assert token_upper_bound(Budget.parse("24 tokens"), np.array([10, 5, 30, 10])) == 2
    with pytest.raises(ConfigError, match="unknown selector"):
        make_diversity_selector("nope")
    with pytest.raises(ConfigError, match="does not take"):
        make_diversity_selector("kcenter", k_neighbors=3)
    with pytest.raises(ConfigError, match="needs embeddings"):
        run_diversity_selector(KCenter(), 5, labels=labels)
    with pytest.raises(ConfigError, match="needs a score"):
        run_diversity_selector(QualityDiversity(), 5, labels=labels)
    with pytest.raises(ConfigError, match="token count"):
        run_diversity_selector(KCenter(), "100 tokens", embeddings=X)
