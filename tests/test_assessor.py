"""Assessor (Python API) and result rendering, with small fakes for the model and the encoders."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from llmvqa.assessor import Assessor, aspect_query, load_dimensions, resolve_model_dir, resolve_video
from llmvqa.errors import LlmvqaError, ModelError, VideoError
from llmvqa.features import VideoFeatures
from llmvqa.levels import LEVELS, LevelRating, expected_score
from llmvqa.result import RatingResult, bar, render_text
from llmvqa.statistics import STREAMS


def content_value(path) -> float:
    """A number in [0, 1) that depends only on the file's bytes (so results can be traced to their video)."""
    return int(hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8], 16) / 16**8


def probs_for(value: float, aspect: str) -> list[float]:
    """A peaked level distribution whose centre moves with the video's value and the aspect."""
    shift = int(hashlib.sha256(aspect.encode()).hexdigest()[:4], 16) / 16**4
    centre = (value * 4 + shift * 4) % 4.0
    logits = -((np.arange(5) - centre) ** 2)
    p = np.exp(logits) / np.exp(logits).sum()
    return p.tolist()


class FakeExtractor:
    """extract(path) -> VideoFeatures whose stats carry the file's content value; counts calls."""

    def __init__(self):
        self.calls = 0

    def extract(self, path) -> VideoFeatures:
        self.calls += 1
        v = content_value(path)
        tokens = {s: torch.full((2, 4), v) for s in STREAMS}
        stats = {"sharpness": 2 + 7 * v, "noise": 20 * v, "flicker": v, "value": v}
        return VideoFeatures(tokens=tokens, stats=stats, meta={"path": str(path), "content_hash": f"{v:.6f}"})

    def prompt_stats(self, features, prompt):
        return {"prompt_alignment": 0.01 * len(prompt)}


class FakeModel:
    """score/explain/chat read the features' value; deliberately keeps per-call state on self (not thread-safe)."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.chats: list[list[dict]] = []
        self.scored: list[tuple[str, str | None]] = []

    def _value(self, features) -> float:
        self.current = features.stats["value"]
        if self.delay:
            time.sleep(self.delay)  # another thread would overwrite self.current here without a lock
        return self.current

    def score(self, features, prompt=None, question=None, *, prompt_stats=None, answer_prefix=None):
        # same signature as QualityLLM.score; the answer prefix names the aspect
        aspect = answer_prefix or "overall"
        self.scored.append((aspect, question, prompt, dict(prompt_stats or {})))
        return LevelRating.from_probs("", probs_for(self._value(features), aspect))

    def explain(self, features, prompt=None, *, prompt_stats=None, levels=None, evidence=None, score=None):
        value = self._value(features)
        ls = score or self.score(features, prompt=prompt, prompt_stats=prompt_stats)
        self.explained = {"levels": levels, "evidence": evidence}
        level = levels["overall"] if levels else LEVELS[int(np.argmax(list(ls.distribution.values())))]
        return f"Value {value:.6f}. The overall quality of this video is {level}.", ls

    def chat(self, features, messages, prompt=None, *, prompt_stats=None, levels=None, evidence=None,
             justification=None, temperature=0.0, streamer=None, max_new_tokens=None):
        self.chats.append([dict(m) for m in messages])
        self.chat_context = {"levels": levels, "evidence": evidence, "justification": justification}
        words = f"answer {len(messages)} about {self._value(features):.6f}: {messages[-1]['content']}".split()
        cut = words[:max_new_tokens] if max_new_tokens else words  # one "token" per word
        self.last_generation = {"prompt_tokens": sum(len(str(m["content"]).split()) for m in messages),
                                "completion_tokens": len(cut), "finish_reason": "length" if len(cut) < len(words) else "stop"}
        return " ".join(cut)


def make_assessor(delay: float = 0.0) -> Assessor:
    return Assessor(FakeModel(delay), FakeExtractor(), name="fake")


@pytest.fixture
def video(tmp_path) -> Path:
    p = tmp_path / "a.mp4"
    p.write_bytes(b"not decoded by the fake extractor " * 10)
    return p


def expected_overall(path) -> float:
    return expected_score(probs_for(content_value(path), "overall"))


# ---------------------------------------------------------------- results and rendering

def test_level_rating_from_probs_normalizes_and_picks_level():
    r = LevelRating.from_probs("overall", [0, 2, 6, 2, 0])
    assert r.level == "fair"
    assert r.distribution["fair"] == pytest.approx(0.6)
    assert r.score == pytest.approx(3.0)
    assert r.score_100 == pytest.approx(50.0)
    assert r.spread == pytest.approx(np.sqrt(0.4))
    with pytest.raises(ValueError):
        LevelRating.from_probs("overall", [1, 2, 3])


@pytest.mark.parametrize("score,filled", [(1.0, 0), (5.0, 10), (3.0, 5), (4.2, 8)])
def test_bar_fills_by_score(score, filled):
    b = bar(score)
    assert len(b) == 10
    assert b.count("█") == filled and b.count("░") == 10 - filled


def test_rate_result_fields_and_json(video):
    a = make_assessor()
    r = a.rate(video, prompt="a red fox", explain=True)
    assert isinstance(r, RatingResult)
    assert r.score == pytest.approx(expected_overall(video))
    assert 1 <= r.score <= 5 and r.score_100 == pytest.approx((r.score - 1) * 25)
    assert set(r.groups) == set(STREAMS)
    assert "prompt_alignment" in r.dimensions and "sharpness" in r.dimensions
    assert r.dimensions["sharpness"].group == "technical"
    assert r.dimensions["sharpness"].statistics == {"sharpness": pytest.approx(r.statistics["sharpness"])}
    assert r.statistics["prompt_alignment"] == pytest.approx(0.09)
    assert r.justification.startswith("Value")
    assert {"features", "explain", "score", "total"} <= set(r.timings)
    assert isinstance(r.evidence, list) and r.to_dict()["evidence"] == r.evidence
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("score", "score_100", "level", "distribution", "spread", "groups", "dimensions", "statistics",
                "justification", "timings"):
        assert key in d
    assert list(d["distribution"]) == list(LEVELS)
    assert d["dimensions"]["noise"]["level"] in LEVELS
    # every group and dimension was scored once, with its own question and answer prefix, and the prompt
    asked = [(prefix, q, p, ps) for prefix, q, p, ps in a.model.scored if prefix != "overall"]
    assert len(asked) == len(STREAMS) + len(load_dimensions())
    assert len({prefix for prefix, *_ in asked}) == len(asked)
    assert all(p == "a red fox" and ps == {"prompt_alignment": pytest.approx(0.09)} for _, _, p, ps in asked)
    sharp = next((prefix, q) for prefix, q, *_ in asked if "clarity" in prefix)
    assert sharp[0] == "In terms of clarity, this video is" and "clarity" in sharp[1] and "a red fox" in sharp[1]


def test_rate_without_prompt_skips_prompt_alignment_and_explain(video):
    a = make_assessor()
    r = a.rate(video, explain=False)
    assert "prompt_alignment" not in r.dimensions and "prompt_alignment" not in r.statistics
    assert r.justification is None and "score" in r.timings
    r2 = a.rate(video, explain=False, dimensions=False)
    assert r2.dimensions == {} and r2.groups == {}
    assert r2.score == pytest.approx(r.score)


def test_render_text_shows_scores_bars_levels_and_justification(video):
    r = make_assessor().rate(video, prompt="a red fox")
    text = render_text(r)
    assert f"{r.score:.2f} / 5" in text and f"{r.score_100:.0f} / 100" in text
    sharp = r.dimensions["sharpness"]
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("sharpness"))
    assert bar(sharp.score) in line and sharp.level in line
    assert "Why:" in text and r.justification.splitlines()[0] in text
    assert f"sharpness {r.statistics['sharpness']:.3g}" in text
    assert text.index("technical") < text.index("sharpness") < text.index("motion") < text.index("flicker")


# ---------------------------------------------------------------- features cache and chat

def test_features_extracted_once_per_unchanged_file(video):
    a = make_assessor()
    a.rate(video, explain=False)
    a.chat(video, [{"role": "user", "content": "why?"}])
    assert a.extractor.calls == 1
    time.sleep(0.01)
    video.write_bytes(b"changed content")
    r = a.rate(video, explain=False, dimensions=False)
    assert a.extractor.calls == 2
    assert r.score == pytest.approx(expected_overall(video))


def test_chat_passes_history_to_model(video):
    a = make_assessor()
    msgs = [{"role": "user", "content": "rate it"}, {"role": "assistant", "content": "fair"},
            {"role": "user", "content": "why is the motion poor?"}]
    reply = a.chat(video, msgs)
    assert reply.startswith("answer 3") and reply.endswith("why is the motion poor?")
    assert a.model.chats[-1] == msgs
    for bad in ([], [{"role": "user"}], [{"role": "robot", "content": "x"}], [{"role": "assistant", "content": "x"}]):
        with pytest.raises(LlmvqaError):
            a.chat(video, bad)


def test_concurrent_rate_calls_do_not_mix(tmp_path):
    a = make_assessor(delay=0.01)
    paths = []
    for i in range(6):
        p = tmp_path / f"v{i}.mp4"
        p.write_bytes(f"video {i}".encode() * 50)
        paths.append(p)
    results: dict[int, float] = {}

    def work(i):
        results[i] = a.rate(paths[i], explain=False, dimensions=False).score

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, p in enumerate(paths):
        assert results[i] == pytest.approx(expected_overall(p))


# ---------------------------------------------------------------- resolving videos and models

def test_missing_video_is_a_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        resolve_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoError, match="example:bikes"):
        resolve_video("example:nope")


def test_example_resolves_to_shipped_clip(bikes_path):
    assert resolve_video("example:bikes") == Path(bikes_path)


def test_model_dir_errors(tmp_path, monkeypatch):
    import llmvqa.assessor as mod

    monkeypatch.setattr(mod, "DEFAULT_MODEL_DIR", tmp_path / "missing")
    with pytest.raises(ModelError, match="train.sh"):
        resolve_model_dir(None)
    with pytest.raises(ModelError, match="config.json"):
        resolve_model_dir(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_dir(tmp_path) == tmp_path


def test_dimensions_cover_the_sig_groups():
    dims = load_dimensions()
    assert {d.group for d in dims} == set(STREAMS)
    assert [d.key for d in dims if d.needs_prompt] == ["prompt_alignment"]


def test_aspect_query_ends_where_the_level_word_follows():
    question, prefix = aspect_query("group", "motion", None)
    assert prefix == "In terms of motion quality, this video is" and "motion quality" in question
    question, prefix = aspect_query("dimension", "flicker", "a cat")
    assert prefix == "In terms of flicker, this video is" and "a cat" in question


def test_the_json_result_satisfies_its_published_schema(video):
    import jsonschema

    from llmvqa.result import json_schema

    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    a = make_assessor()
    plain = json.loads(json.dumps(a.rate(video, explain=False).to_dict()))
    a.model.interval = {"coverage": 0.8, "half_width": 0.4}
    full = json.loads(json.dumps(a.rate(video, prompt="a red fox", explain=True).to_dict()))
    for d in (plain, full):
        validator.validate(d)
    assert plain["justification"] is None and plain["interval"] is None and full["interval"]["coverage"] == 0.8
    # and it is strict enough to catch a broken result
    for key, bad in (("score", 6.0), ("level", "great"), ("undocumented", 1)):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({**full, key: bad})
    broken = json.loads(json.dumps(full))
    broken["dimensions"]["noise"]["distribution"].pop("bad")
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_every_example_name_resolves_to_a_real_clip():
    from llmvqa.assessor import EXAMPLES

    for name in EXAMPLES:
        path = resolve_video(f"example:{name}")
        assert path.is_file() and path.suffix == ".mp4", name


def test_a_calibrated_model_gives_an_interval_around_the_score_and_levels_the_text_states(video):
    a = make_assessor()
    a.model.interval = {"coverage": 0.8, "half_width": 0.4}
    r = a.rate(video, prompt="a red fox", explain=True)
    assert r.interval["coverage"] == 0.8
    assert r.interval["low"] == pytest.approx(max(1.0, r.score - 0.4))
    assert r.interval["high"] == pytest.approx(min(5.0, r.score + 0.4))
    assert json.loads(json.dumps(r.to_dict()))["interval"] == r.interval
    assert "80% interval" in render_text(r)
    # the level is the level of the score, and the justification closes with it
    from llmvqa.levels import level_of_score

    assert r.level == level_of_score(r.score)
    assert r.justification.endswith(f"The overall quality of this video is {r.level}.")
    assert make_assessor().rate(video).interval is None


# ---------------------------------------------------------------- compare
def test_p_better_from_two_level_distributions():
    from llmvqa.compare import p_better
    from llmvqa.levels import LevelRating

    sure_good = LevelRating.from_probs("x", [0, 1, 0, 0, 0])
    sure_fair = LevelRating.from_probs("x", [0, 0, 1, 0, 0])
    half = LevelRating.from_probs("x", [0, 0.5, 0.5, 0, 0])
    assert p_better(sure_good, sure_fair) == pytest.approx(1.0)
    assert p_better(sure_fair, sure_good) == pytest.approx(0.0)
    assert p_better(sure_good, sure_good) == pytest.approx(0.5)
    assert p_better(half, sure_fair) == pytest.approx(0.5 * 1 + 0.5 * 0.5)


def _two_ratings(tmp_path):
    """The test assessor, two clip paths and their ratings (without dimensions' evidence)."""
    a = make_assessor()
    p1, p2 = tmp_path / "a.mp4", tmp_path / "b.mp4"
    p1.write_bytes(b"clip one " * 50)
    p2.write_bytes(b"clip two, other bytes " * 50)
    ra, rb = a.rate(p1, explain=False), a.rate(p2, explain=False)
    ra.evidence, rb.evidence = [], []
    return a, (p1, p2), ra, rb


def test_compare_names_the_better_clip_and_the_defects_that_differ(tmp_path):
    from llmvqa.compare import compare_results, render_comparison

    a, (p1, _), ra, rb = _two_ratings(tmp_path)
    rb.evidence = [{"dimension": "smoothness", "kind": "freeze", "start": 2.0, "end": 2.5, "strength": 0.8,
                    "text": "the picture freezes from 2.0 s to 2.5 s", "local": True}]
    c = compare_results(ra, rb)
    expect = "a" if ra.score > rb.score else "b"
    assert c.better in (expect, "tie") and set(c.aspects) >= {"technical", "sharpness"}
    assert c.why == ["B: the picture freezes from 2.0 s to 2.5 s (not in A)"]
    assert "Why" in render_comparison(c) and c.to_dict()["overall"]["better"] == c.better
    assert a.compare(p1, p1).better == "tie"  # a clip against itself


def test_compare_explains_decisive_dimensions_by_the_statistics_behind_them(tmp_path):
    from llmvqa.compare import compare_results, render_comparison
    from llmvqa.levels import LevelRating

    a, _, ra, rb = _two_ratings(tmp_path)
    sure, poor, even = [0.9, 0.1, 0, 0, 0], [0, 0, 0.2, 0.8, 0], [0.2] * 5
    for r, compression, sharpness, flicker in ((ra, sure, poor, even), (rb, poor, sure, even)):
        r.dimensions = {"compression": LevelRating.from_probs("compression", compression),
                        "sharpness": LevelRating.from_probs("sharpness", sharpness),
                        "flicker": LevelRating.from_probs("flicker", flicker)}
    ra.statistics.update(blockiness=1.03, sharpness=5.0)
    rb.statistics.update(blockiness=1.40, sharpness=4.0)  # B less sharp by the measure, yet rated sharper
    stats_of = a.statistics_of()
    assert stats_of["compression"] == ("blockiness",)
    c = compare_results(ra, rb, stats_of)
    assert c.why[0] == ("B: compression rated lower (P(A better) = 1.00): blockiness 1.4 against 1.03 in A "
                        "(lower is better)")
    assert c.why[1] == "A: sharpness rated lower (P(A better) = 0.00)"  # its statistic says otherwise: not quoted
    assert len(c.why) == 2  # flicker is not decisive
    assert "Why:" in render_comparison(c)
    rb.evidence = [{"dimension": "compression", "kind": "blocky", "start": 0.0, "end": 4.0, "strength": 0.5,
                    "text": "compression blocks fill the picture", "local": False}]
    c = compare_results(ra, rb, stats_of)  # a measured defect explains it: the statistic is not repeated
    assert c.why == ["B: compression blocks fill the picture (not in A)", "A: sharpness rated lower (P(A better) = 0.00)"]
    assert compare_results(ra, rb).why == ["B: compression blocks fill the picture (not in A)"]  # no mapping given


def test_a_cancelled_rating_stops_between_stages_before_the_model_runs(video):
    import threading

    from llmvqa.cancel import Cancelled, cancellable

    a = make_assessor()
    event = threading.Event()
    event.set()  # the server sets it when the request passes its deadline
    with cancellable(event), pytest.raises(Cancelled):
        a.rate(video, explain=True)
    assert a.model.scored == []  # stopped after the features: nothing was scored or generated
    a.rate(video, explain=False)  # outside the block the same assessor works as before
    assert a.model.scored
