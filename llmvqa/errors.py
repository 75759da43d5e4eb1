"""The project's own exceptions.

Every error a user can cause (a bad file, a bad path, a bad config) raises a
subclass of :class:`LlmvqaError` whose message names the thing, the problem and
the fix. The CLI prints ``str(err)`` as one line and exits non-zero; it never
shows a traceback for these.
"""

from __future__ import annotations


class LlmvqaError(Exception):
    """Base class for user-facing errors."""

    def __init__(self, subject: str | None, problem: str, fix: str | None = None):
        self.subject = subject
        self.problem = problem
        self.fix = fix
        parts = [f"{subject}: {problem}" if subject else problem]
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(parts))


class VideoError(LlmvqaError):
    """A video cannot be read: missing, not a video, corrupt, too large, too slow."""


class ConfigError(LlmvqaError):
    """A setting, recipe or model directory is invalid."""


class DataError(LlmvqaError):
    """A dataset file, row or path is invalid (bad MOS, path outside the root ...)."""


class ModelError(LlmvqaError):
    """A model cannot be loaded or used as asked (missing weights, no CUDA for 4-bit ...)."""
