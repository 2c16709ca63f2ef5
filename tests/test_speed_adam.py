"""Adam's fused and foreach kernels give the plain implementation's update; `fit` uses fused by default."""
import copy

import pytest
import torch

from hyperbook.errors import UnknownChoiceError
from hyperbook.train import ADAM_IMPLS, DEFAULT_ADAM_IMPL, fit, make_adam, set_adam_impl, step_generator


def model_and_batches():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 6 * 6, 10))

    def batch_fn(step):
        g = step_generator(3, step)
        return torch.randn(16, 1, 8, 8, generator=g), torch.randint(10, (16,), generator=g)
    return model, batch_fn


def loss_fn(m, b):
    return torch.nn.functional.cross_entropy(m(b[0]), b[1])


@pytest.mark.parametrize("impl", ["fused", "foreach"])
@pytest.mark.parametrize("weight_decay", [0.0, 1e-2])
def test_kernels_match_plain_adam(impl, weight_decay):
    model, batch_fn = model_and_batches()
    runs = {}
    for kind in ("plain", impl):
        m = copy.deepcopy(model)
        opt = make_adam(m.parameters(), lr=1e-2, weight_decay=weight_decay, impl=kind)
        assert opt.param_groups[0]["fused"] is (True if kind == "fused" else None)
        for step in range(5):
            opt.zero_grad()
            loss_fn(m, batch_fn(step)).backward()
            opt.step()
        runs[kind] = [p.detach() for p in m.parameters()]
    for ref, got, start in zip(runs["plain"], runs[impl], model.parameters()):
        assert (ref - got).abs().max() <= 1e-6 * ref.abs().max()
        assert (ref - start).abs().max() > 1e-3          # the steps moved the parameters well beyond that


def test_fit_defaults_to_fused_adam_and_it_trains_like_plain(monkeypatch):
    assert DEFAULT_ADAM_IMPL == "fused" and set(ADAM_IMPLS) == {"fused", "foreach", "plain"}
    made = []
    real = torch.optim.Adam
    monkeypatch.setattr(torch.optim, "Adam", lambda *a, **k: made.append(k) or real(*a, **k))
    results = {}
    for impl in (None, "plain"):
        m, batch_fn = model_and_batches()
        fit(m, loss_fn, batch_fn, steps=20, lr=1e-2, log_every=5, progress=False, adam_impl=impl)
        results[impl] = [p.detach() for p in m.parameters()]
    assert made[0]["fused"] is True and made[1]["fused"] is None
    for ref, got in zip(results["plain"], results[None]):
        assert (ref - got).abs().max() <= 1e-5 * ref.abs().max()


def test_resuming_a_plain_checkpoint_with_fused_continues_the_run(tmp_path):
    straight, batch_fn = model_and_batches()
    fit(straight, loss_fn, batch_fn, steps=30, lr=1e-2, log_every=10, progress=False, adam_impl="plain")
    ckpt = tmp_path / "run.pt"
    m, _ = model_and_batches()
    fit(m, loss_fn, batch_fn, steps=30, lr=1e-2, log_every=10, progress=False, checkpoint=ckpt,
        checkpoint_every=10, stop_after=20, adam_impl="plain")
    m, _ = model_and_batches()
    fit(m, loss_fn, batch_fn, steps=30, lr=1e-2, log_every=10, progress=False, checkpoint=ckpt,
        checkpoint_every=10, adam_impl="fused")
    for ref, got in zip(straight.parameters(), m.parameters()):
        assert (ref - got).abs().max() <= 1e-5 * ref.abs().max()


def test_set_adam_impl_switches_a_restored_optimiser():
    m, batch_fn = model_and_batches()
    opt = make_adam(m.parameters(), impl="plain")
    loss_fn(m, batch_fn(0)).backward()
    opt.step()
    set_adam_impl(opt, "fused")
    assert all(g["fused"] is True and g["foreach"] is None for g in opt.param_groups)
    assert all(st["step"].dtype == torch.float32 for st in opt.state.values())
    opt.step()                                    # the fused kernel accepts the restored state
    with pytest.raises(UnknownChoiceError, match="foreach, fused, plain"):
        make_adam(m.parameters(), impl="turbo")
