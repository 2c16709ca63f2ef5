"""The BSDS500 boundary benchmark as scored by hyperbook.data.bsds500 (thesis ch. 4, S-F11), checked against
the benchmark's own rules (collect_eval_bdry.m, match.cc) on small hand-built cases."""
import numpy as np
import pytest

from hyperbook.data.bsds500 import (bench_thresholds, canny_soft_map, image_counts, match_pixels, max_f,
                                    max_matching, ods_ois, summarise_counts)


def _line_case():
    """20-pixel true line; 10 of its pixels at 0.9, the other 10 at 0.4, 20 far false pixels at 0.3.
    t = 0.25: R = 1, P = 0.5; t = 0.5 and 0.75: R = 0.5, P = 1. Both F = 2/3; halfway R = P = 0.75."""
    g = np.zeros((40, 40), bool); g[5, 0:20] = True
    p = np.zeros((40, 40)); p[5, 0:10] = 0.9; p[5, 10:20] = 0.4; p[30, 0:20] = 0.3
    return p, g


def test_ods_interpolates_between_thresholds_like_maxF():
    p, g = _line_case()
    s = ods_ois([p], [[g]], n_thresholds=3, thin=False)
    assert s["f"] == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert s["ods"] == pytest.approx(0.75, abs=1e-3)          # the old scorer said 2/3 (no interpolation)
    assert 0.25 < s["ods_threshold"] < 0.5
    assert s["ois"] == pytest.approx(2 / 3)                   # OIS: no interpolation, first best threshold
    assert s["ois_recall"] == pytest.approx(1.0)


def test_empty_map_has_precision_zero_as_in_the_benchmark():
    p, g = _line_case()
    s = ods_ois([p * 0.5], [[g]], n_thresholds=3, thin=False)  # nothing reaches 0.5 or 0.75
    assert s["precision"][1] == 0.0 and s["precision"][2] == 0.0  # the old scorer set 1 here
    assert s["recall"][1] == 0.0


def test_max_f_on_given_curves():
    t, r, p, f = max_f(np.array([0.1, 0.2]), np.array([1.0, 0.5]), np.array([0.5, 1.0]))
    assert f == pytest.approx(0.75, abs=1e-3) and r == pytest.approx(0.75, abs=0.01) and 0.1 < t < 0.2


def _benchmark_assignment_pairs(pred, gt, radius, outlier=100.0):
    """The benchmark's problem solved exactly: a perfect assignment on (n1 + n2) x (n1 + n2) nodes, real
    pairs cost their distance when <= radius, any node may go to an outlier at outlier x radius."""
    from scipy.optimize import linear_sum_assignment
    p, g = np.argwhere(pred), np.argwhere(gt)
    n1, n2 = len(p), len(g)
    big, oc = 1e9, outlier * radius
    cost = np.full((n1 + n2, n2 + n1), oc)
    d = np.hypot(*(p[:, None, :] - g[None, :, :]).transpose(2, 0, 1)) if n1 and n2 else np.zeros((n1, n2))
    cost[:n1, :n2] = np.where(d <= radius, d, big)
    rows, cols = linear_sum_assignment(cost)
    return int(sum(1 for a, b in zip(rows, cols) if a < n1 and b < n2 and cost[a, b] < big))


@pytest.mark.parametrize("seed", range(6))
def test_maximum_cardinality_matches_as_many_pixels_as_the_min_cost_assignment(seed):
    rng = np.random.default_rng(seed)
    pred = rng.random((14, 14)) < 0.15
    gt = rng.random((14, 14)) < 0.12
    radius = 0.0075 * np.hypot(14, 14) * 10          # about 1.5 px: crowded, many competing pairs
    matched, n = match_pixels(pred, gt, radius)
    assert n == matched.sum() == _benchmark_assignment_pairs(pred, gt, radius)


def _dead_end_ladder(depth):
    """A bipartite graph on which Hopcroft-Karp without dead-end marking (scipy's, issue 26147) takes
    time exponential in `depth`: a free row w0 whose one augmenting path w0-p1-q1-...-q_depth-f runs beside a
    ladder (two rows per level, each joined to both columns of the next level) that leads nowhere, and which
    the depth-first search enters first. Rows in the order the greedy first phase leaves w0 free.
    Returns (rows, cols, n_rows, n_cols); a perfect matching exists."""
    col = {}
    c = lambda name: col.setdefault(name, len(col))
    for k in range(1, depth + 1):                 # column numbers by level: p_k before the ladder's c_k
        c(f"p{k}"), c(f"c{k}a"), c(f"c{k}b")
    c("f")
    adjacency = []
    for k in range(1, depth + 1):
        for side in "ab":
            adjacency.append([c(f"c{k}{side}")] + ([c(f"c{k + 1}a"), c(f"c{k + 1}b")] if k < depth else []))
        adjacency.append([c(f"p{k}"), c(f"p{k + 1}") if k < depth else c("f")])
    adjacency.append([c("p1"), c("c1a"), c("c1b")])
    rows = np.array([r for r, adj in enumerate(adjacency) for _ in adj])
    cols = np.array([x for adj in adjacency for x in adj])
    return rows, cols, len(adjacency), len(col)


def test_matching_takes_polynomial_time_on_layered_graphs():
    """Depth 34: scipy's maximum_bipartite_matching needs minutes (0.11 s at depth 22, about x3.5 per two
    levels); the flow formulation milliseconds. The reduced S-F11 run once hung on one image this way."""
    import time
    rows, cols, n_rows, n_cols = _dead_end_ladder(34)
    t0 = time.perf_counter()
    matched = max_matching(rows, cols, n_rows, n_cols)
    assert time.perf_counter() - t0 < 5.0
    assert matched.all() and n_rows == n_cols


@pytest.mark.parametrize("seed", range(4))
def test_flow_matching_has_the_cardinality_of_hopcroft_karp(seed):
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching
    rng = np.random.default_rng(seed)
    n_rows, n_cols = 300, 200
    graph = coo_matrix((np.ones(900), (rng.integers(0, n_rows, 900), rng.integers(0, n_cols, 900))),
                       shape=(n_rows, n_cols)).tocsr()
    graph.sum_duplicates()
    rows, cols = graph.nonzero()
    matched = max_matching(rows, cols, n_rows, n_cols)
    assert matched.sum() == (maximum_bipartite_matching(graph, perm_type="column") >= 0).sum()
    # a matching: each matched row has a neighbour, and there are at least as many distinct neighbours
    assert len(np.unique(cols[matched[rows]])) >= matched.sum()


def test_tolerance_is_inclusive_and_scaled_by_the_diagonal():
    g = np.zeros((30, 40), bool); g[10, 10] = True
    p = np.zeros((30, 40), bool); p[10, 10 + 3] = True        # 3 px away; 0.0075 x 50 = 0.375 px
    assert match_pixels(p, g, radius=3.0)[1] == 1           # distance == radius counts
    counts = image_counts(p.astype(float), [g], np.array([0.5]), max_dist=3.0 / 50.0, thin=False)
    assert counts[0].tolist() == [1, 1, 1, 1]
    counts = image_counts(p.astype(float), [g], np.array([0.5]), max_dist=2.9 / 50.0, thin=False)
    assert counts[0].tolist() == [0, 1, 0, 1]


def test_shared_binary_maps_give_the_same_counts_as_one_evaluation_per_threshold():
    rng = np.random.default_rng(0)
    g = np.zeros((24, 24), bool); g[8, 2:20] = True; g[3:20, 15] = True
    prob = np.round(rng.random((24, 24)) ** 3 * 4) / 4       # five distinct values
    th = bench_thresholds(19)
    fast = image_counts(prob, [g, g.T], th)
    slow = np.concatenate([image_counts(prob, [g, g.T], th[k:k + 1]) for k in range(len(th))])
    assert np.array_equal(fast, slow)


def test_summarise_counts_checks_its_input_and_ods_ois_names_mismatches():
    with pytest.raises(ValueError, match="counts must be"):
        summarise_counts(np.zeros((2, 3, 4)), bench_thresholds(5))
    with pytest.raises(ValueError, match="does not match"):
        ods_ois([np.zeros((5, 5))], [[np.zeros((5, 6), bool)]])
    with pytest.raises(ValueError, match="one list of annotator maps"):
        ods_ois([np.zeros((5, 5))], [])


def test_canny_soft_map_levels_are_nested_canny_maps():
    from skimage.feature import canny
    img = np.zeros((32, 32, 3), np.uint8); img[8:24, 8:24] = 200; img[12:16, 12:28] = 90
    soft = canny_soft_map(img, sigma=1.5, n_levels=4)
    assert soft.min() >= 0 and soft.max() <= 1 and soft.max() > 0
    assert set(np.unique(soft * 4).round(6)) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    grey = img.astype(float).mean(-1) / 255.0
    lowest = canny(grey, sigma=1.5, low_threshold=1e-9, high_threshold=2e-9, mode="nearest")
    assert (soft > 0).sum() <= lowest.sum()                  # every level is a subset of the most permissive map
    with pytest.raises(ValueError, match="expected an image"):
        canny_soft_map(np.zeros((2, 3, 4, 5)))
