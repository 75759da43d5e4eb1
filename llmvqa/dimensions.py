"""The quality dimensions, their groups and definitions (``prompts/<version>/dimensions.yaml``).

One vocabulary for inference, evaluation and SIG: what a dimension is called in text, what it
means, which encoder statistics feed its default expert, and which group it belongs to.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from llmvqa.errors import ConfigError
from llmvqa.prompts import load_yaml
from llmvqa.statistics import STAT_BY_NAME


@dataclass(frozen=True)
class Dimension:
    key: str
    """Identifier used in records (``sharpness``, ``flicker`` ...)."""
    group: str
    """technical / motion / semantic."""
    name: str
    """Words that fill ``{dimension}`` in the dimension sentence ("clarity")."""
    definition: str
    """Short definition quoted in explanations."""
    statistics: tuple[str, ...]
    """Encoder statistics that feed the default expert."""
    needs_prompt: bool = False
    """Only scored when the video has a text prompt."""


@dataclass(frozen=True)
class DimensionSpec:
    dimensions: dict[str, Dimension]
    groups: dict[str, tuple[str, ...]]
    group_weights: dict[str, float]
    group_definitions: dict[str, str]

    def of_group(self, group: str) -> tuple[Dimension, ...]:
        return tuple(self.dimensions[k] for k in self.groups[group])


@functools.cache
def load_dimensions(version: str = "v1") -> DimensionSpec:
    """Dimensions, groups and group weights from ``prompts/<version>/dimensions.yaml`` (checked)."""
    raw = load_yaml("dimensions", version)
    groups = {g: tuple(ks) for g, ks in raw["groups"].items()}
    dims: dict[str, Dimension] = {}
    for g, keys in groups.items():
        for k in keys:
            d = raw["dimensions"].get(k)
            if d is None:
                raise ConfigError(f"prompts/{version}/dimensions.yaml", f"group {g!r} lists {k!r} but it has no entry",
                                  "add it under `dimensions:`")
            unknown = [s for s in d["statistics"] if s not in STAT_BY_NAME]
            if unknown:
                raise ConfigError(f"prompts/{version}/dimensions.yaml", f"dimension {k!r} names unknown statistics {unknown}",
                                  "use names from llmvqa/statistics.py")
            dims[k] = Dimension(k, g, d["name"], d["definition"], tuple(d["statistics"]), bool(d.get("needs_prompt", False)))
    weights = {g: float(raw.get("group_weights", {}).get(g, 1.0)) for g in groups}
    definitions = {g: str(raw.get("group_definitions", {}).get(g, f"the {g} aspects")) for g in groups}
    return DimensionSpec(dims, groups, weights, definitions)
