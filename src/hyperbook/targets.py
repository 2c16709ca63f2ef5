"""Every figure and table of the five documents, with the chapter that regenerates it.

Ids follow the book's target list; `document` is the document's own value where it
states one. A target marked `not_reproducible` carries the reason."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Target:
    id: str
    chapter: str
    what: str
    document: str = ""
    not_reproducible: str = ""
    missing: str = ""        # code path not written yet: why
    stand_in: str = ""       # the data our runs use in place of the document's


TARGETS = [
    Target('H-F1', 'hypernets', 'autoencoder with control (sin, cos of angle appended to latent code) — diagram', ''),
    Target('H-F2', 'hypernets', 'simple higher-order (HyperNet) architecture — diagram', 'softmax-gated weights, eq. (7)-(8)'),
    Target('H-F3', 'hypernets', 'simple HyperNet trained on discrete angles (0,45,...,315), test digits 1 and 4: ground truth vs output columns', 'artifacts visible on 1'),
    Target('H-F4', 'hypernets', 'simple (left) and deep conv (right) HyperNet, trained on digits only, rotating letters', ''),
    Target('H-F5', 'hypernets', 'deep HyperNet (2 conv, 2 dense, 2 deconv; gated dense) on discrete angles, digits 1, 4', 'interpolates rotation'),
    Target('H-F6', 'hypernets', 'control autoencoder trained on all angles, digits 1, 4', ''),
    Target('H-F7', 'hypernets', 'reconstruction loss per digit (10 curves): HyperNets vs autoencoder', 'digits 4 and 9 trained on [0,90] only: extrapolation'),
    Target('H-F8', 'hypernets', 'deep HyperNet, 6 affine parameters, train (left) and test (right)', ''),
    Target('H-F9', 'hypernets', 'autoencoder on the same affine task', 'blur, artifacts'),
    Target('H-T1', 'hypernets', 'affine reconstruction loss', 'simple 0.049395, deep 0.0138223, AE 0.0606265'),
    Target('H-F10', 'hypernets', 'rotation compensation (no angle given; hypernet sees the image), test digits 6, 1, 9', '6 and 9 not confused'),
    Target('H-F11', 'hypernets', 'compensation loss per digit: HyperNet vs AE', ''),
    Target('H-F12', 'hypernets', 'AE rotation compensation', ''),
    Target('F-F1', 'functional_images', 'weight-space vs pixel-space interpolation between two images', ''),
    Target('F-F2', 'functional_images', 'x4 super-resolution: bicubic vs hypernetwork vs low-res input', ''),
    Target('F-F3', 'functional_images', 'resize to a non-standard 2.5 x 1 aspect', ''),
    Target('F-F4', 'functional_images', 'target network: 5 FC layers, widths up then down, batch norm, cosine activations, sigmoid out, residual — diagram', ''),
    Target('F-F5', 'functional_images', 'hypernetwork: 8 conv layers, one residual, 1xn then nx1 convs, one branch per target layer — diagram', ''),
    Target('F-F6', 'functional_images', '(a) interpolation of target weights incl. one failure row, (b) pixel interpolation', ''),
    Target('F-F7', 'functional_images', 'layer-wise interpolation: row i interpolates the first i layers', ''),
    Target('F-T1', 'functional_images', 'PSNR, scales x2 x3 x4 on Set5, Set14, B100, Urban100; bicubic / SRCNN / RDN / hypernetwork', 'e.g. Set5 x2: 33.64 / 36.66 / 38.30 / 36.09'),
    Target('F-T2', 'functional_images', 'SSIM, same grid', 'e.g. Set5 x2: 0.930 / 0.9542 / 0.9616 / 0.9505'),
    Target('E-F1', 'hecnn', 'bar chart: CNN, G-CNN, HE-CNN-L trained/tested on MNIST and R-MNIST', 'from E-T1'),
    Target('E-F3', 'hecnn', 'equivariant combiner assembling a 4x4 filter from 4 rotated pieces — drawn from the code', ''),
    Target('E-F4', 'hecnn', "length-4 permutations of a flattened map and the combiner's column placement — drawn from the code", ''),
    Target('E-T1', 'hecnn', 'train on MNIST or R-MNIST, test on MNIST / R-MNIST / 90-MNIST; average; equivariance difference; parameters', 'CNN 3370, Z4-CNN 12522, HE-CNN-L 11527 params; e.g. HE-CNN-L train R-MNIST: 96.44 / 96.32 / 96.44'),
    Target('E-F5', 'hecnn', 'generated filters for x and its 90-degree rotation, layers 3 and 7', 'MSE after rotating back < 1e-6'),
    Target('E-T2', 'hecnn', 'R-MNIST: CNN, P4-CNN, (LieConv, steerable, E2-CNN, Sim2 quoted), Z4-HE-CNN, Z4-HE-CNN-L, D8-, D16-HE-CNN-L', 'P4-CNN 97.72; Z4-HE-CNN 99.50 (9.68M params); Z4-HE-CNN-L 97.91 (51.9k); D8 98.01; D16 98.05'),
    Target('E-T3', 'hecnn', 'CIFAR-10/100: residual net and 13-layer CNN; Z4 and D8; G-CNN, partial equivariance (quoted), HE-CNN, HE-CNN-L', 'e.g. residual Z4 HE-CNN 85.99 / 53.56'),
    Target('E-T4', 'hecnn', 'STL-10: WRN16/8 base, Z4-, D8-WRN, Z4-HE-WRN, -L, D8-HE-WRN-L', 'base 87.26; Z4-HE 90.08'),
    Target('E-T5', 'hecnn', 'ablation: Z4-CNN vs HE-CNN vs dynamic Z4-CNN (plain hypernetwork), trained on R-MNIST', 'dynamic Z4-CNN 32964 params, loses equivariance'),
    Target('E-T6', 'hecnn', 'HE-CNN vs naive averaged hypernetwork HE-CNN-N vs HE-CNN-L', 'R-MNIST 99.50 / 99.52 / 97.91'),
    Target('E-F7', 'hecnn', 'equivariant NEP generator collapses filters to rotation-invariant ones; non-equivariant does not', ''),
    Target('E-B1', 'hecnn', 'rotation-loss alternative (appendix B.1) stays below 50% on MNIST', ''),
    Target('R-F2', 'thesis_rfnn', 'learned first-layer RFNN filters', ''),
    Target('R-F4', 'thesis_rfnn', 'RFNN block: fixed Gaussian-derivative basis then 1x1 recombination — diagram from code', ''),
    Target('R-T1', 'thesis_rfnn', 'basis order 1-4, with and without 4 scales, vs NiN and AlexNet (ILSVRC2012-100)', '3rd order + scale best: 69.65% vs NiN 67.30%'),
    Target('R-F5', 'thesis_rfnn', 'mean and std of basis weights per order and layer', ''),
    Target('R-T2', 'thesis_rfnn', 'Gaussian basis vs freely learned factorised basis', '68.63 vs 64.10 (layer 1)'),
    Target('R-F6', 'thesis_rfnn', 'MNIST with reduced training sizes: RFNN vs same-architecture CNN (Scattering quoted)', 'RFNN on par with Scattering'),
    Target('R-T3', 'thesis_rfnn', 'CIFAR-10/100: RFNiN vs roto-translation Scattering (quoted) vs RCNN (quoted)', 'RFNiN 86.31 / 63.81'),
    Target('R-T4', 'thesis_rfnn', '1000/100/10-class subsets: NiN vs RFNiN-v1/v2', 'gap grows as data shrinks'),
    Target('R-T5', 'thesis_rfnn', '3D MRI Alzheimer (ADNI, OASIS)', 'not reproducible here: restricted clinical data', not_reproducible="restricted clinical MRI data (ADNI, OASIS) cannot be had"),
    Target('S-F9', 'thesis_steerable', '3x3 spanning sets: pixel, Gaussian derivatives, framelets, naive x^p y^q — plotted from code', ''),
    Target('S-T6', 'thesis_steerable', 'CIFAR-10+ error: pixel basis vs image frame vs naive frame in ResNet and DenseNet', 'e.g. ResNet110 6.70 / 6.11 / 7.29'),
    Target('S-F10', 'thesis_steerable', 'dynamic steerable block on synthetic blobs (binary; textured I, II): input, gradient magnitude, prediction, pose, target', 'FCN baseline fails on textured'),
    Target('S-F11', 'thesis_steerable', 'BSDS500 contours: DynResNet vs static ResNet, ODS / OIS', '0.732 / 0.751 vs 0.720 / 0.733'),
    Target('I-F16', 'thesis_irevnet', 'i-RevNet block and its inverse; I-F17 invertible down-sampling — verified and drawn from code', ''),
    Target('I-T9', 'thesis_irevnet', 'ResNet vs RevNet vs i-RevNet (a) injective, (b) bijective: accuracy, parameters', 'ImageNet: 24.7 / 25.2 / 24.7 / 26.7 top-1 error'),
    Target('I-F18', 'thesis_irevnet', 'training loss, i-RevNet (b) vs ResNet', 'curves alike'),
    Target('I-E1', 'thesis_irevnet', 'reconstruction error x - inverse(forward(x)) on noise and on validation images', '5e-6 and 3e-6'),
    Target('I-F19', 'thesis_irevnet', 'normalised sorted singular values of the Jacobian at an image', 'fast decay'),
    Target('I-F20', 'thesis_irevnet', 'images reconstructed along a straight line between two feature vectors', ''),
    Target('I-F21', 'thesis_irevnet', 'linear SVM and 1-NN accuracy at each depth, ResNet vs i-RevNet', 'progressive separation'),
    Target('I-F22', 'thesis_irevnet', 'linear SVM and 1-NN accuracy vs number of principal components', 'drops only for d <= 200'),
    Target('C-F1', 'hcnn', 'CNN vs HCNN layer: convolution along space and channels — drawn', ''),
    Target('C-F2', 'hcnn', "the 5-D cascade with every layer's size — table/diagram from the model", 'J = 12, K = 16, down-sampling at j = 5, 9'),
    Target('C-T1', 'hcnn', 'CIFAR-10 accuracy and parameters: HCNN, HCNN(+), quoted peers', '0.098M 91.23; (+) 0.34M 92.30'),
    Target('C-T2', 'hcnn', 'CIFAR-100', '0.25M 62.01; (+) 0.89M 63.19'),
    Target('C-Q', 'hcnn', 'Q = 9 -> 16 -> 32 separable filters', 'relative accuracy +4.2%, then +1.1%'),
    Target('C-F3', 'hcnn', 'translating the invariant attribute array at j = J-1, nearest training images (two birds)', ''),
    Target('C-F4', 'hcnn', 'same at each depth 3 <= j <= 11, tau = 1..7', 'shallow: low-level; deep: same class'),
]

CELEBA = "faces of scikit-image's lfw_subset stand in for CelebA"
SR = "scikit-image's photographs (11 train, 4 test) stand in for DIV2K and Set5/Set14/B100/Urban100"
FASHION_CIFAR = "Fashion-MNIST stands in for CIFAR (no internet here)"
FASHION_IMAGENET = "Fashion-MNIST stands in for ImageNet"
MNIST_IMAGENET = "MNIST stands in for ImageNet"
STAND_INS = {
    **dict.fromkeys(["F-F1", "F-F6", "F-F7"], CELEBA),
    **dict.fromkeys(["F-F2", "F-F3", "F-T1", "F-T2"], SR),
    **dict.fromkeys(["C-T1", "C-T2", "C-Q", "C-F3", "C-F4", "R-T3", "S-T6"], FASHION_CIFAR),
    **dict.fromkeys(["R-T1", "R-T2", "R-T4", "R-F5"], FASHION_IMAGENET),
    **dict.fromkeys(["I-T9", "I-F18", "I-F19", "I-F20", "I-F21", "I-F22"], MNIST_IMAGENET),
    "E-T3": "Fashion-MNIST stands in for CIFAR-10/100 (no internet here)",
    "E-T4": "Fashion-MNIST resized to 96 px stands in for STL-10 (no internet here)",
    "S-F10": "scikit-image's brick, grass and gravel textures stand in for KTH-TIPS",
    "S-F11": "synthetic textured blobs stand in for BSDS500 (not downloadable here)",
    "H-F4": "letters rendered from a font stand in for EMNIST letters (no internet here)",
}
MISSING: dict[str, str] = {}
TARGETS = [replace(t, stand_in=STAND_INS.get(t.id, ""), missing=MISSING.get(t.id, "")) for t in TARGETS]

BY_ID = {t.id: t for t in TARGETS}


def for_chapter(chapter: str) -> list[Target]:
    return [t for t in TARGETS if t.chapter == chapter]
