"""BSDS500 in its standard folder layout, and the boundary benchmark's ODS / OIS measures (S-F11).

Layout (as unpacked from the Berkeley archive BSR_bsds500.tgz)::

    <data_dir>/BSR/BSDS500/data/images/{train,val,test}/<id>.jpg
    <data_dir>/BSR/BSDS500/data/groundTruth/{train,val,test}/<id>.mat

Each .mat holds ``groundTruth``: a 1 x K cell of structs with fields ``Segmentation`` and ``Boundaries``
(one per human annotator, 5-7 per image).

The benchmark (Arbelaez et al., the BSDS ``bench`` code) scores a soft boundary map by thresholding it
at many levels; at each level the thinned binary map is matched one-to-one to every annotator's
boundary pixels within a distance of ``max_dist`` x image diagonal (0.0075 by default). Counts:
recall = matched annotator pixels / annotator pixels, summed over annotators; precision = predicted
pixels matched to at least one annotator / predicted pixels. ODS: F of the counts summed over the data
set at the single best threshold. OIS: every image at its own best threshold, counts summed, then F.

Difference to the benchmark code, stated: its ``correspondPixels`` solves a minimum-cost assignment
(with outlier costs); we compute a maximum-cardinality matching between pixels closer than the same
distance (Hopcroft-Karp, scipy), which gives the same counts whenever the min-cost assignment matches
as many pixels as possible, and never fewer.
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
def match_pixels(pred: np.ndarray, gt: np.ndarray, radius: float) -> tuple[np.ndarray, int]:
    """One-to-one matching of boundary pixels closer than `radius` (maximum cardinality).
    Returns (bool map of matched predicted pixels, number of matched ground-truth pixels)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import maximum_bipartite_matching
    from scipy.spatial import cKDTree
    p = np.argwhere(pred)
    g = np.argwhere(gt)
    matched = np.zeros(pred.shape, dtype=bool)
    if len(p) == 0 or len(g) == 0:
        return matched, 0
    pairs = cKDTree(p).query_ball_tree(cKDTree(g), r=radius)
    rows = np.repeat(np.arange(len(p)), [len(x) for x in pairs])
    cols = np.fromiter((c for x in pairs for c in x), dtype=np.int64, count=len(rows))
    if len(rows) == 0:
        return matched, 0
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(p), len(g))).tocsr()
    m = maximum_bipartite_matching(graph, perm_type="column")   # for each pred pixel: its gt pixel or -1
    hit = m >= 0
    matched[p[hit, 0], p[hit, 1]] = True
    return matched, int(hit.sum())


def _f(p, r):
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def image_counts(prob: np.ndarray, gts: list[np.ndarray], thresholds: np.ndarray, max_dist: float = 0.0075,
                 thin: bool = True) -> np.ndarray:
    """Per threshold: [cntR, sumR, cntP, sumP] (the benchmark's four counts) -> [n_thresholds, 4]."""
    from skimage.morphology import thin as thin_fn
    radius = max_dist * float(np.hypot(*prob.shape))
    out = np.zeros((len(thresholds), 4), dtype=np.int64)
    sum_r = int(sum(g.sum() for g in gts))
    for k, t in enumerate(thresholds):
        bmap = prob >= t
        if thin:
            bmap = thin_fn(bmap)
        any_match = np.zeros(bmap.shape, dtype=bool)
        cnt_r = 0
        for g in gts:
            m, n_g = match_pixels(bmap, g, radius)
            any_match |= m
            cnt_r += n_g
        out[k] = (cnt_r, sum_r, int(any_match.sum()), int(bmap.sum()))
    return out


def ods_ois(probs: list[np.ndarray], gts: list[list[np.ndarray]], n_thresholds: int = 99, max_dist: float = 0.0075,
            thin: bool = True) -> dict:
    """ODS and OIS F-scores of soft boundary maps in [0, 1] against lists of annotator maps."""
    thresholds = np.linspace(1.0 / (n_thresholds + 1), 1.0 - 1.0 / (n_thresholds + 1), n_thresholds)
    counts = np.stack([image_counts(p, g, thresholds, max_dist, thin) for p, g in zip(probs, gts)])  # [I, T, 4]
    tot = counts.sum(0).astype(np.float64)                                                           # [T, 4]
    rec = tot[:, 0] / np.maximum(tot[:, 1], 1)
    prec = tot[:, 2] / np.maximum(tot[:, 3], 1)
    prec = np.where(tot[:, 3] == 0, 1.0, prec)     # no predicted pixel: precision 1 by convention (benchmark)
    f = np.array([_f(p, r) for p, r in zip(prec, rec)])
    best = int(np.argmax(f))
    # OIS: each image at its own best threshold
    per_image = []
    for c in counts:
        r_i = c[:, 0] / np.maximum(c[:, 1], 1)
        p_i = np.where(c[:, 3] == 0, 1.0, c[:, 2] / np.maximum(c[:, 3], 1))
        per_image.append(c[int(np.argmax([_f(p, r) for p, r in zip(p_i, r_i)]))])
    ois_c = np.sum(per_image, axis=0).astype(np.float64)
    ois_r = ois_c[0] / max(ois_c[1], 1)
    ois_p = 1.0 if ois_c[3] == 0 else ois_c[2] / ois_c[3]
    return {"ods": float(f[best]), "ods_threshold": float(thresholds[best]), "ods_precision": float(prec[best]),
            "ods_recall": float(rec[best]), "ois": _f(ois_p, ois_r), "thresholds": thresholds, "precision": prec,
            "recall": rec}


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
