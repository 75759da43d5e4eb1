"""ONNX Runtime copies of the vision backbone (llmvqa.encoders.ort): same features, cached, checked, optional."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from llmvqa.encoders import ort
from llmvqa.encoders.backbones import load_vision_backbone

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


class Tiny(torch.nn.Module):
    """A small fully convolutional network with a pooled output, like the backbones'."""

    def __init__(self, seed: int):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = torch.nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.bn = torch.nn.BatchNorm2d(8).eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))


EXAMPLE = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMVQA_CACHE", str(tmp_path))


def test_lite0_embeds_through_onnx_runtime_with_the_same_features(tmp_path, monkeypatch):
    backbone = load_vision_backbone("efficientnet_lite0")
    rng = np.random.default_rng(0)
    sets = [rng.integers(0, 255, (3, 224, 224, 3), dtype=np.uint8), rng.integers(0, 255, (1, 96, 160, 3), dtype=np.uint8)]
    eager = [backbone.embed(images) for images in sets]
    assert backbone.backend == "torch"
    assert backbone.optimize_for_inference() and backbone.backend == "onnxruntime"
    for images, want in zip(sets, eager, strict=True):
        got = backbone.embed(images)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    (copy,) = (tmp_path / "onnx").glob("efficientnet_lite0-*.onnx")
    # a second process opens the stored copy: nothing is exported again
    monkeypatch.setattr(ort, "export", lambda *a: pytest.fail("exported again"))
    again = load_vision_backbone("efficientnet_lite0")
    assert again.optimize_for_inference() and again.backend == "onnxruntime"
    assert torch.allclose(again.embed(sets[0]), eager[0], atol=1e-4)
    assert list((tmp_path / "onnx").iterdir()) == [copy]  # no temporary file left behind


def test_each_network_has_its_own_copy_and_a_damaged_one_is_exported_again(tmp_path):
    a, b = Tiny(0).eval(), Tiny(1).eval()
    path_a, path_b = ort.exported_path(a, "tiny"), ort.exported_path(b, "tiny")
    assert path_a != path_b  # other weights, another file
    forward = ort.ort_forward(a, "tiny", EXAMPLE)
    x = torch.randn(3, 3, 48, 40)
    with torch.no_grad():
        assert torch.allclose(forward(x), a(x), atol=1e-5)
    path_a.write_bytes(b"not an onnx model")
    forward = ort.ort_forward(a, "tiny", EXAMPLE, threads=1)
    with torch.no_grad():
        assert forward is not None and torch.allclose(forward(x), a(x), atol=1e-5)
    assert path_a.stat().st_size > 1000


def test_a_copy_that_differs_from_the_network_is_not_used(tmp_path):
    a, b = Tiny(0).eval(), Tiny(1).eval()
    ort.export(b, EXAMPLE, ort.exported_path(a, "tiny"))  # b's graph where a's belongs
    assert ort.ort_forward(a, "tiny", EXAMPLE) is None


def test_without_onnx_runtime_the_backbone_uses_torchscript(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    assert ort.ort_forward(Tiny(0).eval(), "tiny", EXAMPLE) is None
    backbone = load_vision_backbone("efficientnet_lite0")
    images = np.random.default_rng(0).integers(0, 255, (2, 224, 224, 3), dtype=np.uint8)
    want = backbone.embed(images)
    assert backbone.optimize_for_inference() and backbone.backend == "torchscript"
    assert torch.allclose(backbone.embed(images), want, atol=1e-4)


def test_a_cache_that_cannot_be_written_keeps_the_torch_network(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("LLMVQA_CACHE", str(blocker))
    assert ort.ort_forward(Tiny(0).eval(), "tiny", EXAMPLE) is None
