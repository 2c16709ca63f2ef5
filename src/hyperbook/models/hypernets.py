"""HyperNets (document 000): higher-order networks whose weights are gated by a control network.

A gated dense layer computes out_j = sum_i x_i * G_ij * W_ij with
G = softmax over the input axis i of the control network's output (eq. 7-8).
With W fixed to ones (the authors' code) every output is a convex
combination of the inputs. Gates are per sample, [B, n_in, n_out], applied in
one batched matmul; a gate with batch 1 broadcasts over the whole batch. Control values that
repeat within a batch (the discrete-angle runs) get their gate computed once (`gated_by_control`).

Choices the document leaves open, taken from the authors' code
(singnet/semantic-vision, experiments/invariance/hypernets): control branch Dense(64, relu) then
Dense(n_in*n_out); conv layers 5x5 stride 2 'same'; no activation around the
gated layer of the deep model; tanh output of the deep model and autoencoder;
Glorot-uniform weights and zero biases (TensorFlow's defaults, which the authors' layers use).

Baselines: `AdversarialAutoencoder` ("aae") is the authors' baseline (their
baseline_autoencoder/train.py): 10-d latent code with the control input
concatenated, 4x4 convolutions of 64/128 channels with leaky ReLU (0.1), a
1024 dense layer, and a latent critic trained against U(-1, 1) codes (the loop
is in hyperbook.experiments.hypernets). `ControlAutoencoder` ("autoencoder")
is a second, simpler baseline: the deep HyperNet's encoder and decoder, 200-d code, no critic.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

IMAGE = 28
PIXELS = IMAGE * IMAGE


class SoftmaxGated(torch.autograd.Function):
    """out_j = sum_i x_i G_ij, G = softmax over i of the logits, one gate per image ([B, n_in] x [B, n_in, n_out]),
    with the backward written out: d logits_ij = G_ij dout_j (x_i - out_j), because sum_i G_ij x_i = out_j
    replaces the softmax backward's reduction. Autograd's own backward materialises the outer product
    dG = x dout^T as a [B, n_in, n_out] tensor and makes two more passes over it; this one makes none of dG.
    The same function and, in exact arithmetic, the same gradients (tests/test_speed_gate.py)."""

    @staticmethod
    def forward(ctx, x, logits):
        gate = torch.softmax(logits, dim=1)
        out = torch.bmm(x.unsqueeze(1), gate).squeeze(1)
        ctx.save_for_backward(x, gate, out)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dout):
        x, gate, out = ctx.saved_tensors
        d, xg, og = (t.to(gate.dtype) for t in (dout, x, out))     # bf16 autocast: gates stay in float32
        dx = torch.bmm(gate, d.unsqueeze(2)).squeeze(2).to(x.dtype) if ctx.needs_input_grad[0] else None
        dl = (xg.unsqueeze(2) - og.unsqueeze(1)).mul_(d.unsqueeze(1)).mul_(gate) if ctx.needs_input_grad[1] else None
        return dx, dl


# the written-out backward of `SoftmaxGated`; False gives autograd's (the reference path, kept for the tests)
FUSED_GATE_BACKWARD = True


class GatedDense(nn.Module):
    """x [B, n_in] and gate logits [B or 1, n_in, n_out] -> [B, n_out]."""

    def __init__(self, n_in: int, n_out: int, learn_core: bool = False):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        # the authors fix W to ones; then W is a no-op and is not stored or multiplied
        self.core = nn.Parameter(torch.ones(n_in, n_out)) if learn_core else None
        self.fused_backward = FUSED_GATE_BACKWARD

    def gate(self, logits: torch.Tensor) -> torch.Tensor:
        gate = torch.softmax(logits, dim=1)
        return gate if self.core is None else gate * self.core

    def forward(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        if self.fused_backward and self.core is None and logits.shape[0] == x.shape[0] and x.dim() == 2:
            return SoftmaxGated.apply(x, logits)
        return torch.matmul(x.unsqueeze(1), self.gate(logits)).squeeze(1)

    def grouped(self, x: torch.Tensor, logits: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """forward(x, logits[inverse]) without repeating a gate: logits [U, n_in, n_out] are the distinct gates,
        image b uses gate inverse[b]. Each gate is normalised once and applied to its images in one dense
        matmul (the same sums, in another order: equal to float rounding)."""
        gates = self.gate(logits)
        order = torch.argsort(inverse, stable=True)
        counts = torch.bincount(inverse, minlength=gates.shape[0]).tolist()
        parts = [xs @ g for xs, g in zip(x[order].split(counts), gates) if xs.shape[0]]
        return torch.cat(parts)[torch.argsort(order)]


# Continuous controls (every image its own angle or affine matrix) have no cheaper exact form than one
# n_in x n_out gate per image: the gate is a softmax over the inputs of W2 relu(W1 p + b1) + b2, whose
# 64 hidden units vary with p, so its entries exp(logit_ij) do not factor into a low-rank or separable
# form, and the gradient of W2 needs each image's full [n_in, n_out] logit gradient anyway. Only the
# repeats of a control value within a batch (the discrete-angle runs) can be shared.
DEDUPE_CONTROLS = True


def gated_by_control(gated: GatedDense, control: nn.Module, x: torch.Tensor, params: torch.Tensor,
                     dedupe: bool = DEDUPE_CONTROLS) -> torch.Tensor:
    """gated(x, control(params)), computing each distinct control row's gate once when at most half the batch
    is distinct (dedupe=False: the per-image path, kept as the reference)."""
    if dedupe and params.shape[0] > 1:
        distinct, inverse = torch.unique(params, dim=0, return_inverse=True)
        if 2 * distinct.shape[0] <= params.shape[0]:
            return gated.grouped(x, control(distinct), inverse)
    return gated(x, control(params))


class ParamControl(nn.Module):
    """Transformation parameters (e.g. cos, sin) -> gate logits [B, n_in, n_out]."""

    def __init__(self, n_params: int, n_in: int, n_out: int, hidden: int = 64):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.hidden = nn.Linear(n_params, hidden)
        self.logits = nn.Linear(hidden, n_in * n_out)

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        return self.logits(F.relu(self.hidden(params))).view(-1, self.n_in, self.n_out)


class ImageControl(nn.Module):
    """Rotation compensation: the gate logits come from the (rotated) image itself (eq. 9)."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.conv1 = nn.Conv2d(1, 20, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(20, 10, 5, stride=2, padding=2)
        self.logits = nn.Linear(10 * 7 * 7, n_in * n_out)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(image))))
        return self.logits(h.flatten(1)).view(-1, self.n_in, self.n_out)


class ConvEncoder(nn.Module):
    """28x28 -> conv(10, 5x5, s2) -> conv(20, 5x5, s2) -> dense(code)."""

    def __init__(self, code: int = 200):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 10, 5, stride=2, padding=2)
        self.conv2 = nn.Conv2d(10, 20, 5, stride=2, padding=2)
        self.dense = nn.Linear(20 * 7 * 7, code)

    def forward(self, x):
        return self.dense(F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1))


class DeconvDecoder(nn.Module):
    """code -> dense(7*7*20) -> deconv(10, 5x5, s2) -> deconv(1, 5x5, s2) -> tanh."""

    def __init__(self, code: int = 200):
        super().__init__()
        self.dense = nn.Linear(code, 20 * 7 * 7)
        self.deconv1 = nn.ConvTranspose2d(20, 10, 5, stride=2, padding=2, output_padding=1)
        self.deconv2 = nn.ConvTranspose2d(10, 1, 5, stride=2, padding=2, output_padding=1)

    def forward(self, z):
        h = self.dense(z).view(-1, 20, 7, 7)
        return torch.tanh(self.deconv2(F.relu(self.deconv1(h))))


class SimpleHyperNet(nn.Module):
    """One gated dense layer from input pixels to output pixels (figure 2)."""

    def __init__(self, n_params: int = 2, hidden: int = 64):
        super().__init__()
        self.control = ParamControl(n_params, PIXELS, PIXELS, hidden)
        self.gated = GatedDense(PIXELS, PIXELS)

    def forward(self, image, params, dedupe: bool = DEDUPE_CONTROLS):
        out = gated_by_control(self.gated, self.control, image.flatten(1), params, dedupe)
        return out.view(-1, 1, IMAGE, IMAGE)


class DeepHyperNet(nn.Module):
    """conv, conv, dense -> gated dense (200x200) -> dense, deconv, deconv (figure 5's model).

    With `image_control` the gate comes from the input image (rotation compensation).
    """

    def __init__(self, n_params: int = 2, code: int = 200, hidden: int = 64, image_control: bool = False):
        super().__init__()
        self.encoder = ConvEncoder(code)
        self.control = ImageControl(code, code) if image_control else ParamControl(n_params, code, code, hidden)
        self.gated = GatedDense(code, code)
        self.decoder = DeconvDecoder(code)
        self.image_control = image_control

    def forward(self, image, params=None, dedupe: bool = DEDUPE_CONTROLS):
        code = self.encoder(image)
        if self.image_control:
            return self.decoder(self.gated(code, self.control(image)))
        return self.decoder(gated_by_control(self.gated, self.control, code, params, dedupe))


class ControlAutoencoder(nn.Module):
    """Baseline (figure 1): the parameters are concatenated to the latent code.

    Without parameters (n_params=0) it is the plain autoencoder used for rotation compensation.
    """

    def __init__(self, n_params: int = 2, code: int = 200):
        super().__init__()
        self.encoder = ConvEncoder(code)
        self.decoder = DeconvDecoder(code + n_params)
        self.n_params = n_params

    def forward(self, image, params=None):
        z = self.encoder(image)
        if self.n_params:  # parameters of batch 1 apply to the whole batch, as gates do
            z = torch.cat([z, params.to(z.dtype).expand(z.shape[0], -1)], dim=1)
        return self.decoder(z)


class AdversarialAutoencoder(nn.Module):
    """The authors' baseline: an adversarial autoencoder whose decoder gets the control input with the code.

    encoder: conv(64, 4x4, s2) -> conv(128, 4x4, s2) -> Dense(1024), leaky ReLU 0.1 -> Dense(latent);
    decoder: [code, params] -> Dense(1024) -> Dense(7*7*128), ReLU -> deconv(64, 4x4, s2), ReLU ->
    deconv(1, 4x4, s2), tanh; critic on codes: Dense(1024) -> Dense(1024), leaky ReLU 0.1 -> Dense(1).
    'same' padding of a 4x4 stride-2 layer pads 1 each side (TF pads 1 before, 2 after for conv: at 28 and
    14 px both give the same output size; the offset differs by half a pixel, which training absorbs).
    """

    def __init__(self, n_params: int = 2, latent: int = 10, slope: float = 0.1, channels=(64, 128),
                 hidden: int = 1024):
        super().__init__()
        self.n_params, self.latent, self.slope = n_params, latent, slope
        c1, c2 = channels                      # (64, 128) and 1024 are the authors'; smaller sizes for tests only
        self.c2 = c2
        self.enc_conv1 = nn.Conv2d(1, c1, 4, stride=2, padding=1)
        self.enc_conv2 = nn.Conv2d(c1, c2, 4, stride=2, padding=1)
        self.enc_dense = nn.Linear(c2 * 7 * 7, hidden)
        self.enc_code = nn.Linear(hidden, latent)
        self.dec_dense1 = nn.Linear(latent + n_params, hidden)
        self.dec_dense2 = nn.Linear(hidden, c2 * 7 * 7)
        self.dec_deconv1 = nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1)
        self.dec_deconv2 = nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1)
        self.critic = nn.Sequential(nn.Linear(latent, hidden), nn.LeakyReLU(slope), nn.Linear(hidden, hidden),
                                    nn.LeakyReLU(slope), nn.Linear(hidden, 1))

    def encode(self, image):
        act = lambda t: F.leaky_relu(t, self.slope)
        h = act(self.enc_conv2(act(self.enc_conv1(image))))
        return self.enc_code(act(self.enc_dense(h.flatten(1))))

    def decode(self, z, params=None):
        if self.n_params:
            if params is None:
                raise ValueError(f"this autoencoder needs {self.n_params} control parameters")
            z = torch.cat([z, params.to(z.dtype).expand(z.shape[0], -1)], dim=1)
        h = F.relu(self.dec_dense2(F.relu(self.dec_dense1(z)))).view(-1, self.c2, 7, 7)
        return torch.tanh(self.dec_deconv2(F.relu(self.dec_deconv1(h))))

    def forward(self, image, params=None):
        return self.decode(self.encode(image), params)

    def encoder_decoder_parameters(self):
        return [p for n, p in self.named_parameters() if not n.startswith("critic.")]

    def encoder_parameters(self):
        return [p for n, p in self.named_parameters() if n.startswith("enc_")]


def glorot_init(model: nn.Module) -> nn.Module:
    """Glorot-uniform weights and zero biases on every dense and (de)convolution layer (TF's defaults)."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


MODELS = {"simple": SimpleHyperNet, "deep": DeepHyperNet, "aae": AdversarialAutoencoder,
          "autoencoder": ControlAutoencoder}
AUTOENCODERS = ("aae", "autoencoder")


def build(kind: str, n_params: int = 2, image_control: bool = False) -> nn.Module:
    from ..errors import UnknownChoiceError
    if kind not in MODELS:
        raise UnknownChoiceError("HyperNets model", kind, MODELS)
    if kind == "deep":
        return glorot_init(DeepHyperNet(n_params, image_control=image_control))
    if kind == "autoencoder":
        return glorot_init(ControlAutoencoder(0 if image_control else n_params))
    if kind == "aae":
        return glorot_init(AdversarialAutoencoder(0 if image_control else n_params))
    if image_control:
        raise ValueError("the simple HyperNet takes its gate from parameters; use 'deep' for compensation")
    return glorot_init(SimpleHyperNet(n_params))
