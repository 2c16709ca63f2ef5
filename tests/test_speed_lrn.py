"""BandedLRN (the window sum as one banded matmul) is torch's LocalResponseNorm, to float64 rounding."""
import pytest
import torch

from hyperbook.layers.lrn import BandedLRN, band_matrix
from hyperbook.models.rfnn import RFNN


@pytest.mark.parametrize("size", [1, 2, 3, 4, 8, 9, 10, 63, 64, 65, 100])
@pytest.mark.parametrize("shape", [(25, 64, 14, 14), (25, 64, 7, 7), (3, 64, 5), (2, 7, 3, 4, 4)])
@pytest.mark.parametrize("alpha, beta, k", [(1e-4, 0.75, 2.0), (1.0, 0.75, 1.0), (0.5, 1.3, 0.1)])
def test_equals_torch_lrn_in_float64(size, shape, alpha, beta, k):
    g = torch.Generator().manual_seed(size)
    x = (torch.randn(*shape, generator=g, dtype=torch.float64) * 3).requires_grad_()
    ref_lrn, lrn = torch.nn.LocalResponseNorm(size, alpha, beta, k), BandedLRN(size, alpha, beta, k)
    ref, out = ref_lrn(x), lrn(x)
    assert (out - ref).abs().max() <= 1e-12 * ref.abs().max()
    w = torch.randn(*shape, generator=g, dtype=torch.float64)
    g_ref, = torch.autograd.grad((ref * w).sum(), x)
    g_out, = torch.autograd.grad((out * w).sum(), x)
    assert (g_out - g_ref).abs().max() <= 1e-12 * g_ref.abs().max()


def test_band_is_torch_window():
    # channel c sums channels c - size // 2 ... c + (size - 1) // 2
    band = band_matrix(6, 4)
    assert band[2].tolist() == [1, 1, 1, 1, 0, 0] and band[0].tolist() == [1, 1, 0, 0, 0, 0]
    assert band[5].tolist() == [0, 0, 0, 1, 1, 1]


def test_rfnn_uses_it_and_is_the_same_model():
    for kind in ("rf", "pixel"):
        torch.manual_seed(0)
        new = RFNN(kind).double().eval()
        old = RFNN(kind, banded_lrn=False).double().eval()
        old.load_state_dict(new.state_dict())               # the same keys: checkpoints load either way
        assert any(isinstance(m, BandedLRN) for m in new.modules())
        assert not any(isinstance(m, BandedLRN) for m in old.modules())
        x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
        torch.testing.assert_close(new(x), old(x), rtol=1e-12, atol=1e-12)
