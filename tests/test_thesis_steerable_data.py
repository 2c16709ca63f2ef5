"""The blob boundary task, the BSDS500 folder loader and the ODS / OIS measures (thesis ch. 4)."""
import numpy as np
import pytest
import torch

from hyperbook.data.blobs import KINDS, blob_batch, boundaries
from hyperbook.data.bsds500 import load_bsds500, majority_vote, match_pixels, ods_ois
from hyperbook.errors import DatasetMissingError, UnknownChoiceError


# ----------------------------------------------------------------------------- blobs
@pytest.mark.parametrize("kind", KINDS)
def test_blob_batches_are_pure_functions_of_the_seed(kind):
    x, y, m = blob_batch(5, 32, kind, seed=3)
    assert x.shape == y.shape == (5, 1, 32, 32) and m.shape == (5, 32, 32)
    x2, y2, _ = blob_batch(5, 32, kind, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _, _ = blob_batch(5, 32, kind, seed=4)
    assert not torch.equal(x, x3)
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0} and 0.02 < y.mean() < 0.5


def test_targets_are_the_blob_outlines():
    m = np.zeros((1, 12, 12), dtype=bool)
    m[0, 3:8, 4:9] = True                                  # a 5x5 square
    b = boundaries(m)[0]
    inner = m[0] & ~np.pad(m[0], 1)[2:, 1:-1] | m[0] & ~np.pad(m[0], 1)[:-2, 1:-1] \
        | m[0] & ~np.pad(m[0], 1)[1:-1, 2:] | m[0] & ~np.pad(m[0], 1)[1:-1, :-2]
    assert b[3:8, 4:9].sum() == inner.sum() == 16          # the square's ring
    assert b[2, 4:9].all() and b[8, 4:9].all() and b[3:8, 3].all() and b[3:8, 9].all()
    assert not b[2, 3] and not b[5, 6]                      # no diagonal corner, no interior
    # tiles never leak into each other: a full tile has no outline at its border
    assert not boundaries(np.ones((2, 6, 6), dtype=bool)).any()


def test_binary_blobs_match_their_masks_and_textures_differ():
    x, y, m = blob_batch(4, 32, "binary", seed=1)
    assert torch.equal(x[:, 0] > 0, m)
    xt, _, mt = blob_batch(64, 32, "textured2", seed=1)
    # textured II: blob and background have (nearly) the same mean and spread
    inside, outside = xt[:, 0][mt], xt[:, 0][~mt]
    assert abs(inside.mean() - outside.mean()) < 0.05 and abs(inside.std() / outside.std() - 1) < 0.2
    tr, _, _ = blob_batch(4, 32, "textured1", seed=1, split="train")
    te, _, _ = blob_batch(4, 32, "textured1", seed=1, split="test")
    assert not torch.equal(tr, te)
    with pytest.raises(UnknownChoiceError):
        blob_batch(2, 32, "striped")


# ----------------------------------------------------------------------------- BSDS500 folder loader
def _write_bsds(root, split, ids, shape=(12, 16)):
    from scipy.io import savemat
    from skimage.io import imsave
    img_dir = root / "BSR" / "BSDS500" / "data" / "images" / split
    gt_dir = root / "BSR" / "BSDS500" / "data" / "groundTruth" / split
    img_dir.mkdir(parents=True), gt_dir.mkdir(parents=True)
    for k, i in enumerate(ids):
        imsave(img_dir / f"{i}.jpg", np.full(shape + (3,), 40 * k, dtype=np.uint8), check_contrast=False)
        cell = np.zeros((1, 3), dtype=object)
        for a in range(3):                                  # three annotators, rows k + a
            bd = np.zeros(shape, dtype=np.uint8)
            bd[2 + (a == 2), :] = 1
            cell[0, a] = {"Segmentation": np.ones(shape, np.uint16), "Boundaries": bd}
        savemat(gt_dir / f"{i}.mat", {"groundTruth": cell})


def test_bsds500_folder_loader(tmp_path):
    _write_bsds(tmp_path, "test", ["100007", "100039"])
    data = load_bsds500(tmp_path, "test")
    assert [d[0] for d in data] == ["100007", "100039"]
    ident, img, gts = data[1]
    assert img.shape == (12, 16, 3) and img.dtype == np.uint8
    assert len(gts) == 3 and gts[0].dtype == bool and gts[0].shape == (12, 16)
    vote = majority_vote(gts)                               # two of three annotators mark row 2
    assert vote[2].all() and not vote[3].any()
    assert len(load_bsds500(tmp_path, "test", limit=1)) == 1
    with pytest.raises(DatasetMissingError, match="BSR_bsds500"):
        load_bsds500(tmp_path, "train")
    with pytest.raises(UnknownChoiceError):
        load_bsds500(tmp_path, "holdout")


# ----------------------------------------------------------------------------- ODS / OIS
def test_ods_ois_on_a_hand_computed_case():
    """Image A: a 10-pixel true line at 0.8 and 5 far false pixels at 0.4; image B: its 10-pixel line at 0.3.
    t < 0.3: R = 20/20, P = 20/25, F = 0.889 (best for the data set: ODS).
    0.3 < t < 0.4: R = 10/20, P = 10/15; 0.4 < t < 0.8: R = 10/20, P = 1.
    Per image: A is perfect above 0.4, B below 0.3, so OIS = F(20/20, 20/20) = 1."""
    ga = np.zeros((20, 20), bool); ga[5, 2:12] = True
    gb = np.zeros((20, 20), bool); gb[9, 3:13] = True
    pa = np.zeros((20, 20)); pa[5, 2:12] = 0.8; pa[15, 10:15] = 0.4
    pb = np.zeros((20, 20)); pb[9, 3:13] = 0.3
    s = ods_ois([pa, pb], [[ga], [gb]], n_thresholds=19, max_dist=0.0075, thin=False)
    assert s["ods"] == pytest.approx(2 * 0.8 / 1.8)
    assert s["ods_recall"] == pytest.approx(1.0) and s["ods_precision"] == pytest.approx(0.8)
    assert s["ods_threshold"] < 0.3
    assert s["ois"] == pytest.approx(1.0)
    k = np.searchsorted(s["thresholds"], 0.35)
    assert s["recall"][k] == pytest.approx(0.5) and s["precision"][k] == pytest.approx(10 / 15)


def test_matching_tolerance_is_one_to_one():
    g = np.zeros((10, 10), bool); g[5, 5] = True
    p = np.zeros((10, 10), bool); p[5, 6] = p[5, 4] = True     # two predictions one pixel away
    matched, n = match_pixels(p, g, radius=1.0)
    assert n == 1 and matched.sum() == 1                       # only one may take the single true pixel
    matched, n = match_pixels(p, g, radius=0.5)
    assert n == 0 and matched.sum() == 0


def test_several_annotators_and_thinning():
    # recall sums over annotators, precision counts pixels matched to any annotator
    g1 = np.zeros((30, 30), bool); g1[10, 5:25] = True
    g2 = np.zeros((30, 30), bool); g2[20, 5:25] = True
    p = np.zeros((30, 30)); p[10, 5:25] = 0.9
    s = ods_ois([p], [[g1, g2]], n_thresholds=9, thin=False)
    assert s["ods_recall"] == pytest.approx(0.5) and s["ods_precision"] == pytest.approx(1.0)
    # a 3-pixel-thick prediction is thinned to a 1-pixel line before matching
    thick = np.zeros((30, 30)); thick[9:12, 5:25] = 0.9
    s_thin = ods_ois([thick], [[g1]], n_thresholds=9, max_dist=0.05, thin=True)
    s_thick = ods_ois([thick], [[g1]], n_thresholds=9, max_dist=0.05, thin=False)
    assert s_thin["ods_precision"] > 0.9 > s_thick["ods_precision"]


def test_bsds500_layout_check_names_the_fix(tmp_path):
    from hyperbook.data.bsds500 import check_bsds500
    _write_bsds(tmp_path, "train", ["1", "2"])
    with pytest.raises(DatasetMissingError, match="2 of 200 images in train"):
        check_bsds500(tmp_path)
