"""Settings of `llmvqa serve` (what a request may cost and what it may read)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from llmvqa.errors import ConfigError
from llmvqa.video.config import VideoLimits


def _default_limits() -> VideoLimits:
    # A server answers strangers: tighter than the library defaults (no 3-hour 4K files).
    return VideoLimits(max_pixels=3840 * 2160, max_duration_s=600.0, max_sampled_frames=64,
                       max_file_bytes=256 * 2**20, timeout_s=60.0)


@dataclass
class ServerConfig:
    """What the HTTP server accepts."""

    allowed_root: Path | None = None
    """Folder whose files requests may name (file:// URLs or paths); None: no local file is readable."""
    api_key: str | None = None
    """When set, every /v1 request needs the header `Authorization: Bearer <api_key>`."""
    allow_urls: bool = False
    """Fetch http(s) video URLs (public addresses only; private, loopback and link-local are refused)."""
    max_upload_mb: float = 200.0
    """Largest video accepted in a request (upload, data: URL or download), in MiB."""
    timeout_s: float = 120.0
    """Seconds one request may take before the server answers 504."""
    limits: VideoLimits = field(default_factory=_default_limits)
    """Caps on resolution, duration and frames, checked by probing before any decoding."""
    model_name: str = "llmvqa"
    """Id reported by /v1/models and in completions."""
    allowed_origins: tuple[str, ...] = ()
    """Web origins (``https://app.example``) whose pages may call the server; a request from any other
    page (it carries an ``Origin`` header) is refused, so a site a user visits cannot use a local server."""
    max_prompt_chars: int = 2000
    """Longest text prompt a request may send."""
    max_messages: int = 64
    """Most chat messages in one request."""
    max_message_chars: int = 8000
    """Longest single chat message."""
    max_large_bodies: int = 2
    """Requests over 1 MiB (uploads, data: URLs) handled at once; more get 503 and retry. Each costs about
    3x its size in memory while it is decoded."""

    def __post_init__(self) -> None:
        if self.allowed_root is not None:
            root = Path(self.allowed_root).expanduser()
            if not root.is_dir():
                raise ConfigError(str(root), "--allowed-root is not a folder", "pass an existing folder")
            self.allowed_root = root.resolve()
        if not self.max_upload_mb > 0:
            raise ConfigError("ServerConfig", f"max_upload_mb must be positive, got {self.max_upload_mb}")
        if not self.timeout_s > 0:
            raise ConfigError("ServerConfig", f"timeout_s must be positive, got {self.timeout_s}")
        for name in ("max_prompt_chars", "max_messages", "max_message_chars", "max_large_bodies"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError("ServerConfig", f"{name} must be a positive integer, got {getattr(self, name)!r}")
        self.allowed_origins = tuple(o.rstrip("/") for o in self.allowed_origins)
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("ServerConfig", "api_key is empty", "pass a non-empty --api-key or none")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_body_bytes(self) -> int:
        """Largest request body: a base64 data: URL of the largest video plus some JSON."""
        return self.max_upload_bytes * 4 // 3 + 2**20
