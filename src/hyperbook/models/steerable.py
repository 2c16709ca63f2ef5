"""Frame networks and dynamic steerable two-factor blocks (thesis ch. 4, eq. 24-29, figures 7 and 10).

* ``rotation_steering_terms`` / ``steering_field``: the rotation steering matrix of the Gaussian-derivative
  frame evaluated *per location* from a map of angles (the tensor version of
  ``gaussian_basis.steering_matrix``, which takes one float angle).
* ``DynamicSteerableBlock``: eq. 29, H(x) = F(Phi(x)) Phi(x) W, in four steps (section 4.3.1):
  1) frame change: every input channel convolved with Gaussian derivatives (one grouped convolution,
  one or several scales); 2) a small pose network F (3 conv layers, 8-16 units, tanh) reads the frame
  responses and outputs pose variables at every location; 3) optional steering-function activations
  turn the pose variables into the steering matrices of a rotation (cos / sin polynomials of eq. 22)
  and into interpolation weights between neighbouring scales (small isotropic scalings, sigma
  0.8-1.5); without them F outputs the mixing coefficients of the frame directly; 4) a learned 1x1
  convolution W of the steered responses. With a zero pose the block is the static frame
  convolution (a unit test checks it).
* ``PixelFCN``: the fully convolutional baseline of the same size for the blob task (S-F10).
* ``FrameResNet`` / ``FrameDenseNet``: CIFAR ResNet (pre-activation, no bottleneck, depth 6n + 2) and
  DenseNet (growth K, depth L, no bottleneck / compression) whose 3x3 convolutions are
  ``FrameConv2d`` over a chosen frame (S-T6).
* ``ContourNet``: Conv[64] -> 2 x (DynResBlock[128] -> StatResBlock[128]) -> Conv[256] -> 1x1 logit,
  the BSDS500 network of section 4.4.2 (S-F11), dynamic or all-static. The thesis puts the block
  details in an appendix we do not have; the ones here are ours and written down in the docstrings.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UnknownChoiceError
from ..layers.frames import FrameConv2d, frame_for_layer
from ..layers.gaussian_basis import basis_orders, default_size, gaussian_derivative_basis

POSES = ("rotation", "rotation_scale", "free", "none")
POSE_SHARING = ("location", "input_channel", "channel_pair")


# ----------------------------------------------------------------------------- steering per location
def rotation_steering_terms(max_order: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """The rotation steering matrix as a polynomial in (c, s) = (cos theta, sin theta):
    returns (monomials [(a, b)], coefficients C [n_monomials, n_basis, n_basis]) with
    S(theta) = sum_t c^a_t s^b_t C[t]. Same convention as ``gaussian_basis.steering_matrix``:
    d_x -> c d_x - s d_y, d_y -> s d_x + c d_y."""
    orders = basis_orders(max_order)
    index = {o: k for k, o in enumerate(orders)}
    # polynomial: {(i, j, a, b): coef} = coef * d_x^i d_y^j * c^a s^b
    dx_rot = {(1, 0, 1, 0): 1.0, (0, 1, 0, 1): -1.0}
    dy_rot = {(1, 0, 0, 1): 1.0, (0, 1, 1, 0): 1.0}

    def mul(p, q):
        out = {}
        for (i1, j1, a1, b1), c1 in p.items():
            for (i2, j2, a2, b2), c2 in q.items():
                key = (i1 + i2, j1 + j2, a1 + a2, b1 + b2)
                out[key] = out.get(key, 0.0) + c1 * c2
        return out

    terms: dict = {}
    for k, (i, j) in enumerate(orders):
        poly = {(0, 0, 0, 0): 1.0}
        for _ in range(i):
            poly = mul(poly, dx_rot)
        for _ in range(j):
            poly = mul(poly, dy_rot)
        for (pi, pj, a, b), coef in poly.items():
            if coef != 0.0:
                terms.setdefault((a, b), torch.zeros(len(orders), len(orders), dtype=torch.float64))
                terms[(a, b)][k, index[(pi, pj)]] += coef
    monomials = sorted(terms)
    return monomials, torch.stack([terms[m] for m in monomials])


def steering_field(max_order: int, theta: torch.Tensor) -> torch.Tensor:
    """S(theta) for a tensor of angles [...] -> [..., n_basis, n_basis] (differentiable in theta)."""
    monomials, coefs = rotation_steering_terms(max_order)
    c, s = torch.cos(theta), torch.sin(theta)
    mono = torch.stack([c ** a * s ** b for a, b in monomials], dim=-1)        # [..., T]
    return torch.einsum("...t,tkl->...kl", mono, coefs.to(theta.dtype).to(theta.device))


def scale_interpolation_weights(sigma: torch.Tensor, sigmas: tuple[float, ...]) -> torch.Tensor:
    """Hat-function weights [..., n_scales] that interpolate linearly between the two sampled scales
    around each (clamped) sigma: the steering function of small isotropic scalings."""
    grid = torch.tensor(sigmas, dtype=sigma.dtype, device=sigma.device)
    if len(sigmas) == 1:
        return torch.ones(*sigma.shape, 1, dtype=sigma.dtype, device=sigma.device)
    sigma = sigma.clamp(float(grid[0]), float(grid[-1]))
    idx = torch.searchsorted(grid, sigma.contiguous()).clamp(1, len(sigmas) - 1)
    lo, hi = grid[idx - 1], grid[idx]
    t = ((sigma - lo) / (hi - lo)).unsqueeze(-1)
    w = torch.zeros(*sigma.shape, len(sigmas), dtype=sigma.dtype, device=sigma.device)
    w = w.scatter(-1, (idx - 1).unsqueeze(-1), 1.0 - t)
    return w.scatter_add(-1, idx.unsqueeze(-1), t)


# ----------------------------------------------------------------------------- the dynamic block
class GaussianFrameChange(nn.Module):
    """Step 1 of the block: Phi(x) -> [N, C, n_scales, n_atoms, H, W] (true convolution, as
    ``RFConv2d``), atoms = Gaussian derivatives with min_order <= i + j <= max_order."""

    def __init__(self, in_ch: int, max_order: int = 2, sigmas=(1.0,), min_order: int = 0, size: int | None = None):
        super().__init__()
        sigmas = (float(sigmas),) if isinstance(sigmas, (int, float)) else tuple(float(s) for s in sigmas)
        size = default_size(max(sigmas)) if size is None else int(size)
        keep = [k for k, (i, j) in enumerate(basis_orders(max_order)) if i + j >= min_order]
        phi = torch.stack([gaussian_derivative_basis(max_order, s, size)[keep] for s in sigmas])  # [S, B, k, k]
        self.register_buffer("phi", torch.flip(phi, dims=(-2, -1)))
        self.in_ch, self.max_order, self.min_order, self.sigmas, self.size = in_ch, max_order, min_order, sigmas, size
        self.keep = keep
        self.n_scales, self.n_atoms = phi.shape[0], phi.shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        weight = self.phi.reshape(1, -1, self.size, self.size).repeat(c, 1, 1, 1)
        weight = weight.reshape(c * self.n_scales * self.n_atoms, 1, self.size, self.size)
        out = F.conv2d(x, weight, None, 1, self.size // 2, 1, c)
        return out.reshape(n, c, self.n_scales, self.n_atoms, h, w)


def pose_network(in_ch: int, out_ch: int, hidden: int = 16, layers: int = 3, kernel: int = 3,
                 dilation: int = 1) -> nn.Sequential:
    """F: `layers` convolutions, tanh between them; the last layer starts at zero (zero pose)."""
    mods, ch = [], in_ch
    for k in range(layers - 1):
        mods += [nn.Conv2d(ch, hidden, kernel, padding=dilation * (kernel // 2), dilation=dilation), nn.Tanh()]
        ch = hidden
    last = nn.Conv2d(ch, out_ch, kernel, padding=dilation * (kernel // 2), dilation=dilation)
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)


class DynamicSteerableBlock(nn.Module):
    """H(x) = F(Phi(x)) Phi(x) W (eq. 29).

    pose='rotation': F outputs a rotation per location (``angle``: 'vector' = two variables read as
    (cos, sin) after normalisation, 'tanh' = theta = pi tanh(.)), steered with the exact rotation
    steering matrix, whose entries are polynomials in (cos, sin) (the steering-function activations;
    the matrix is block diagonal by derivative order, so any range of orders min_order..max_order works).
    pose='rotation_scale': also a scale per location, sigma = sigma_min + softplus(.) clamped to the
    sampled range (several `sigmas`, e.g. 0.8-1.5; the last pose variable), interpolated linearly between
    neighbouring scales.
    pose='free': no steering functions; F outputs the per-location mixing coefficients of the frame
    within each derivative order (identity + tanh(.)), the general "interpolator" form.
    pose='none': the static block (1x1 combination of the frame responses).
    pose_sharing: which poses F outputs at every location. 'location': one pose shared by all channels
    (our simplification for wide layers); 'input_channel': one per input channel; 'channel_pair': one per
    input/output channel pair, what thesis 4.3.1 describes ("for each input/output channel"). For
    'channel_pair' the output is H_o = sum_i W_oi . S(theta_io) Phi(x_i): every pair steers its own copy
    of the input channel's frame responses, which costs in_ch x out_ch steered maps (memory
    N x in x out x atoms x H x W), affordable for narrow blocks only. With one input and one output channel
    the three coincide. ``pose_per_channel=True`` is the old spelling of 'input_channel'.
    """

    def __init__(self, in_ch: int, out_ch: int, max_order: int = 2, sigmas=(1.0,), min_order: int = 0,
                 pose: str = "rotation", pose_hidden: int = 16, pose_layers: int = 3, pose_kernel: int = 3,
                 pose_dilation: int = 1, pose_per_channel: bool = False, bias: bool = True, angle: str = "vector",
                 pose_sharing: str | None = None):
        super().__init__()
        if pose not in POSES:
            raise UnknownChoiceError("pose", pose, POSES)
        self.frame = GaussianFrameChange(in_ch, max_order, sigmas, min_order)
        self.pose, self.in_ch, self.out_ch = pose, in_ch, out_ch
        if pose_sharing is None:
            pose_sharing = "input_channel" if pose_per_channel else "location"
        if pose_sharing not in POSE_SHARING:
            raise UnknownChoiceError("pose sharing", pose_sharing, POSE_SHARING)
        self.pose_sharing = pose_sharing
        self.pose_per_channel = pose_sharing == "input_channel"
        S, B = self.frame.n_scales, self.frame.n_atoms
        orders = [basis_orders(max_order)[k] for k in self.frame.keep]
        self.register_buffer("_order_of", torch.tensor([i + j for i, j in orders]))
        groups = {"location": 1, "input_channel": in_ch, "channel_pair": in_ch * out_ch}[pose_sharing]
        if angle not in ("vector", "tanh"):
            raise UnknownChoiceError("angle parametrisation", angle, ("vector", "tanh"))
        self.angle_param = angle
        n_rot = 2 if angle == "vector" else 1
        if pose == "rotation":
            n_pose = n_rot
        elif pose == "rotation_scale":
            n_pose = n_rot + 1
        elif pose == "free":
            self.register_buffer("_same_order", (self._order_of[:, None] == self._order_of[None, :]).float())
            n_pose = B * B
        else:
            n_pose = 0
        self.n_pose = n_pose
        self.pose_net = pose_network(in_ch * S * B, groups * n_pose, pose_hidden, pose_layers, pose_kernel,
                                     pose_dilation) if n_pose else None
        self.combine = nn.Conv2d(in_ch * B, out_ch, 1, bias=bias)
        nn.init.normal_(self.combine.weight, 0.0, math.sqrt(2.0 / (in_ch * B)))
        if max_order > 0 and pose in ("rotation", "rotation_scale"):
            monomials, coefs = rotation_steering_terms(max_order)
            keep = torch.tensor(self.frame.keep)
            coefs = coefs[:, keep][:, :, keep]
            self._monomials = monomials
            self.register_buffer("_steer_coefs", coefs.float())

    # -- pieces, exposed for the figures and the tests
    def pose_variables(self, phi: torch.Tensor) -> torch.Tensor | None:
        """Raw pose variables [N, groups, n_pose, H, W] from the frame responses."""
        if self.pose_net is None:
            return None
        n, c, s, b, h, w = phi.shape
        z = self.pose_net(phi.reshape(n, c * s * b, h, w))
        return z.reshape(n, -1, self.n_pose, h, w)

    def cos_sin(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos theta, sin theta) [N, G, H, W] from the pose variables.

        angle='tanh': theta = pi tanh(z_0) (one variable; a full turn needs a jump somewhere).
        angle='vector': (cos, sin) = (1 + z_0, z_1) / norm (two variables, no branch cut), our default.
        Zero pose is theta = 0 in both."""
        if self.angle_param == "tanh":
            theta = math.pi * torch.tanh(z[:, :, 0])
            return torch.cos(theta), torch.sin(theta)
        u, v = 1.0 + z[:, :, 0], z[:, :, 1]
        r = torch.sqrt(u * u + v * v + 1e-8)
        return u / r, v / r

    def angle(self, z: torch.Tensor) -> torch.Tensor:
        """The rotation pose theta [N, G, H, W] in (-pi, pi] (for figures)."""
        c, s = self.cos_sin(z)
        return torch.atan2(s, c)

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """sigma = middle scale + softplus(z) - log 2 (the middle scale at zero pose), clamped to the range."""
        mid = self.frame.sigmas[len(self.frame.sigmas) // 2]
        return (mid + F.softplus(z[:, :, -1]) - math.log(2.0)).clamp(self.frame.sigmas[0], self.frame.sigmas[-1])

    def steer(self, phi: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """Steered responses [N, C, B, H, W] from phi [N, C, S, B, H, W] and pose z."""
        if self.pose == "none" or z is None:
            return phi[:, :, phi.shape[2] // 2]
        if self.pose == "free":
            m = z.permute(0, 1, 3, 4, 2).reshape(*z.shape[:2], *z.shape[3:], self.frame.n_atoms, self.frame.n_atoms)
            eye = torch.eye(self.frame.n_atoms, device=z.device, dtype=z.dtype)
            mix = (eye + torch.tanh(m)) * self._same_order                   # [N, G, H, W, B, B]
            return torch.einsum("nghwkl,nglhw->ngkhw", mix, phi[:, :, phi.shape[2] // 2])
        c, s = self.cos_sin(z)                                               # [N, G, H, W]
        mono = torch.stack([c ** a * s ** b for a, b in self._monomials], dim=-1)
        S = torch.einsum("nghwt,tkl->nghwkl", mono, self._steer_coefs)
        steered = torch.einsum("nghwkl,ngslhw->ngskhw", S, phi)              # [N, C, S, B, H, W]
        if self.pose == "rotation_scale" and steered.shape[2] > 1:
            wts = scale_interpolation_weights(self.scale(z), self.frame.sigmas)  # [N, G, H, W, S]
            return torch.einsum("nghws,ngskhw->ngkhw", wts, steered)
        return steered[:, :, steered.shape[2] // 2]

    def forward(self, x: torch.Tensor, return_pose: bool = False):
        phi = self.frame(x)
        z = self.pose_variables(phi)
        if self.pose_sharing == "channel_pair" and z is not None:
            out = self._forward_pairs(phi, z)
        else:
            steered = self.steer(phi, z)
            n, c, b, h, w = steered.shape
            out = self.combine(steered.reshape(n, c * b, h, w))
        return (out, z) if return_pose else out

    def _forward_pairs(self, phi: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """H_o = sum_i W_oi . S(theta_io) Phi(x_i): z is [N, in * out, n_pose, H, W], pair (i, o) at i * out + o."""
        n, c, s, b, h, w = phi.shape
        o = self.out_ch
        # repeat every input channel's responses once per output channel: [N, in * out, S, B, H, W]
        rep = phi.unsqueeze(2).expand(n, c, o, s, b, h, w).reshape(n, c * o, s, b, h, w)
        steered = self.steer(rep, z).reshape(n, c, o, b, h, w)              # [N, in, out, B, H, W]
        weight = self.combine.weight.reshape(o, c, b)                        # [out, in, B]
        out = torch.einsum("oik,niokhw->nohw", weight, steered)
        if self.combine.bias is not None:
            out = out + self.combine.bias.view(1, -1, 1, 1)
        return out


class PixelFCN(nn.Module):
    """Fully convolutional baseline: `layers` convolutions (first one `first_kernel` wide), tanh between,
    a 1x1 output; sized to match a DynamicSteerableBlock's parameter count."""

    def __init__(self, in_ch: int = 1, out_ch: int = 1, hidden: int = 16, layers: int = 3, first_kernel: int = 7,
                 kernel: int = 3):
        super().__init__()
        mods, ch = [], in_ch
        for k in range(layers):
            ks = first_kernel if k == 0 else kernel
            mods += [nn.Conv2d(ch, hidden, ks, padding=ks // 2), nn.Tanh()]
            ch = hidden
        mods.append(nn.Conv2d(ch, out_ch, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------- CIFAR frame networks
class _ConvFactory:
    """Hands out 3x3 FrameConv2d layers, counting them so the 'image' frame can alternate."""

    def __init__(self, frame: str):
        self.frame, self.count = frame, 0

    def __call__(self, in_ch, out_ch, stride=1):
        name = frame_for_layer(self.frame, self.count)
        self.count += 1
        return FrameConv2d(in_ch, out_ch, name, stride=stride)


class PreActBlock(nn.Module):
    """Pre-activation basic block (BN-ReLU-conv3x3 twice), 1x1 projection shortcut when the shape changes."""

    def __init__(self, in_ch, out_ch, stride, conv):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), conv(in_ch, out_ch, stride)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_ch), conv(out_ch, out_ch, 1)
        self.shortcut = (nn.Conv2d(in_ch, out_ch, 1, stride, bias=False)
                         if stride != 1 or in_ch != out_ch else None)

    def forward(self, x):
        o = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(F.relu(self.bn2(o)))
        return o + short


class FrameResNet(nn.Module):
    """CIFAR ResNet of depth 6n + 2 (ResNet-110: n = 18) with every 3x3 convolution over `frame`.

    Pre-activation basic blocks (He et al. 2016, identity mappings; the thesis names ResNet110 and
    ResNet164 -- we build 164 as 6n + 2 without bottlenecks, n = 27, as the thesis says it used no
    bottlenecks). Stage widths width, 2 width, 4 width; stride 2 at the start of stages 2 and 3.
    """

    def __init__(self, depth: int = 110, frame: str = "pixel", width: int = 16, num_classes: int = 10, in_ch: int = 3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth must be 6n + 2, got {depth}")
        n = (depth - 2) // 6
        conv = _ConvFactory(frame)
        self.stem = conv(in_ch, width)
        blocks, ch = [], width
        for stage, w in enumerate((width, 2 * width, 4 * width)):
            for k in range(n):
                blocks.append(PreActBlock(ch, w, 2 if (k == 0 and stage > 0) else 1, conv))
                ch = w
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(ch)
        self.fc = nn.Linear(ch, num_classes)
        self.depth, self.frame = depth, frame

    def forward(self, x):
        o = self.blocks(self.stem(x))
        return self.fc(F.relu(self.bn(o)).mean((2, 3)))


class DenseLayer(nn.Module):
    def __init__(self, in_ch, growth, conv):
        super().__init__()
        self.bn, self.conv = nn.BatchNorm2d(in_ch), conv(in_ch, growth)

    def forward(self, x):
        return torch.cat([x, self.conv(F.relu(self.bn(x)))], 1)


class FrameDenseNet(nn.Module):
    """DenseNet (Huang et al.) of depth L and growth K, 3 dense blocks of (L - 4) / 3 layers, transitions
    BN-ReLU-conv1x1-avgpool2 without compression; every 3x3 convolution over `frame`."""

    def __init__(self, depth: int = 40, growth: int = 12, frame: str = "pixel", num_classes: int = 10, in_ch: int = 3):
        super().__init__()
        if (depth - 4) % 3:
            raise ValueError(f"DenseNet depth must be 3n + 4, got {depth}")
        n = (depth - 4) // 3
        conv = _ConvFactory(frame)
        ch = 16                                  # first convolution's width in the non-BC DenseNet
        layers = [conv(in_ch, ch)]
        for b in range(3):
            for _ in range(n):
                layers.append(DenseLayer(ch, growth, conv))
                ch += growth
            if b < 2:
                layers += [nn.BatchNorm2d(ch), nn.ReLU(), nn.Conv2d(ch, ch, 1, bias=False), nn.AvgPool2d(2)]
        self.features = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(ch)
        self.fc = nn.Linear(ch, num_classes)
        self.depth, self.growth, self.frame = depth, growth, frame

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.features(x))).mean((2, 3)))


def build_cifar_model(arch: str, frame: str, num_classes: int = 10, width: int = 16) -> nn.Module:
    """'resnet<depth>' or 'densenet<depth>k<growth>' (e.g. resnet110, densenet40k12)."""
    if arch.startswith("resnet"):
        return FrameResNet(int(arch[6:]), frame, width, num_classes)
    if arch.startswith("densenet") and "k" in arch:
        depth, growth = arch[8:].split("k")
        return FrameDenseNet(int(depth), int(growth), frame, num_classes)
    raise UnknownChoiceError("architecture", arch, ("resnet<6n+2>", "densenet<3n+4>k<growth>"))


# ----------------------------------------------------------------------------- BSDS500 contour network
class StatResBlock(nn.Module):
    """Static frame residual block (eq. 28): x W + F(x), F = BN-ReLU-conv3x3 (Gaussian frame) twice."""

    def __init__(self, in_ch, out_ch, frame="gaussian"):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(in_ch), FrameConv2d(in_ch, out_ch, frame)
        self.bn2, self.conv2 = nn.BatchNorm2d(out_ch), FrameConv2d(out_ch, out_ch, frame)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, bias=False) if in_ch != out_ch else None

    def forward(self, x):
        o = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(o)
        return short + self.conv2(F.relu(self.bn2(self.conv1(o))))


class DynResBlock(nn.Module):
    """Dynamic two-factor block (eq. 29) in pre-activation form: BN-ReLU, then
    F(Phi(x)) Phi(x) W with Gaussian derivatives up to order 2 at sigma 0.8, 1.1, 1.5, rotation and
    scale pose per location. The multiplication replaces the residual addition, as eq. 29 says."""

    def __init__(self, in_ch, out_ch, max_order=2, sigmas=(0.8, 1.1, 1.5), pose="rotation_scale", pose_hidden=16,
                 pose_sharing="location"):
        super().__init__()
        self.bn = nn.BatchNorm2d(in_ch)
        self.block = DynamicSteerableBlock(in_ch, out_ch, max_order, sigmas, pose=pose, pose_hidden=pose_hidden,
                                           pose_sharing=pose_sharing)

    def forward(self, x):
        return self.block(F.relu(self.bn(x)))


class ContourNet(nn.Module):
    """Conv[w1] -> 2 x (DynResBlock[w2] -> StatResBlock[w2]) -> Conv[w3] -> 1x1 -> boundary logit.
    dynamic=False replaces the dynamic blocks by static ones (the thesis's "ResNet (Ours-Static)")."""

    def __init__(self, dynamic: bool = True, widths=(64, 128, 256), in_ch: int = 3, pose_hidden: int = 16,
                 pose_sharing: str = "location"):
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Conv2d(in_ch, w1, 3, padding=1)
        blocks, ch = [], w1
        for _ in range(2):
            blocks.append(DynResBlock(ch, w2, pose_hidden=pose_hidden, pose_sharing=pose_sharing) if dynamic
                          else StatResBlock(ch, w2))
            blocks.append(StatResBlock(w2, w2))
            ch = w2
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(ch)
        self.head = nn.Sequential(nn.Conv2d(ch, w3, 3, padding=1), nn.ReLU(), nn.Conv2d(w3, 1, 1))
        self.dynamic = dynamic

    def forward(self, x):
        return self.head(F.relu(self.bn(self.blocks(self.stem(x)))))
