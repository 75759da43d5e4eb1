"""What an evaluation scores: ``EvalItem`` s from any corpus llmvqa reads.

Kinds (``load_eval_items(path, kind="auto")``):

- ``t2vqa`` / ``csv`` / ``jsonl`` / ``synth``: read by the SIG dataset adapters
  (``llmvqa.corpus.datasets.load_items``); the human target is the MOS, or for a synth manifest
  the known overall target (0–1), with reference levels for every dimension, group and
  overall (five equal-width bins of [0, 1], as ``llmvqa sig build`` assigns them).
- ``instruct``: SIG instruct records (``llmvqa sig build`` output); one item per distinct
  (video, prompt); target = ``scores["overall"]``, reference levels = ``levels``.

``auto`` picks ``t2vqa`` for a ``.txt`` file, ``csv`` for ``.csv``, and for JSON lines looks at
the first record: ``conversations`` → instruct, ``scores`` → synth, otherwise jsonl.

Wrong-prompt twins (synth): the same video listed twice, once with its own prompt and once
with a wrong one (its degradations name ``wrong_prompt``); ``EvalItem.twin_of`` names the
original item's id so the evaluation can check that the wrong prompt lowers prompt alignment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from llmvqa.corpus.datasets import SPLITS, BadRow, load_items
from llmvqa.corpus.paths import resolve_video
from llmvqa.errors import DataError
from llmvqa.levels import levels_from_values

DIMENSION_MODES: tuple[str, ...] = ("auto", "on", "off")
"""`llmvqa evaluate --dimensions`: auto = score dimensions when the corpus has reference levels."""

KINDS = ("auto", "t2vqa", "csv", "jsonl", "synth", "instruct")
WRONG_PROMPT = "wrong_prompt"
"""Name of the synth degradation that marks a wrong-prompt record."""


@dataclass
class EvalItem:
    """One video (with its prompt) to score, and what it should score."""

    id: str
    """Stable id (synth/instruct record id, else the video path)."""
    video: str
    """Path relative to the root (POSIX)."""
    path: Path
    """Absolute path of the video."""
    prompt: str = ""
    """Text prompt ("" if none)."""
    target: float | None = None
    """Human score: MOS on the dataset's scale, or the 0–1 overall target; None if unlabelled."""
    split: str = ""
    """train / val / test."""
    levels: dict[str, str] = field(default_factory=dict)
    """Reference level per dimension / group / "overall" (empty when the corpus has none)."""
    twin_of: str | None = None
    """Id of the item this is the wrong-prompt twin of."""


def detect_kind(path: str | Path) -> str:
    """The dataset kind of ``path`` (see the module docstring)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return "t2vqa"
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    try:
                        first = json.loads(line)
                    except ValueError:
                        return "jsonl"
                    if isinstance(first, dict) and "conversations" in first:
                        return "instruct"
                    if isinstance(first, dict) and "scores" in first:
                        return "synth"
                    return "jsonl"
        return "jsonl"
    raise DataError(str(path), f"cannot tell the dataset kind from the suffix {suffix!r}",
                    f"pass --kind one of {KINDS[1:]}")


def reference_levels(scores: Mapping[str, float]) -> dict[str, str]:
    """Levels of 0–1 scores (groups added as the mean of their dimensions), bins fixed on [0, 1]."""
    from llmvqa.sig.build import complete_scores

    full = complete_scores(scores)
    keys = sorted(full)
    words = levels_from_values([full[k] for k in keys], "equal", lo=0.0, hi=1.0)
    return dict(zip(keys, words, strict=True))


def _from_sig(kind: str, path: Path, root: Path) -> tuple[list[EvalItem], list[BadRow]]:
    items, bad = load_items(kind, path, root)
    out: list[EvalItem] = []
    for it in items:
        target, levels = it.mos, {}
        if kind == "synth" and it.targets:
            target = it.targets.get("overall")
            levels = reference_levels(it.targets)
        out.append(EvalItem(id=it.video, video=it.video, path=resolve_video(root, it.video), prompt=it.prompt,
                            target=target, split=it.split, levels=levels))
    if kind == "synth":
        _pair_twins(out, [it.degradations for it in items])
    return out, bad


def _pair_twins(items: list[EvalItem], degradations: list[list]) -> None:
    """Give each record of a video unique ids; the wrong-prompt records point to their original."""
    by_video: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_video.setdefault(it.video, []).append(i)
    for idx in by_video.values():
        wrong = [i for i in idx if any(d.get("name") == WRONG_PROMPT for d in degradations[i] if isinstance(d, Mapping))]
        originals = [i for i in idx if i not in wrong]
        for n, i in enumerate(idx[1:], start=1):
            items[i].id = f"{items[i].video}#{n}"
        if len(originals) == 1:
            for i in wrong:
                items[i].twin_of = items[originals[0]].id


def _from_instruct(path: Path, root: Path) -> tuple[list[EvalItem], list[BadRow]]:
    from llmvqa.sig.build import read_jsonl

    out: dict[tuple[str, str], EvalItem] = {}
    bad: list[BadRow] = []
    for n, rec in enumerate(read_jsonl(path), start=1):
        try:
            video, prompt = str(rec["video"]), str(rec.get("prompt") or "")
            abs_path = resolve_video(root, video)
        except (KeyError, DataError) as err:
            bad.append(BadRow(str(path), n, f"bad record ({err})"))
            continue
        if (video, prompt) in out:
            continue
        if not abs_path.is_file():
            bad.append(BadRow(str(path), n, f"video {video!r} not found under {root}"))
            continue
        overall = (rec.get("scores") or {}).get("overall")
        out[(video, prompt)] = EvalItem(id=str(rec.get("id", video)), video=video, path=abs_path, prompt=prompt,
                                        target=None if overall is None else float(overall),
                                        split=str(rec.get("split") or ""), levels=dict(rec.get("levels") or {}))
    return list(out.values()), bad


def load_eval_items(path: str | Path, kind: str = "auto", root: str | Path | None = None,
                    split: str | None = None) -> tuple[list[EvalItem], list[BadRow]]:
    """Items (of ``split`` when given) and the skipped bad rows of a dataset file."""
    if kind not in KINDS:
        raise DataError(str(path), f"unknown dataset kind {kind!r}", f"use --kind one of {KINDS}")
    if split is not None and split not in SPLITS:
        raise DataError(str(path), f"unknown split {split!r}", f"use --split one of {SPLITS}")
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "dataset file not found", "pass info.txt, a CSV, a JSONL or a synth manifest.jsonl")
    kind = detect_kind(path) if kind == "auto" else kind
    root = Path(root) if root else path.parent
    if not root.is_dir():
        raise DataError(str(root), "root folder not found", "check --root")
    items, bad = _from_instruct(path, root) if kind == "instruct" else _from_sig(kind, path, root)
    if split is not None:
        items = [it for it in items if it.split == split]
    return items, bad


def twin_pairs(items: list[EvalItem]) -> list[tuple[int, int]]:
    """(original index, wrong-prompt twin index) for every twin whose original is also in ``items``."""
    index = {it.id: i for i, it in enumerate(items)}
    return [(index[it.twin_of], j) for j, it in enumerate(items) if it.twin_of is not None and it.twin_of in index]


__all__ = ["KINDS", "EvalItem", "detect_kind", "load_eval_items", "reference_levels", "twin_pairs"]
