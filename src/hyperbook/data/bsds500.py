"""BSDS500 in its standard folder layout, and the boundary benchmark's ODS / OIS measures (S-F11).

Layout (as unpacked from the Berkeley archive BSR_bsds500.tgz)::

    <data_dir>/BSR/BSDS500/data/images/{train,val,test}/<id>.jpg
    <data_dir>/BSR/BSDS500/data/groundTruth/{train,val,test}/<id>.mat

Each .mat holds ``groundTruth``: a 1 x K cell of structs with fields ``Segmentation`` and ``Boundaries``
(one per human annotator, 5-7 per image).

The benchmark (Arbelaez et al. 2011, the BSDS ``bench`` code: ``evaluation_bdry_image.m``,
``correspondPixels`` / ``match.cc``, ``collect_eval_bdry.m``) scores a soft boundary map in [0, 1] like this, and so do we:

* thresholds: 99 levels ``linspace(1/100, 99/100)``; at each level the binary map ``prob >= t`` is thinned to
  one-pixel lines (MATLAB ``bwmorph(.., 'thin', inf)``; scikit-image's ``thin`` implements the same
  Lam-Lee-Suen / Guo-Hall two-subiteration algorithm). Annotator maps are used as they are (not thinned).
* tolerance: pixels may correspond when their distance is at most ``max_dist`` x image diagonal,
  0.0075 x sqrt(H^2 + W^2) (about 4.3 px on 321 x 481 images), inclusive, as ``match.cc`` does.
* matching: one-to-one, against every annotator separately. ``correspondPixels`` solves a minimum-cost
  perfect assignment in which an unmatched pixel costs ``outlierCost`` x r = 100 r and a matched pair its
  distance (<= r). A matching with k pairs costs (sum of distances) + 100 r (n1 + n2 - k), so one more pair
  saves at least 99 r and the minimum-cost assignment has maximum cardinality (an augmenting path would
  have to move more than 99 pairs to break this). We compute that maximum-cardinality matching exactly,
  as a unit-capacity maximum flow (Dinic's algorithm, scipy's ``maximum_flow``: polynomial, O(E sqrt V));
  not with scipy's ``maximum_bipartite_matching``, whose Hopcroft-Karp search takes exponential time on
  layered graphs (scipy issue 26147), which boundary maps of a barely trained network are: one image of
  the reduced S-F11 run did not finish in 8 minutes. The distances only decide *which* pixels match, never how many, and the
  benchmark's counts use only how many. (Its CSA solver also runs on a sparse random outlier graph
  with a high-cost overlay; it warns in the rare cases where that changes the result.)
* counts per threshold: cntR = matched annotator pixels, sumR = annotator pixels, both summed over
  annotators; cntP = predicted pixels matched to at least one annotator; sumP = predicted pixels.
  R = cntR / sumR, P = cntP / sumP, and 0 where a denominator is 0 (so an empty map has P = 0, not 1).
* ODS: counts summed over the images, then the best F over thresholds, *interpolating* R and P linearly
  between neighbouring thresholds (``maxF``, 100 steps per interval). OIS: per image the first threshold
  of maximal F (no interpolation), those counts summed over the images, then F.

Speed: thresholds that give the same binary map (no probability value between them) share one
evaluation, so maps with few distinct values (e.g. Canny at a few levels) cost only those levels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetMissingError, UnknownChoiceError

SPLITS = ("train", "val", "test")
URL = "http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz"
FIX = (f"download {URL} (the Berkeley BSR archive) and unpack it into the data folder "
       f"(`tar xzf BSR_bsds500.tgz -C data/`), so that data/BSR/BSDS500/data/images/test exists")


def root(data_dir) -> Path:
    return Path(data_dir) / "BSR" / "BSDS500" / "data"


def _read_gt(path: Path) -> list[np.ndarray]:
    from scipy.io import loadmat
    mat = loadmat(str(path), squeeze_me=False)
    cells = mat["groundTruth"].reshape(-1)
    out = []
    for cell in cells:
        entry = cell
        while isinstance(entry, np.ndarray) and entry.dtype == object:   # unwrap 1x1 object arrays
            entry = entry.reshape(-1)[0]
        bd = entry["Boundaries"]
        while isinstance(bd, np.ndarray) and bd.dtype == object:
            bd = bd.reshape(-1)[0]
        out.append(np.asarray(bd).astype(bool))
    return out


def list_ids(data_dir, split: str) -> list[str]:
    if split not in SPLITS:
        raise UnknownChoiceError("BSDS500 split", split, SPLITS)
    folder = root(data_dir) / "images" / split
    if not folder.is_dir():
        raise DatasetMissingError("BSDS500", folder, FIX)
    return sorted(p.stem for p in folder.glob("*.jpg"))


def load_bsds500(data_dir, split: str = "test", limit: int | None = None):
    """[(id, image uint8 [H, W, 3], [boundary maps bool [H, W], one per annotator])] for one split."""
    from skimage.io import imread
    ids = list_ids(data_dir, split)[:limit]
    if not ids:
        raise DatasetMissingError("BSDS500", root(data_dir) / "images" / split, FIX)
    out = []
    for i in ids:
        img = imread(root(data_dir) / "images" / split / f"{i}.jpg")
        gt_path = root(data_dir) / "groundTruth" / split / f"{i}.mat"
        if not gt_path.exists():
            raise DatasetMissingError("BSDS500 ground truth", gt_path, FIX)
        out.append((i, np.asarray(img), _read_gt(gt_path)))
    return out


def majority_vote(gts: list[np.ndarray]) -> np.ndarray:
    """One training label from several annotators: boundary where more than half of them mark one
    (thesis 4.4.2, following the Harmonic Networks protocol)."""
    stack = np.stack([g.astype(np.float32) for g in gts])
    return stack.mean(0) > 0.5


# ----------------------------------------------------------------------------- the benchmark measures
BENCH_THRESHOLDS = 99
BENCH_MAX_DIST = 0.0075


def bench_thresholds(n_thresholds: int = BENCH_THRESHOLDS) -> np.ndarray:
    """The benchmark's levels: linspace(1 / (n + 1), 1 - 1 / (n + 1), n)."""
    if n_thresholds < 1:
        raise ValueError(f"n_thresholds must be >= 1, got {n_thresholds}")
    return np.linspace(1.0 / (n_thresholds + 1), 1.0 - 1.0 / (n_thresholds + 1), n_thresholds)


def max_matching(rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
    """Maximum-cardinality matching of the bipartite graph with edges (rows[k], cols[k]) (no repeated edge):
    a bool mask [n_rows] of the matched rows. Solved as a unit-capacity flow source -> row -> column -> sink
    with Dinic's algorithm (scipy), whose time is polynomial on every graph (see the module docstring)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow
    source, sink = 0, n_rows + n_cols + 1
    row_nodes = np.arange(1, n_rows + 1, dtype=np.int32)
    col_nodes = np.arange(n_rows + 1, n_rows + n_cols + 1, dtype=np.int32)
    tail = np.concatenate([np.zeros(n_rows, np.int32), 1 + np.asarray(rows, np.int32), col_nodes])
    head = np.concatenate([row_nodes, n_rows + 1 + np.asarray(cols, np.int32), np.full(n_cols, sink, np.int32)])
    capacity = csr_matrix((np.ones(len(tail), np.int32), (tail, head)), shape=(sink + 1, sink + 1))
    flow = maximum_flow(capacity, source, sink, method="dinic").flow.tocsr()
    start, stop = flow.indptr[0], flow.indptr[1]          # the source's row: flow 1 into each matched row
    matched = np.zeros(n_rows, dtype=bool)
    matched[flow.indices[start:stop][flow.data[start:stop] > 0] - 1] = True
    return matched


def match_pixels(pred: np.ndarray, gt: np.ndarray, radius: float) -> tuple[np.ndarray, int]:
    """One-to-one matching of boundary pixels at distance <= `radius` (maximum cardinality, which is
    the number of pairs the benchmark's minimum-cost assignment matches; see the module docstring).
    Returns (bool map of matched predicted pixels, number of matched ground-truth pixels)."""
    from scipy.spatial import cKDTree
    p = np.argwhere(pred)
    g = np.argwhere(gt)
    matched = np.zeros(pred.shape, dtype=bool)
    if len(p) == 0 or len(g) == 0:
        return matched, 0
    pairs = cKDTree(p).sparse_distance_matrix(cKDTree(g), radius, output_type="ndarray")
    if len(pairs) == 0:
        return matched, 0
    # only pixels with a partner within the radius take part (as the benchmark's "matchable" nodes)
    pi, pinv = np.unique(pairs["i"], return_inverse=True)
    gj, ginv = np.unique(pairs["j"], return_inverse=True)
    rows = pi[max_matching(pinv, ginv, len(pi), len(gj))]
    matched[p[rows, 0], p[rows, 1]] = True
    return matched, int(len(rows))


def _ratio(num, den):
    """The benchmark's num / (den + (den == 0)): 0 where den is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return num / (den + (den == 0))


def _f(p, r):
    """fmeasure: 2 P R / (P + R), 0 where P + R = 0 (elementwise)."""
    p, r = np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)
    return 2 * p * r / (p + r + ((p + r) == 0))


def _binary_maps(prob: np.ndarray, thresholds: np.ndarray):
    """Yield (threshold indices, binary map) once per distinct map prob >= t."""
    values = np.unique(prob)
    # the map at t is decided by the smallest value >= t: group thresholds by that value
    key = np.searchsorted(values, thresholds, side="left")
    for k in np.unique(key):
        idx = np.nonzero(key == k)[0]
        yield idx, prob >= thresholds[idx[0]]


def image_counts(prob: np.ndarray, gts: list[np.ndarray], thresholds: np.ndarray, max_dist: float = BENCH_MAX_DIST,
                 thin: bool = True) -> np.ndarray:
    """Per threshold: [cntR, sumR, cntP, sumP] (the benchmark's four counts) -> [n_thresholds, 4]."""
    from skimage.morphology import thin as thin_fn
    prob = np.asarray(prob, dtype=np.float64)
    if prob.ndim != 2:
        raise ValueError(f"a boundary map must be 2-D [H, W], got shape {prob.shape}")
    for g in gts:
        if g.shape != prob.shape:
            raise ValueError(f"annotator map of shape {g.shape} does not match the boundary map's {prob.shape}")
    radius = max_dist * float(np.hypot(*prob.shape))
    out = np.zeros((len(thresholds), 4), dtype=np.int64)
    sum_r = int(sum(int(g.sum()) for g in gts))
    for idx, bmap in _binary_maps(prob, np.asarray(thresholds, dtype=np.float64)):
        if thin and bmap.any():
            bmap = thin_fn(bmap)
        any_match = np.zeros(bmap.shape, dtype=bool)
        cnt_r = 0
        for g in gts:
            m, n_g = match_pixels(bmap, g, radius)
            any_match |= m
            cnt_r += n_g
        out[idx] = (cnt_r, sum_r, int(any_match.sum()), int(bmap.sum()))
    return out


def max_f(thresholds: np.ndarray, rec: np.ndarray, prec: np.ndarray) -> tuple[float, float, float, float]:
    """The benchmark's ``maxF``: best F over the thresholds with R and P interpolated linearly between
    neighbouring thresholds (100 points per interval). Returns (threshold, recall, precision, F)."""
    best = (float(thresholds[0]), float(rec[0]), float(prec[0]), float(_f(prec[0], rec[0])))
    d = np.linspace(0.0, 1.0, 100)
    for i in range(1, len(thresholds)):
        t = thresholds[i] * d + thresholds[i - 1] * (1 - d)
        r = rec[i] * d + rec[i - 1] * (1 - d)
        p = prec[i] * d + prec[i - 1] * (1 - d)
        f = _f(p, r)
        k = int(np.argmax(f))
        if f[k] > best[3]:
            best = (float(t[k]), float(r[k]), float(p[k]), float(f[k]))
    return best


def summarise_counts(counts: np.ndarray, thresholds: np.ndarray) -> dict:
    """ODS / OIS from per-image counts [I, T, 4] (``image_counts`` stacked), as ``collect_eval_bdry``."""
    counts = np.asarray(counts)
    if counts.ndim != 3 or counts.shape[2] != 4 or counts.shape[1] != len(thresholds):
        raise ValueError(f"counts must be [images, {len(thresholds)} thresholds, 4], got {counts.shape}")
    tot = counts.sum(0).astype(np.float64)                                                           # [T, 4]
    rec, prec = _ratio(tot[:, 0], tot[:, 1]), _ratio(tot[:, 2], tot[:, 3])
    best_t, best_r, best_p, best_f = max_f(thresholds, rec, prec)
    per_image = []
    for c in counts:
        f_i = _f(_ratio(c[:, 2], c[:, 3]), _ratio(c[:, 0], c[:, 1]))
        per_image.append(c[int(np.argmax(f_i))])         # first threshold of maximal F, as ff(1)
    ois_c = np.sum(per_image, axis=0).astype(np.float64)
    ois_r, ois_p = float(_ratio(ois_c[0], ois_c[1])), float(_ratio(ois_c[2], ois_c[3]))
    return {"ods": best_f, "ods_threshold": best_t, "ods_precision": best_p, "ods_recall": best_r,
            "ois": float(_f(ois_p, ois_r)), "ois_precision": ois_p, "ois_recall": ois_r,
            "thresholds": np.asarray(thresholds), "precision": prec, "recall": rec, "f": _f(prec, rec)}


def ods_ois(probs: list[np.ndarray], gts: list[list[np.ndarray]], n_thresholds: int = BENCH_THRESHOLDS,
            max_dist: float = BENCH_MAX_DIST, thin: bool = True) -> dict:
    """ODS and OIS F-scores of soft boundary maps in [0, 1] against lists of annotator maps."""
    if len(probs) != len(gts) or not probs:
        raise ValueError(f"need one list of annotator maps per boundary map, got {len(probs)} maps and {len(gts)} lists")
    thresholds = bench_thresholds(n_thresholds)
    counts = np.stack([image_counts(p, g, thresholds, max_dist, thin) for p, g in zip(probs, gts)])  # [I, T, 4]
    out = summarise_counts(counts, thresholds)
    out["counts"] = counts
    return out


# ----------------------------------------------------------------------------- classical baseline: Canny
CANNY_PUBLISHED = {"ods": 0.60, "ois": 0.63}   # Arbelaez et al. 2011 (PAMI), BSDS500 test set, Canny


def canny_soft_map(image: np.ndarray, sigma: float = 2.0, n_levels: int = 16, low_ratio: float = 0.4) -> np.ndarray:
    """A soft boundary map from scikit-image's Canny detector: the fraction of `n_levels` hysteresis
    settings at which a pixel is marked. Level k uses the high threshold at quantile q_k of the image's
    gradient magnitude (q_k evenly spaced in [0.70, 0.995]) and the low threshold at `low_ratio` x that
    magnitude. Raising both thresholds only removes pixels, so the maps are nested and thresholding the
    soft map at k / n_levels gives back Canny at level k exactly. Grey image = mean of the RGB channels."""
    from skimage.feature import canny
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 3:
        img = img.mean(-1)
    if img.ndim != 2:
        raise ValueError(f"expected an image [H, W] or [H, W, 3], got shape {np.shape(image)}")
    img = img / 255.0 if img.max() > 1.0 else img
    from scipy import ndimage
    sm = ndimage.gaussian_filter(img, sigma, mode="nearest")
    mag = np.hypot(ndimage.sobel(sm, 0), ndimage.sobel(sm, 1))
    qs = np.linspace(0.70, 0.995, n_levels)
    highs = np.quantile(mag, qs)
    soft = np.zeros(img.shape, dtype=np.float64)
    for h in highs:
        soft += canny(img, sigma=sigma, low_threshold=low_ratio * h, high_threshold=h, mode="nearest")
    return soft / n_levels

# ----------------------------------------------------------------------------- fetching
EXPECTED_COUNTS = {"train": 200, "val": 100, "test": 200}


def check_bsds500(data_dir) -> Path:
    """Verify the unpacked layout: 200 / 100 / 200 images with one ground-truth file each. (We know no
    published checksum of BSR_bsds500.tgz, so the check is on the content, not on an md5.)"""
    for split, n in EXPECTED_COUNTS.items():
        ids = list_ids(data_dir, split)
        gts = root(data_dir) / "groundTruth" / split
        missing = [i for i in ids if not (gts / f"{i}.mat").exists()]
        if len(ids) != n or missing:
            raise DatasetMissingError("BSDS500", root(data_dir) / "images" / split,
                                      f"{FIX} (found {len(ids)} of {n} images in {split}, "
                                      f"{len(missing)} without ground truth)")
    return root(data_dir)


def fetch_bsds500(data_dir) -> Path:
    """Download and unpack BSR_bsds500.tgz into data_dir (needs the internet), then check the layout."""
    import tarfile
    import urllib.request
    from ..errors import BookError
    data_dir = Path(data_dir)
    try:
        return check_bsds500(data_dir)
    except DatasetMissingError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    archive = data_dir / "BSR_bsds500.tgz"
    try:
        if not archive.exists():
            urllib.request.urlretrieve(URL, archive)
        with tarfile.open(archive) as tar:
            tar.extractall(data_dir, filter="data")
    except (OSError, tarfile.TarError) as err:
        raise BookError(f"could not fetch BSDS500 from {URL} ({type(err).__name__}: {err}); {FIX}") from err
    return check_bsds500(data_dir)
