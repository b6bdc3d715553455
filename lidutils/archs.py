"""Small image classifiers for the trained-from-scratch model zoo.

Four families of increasing inductive bias, each with a *capacity* knob
(``width``) and a *depth* knob (``depth``):

- ``"mlp"``: flatten -> ``depth`` x (Linear(width) -> ReLU) -> Linear(n_classes);
- ``"cnn"``: ``depth`` x (Conv3x3 -> BatchNorm -> ReLU -> MaxPool2), channels
  ``width, 2 width, 4 width, ...`` -> global average pool;
- ``"convnet"``: all-convolutional (strided convolutions instead of pooling,
  Springenberg et al., 2015; no normalisation, so it is cheap on a CPU): a 5x5
  stride-2 stem with ``width`` channels (28 -> 14 px), then two stages of
  ``depth`` 3x3 convs each (channels ``2 width`` at 7 px and ``4 width`` at 4 px;
  the first conv of a stage has stride 2), ReLU throughout -> global average pool;
- ``"resnet"``: stride-2 3x3 stem, three stages of ``depth`` basic residual blocks
  (channels ``width, 2 width, 4 width``; stride 2 between stages) -> global
  average pool (a CIFAR-style ResNet-``6 depth + 2``);
- ``"mixer"``: MLP-Mixer (Tolstikhin et al., 2021) on a 4x4 grid of patches, hidden size
  ``width``, ``depth`` mixer blocks, mean over tokens -> Linear(width) -> ReLU.

Every model exposes ``features(x)`` -> the *penultimate* representation (the
input of the final linear classifier, shape ``(n, embed_dim)``) and
``forward(x) = head(features(x))``. The penultimate layer always ends in a ReLU
(or an average of ReLU outputs), so a unit that is zero on every evaluation
image is "dead" in a well-defined sense.

Fixed-width embedding
---------------------
With ``embed_dim=E > 0`` every family ends its trunk in the same embedding layer
``Linear(trunk_out, E) -> ReLU`` before the classifier ``Linear(E, n_classes)``:
``features(x)`` is then this ``E``-dimensional embedding for every family and
every capacity, and capacity (``width``, ``depth``) only changes the trunk. With
``embed_dim=0`` (the legacy zoo) the penultimate layer is the trunk's own output,
whose width grows with ``width``. For the Mixer the embedding layer replaces the
final ``Linear(width, width) -> ReLU`` projection.
"""
from __future__ import annotations

import torch
from torch import nn

ARCHS = ("mlp", "cnn", "convnet", "resnet", "mixer")


class _Classifier(nn.Module):
    """Base: ``features`` = ``self.body`` (the penultimate layer), ``forward`` = ``head(features)``."""

    def _finish(self, body, trunk_out, n_classes, embed_dim):
        """``body`` (+ ``Linear(trunk_out, embed_dim) -> ReLU`` when ``embed_dim``) and the linear head."""
        if embed_dim:
            body = nn.Sequential(body, nn.Linear(trunk_out, embed_dim), nn.ReLU())
            trunk_out = embed_dim
        self.body = body
        self.head = nn.Linear(trunk_out, n_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))

    @property
    def embed_dim(self):
        return self.head.in_features


class MLP(_Classifier):
    """Fully connected ReLU network: ``depth`` hidden layers of ``width`` units."""

    def __init__(self, in_shape, n_classes, width=128, depth=2, embed_dim=0):
        super().__init__()
        c, h, w = in_shape
        layers, d = [nn.Flatten()], c * h * w
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.ReLU()]
            d = width
        self._finish(nn.Sequential(*layers), d, n_classes, embed_dim)


class CNN(_Classifier):
    """Plain VGG-style ConvNet: ``depth`` conv-BN-ReLU-pool blocks, global average pool."""

    def __init__(self, in_shape, n_classes, width=16, depth=3, embed_dim=0):
        super().__init__()
        c, h, w = in_shape
        layers = []
        for i in range(depth):
            out = width * 2 ** i
            layers += [nn.Conv2d(c, out, 3, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            if min(h, w) >= 4:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            c = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self._finish(nn.Sequential(*layers), c, n_classes, embed_dim)


class ConvNet(_Classifier):
    """All-convolutional net: strided 5x5 stem, two stages of ``depth`` 3x3 convs, global average pool."""

    def __init__(self, in_shape, n_classes, width=8, depth=1, embed_dim=0):
        super().__init__()
        c = in_shape[0]
        layers = [nn.Conv2d(c, width, 5, 2, 2), nn.ReLU()]
        cin = width
        for stage in (1, 2):
            cout = width * 2 ** stage
            for b in range(depth):
                layers += [nn.Conv2d(cin, cout, 3, 2 if b == 0 else 1, 1), nn.ReLU()]
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self._finish(nn.Sequential(*layers), cin, n_classes, embed_dim)


class _BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.short(x))


class ResNet(_Classifier):
    """CIFAR-style ResNet with three stages of ``depth`` basic blocks each."""

    def __init__(self, in_shape, n_classes, width=16, depth=1, embed_dim=0):
        super().__init__()
        c = in_shape[0]
        # stride-2 stem: 28x28 -> 14x14, stages at 14, 7, 4 (cheap enough for CPU zoos)
        layers = [nn.Conv2d(c, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
        cin = width
        for stage in range(3):
            cout = width * 2 ** stage
            for b in range(depth):
                layers.append(_BasicBlock(cin, cout, 2 if (stage > 0 and b == 0) else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self._finish(nn.Sequential(*layers), cin, n_classes, embed_dim)


class _MixerBlock(nn.Module):
    def __init__(self, n_tokens, dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(n_tokens, 2 * n_tokens), nn.GELU(), nn.Linear(2 * n_tokens, n_tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):  # x: (n, tokens, dim)
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.channel_mlp(self.norm2(x))


class Mixer(_Classifier):
    """MLP-Mixer on ``patch`` x ``patch`` patches; a ReLU projection forms the penultimate layer."""

    def __init__(self, in_shape, n_classes, width=64, depth=2, patch=None, embed_dim=0):
        super().__init__()
        c, h, w = in_shape
        patch = patch or max(1, min(h, w) // 4)  # 4x4 = 16 tokens (7x7 patches for 28x28)
        if h % patch or w % patch:
            raise ValueError(f"mixer needs an image size divisible by patch={patch}, got {h}x{w}.")
        n_tokens = (h // patch) * (w // patch)
        self.embed = nn.Conv2d(c, width, patch, patch)
        self.blocks = nn.Sequential(*[_MixerBlock(n_tokens, width) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        out = embed_dim or width
        self.proj = nn.Sequential(nn.Linear(width, out), nn.ReLU())
        self.head = nn.Linear(out, n_classes)

    def features(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        x = self.norm(self.blocks(x)).mean(dim=1)
        return self.proj(x)


_CLASSES = {"mlp": MLP, "cnn": CNN, "convnet": ConvNet, "resnet": ResNet, "mixer": Mixer}


def build_model(arch, in_shape, n_classes, width, depth, embed_dim=0):
    """Instantiate a zoo architecture.

    Parameters
    ----------
    arch : {"mlp", "cnn", "convnet", "resnet", "mixer"}
    in_shape : tuple (channels, height, width)
    n_classes : int
    width, depth : int
        Capacity knobs (see the module docstring for their meaning per family).
    embed_dim : int
        Width of the common embedding layer that ends every trunk (0: none, the
        penultimate layer is the trunk's output; see the module docstring).
    """
    if arch not in _CLASSES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS}.")
    if int(width) < 1 or int(depth) < 1:
        raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}.")
    if int(embed_dim) < 0:
        raise ValueError(f"embed_dim must be >= 0 (0: no embedding layer), got {embed_dim}.")
    return _CLASSES[arch](tuple(in_shape), int(n_classes), width=int(width), depth=int(depth),
                          embed_dim=int(embed_dim))


def n_parameters(model):
    """Number of trainable parameters."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad))
