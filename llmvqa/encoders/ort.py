"""ONNX Runtime copies of frozen vision networks: the fastest CPU path of a long run of videos.

    forward = ort_forward(model.pooled_module, "efficientnet_lite0", example)   # None: keep the torch network
    feats = forward(x)                                                         # float32 (N, 3, H, W) -> (N, D)

The network is exported to ONNX once per machine and kept in ``cache_root()/onnx`` under a name that hashes its
weights and the torch and onnxruntime versions, so later processes only open a session (a fraction of a second).
Every new session is checked against the torch network on the example: a copy that differs by more than
``TOLERANCE`` is not used. Needs the ``onnx`` extra (``onnxruntime``, and ``onnx`` for the first export); without it,
or when the export fails, ``ort_forward`` returns None and the caller keeps its own path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from llmvqa.encoders.cache import cache_root

log = logging.getLogger(__name__)

TOLERANCE = 1e-3
"""Largest absolute difference from the torch network on the example (features of magnitude ~1-10; measured 5e-6)."""


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 of every parameter and buffer (names, shapes, bytes): a different checkpoint is a different copy."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}\0".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()


def exported_path(module: torch.nn.Module, name: str) -> Path:
    """Where the ONNX copy of ``module`` is kept (exists or not)."""
    import onnxruntime

    key = hashlib.sha256(f"{weights_digest(module)}|{torch.__version__}|{onnxruntime.__version__}".encode())
    return cache_root() / "onnx" / f"{name}-{key.hexdigest()[:16]}.onnx"


def export(module: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    """Write ``module`` as ONNX to ``path`` (batch, height and width dynamic); atomic: a temporary file, then a
    rename, so workers exporting at once never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
    os.close(fd)
    kwargs = dict(input_names=["images"], output_names=["features"], opset_version=17,
                  dynamic_axes={"images": {0: "n", 2: "h", 3: "w"}, "features": {0: "n"}})
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(module, (example,), tmp, dynamo=False, **kwargs)
            except TypeError:  # a torch before the dynamo switch: the TorchScript exporter is the only one
                torch.onnx.export(module, (example,), tmp, **kwargs)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def ort_forward(module: torch.nn.Module, name: str, example: torch.Tensor,
                threads: int | None = None) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """An ONNX Runtime session of ``module`` (an eval-mode network taking one float32 (N, 3, H, W) tensor) as a
    callable tensor -> float32 tensor, on ``threads`` threads (default: torch's count); None when onnxruntime is
    missing, the copy cannot be exported or loaded, or it does not match ``module`` on ``example``."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # idle threads sleep: workers share CPUs
    options.log_severity_level = 3
    session = None
    try:
        path = exported_path(module, name)
        for attempt in range(2):
            if not path.is_file():
                export(module, example, path)
            try:
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                break
            except Exception:  # a damaged copy in the cache: export it again, once
                if attempt:
                    raise
                path.unlink(missing_ok=True)
    except Exception as err:  # noqa: BLE001 - no onnx to export with, an exporter or runtime that cannot: keep torch
        log.debug("no ONNX Runtime copy of %s (%s: %s)", name, type(err).__name__, err)
        return None

    def forward(x: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(["features"], {"images": x.detach().to("cpu", torch.float32).contiguous().numpy()})
        return torch.from_numpy(out)

    with torch.inference_mode():
        want = module(example).float()
    got = forward(example)
    if got.shape != want.shape or float((got - want).abs().max()) > TOLERANCE:
        log.debug("the ONNX Runtime copy of %s differs from the network; not used", name)
        return None
    return forward
