"""RFNN / NiN / RFNiN models and the experiment helpers of the thesis ch. 3 chapter."""
import pytest
import torch

from hyperbook.experiments.thesis_rfnn import (
    ABLATION_VARIANTS, MnistSizesConfig, build_cifar_model, build_standin_nin, epochs_for_size, steps_for,
    subset_indices)
from hyperbook.layers.gaussian_basis import RFConv2d
from hyperbook.models.rfnn import (NIN_IMAGENET, RFNIN_V2_IMAGENET, NiN, RFNN, count_parameters,
                                   spatial_filter_count)


def test_mnist_rfnn_matches_official_facts():
    m = RFNN("rf")
    rf = [l for l in m.modules() if isinstance(l, RFConv2d)]
    assert [l.n_basis for l in rf] == [10, 6, 6]                 # orders 3, 2, 2
    assert [l.size for l in rf] == [11, 7, 7] and [l.sigmas for l in rf] == [(1.5,), (1.0,), (1.0,)]
    assert [l.out_ch for l in rf] == [64, 64, 64] and all(l.bias is None for l in rf)
    assert m.classifier[-1].in_features == 3136
    # alpha only: 1*64*10 + 2 * 64*64*6, plus the 3136 -> 10 classifier
    assert count_parameters(m) == 640 + 2 * 64 * 64 * 6 + 3136 * 10 + 10
    assert rf[0].alpha.abs().max() <= 1.0                       # U(-1, 1) initialisation
    x = torch.randn(3, 1, 28, 28)
    assert m(x).shape == (3, 10)
    cnn = RFNN("pixel")
    assert cnn(x).shape == (3, 10)
    assert count_parameters(cnn) == 121 * 64 + 2 * 49 * 64 * 64 + 3136 * 10 + 10


@pytest.mark.parametrize("order,filters", [(1, 12), (2, 24), (3, 40), (4, 60)])
def test_rfnin_imagenet_basis_filter_counts_match_table1(order, filters):
    """Thesis table 1, single-scale rows: 12 / 24 / 40 / 60 basis filters in the whole network."""
    m = NiN(100, NIN_IMAGENET, conv="rf", order=order)
    assert spatial_filter_count(m) == filters


def test_nin_and_rfnin_imagenet_shapes():
    x = torch.randn(1, 3, 224, 224)
    nin = NiN(100, NIN_IMAGENET, conv="pixel")
    assert nin(x).shape == (1, 100)
    assert spatial_filter_count(nin) == 3 * 96 + 96 * 256 + 256 * 384 + 384 * 1024   # the "520k" of table 1
    rf = NiN(100, NIN_IMAGENET, conv="rf", order=3, n_scales=4)
    assert rf.stage_sigmas == [(1.0, 2.0, 4.0, 8.0), (1.0, 2.0, 4.0), (1.0, 2.0), (1.0,)]
    assert rf(x).shape == (1, 100)
    v2 = NiN(1000, RFNIN_V2_IMAGENET, conv="rf", order=3, n_scales=4)
    assert v2(x).shape == (1, 1000)
    free = NiN(100, NIN_IMAGENET, conv=("free", "pixel", "pixel", "pixel"))
    assert free(x).shape == (1, 100)
    assert count_parameters(free) < count_parameters(nin)
    with pytest.raises(ValueError):
        NiN(100, NIN_IMAGENET, conv=("rf", "pixel"))


def test_cifar_models_and_standin_variants():
    x = torch.randn(2, 3, 32, 32)
    for v in ("nin", "rfnin"):
        assert build_cifar_model(v, 10, 3, 2)(x).shape == (2, 10)
    xs = torch.randn(2, 1, 28, 28)
    for v in ABLATION_VARIANTS:
        assert build_standin_nin(v, 10)(xs).shape == (2, 10)


def test_protocol_helpers():
    assert epochs_for_size(300) == 1000 and epochs_for_size(60000) == 100
    assert 100 < epochs_for_size(5000) < 1000
    full = MnistSizesConfig.for_profile("full")
    assert steps_for(full, 60000) == 100 * 60000 // 25 and len(full.seeds) == 3
    labels = torch.arange(10).repeat(50)
    a, b = subset_indices(labels, 100, 0), subset_indices(labels, 100, 0)
    assert torch.equal(a, b) and len(torch.unique(a)) == 100
    assert torch.bincount(labels[a], minlength=10).tolist() == [10] * 10
    assert not torch.equal(a, subset_indices(labels, 100, 1))


def test_mnist_sizes_experiment_runs_and_records(tmp_path):
    """A two-step run of R-F6's experiment through RunContext: recorded arrays have the figure's shapes."""
    from hyperbook.context import RunContext
    from hyperbook.errors import UnknownChoiceError
    from hyperbook.experiments import thesis_rfnn as E
    torch.set_num_threads(1)
    ctx = RunContext.from_params("thesis_rfnn", "smoke", "cpu", None, tmp_path, False, 0)
    rec = E.run(ctx, "mnist_sizes", {"sizes": (300,), "max_steps": 2, "n_test": 50})
    assert rec.arrays["error"].shape == (2, 1, 1)
    assert ((rec.arrays["error"] >= 0) & (rec.arrays["error"] <= 100)).all()
    assert rec.arrays["rf_layer1_filters"].shape == (64, 11, 11)
    assert rec.arrays["alpha_stats_layer1"].shape == (2, 10) and rec.arrays["alpha_stats_layer2"].shape == (2, 6)
    assert set(rec.metrics["targets"]) == {"R-F6", "R-F2"} and rec.metrics["throughput"] > 0
    with pytest.raises(UnknownChoiceError):
        E.run(ctx, "imagenet")
    with pytest.raises(UnknownChoiceError):
        E.MnistSizesConfig.for_profile("huge")


def test_sizes_findings_state_the_seed_spread_computed_from_the_record():
    """R-F6's reading says how far the seeds agree (it once hard-coded "with one seed" whatever was recorded)."""
    import numpy as np
    from types import SimpleNamespace
    from hyperbook.experiments.thesis_rfnn import sizes_findings
    sizes = np.array([300, 1000, 5000])
    rf = np.array([[5.0, 5.2, 4.8], [3.0, 3.1, 2.9], [1.5, 1.6, 1.4]])
    cnn = rf + np.array([[2.0, 2.1, 1.9], [0.1, -0.4, 0.6], [0.0, 0.1, -0.1]])
    rec = SimpleNamespace(arrays={"error": np.stack([rf, cnn]), "sizes": sizes, "steps": np.array([600] * 3)},
                          provenance={"config": {"batch_size": 64, "n_test": 5000}}, metrics={}, profile="reduced")
    text = sizes_findings(rec)
    sd = (cnn - rf).std(1, ddof=1)
    assert "Over 3 seeds" in text and f"{sd.min():.2f} to {sd.max():.2f}" in text
    assert "1 of 3 sizes (300) have a mean gap larger than twice its standard error" in text
    one = SimpleNamespace(**{**rec.__dict__, "arrays": {**rec.arrays, "error": np.stack([rf, cnn])[:, :, :1]}})
    assert "With one seed the run-to-run noise is not measured" in sizes_findings(one)
