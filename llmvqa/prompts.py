"""Prompt text lives in prompts/<version>/, loaded by name — never inlined in code."""

from __future__ import annotations

import functools
from pathlib import Path

import yaml

from llmvqa.errors import ConfigError

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
DEFAULT_VERSION = "v1"


def _prompts_dir() -> Path:
    # installed wheel: prompts are shipped as package data under llmvqa/_prompts
    packaged = Path(__file__).resolve().parent / "_prompts"
    return PROMPTS_DIR if PROMPTS_DIR.is_dir() else packaged


@functools.cache
def load_text(name: str, version: str = DEFAULT_VERSION) -> str:
    """Text of prompts/<version>/<name>.txt, trailing newline stripped."""
    path = _prompts_dir() / version / f"{name}.txt"
    if not path.is_file():
        raise ConfigError(str(path), "prompt file not found", f"check the prompt name {name!r} and version {version!r}")
    return path.read_text(encoding="utf-8").rstrip("\n")


@functools.cache
def load_yaml(name: str, version: str = DEFAULT_VERSION) -> dict:
    """Parsed prompts/<version>/<name>.yaml."""
    path = _prompts_dir() / version / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(str(path), "prompt file not found", f"check the prompt name {name!r} and version {version!r}")
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def level_sentence(kind: str, level: str, subject: str = "", version: str = DEFAULT_VERSION) -> str:
    """The answers.yaml sentence of ``kind`` (overall / group / dimension) stating ``level``."""
    return load_yaml("answers", version)[kind].format(level=level, group=subject, dimension=subject)
