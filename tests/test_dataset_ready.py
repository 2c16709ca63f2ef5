"""The data layer answers "is this dataset here?" (hyperbook.data.registry.dataset_ready); the unit
registry's plan table asks it rather than knowing folder names itself."""
import pytest

from hyperbook.data.registry import DATASETS, ON_REQUEST, READINESS, dataset_ready


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_every_fetchable_and_every_unit_dataset_has_a_check():
    from hyperbook.units import all_units
    assert set(DATASETS) | set(ON_REQUEST) <= set(READINESS)
    named = {n for u in all_units() for p in ("smoke", "reduced", "full") for n in u.datasets(u.config(p))}
    assert named <= set(READINESS), named - set(READINESS)
    assert dataset_ready("no_such_set", "/nonexistent") is None


def test_empty_folder_has_nothing_but_the_bundled_set(tmp_path):
    assert {n: dataset_ready(n, tmp_path) for n in READINESS} == {n: n == "lfw_subset" for n in READINESS}


@pytest.mark.parametrize("name,folder,module", [("mnist", "MNIST", "mnist"),
                                                ("fashion_mnist", "FashionMNIST", "fashion_mnist")])
def test_idx_sets_need_all_four_files(tmp_path, name, folder, module):
    """The old check took any non-empty raw/ folder for a dataset (a partial download counted as present)."""
    import importlib
    files = list(getattr(importlib.import_module(f"hyperbook.data.{module}"),
                         "MNIST_MD5" if name == "mnist" else "FASHION_MNIST_MD5"))
    touch(tmp_path / folder / "raw" / files[0])
    assert dataset_ready(name, tmp_path) is False
    for f in files[1:]:
        touch(tmp_path / folder / "raw" / f)
    assert dataset_ready(name, tmp_path) is True


def test_cifar10_from_torchvision_files_or_the_jpeg_mirror_and_cifar100_only_from_its_files(tmp_path):
    (tmp_path / "cifar10-jpeg" / "train").mkdir(parents=True)
    assert dataset_ready("cifar10", tmp_path) is False          # old check: the bare mirror folder counted
    (tmp_path / "cifar10-jpeg" / "test").mkdir()
    assert dataset_ready("cifar10", tmp_path) is True
    assert dataset_ready("cifar100", tmp_path) is False
    (tmp_path / "cifar-100-python").mkdir()
    assert dataset_ready("cifar100", tmp_path) is True


def test_sr_benchmarks_need_every_image(tmp_path):
    from hyperbook.data.sr_folders import SR_DATASETS
    for name in ("Set5", "Set14", "B100"):
        rel, count = SR_DATASETS[name]
        for k in range(count - (name == "B100")):
            touch(tmp_path / rel / f"{k}.png")
    assert dataset_ready("sr_benchmarks", tmp_path) is False    # 99 of B100's 100 (old: the folder sufficed)
    touch(tmp_path / SR_DATASETS["B100"][0] / "last.png")
    assert dataset_ready("sr_benchmarks", tmp_path) is True


def test_bsds500_needs_images_and_ground_truth_of_every_split(tmp_path):
    from hyperbook.data.bsds500 import SPLITS, root
    for split in SPLITS:
        (root(tmp_path) / "images" / split).mkdir(parents=True)
    assert dataset_ready("bsds500", tmp_path) is False
    for split in SPLITS:
        (root(tmp_path) / "groundTruth" / split).mkdir(parents=True)
    assert dataset_ready("bsds500", tmp_path) is True


def test_imagenet_needs_class_folders(tmp_path):
    (tmp_path / "imagenet" / "train").mkdir(parents=True)
    assert dataset_ready("imagenet", tmp_path) is False
    (tmp_path / "imagenet" / "train" / "n01440764").mkdir()
    assert dataset_ready("imagenet", tmp_path) is True


def test_the_plan_table_asks_the_data_layer(tmp_path, monkeypatch):
    import hyperbook.units as U
    unit = U.get_unit("hcnn/cifar100_hcnn")
    assert U.data_state(unit, "full", tmp_path) == "MISSING: cifar100"
    assert U.data_state(unit, "reduced", tmp_path).startswith("stand-in")
    monkeypatch.setattr(U, "dataset_ready", lambda name, d: True)
    assert U.data_state(unit, "full", tmp_path) == "yes"
