"""S2I-Bench-style evaluation set: open-ended questions with reference answers on held-out videos.

Built from instruct records of the ``test`` split (``make_bench``): the open-ended tasks
(``BENCH_TASKS``) become entries

    {"id", "video", "prompt", "question", "reference", "levels", "dimensions_asked"}

(``question`` without the ``<video>`` marker; ``dimensions_asked`` = the dimension/group keys
whose level sentences the reference states). Written as one JSON list.

``load_bench`` also reads S2I-Bench's own files and similar sets, liberally: a JSON list, a JSON
object holding a list (under ``data``/``questions``/``items``/``annotations``) or JSONL; per entry
the question from ``question``/``query``/``instruction``/``prompt_question``/``q``, the reference from
``reference``/``answer``/``gt``/``gt_answer``/``ground_truth``/``response``/``a``, the video from
``video``/``video_path``/``video_name``/``path``/``vid``/``video_id``, the text prompt from
``prompt``/``caption``/``text_prompt``; ``levels``/``dimensions_asked``/``id`` when present. An entry
without a question, reference or video is a DataError naming its index.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from llmvqa.errors import DataError
from llmvqa.prompts import VIDEO_TAG
from llmvqa.sig.validate import stated_levels

BENCH_TASKS = ("rating_cot", "why", "improve", "worst_aspect", "dimension")
_QUESTION_KEYS = ("question", "query", "instruction", "prompt_question", "q")
_REFERENCE_KEYS = ("reference", "answer", "gt", "gt_answer", "ground_truth", "response", "a")
_VIDEO_KEYS = ("video", "video_path", "video_name", "path", "vid", "video_id")
_PROMPT_KEYS = ("prompt", "caption", "text_prompt")


def make_bench(records: Iterable[Mapping], split: str = "test", tasks: tuple[str, ...] = BENCH_TASKS,
               max_items: int | None = None) -> list[dict]:
    """Bench entries from the open-ended records of ``split`` (held-out videos)."""
    out = []
    for r in records:
        if r.get("split") != split or r.get("task") not in tasks:
            continue
        human = next(t["value"] for t in r["conversations"] if t["from"] == "human")
        reference = next(t["value"] for t in r["conversations"] if t["from"] == "gpt")
        stated, _ = stated_levels(reference)
        asked = [k for k, _ in stated if k != "overall"]
        out.append({"id": r["id"], "video": r["video"], "prompt": r.get("prompt", ""),
                    "question": human.removeprefix(VIDEO_TAG).removeprefix("\n"), "reference": reference,
                    "levels": dict(r["levels"]), "dimensions_asked": asked})
        if max_items is not None and len(out) >= max_items:
            break
    return out


def _first(entry: Mapping, keys: tuple[str, ...]):
    for k in keys:
        if entry.get(k) not in (None, ""):
            return entry[k]
    return None


def normalize_entry(entry: Mapping, index: int, source: str = "bench") -> dict:
    """One bench entry in llmvqa's format from any accepted key spelling."""
    if not isinstance(entry, Mapping):
        raise DataError(f"{source}[{index}]", "entry is not an object", "each bench entry is a JSON object")
    q, ref, video = _first(entry, _QUESTION_KEYS), _first(entry, _REFERENCE_KEYS), _first(entry, _VIDEO_KEYS)
    missing = [n for n, v in (("question", q), ("reference", ref), ("video", video)) if v is None]
    if missing:
        raise DataError(f"{source}[{index}]", f"entry has no {', '.join(missing)} (keys: {sorted(entry)})",
                        "see llmvqa/sig/bench.py for the accepted key names")
    q = str(q).removeprefix(VIDEO_TAG)
    return {"id": str(entry.get("id", entry.get("question_id", index))), "video": str(video),
            "prompt": str(_first(entry, _PROMPT_KEYS) or ""), "question": q.strip(), "reference": str(ref),
            "levels": dict(entry.get("levels") or {}), "dimensions_asked": list(entry.get("dimensions_asked") or [])}


def load_bench(path: str | Path) -> list[dict]:
    """Entries of a bench file (ours or S2I-Bench-like; JSON list/object or JSONL)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), "bench file not found", "build one with `llmvqa sig bench`")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except ValueError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as err:
            raise DataError(str(path), f"neither JSON nor JSONL ({err})", "fix the file") from None
    if isinstance(data, Mapping):
        data = next((data[k] for k in ("data", "questions", "items", "annotations") if isinstance(data.get(k), list)), None)
        if data is None:
            raise DataError(str(path), "JSON object without a list of entries", "put the entries in a list under `data`")
    return [normalize_entry(e, i, str(path)) for i, e in enumerate(data)]


def write_bench(entries: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
