"""ImageNet folder loader (hyperbook.data.imagenet) on a tiny tree of JPEGs written here."""
import numpy as np
import pytest
import torch
from PIL import Image

from hyperbook.data import imagenet as I
from hyperbook.errors import BookError, DatasetMissingError


def _tree(root, sizes, val=2, hw=(40, 30)):
    rng = np.random.default_rng(0)
    for split, counts in (("train", sizes), ("val", {w: val for w in sizes})):
        for wnid, n in counts.items():
            d = root / "imagenet" / split / wnid
            d.mkdir(parents=True)
            for k in range(n):
                Image.fromarray(rng.integers(0, 255, (*hw, 3), dtype=np.uint8)).save(d / f"{wnid}_{k}.JPEG")
    return root


def test_missing_tree_raises_a_clear_error(tmp_path):
    with pytest.raises(DatasetMissingError, match="image-net.org"):
        I.load_imagenet(tmp_path, 10)


def test_class_subset_rule_largest_first_ties_by_wnid(tmp_path):
    _tree(tmp_path, {"n03": 3, "n01": 2, "n02": 3, "n04": 1})
    root = I.imagenet_root(tmp_path)
    assert I.class_sizes(root) == {"n01": 2, "n02": 3, "n03": 3, "n04": 1}
    assert I.select_classes(root, 1) == ["n02"]            # tie 3/3: sorted wnid first
    assert I.select_classes(root, 3) == ["n01", "n02", "n03"]
    assert I.select_classes(root, None) == ["n01", "n02", "n03", "n04"]
    with pytest.raises(BookError):
        I.select_classes(root, 5)


def test_loader_shapes_labels_and_preprocessing(tmp_path):
    _tree(tmp_path, {"n01": 2, "n02": 3, "n03": 3})
    train, val = I.load_imagenet(tmp_path, 2, resize=32, crop=24)
    assert train.wnids == ["n02", "n03"] and len(train) == 6 and len(val) == 4
    assert sorted({y for _, y in train.samples}) == [0, 1]
    x, y = I.batch(train, range(6), generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 3, 24, 24) and x.dtype == torch.float32 and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert -130 < x.min() and x.max() < 152                # 0..255 minus the per-channel mean
    v1, _ = I.batch(val, [0]); v2, _ = I.batch(val, [0])
    assert torch.equal(v1, v2)                             # validation: deterministic centre crop
    a, _ = I.batch(train, [0, 1], generator=torch.Generator().manual_seed(5))
    b, _ = I.batch(train, [0, 1], generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)                               # training crops/flips reproducible per step


def test_default_sizes_follow_the_thesis():
    assert (I.RESIZE, I.CROP) == (256, 224)
