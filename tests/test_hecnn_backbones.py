"""The colour-image HE-CNN models of Tables 3 and 4: equivariance (Theorems 1 and 4) through residual connections,
batch norm, pooling and the D8 average; sizes; the STL-10 split and stand-in."""
import pytest
import torch

from hyperbook.data import stl10
from hyperbook.errors import DatasetMissingError, UnknownChoiceError
from hyperbook.experiments import hecnn_images
from hyperbook.layers.group_ops import flip, rot
from hyperbook.models.hecnn import count_parameters
from hyperbook.models.hecnn_backbones import build_backbone, generated_numbers, spec_for

ARCHS = ["residual", "laine13", "wrn16_8"]
SIZE = {"residual": 32, "laine13": 32, "wrn16_8": 96}     # STL-10's generator pools three times: it needs 96 px


@pytest.fixture
def float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _largest_change(model, x, mode, transforms):
    ref = model(x, mode)
    return max(((model(t(x), mode) - ref).abs().max() / ref.abs().max()).item() for t in transforms)


TURNS = [lambda x, g=g: rot(x, g) for g in (1, 2, 3)]
MIRRORS = [lambda x, g=g: rot(flip(x), g) for g in range(4)]


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("variant", ["z4_hecnn", "z4_hecnn_l"])
def test_z4_hypernetwork_models_are_invariant_to_quarter_turns(float64, arch, variant):
    torch.manual_seed(0)
    model = build_backbone(arch, variant, 10, width=1 / 16).eval()
    x = torch.randn(2, 3, SIZE[arch], SIZE[arch])
    for mode in ("sample", "batch"):
        assert _largest_change(model, x, mode, TURNS) < 1e-9
    assert _largest_change(model, x, "sample", MIRRORS) > 1e-4      # Z4 only: a mirror changes the logits


@pytest.mark.parametrize("arch", ["residual", "wrn16_8"])
def test_d8_models_are_also_invariant_to_mirrors(float64, arch):
    torch.manual_seed(1)
    model = build_backbone(arch, "d8_hecnn_l", 10, width=1 / 16).eval()
    x = torch.randn(2, 3, SIZE[arch], SIZE[arch])
    assert _largest_change(model, x, "sample", TURNS + MIRRORS) < 1e-9


@pytest.mark.parametrize("arch", ARCHS)
def test_the_plain_network_fails_the_same_check(float64, arch):
    torch.manual_seed(0)
    model = build_backbone(arch, "cnn", 10, width=1 / 16).eval()
    assert _largest_change(model, torch.randn(2, 3, SIZE[arch], SIZE[arch]), "sample", TURNS) > 1e-5


def test_training_mode_batch_norm_keeps_per_sample_equivariance(float64):
    """Batch statistics are sums over space, which a quarter turn of one image leaves unchanged."""
    torch.manual_seed(2)
    model = build_backbone("residual", "z4_hecnn", 10, width=1 / 8).train()
    x = torch.randn(4, 3, 32, 32)
    turned = x.clone()
    turned[1] = rot(x[1], 1)          # only one image of the batch turns
    out, out_turned = model(x, "sample"), model(turned, "sample")
    assert (out - out_turned).abs().max() < 1e-9 * out.abs().max()


@pytest.mark.parametrize("variant", ["cnn", "z4_hecnn", "z4_hecnn_l", "d8_hecnn", "d8_hecnn_l"])
def test_shapes_and_every_parameter_gets_a_gradient(variant):
    model = build_backbone("residual", variant, 100, width=1 / 8)
    out = model(torch.randn(2, 3, 32, 32), "batch")
    assert out.shape == (2, 100)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_full_size_plain_networks():
    # WRN-16-8 has 11.0M parameters (Zagoruyko & Komodakis, Table 1); the down-sampling by pooling adds none
    wrn = count_parameters(build_backbone("wrn16_8", "cnn", 10))
    assert abs(wrn - 11.0e6) / 11.0e6 < 0.01
    # Laine & Aila's 13-layer CNN: its convolutions alone, from the layer list, without biases (batch norm follows)
    convs = 3 * 128 * 9 + 2 * 128 * 128 * 9 + 128 * 256 * 9 + 2 * 256 * 256 * 9 + 256 * 512 * 9 + 512 * 256 + 256 * 128
    spec = spec_for("laine13", 10)
    assert sum(c * o * k * k for kind, c, o, k, *_ in (l for l in spec if l[0] == "conv")) == convs


def test_pieces_are_a_quarter_of_the_filters():
    """HE-CNN generates ceil(K/2)^2 numbers per K x K filter: 4 of 9 for the 3x3 convolutions."""
    model = build_backbone("residual", "z4_hecnn", 10)
    # stem 3->32 and four 32->32 convolutions, 2x2 pieces; linear 32->10 from one orbit; biases: linear only
    assert generated_numbers(model) == (3 * 32 + 4 * 32 * 32) * 4 + 10 * 32 + 10


def test_unknown_choices_are_clear_errors():
    with pytest.raises(UnknownChoiceError, match="valid"):
        build_backbone("resnet50", "cnn")
    with pytest.raises(UnknownChoiceError, match="valid"):
        build_backbone("residual", "p4m")
    with pytest.raises(UnknownChoiceError, match="valid"):
        hecnn_images.config_for("t3_residual_cnn_svhn")


def test_every_experiment_has_a_config_in_every_training_profile():
    assert len(hecnn_images.RUNS) == 2 * 2 * 7 + 6
    for name in hecnn_images.RUNS:
        for profile in ("smoke", "reduced", "full"):
            hecnn_images.config_for(name)(profile)
    with pytest.raises(Exception, match="profile"):
        hecnn_images.config_for("t4_wrn16_8_cnn")("huge")


def test_stl10_split_is_the_documents_80_20_and_fixed():
    tr, te = stl10.split_labelled(13_000)
    assert len(tr) == 10_400 and len(te) == 2_600
    assert len(set(tr.tolist()) | set(te.tolist())) == 13_000
    assert torch.equal(tr, stl10.split_labelled(13_000)[0])


def test_missing_stl10_names_its_folder_and_the_fix(tmp_path):
    with pytest.raises(DatasetMissingError, match="stl10_binary") as err:
        stl10.load_stl10_labelled(tmp_path)
    assert "make data" in str(err.value)


def test_stl10_standin_is_labelled_and_stl_shaped(tmp_path):
    from hyperbook.data.fashion_mnist import FASHION_MNIST_MD5, raw_dir
    from hyperbook.results import REPO_ROOT
    local = REPO_ROOT / "data"
    data_dir = local if all((raw_dir(local) / n).exists() for n in FASHION_MNIST_MD5) else tmp_path
    (x, y), (xt, yt), source = stl10.load_stl10_or_standin(tmp_path if data_dir == tmp_path else data_dir,
                                                           n_train=8, n_test=4)
    assert x.shape == (8, 3, 96, 96) and x.dtype == torch.uint8 and xt.shape == (4, 3, 96, 96)
    assert source == stl10.STANDIN_LABEL and int(y.max()) < 10 and torch.equal(x[:, 0], x[:, 2])


def test_channel_stats_match_torch():
    x = torch.randint(0, 256, (7, 3, 5, 5), dtype=torch.uint8)
    mean, std = hecnn_images.channel_stats(x, chunk=3)
    assert torch.allclose(mean, x.float().mean((0, 2, 3)), atol=1e-4)
    assert torch.allclose(std, x.float().permute(1, 0, 2, 3).reshape(3, -1).std(1, unbiased=False), atol=1e-4)


def test_stl10_is_fetched_only_when_named(tmp_path, capsys):
    from hyperbook.data import registry
    assert "stl10" in registry.ON_REQUEST and "stl10" not in registry.DATASETS
    with pytest.raises(UnknownChoiceError, match="stl10"):
        registry.fetch("stl-10", tmp_path)


@pytest.mark.parametrize("argv,message", [(["t3_bogus"], "valid HE-CNN colour-image experiments"),
                                          (["t4_wrn16_8_cnn", "--profile", "huge"], "valid training profiles")])
def test_single_experiment_command_rejects_bad_input_before_training(argv, message):
    with pytest.raises(SystemExit, match=message):
        hecnn_images.main(argv)
