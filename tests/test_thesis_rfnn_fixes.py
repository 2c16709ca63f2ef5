"""Thesis ch. 3 fixes: CIFAR RFNiN layer counts, ImageNet `full` path, plain momentum, precision, R-F5 text."""
import json
import types
import unicodedata
from pathlib import Path

import pytest
import torch

from hyperbook.errors import DatasetMissingError
from hyperbook.experiments import thesis_rfnn as R
from hyperbook.models.rfnn import NIN_IMAGENET, RFNIN_CIFAR, NiN, layer_counts

BOOK = Path(__file__).resolve().parents[1] / "book" / "chapters" / "thesis"


def test_cifar_rfnin_has_one_basis_two_1x1_and_one_pooling_layer_less_than_imagenet():
    imagenet = layer_counts(NiN(100, NIN_IMAGENET, conv="rf", in_ch=3))
    cifar = layer_counts(R.build_cifar_model("rfnin", 10, 3, 2))
    assert imagenet == {"spatial": 4, "one_by_one": 8, "pool": 4}
    assert cifar == {"spatial": imagenet["spatial"] - 1, "one_by_one": imagenet["one_by_one"] - 2,
                     "pool": imagenet["pool"] - 1}                       # old code: 5 1x1 layers
    assert [c for st in RFNIN_CIFAR for c in st.cccp][:-1] == [192] * 5  # 192 units, the last maps to classes


def _ctx(tmp_path):
    return types.SimpleNamespace(data_dir=tmp_path, device="cpu", results_dir=tmp_path / "results")


@pytest.mark.parametrize("config", [R.AblationConfig.for_profile("full"), R.ClassSubsetConfig.for_profile("full")])
def test_full_profiles_use_imagenet_and_never_a_stand_in(config, tmp_path):
    assert config.dataset == "imagenet" and config.optimizer == "sgd" and config.precision == "fp32"
    run = R.run_ablation if isinstance(config, R.AblationConfig) else R.run_class_subsets
    with pytest.raises(DatasetMissingError, match="imagenet"):
        run(config, _ctx(tmp_path))


def test_full_protocols_follow_the_thesis():
    a = R.AblationConfig.for_profile("full")
    assert (a.classes, a.steps, a.weight_decay) == (100, 100_000, 5e-4)
    f = R.drop_schedule(a.steps)
    assert [f(s) for s in (0, 49_999, 50_000, 75_000)] == pytest.approx([1, 1, 0.1, 0.01])
    c = R.ClassSubsetConfig.for_profile("full")
    assert c.class_counts == (1000, 100, 10) and "rfnin_v2" in c.variants
    assert c.lr_for(1000) == pytest.approx(10 * c.lr_for(100))
    assert R.CifarConfig.for_profile("full").allow_standin is False
    assert R.CifarConfig.for_profile("reduced").allow_standin is True


def test_imagenet_nin_variants_build():
    x = torch.randn(1, 3, 64, 64)
    for v in ("nin", "refactor_layer1_free", "rf_scale_order3", "rfnin_v2"):
        m = R.build_nin(v, 7, imagenet=True)
        assert m(x).shape == (1, 7)
    with pytest.raises(Exception):
        R.build_nin("rfnin_v2", 10, imagenet=False)


def test_experiments_train_with_plain_momentum_and_config_precision(kwargs_spy):
    seen = kwargs_spy(R, "fit")
    sgd = kwargs_spy(torch.optim, "SGD")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    R.train_classifier(model, torch.randn(8, 1, 2, 2), torch.randint(0, 2, (8,)), steps=2, batch_size=4, lr=0.1,
                       optimizer="sgd", seed=0, device="cpu", precision="fp32")
    assert seen["nesterov"] is False and seen["precision"] == "fp32"
    assert sgd["nesterov"] is False and sgd["momentum"] == 0.9
    for cfg in (R.MnistSizesConfig.for_profile("smoke"), R.AblationConfig.for_profile("smoke"),
                R.ClassSubsetConfig.for_profile("smoke"), R.CifarConfig.for_profile("smoke")):
        assert cfg.precision == "fp32"


def _control_chars(text: str):
    return [hex(ord(ch)) for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\n\t\r"]


@pytest.mark.parametrize("name", ["rfnn", "irevnet"])
def test_chapter_has_no_control_characters(name):
    """A Python string once turned `\\alpha` into a bell character (R-F5's "Math input error")."""
    nb = json.loads((BOOK / f"{name}.ipynb").read_text())
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        assert not _control_chars(src), (cell.get("id"), _control_chars(src))
        for out in cell.get("outputs", []):
            for key in ("text",):
                if key in out:
                    text = "".join(out[key]) if isinstance(out[key], list) else out[key]
                    assert not _control_chars(text.replace("\x1b", "")), cell.get("id")
            for mime, data in out.get("data", {}).items():
                if mime.startswith("text/"):
                    text = "".join(data) if isinstance(data, list) else data
                    assert not _control_chars(text), (cell.get("id"), mime)
