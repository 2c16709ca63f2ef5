"""Thesis ch. 4 experiment wiring: optimiser settings, precision, data sources and the quoted table rows."""
from types import SimpleNamespace

import pytest
import torch

from hyperbook.errors import DatasetMissingError
from hyperbook.experiments import thesis_steerable as E


class _Stop(Exception):
    pass


def _ctx(tmp_path):
    return SimpleNamespace(data_dir=tmp_path, results_dir=tmp_path, device="cpu", profile="smoke")


@pytest.mark.parametrize("cls", [E.BlobsConfig, E.CifarFramesConfig, E.BsdsConfig])
def test_training_configs_carry_precision_and_full_refuses_standins(cls):
    for profile in ("smoke", "reduced", "full"):
        cfg = cls.for_profile(profile)
        assert cfg.precision == "fp32"
        if hasattr(cfg, "allow_standin"):
            assert cfg.allow_standin == (profile != "full")


def test_cifar_frames_asks_for_real_data_and_trains_with_plain_momentum(tmp_path, monkeypatch):
    import hyperbook.data.cifar as cifar
    seen = {}

    def fake_load(data_dir, num_classes, train=True, device="cpu", allow_standin=True):
        seen.setdefault("allow_standin", []).append(allow_standin)
        n = 64 if train else 16
        return torch.randint(0, 255, (n, 3, 32, 32), dtype=torch.uint8), torch.randint(0, 10, (n,)), "CIFAR-10"

    def fake_fit(model, loss_fn, batch_fn, **kw):
        seen["fit"] = kw
        raise _Stop

    monkeypatch.setattr(cifar, "load_cifar_or_standin", fake_load)
    monkeypatch.setattr(E, "fit", fake_fit)
    cfg = E.CifarFramesConfig.for_profile("full")
    with pytest.raises(_Stop):
        E.run_cifar_frames(cfg.__class__(**{**cfg.__dict__, "archs": ("resnet8",), "n_train": 64, "n_test": 16}),
                           _ctx(tmp_path))
    assert seen["allow_standin"] == [False, False]
    kw = seen["fit"]
    assert kw["optimizer"] == "sgd" and kw["momentum"] == 0.9 and not kw.get("nesterov", False)
    assert kw["precision"] == "fp32"


def test_blobs_pass_precision_to_fit(tmp_path, monkeypatch):
    seen = {}

    def fake_fit(model, loss_fn, batch_fn, **kw):
        seen.update(kw)
        raise _Stop

    monkeypatch.setattr(E, "fit", fake_fit)
    with pytest.raises(_Stop):
        E.run_blobs(E.BlobsConfig.for_profile("smoke"), _ctx(tmp_path))
    assert seen["precision"] == "fp32"


def test_bsds_full_profile_refuses_the_blob_standin(tmp_path):
    with pytest.raises(DatasetMissingError, match="BSDS500.*does not fall back"):
        E.run_bsds(E.BsdsConfig.for_profile("full"), _ctx(tmp_path))


def test_canny_calibration_needs_the_real_test_split(tmp_path):
    assert E.CannyCalibrationConfig.for_profile("smoke").n_test <= 3
    assert E.CannyCalibrationConfig.for_profile("reduced").n_test == 200
    with pytest.raises(DatasetMissingError, match="BSDS500"):
        E.run_canny_calibration(E.CannyCalibrationConfig.for_profile("smoke"), _ctx(tmp_path))


def test_quoted_rows_of_table_6_and_figure_11():
    assert set(E.THESIS_T6_STD) == set(E.THESIS_T6)
    assert E.THESIS_T6_STD[("resnet110", "naive")] == 0.31
    assert E.THESIS_F11_OTHERS["DCNN, ImageNet pre-trained [88]"] == (0.813, 0.831)
    assert len(E.THESIS_F11_OTHERS) == 4


def test_only_smoke_scores_bsds_on_crops():
    assert E.BsdsConfig.for_profile("smoke").test_crop > 0
    assert E.BsdsConfig.for_profile("reduced").test_crop == 0 and E.BsdsConfig.for_profile("full").test_crop == 0
