"""The convolutional image encoder and decoder, and the MLP heads (paper Appendix, Atari networks).

All layers follow the published DreamerV2 code: ELU activations, no normalisation, stride-2
convolutions without padding. Images enter as uint8 (N, 64, 64, C) and are scaled to x / 255 - 0.5.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from dreamer_pipeline.datasets.schema import IMAGE_SIZE  # the stores' image size, the one definition

from .config import ConvConfig, MLPConfig



def keras_init_(module: nn.Module) -> nn.Module:
    """Keras' defaults, as in the published TensorFlow code: Glorot-uniform kernels, zero biases.

    Applied to every dense, convolution and transposed-convolution layer of `module` (PyTorch's
    own default, Kaiming-uniform with fan-in biases, starts the heads with larger outputs and the
    policy further from uniform). Glorot's bound sqrt(6 / (fan_in + fan_out)) is symmetric in the
    two fans, so PyTorch's (in, out) layout of transposed convolutions gives Keras' bound too.
    """
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
    return module


def linear_fp32(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """`layer(x)` computed in float32 even inside a bf16 autocast region.

    Output layers whose values are read as numbers (latent logits, reward, discount, value, policy
    logits) must not round to bf16: with gamma = 0.999, values of 50 to 500 are spaced 0.25 to 2
    apart in bf16, about the size of an advantage. Their matmuls are tiny, so fp32 costs nothing.
    """
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.float(), layer.weight.float(), None if layer.bias is None else layer.bias.float())
    return layer(x)


def autocast_weight(weight: torch.Tensor) -> torch.Tensor:
    """`weight` in the autocast dtype when autocast is on for its device, else `weight` itself.

    Autocast caches its casts of parameters, but not of slices of them: a loop that uses
    `layer.weight[:, :k]` at every step would cast the slice again at every step. Casting once
    before the loop gives the same values (gradients flow back through the cast).
    """
    device_type = weight.device.type
    if not torch.is_autocast_enabled(device_type):
        return weight
    return weight.to(torch.get_autocast_dtype(device_type))


def embedding_bags_win(device: torch.device) -> bool:
    """Whether one-hot inputs should enter dense layers as embedding bags (`onehot_linear`).

    On the CPU the bag skips the zeros of 32x32 one-hot latents and wins clearly (measured,
    docs/agent.md). On a GPU the dense matmul is one tensor-core kernel while the bag is a gather
    plus extra launches and index arithmetic, so the plain dense layer is used there.
    """
    return device.type == "cpu"


def preprocess_image(image: torch.Tensor, channels_last: bool = True) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float (N, C, H, W) in [-0.5, 0.5] (paper: x / 255 - 0.5).

    The result is laid out channels-last in memory when asked, which is a free view of the NHWC
    input and what oneDNN's convolutions prefer on CPU.
    """
    x = image.permute(0, 3, 1, 2).float().div_(255.0).sub_(0.5)
    if not channels_last:
        x = x.contiguous()
    return x


class Encoder(nn.Module):
    """Four convolutions, kernel 4, stride 2, no padding, ELU; 64 -> 31 -> 14 -> 6 -> 2.

    Channels are depth * (1, 2, 4, 8): 48, 96, 192, 384 at Atari, a flat embedding of 1536.
    """

    def __init__(self, config: ConvConfig, channels: int = 1):
        super().__init__()
        layers: list[nn.Module] = []
        size, in_channels = IMAGE_SIZE, channels
        for index, kernel in enumerate(config.kernels):
            out_channels = config.depth * 2**index
            layers += [nn.Conv2d(in_channels, out_channels, kernel, stride=2), nn.ELU()]
            size = (size - kernel) // 2 + 1
            in_channels = out_channels
        if size < 1:
            raise ValueError(f"encoder kernels {config.kernels} do not fit a {IMAGE_SIZE}x{IMAGE_SIZE} image")
        self.layers = nn.Sequential(*layers)
        self.output_size = in_channels * size * size
        keras_init_(self)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """float (N, C, 64, 64), already preprocessed -> embedding (N, output_size)."""
        return self.layers(image).flatten(1)


class Decoder(nn.Module):
    """Dense to 32 * depth, reshape to 1x1, transposed convolutions 5, 5, 6, 6, stride 2.

    Channels 4 * depth, 2 * depth, depth, C (192, 96, 48, 1 at Atari); 1 -> 5 -> 13 -> 30 -> 64. The
    output is the mean of a unit-variance Gaussian on each pixel (in the x / 255 - 0.5 scale).
    """

    def __init__(self, config: ConvConfig, feature_size: int, channels: int = 1):
        super().__init__()
        self.depth = config.depth
        self.dense = nn.Linear(feature_size, 32 * config.depth)
        layers: list[nn.Module] = []
        size, in_channels = 1, 32 * config.depth
        count = len(config.kernels)
        for index, kernel in enumerate(config.kernels):
            last = index == count - 1
            out_channels = channels if last else config.depth * 2 ** (count - index - 2)
            layers.append(nn.ConvTranspose2d(in_channels, out_channels, kernel, stride=2))
            if not last:
                layers.append(nn.ELU())
            size = (size - 1) * 2 + kernel
            in_channels = out_channels
        if size != IMAGE_SIZE:
            raise ValueError(f"decoder kernels {config.kernels} give {size}x{size} images, not {IMAGE_SIZE}x{IMAGE_SIZE}")
        self.layers = nn.Sequential(*layers)
        self.channels_last = True
        keras_init_(self)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (N, F) -> image mean (N, C, 64, 64)."""
        x = self.dense(features)
        # A transposed convolution of a 1x1 input is a matmul: out[n, c, i, j] = sum_k x[n, k] *
        # W[k, c, i, j] + b[c]. oneDNN runs this layer ~20x slower than the equivalent matmul.
        first = self.layers[0]
        out_channels, kernel = first.out_channels, first.kernel_size
        x = (x @ first.weight.reshape(x.shape[-1], -1)).reshape(-1, out_channels, *kernel)
        x = x + first.bias.reshape(1, -1, 1, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for layer in self.layers[1:]:
            if isinstance(layer, nn.ConvTranspose2d) and layer.out_channels <= PHASE_MAX_CHANNELS:
                x = conv_transpose_by_phases(x, layer.weight, layer.bias)
            else:
                x = layer(x)
        return x


# Transposed convolutions with few output channels run 2-3x faster (forward and backward) as one
# regular convolution per output phase; the result is the same up to float rounding (tested).
PHASE_MAX_CHANNELS = 8


def conv_transpose_by_phases(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`F.conv_transpose2d(x, weight, bias, stride=2)` computed as a stride-1 convolution.

    Output pixel (2m + p, 2l + r) only sees kernel taps (p + 2q, r + 2s), so each of the four output
    phases (p, r) is a full correlation of x with a flipped ceil(k/2)-sized sub-kernel; the phases
    are computed as 4 * C_out channels of one convolution and interleaved with pixel_shuffle.
    weight: (C_in, C_out, k, k) as nn.ConvTranspose2d stores it.
    """
    c_in, c_out, k = weight.shape[0], weight.shape[1], weight.shape[-1]
    taps = math.ceil(k / 2)
    padded = F.pad(weight, (0, 2 * taps - k, 0, 2 * taps - k)).reshape(c_in, c_out, taps, 2, taps, 2)
    phases = padded.permute(1, 3, 5, 0, 2, 4).flip(-1, -2).reshape(4 * c_out, c_in, taps, taps)
    y = F.pixel_shuffle(F.conv2d(x, phases, None, padding=taps - 1), 2)
    size = 2 * (x.shape[-1] - 1) + k
    y = y[..., :size, :size]
    return y if bias is None else y + bias.reshape(1, -1, 1, 1)


class MLP(nn.Module):
    """`layers` dense layers of `units` ELU units, then a linear output of `out_size` units."""

    def __init__(self, in_size: int, out_size: int, config: MLPConfig):
        super().__init__()
        layers: list[nn.Module] = []
        size = in_size
        for _ in range(config.layers):
            layers += [nn.Linear(size, config.units), nn.ELU()]
            size = config.units
        layers.append(nn.Linear(size, out_size))
        self.layers = nn.Sequential(*layers)
        self.out_size = out_size
        keras_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in_size) -> (..., out_size) in float32; a scalar head (out_size 1) drops the last axis."""
        return self._output(self.layers[:-1](x))

    def _output(self, hidden: torch.Tensor) -> torch.Tensor:
        out = linear_fp32(self.layers[-1], hidden)
        return out.squeeze(-1) if self.out_size == 1 else out

    def forward_onehot(self, dense: torch.Tensor, one_hot: torch.Tensor, classes: int) -> torch.Tensor:
        """`forward(concat(dense, one_hot))` for one-hot groups of `classes`, without the zeros.

        dense (..., D); one_hot (..., V * classes) with at most one non-zero per group (one-hot
        latents, or all-zero initial states). The first layer's one-hot share is a weighted sum of
        V weight columns (an embedding bag) instead of a matmul over V * classes inputs: at Atari
        that removes 1024 of the 1624 inputs of every head's first layer. Same value up to
        rounding; no gradient flows to `one_hot`.
        """
        first = self.layers[0]
        x = onehot_linear(dense, one_hot, classes, first.weight, first.bias)
        return self._output(self.layers[1:-1](x))


def onehot_linear(dense: torch.Tensor, one_hot: torch.Tensor, classes: int, weight: torch.Tensor,
                  bias: torch.Tensor | None) -> torch.Tensor:
    """F.linear(concat(dense, one_hot), weight, bias) as a matmul plus an embedding bag.

    `one_hot` (..., V * classes) holds at most one non-zero per group of `classes`; its values
    weight the gathered columns, so zero rows (reset states) stay exact. weight: (out, D + V * classes)
    with the dense inputs first. Gradients reach `dense`, `weight` and `bias`, not `one_hot`."""
    size = dense.shape[-1]
    groups = one_hot.detach().reshape(-1, one_hot.shape[-1] // classes, classes)
    value, index = groups.max(-1)
    index = index + torch.arange(groups.shape[1], device=index.device) * classes
    columns = weight[:, size:].t().contiguous()  # (V * classes, out); gradients flow back to weight
    bag = F.embedding_bag(index, columns, mode="sum", per_sample_weights=value)
    return F.linear(dense, weight[:, :size], bias) + bag.reshape(*dense.shape[:-1], -1)


def image_nll(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative log-likelihood of `target` under a unit-variance Gaussian, summed over pixels.

    Both (N, C, H, W). Returns (N,). The constant 0.5 * log(2 pi) per pixel is dropped (it does not
    change gradients): the published code's value is this plus 0.5 * log(2 pi) * H * W * C.
    """
    return 0.5 * (mean.float() - target).square().flatten(1).sum(-1)
