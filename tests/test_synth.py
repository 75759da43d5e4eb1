"""The synthetic SIG corpus: degradations do what they claim, targets, splits, determinism, files."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from llmvqa.corpus import degradations as D
from llmvqa.corpus import sources as S
from llmvqa.corpus.synth import SynthConfig, assign_splits, plan_clips, render_clip, synthesize, usable_sources
from llmvqa.errors import ConfigError

TINY_SOURCES = ["carphone", "bikes_cyclist", "bikes_railing", "coffee", "astronaut", "chelsea", "rocket"]


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """A real photo panned smoothly: uint8 (8, 64, 64, 3)."""
    return S.render(S.SOURCE_BY_NAME["astronaut"], 64, 8, 8.0, np.random.default_rng(0))


@pytest.fixture(scope="module")
def other() -> np.ndarray:
    return S.render(S.SOURCE_BY_NAME["coffee"], 64, 8, 8.0, np.random.default_rng(1))


def _lap_var(frames: np.ndarray) -> float:
    return float(np.mean([cv2.Laplacian(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var() for f in frames]))


def _deg(frames, name, s, seed=0, other=None):
    return D.apply(frames, name, s, np.random.default_rng(seed), other=other)


FRAME_DEGS = [n for n, d in D.DEGRADATIONS.items() if d.stage == "frames"]


@pytest.mark.parametrize("name", FRAME_DEGS)
def test_strength_zero_is_identity_and_positive_strength_changes(name, clip, other):
    assert np.array_equal(_deg(clip, name, 0.0, other=other), clip)
    out = _deg(clip, name, 0.8, other=other)
    assert out.shape == clip.shape and out.dtype == np.uint8
    assert not np.array_equal(out, clip)


def test_blur_lowers_and_noise_raises_laplacian_variance(clip):
    base = _lap_var(clip)
    assert _lap_var(_deg(clip, "blur", 1.0)) < _lap_var(_deg(clip, "blur", 0.2)) < base
    assert base < _lap_var(_deg(clip, "noise", 0.3)) < _lap_var(_deg(clip, "noise", 0.9))


def test_exposure_contrast_color(clip):
    base = clip.astype(float)
    for seed in range(4):  # direction is random; the shift in mean brightness grows with strength
        weak = abs(_deg(clip, "exposure", 0.3, seed).mean() - base.mean())
        strong = abs(_deg(clip, "exposure", 1.0, seed).mean() - base.mean())
        assert strong > weak > 2.0
    assert _deg(clip, "contrast", 0.9).std() < 0.5 * base.std()
    sat = lambda f: float(f.astype(float).std(axis=-1).mean())  # noqa: E731 — spread across channels
    assert sat(_deg(clip, "desaturate", 0.9)) < 0.3 * sat(clip)
    shifted = _deg(clip, "color_shift", 1.0).astype(float).mean(axis=(0, 1, 2))
    assert np.abs(shifted / base.mean(axis=(0, 1, 2)) - 1).max() > 0.15


def test_flicker_raises_brightness_variation(clip):
    per_frame = lambda f: f.astype(float).mean(axis=(1, 2, 3))  # noqa: E731
    assert per_frame(_deg(clip, "flicker", 0.9)).std() > per_frame(clip).std() + 5.0


def test_jitter_shakes_a_still_clip():
    still = np.repeat(S.render(S.SOURCE_BY_NAME["coffee"], 64, 1, 8.0, np.random.default_rng(0)), 8, axis=0)
    out = _deg(still, "jitter", 1.0)
    diffs = np.abs(np.diff(out.astype(float), axis=0)).mean(axis=(1, 2, 3))
    assert (diffs > 1.0).sum() >= 5


def test_frozen_repeats_real_frames(clip):
    out = _deg(clip, "frozen", 0.8)
    same = [np.array_equal(out[i], out[i - 1]) for i in range(1, len(out))]
    assert any(same)
    assert all(any(np.array_equal(f, g) for g in clip) for f in out)
    assert np.array_equal(out[0], clip[0])


def test_ghosting_blends_previous_frames(clip):
    out = _deg(clip, "ghosting", 0.8).astype(float)
    assert np.array_equal(out[0], clip[0])
    # a ghost frame lies between the current and the previous frames
    assert np.abs(out[-1] - clip[-2]).mean() < np.abs(clip[-1].astype(float) - clip[-2]).mean()


def test_morphing_grows_over_time(clip):
    err = np.abs(_deg(clip, "morphing", 1.0).astype(float) - clip).mean(axis=(1, 2, 3))
    assert err[0] == 0 and err[-1] > err[len(err) // 2] > 0


def test_mutation_switches_content(clip, other):
    out = _deg(clip, "mutation", 1.0, other=other)
    t = len(clip)
    assert np.array_equal(out[0], clip[0]) and np.array_equal(out[-1], other[-1])
    assert np.array_equal(out[t // 2 :], other[t // 2 :])
    weak = _deg(clip, "mutation", 0.25, other=other)
    assert np.array_equal(weak[-1], other[-1]) and np.array_equal(weak[: t // 2], clip[: t // 2])


@pytest.mark.parametrize("name", ["carphone", "coffee"])
def test_static_render_has_no_motion(name):
    src = S.SOURCE_BY_NAME[name]
    still = S.render(src, 64, 8, 8.0, np.random.default_rng(0), speed=0.0)
    moving = S.render(src, 64, 8, 8.0, np.random.default_rng(0), speed=1.0)
    motion = lambda f: np.abs(np.diff(f.astype(float), axis=0)).mean()  # noqa: E731
    assert motion(still) == 0.0
    assert motion(moving) > 1.0


def test_compression_is_a_real_low_bitrate_encode(clip, tmp_path):
    from llmvqa.video.writer import write_video

    rates = [D.bitrate_for(s, (256, 256), 8.0) for s in (0.2, 0.6, 1.0)]
    assert D.bitrate_for(0.0, (256, 256), 8.0) is None and rates[0] > rates[1] > rates[2]
    hi = write_video(tmp_path / "hi.mp4", clip, crf=18)
    lo = write_video(tmp_path / "lo.mp4", clip, bitrate=D.bitrate_for(1.0, (64, 64), 8.0))
    assert lo.stat().st_size < 0.5 * hi.stat().st_size


@pytest.mark.parametrize("name", list(D.DEGRADATIONS))
def test_targets_fall_with_strength_on_the_hurt_dimensions_only(name):
    deg = D.DEGRADATIONS[name]
    prev = D.targets([])
    assert all(v == 1.0 for v in prev.values())
    for s in (0.2, 0.5, 1.0):
        cur = D.targets([(name, s)])
        assert cur["overall"] < prev["overall"]
        for dim in D.ALL_DIMENSIONS:
            assert 0.0 <= cur[dim] <= 1.0
            assert (cur[dim] < prev[dim]) if dim in deg.dimensions else (cur[dim] == 1.0)
        prev = cur
    both = D.targets([(name, 0.5), ("blur", 0.5)])
    assert both["overall"] < D.targets([(name, 0.5)])["overall"]


def test_splits_are_disjoint_and_test_has_video_and_photo():
    split = assign_splits(list(S.SOURCES), seed=0)
    assert set(split) == set(S.SOURCE_BY_NAME)
    for name in ("val", "test"):
        kinds = {S.SOURCE_BY_NAME[s].kind for s, sp in split.items() if sp == name}
        assert kinds == {"video", "photo"}
    assert sum(sp == "train" for sp in split.values()) >= 0.6 * len(split)
    assert assign_splits(list(S.SOURCES), seed=0) == split


def test_source_names_unique_prompts_nonempty_and_enough_sources():
    names = [s.name for s in S.SOURCES]
    assert len(names) == len(set(names)) and len(names) >= 26
    assert all(s.prompt.strip() and s.kind in ("video", "photo") for s in S.SOURCES)
    assert len({s.prompt for s in S.SOURCES}) == len(names)


@pytest.mark.parametrize("name", list(S.SOURCE_BY_NAME))
def test_every_source_renders_offline(name):
    src = S.SOURCE_BY_NAME[name]
    out = S.render(src, 64, 8, 8.0, np.random.default_rng(0))
    assert out.shape == (8, 64, 64, 3) and out.dtype == np.uint8
    assert out.std() > 5.0  # real content, not a blank frame
    assert np.abs(np.diff(out.astype(float), axis=0)).mean() > 0.1  # it moves


@pytest.mark.parametrize("name", [s.name for s in S.SOURCES if s.kind == "photo"])
def test_gray_flag_matches_the_photo(name):
    canvas = S._photo_canvas(name, 64)
    equal = np.array_equal(canvas[..., 0], canvas[..., 1]) and np.array_equal(canvas[..., 1], canvas[..., 2])
    assert equal == S.SOURCE_BY_NAME[name].gray


def test_photo_loaders_of_each_library_and_crops():
    assert S.load_photo("sklearn:china.jpg").shape == (427, 640, 3)
    assert S.load_photo("mpl:grace_hopper.jpg").shape[2] == 3
    assert np.array_equal(S.load_photo("skimage:coffee"), S.load_photo("coffee"))  # plain name = skimage
    with pytest.raises(ConfigError, match="unknown photo library"):
        S.load_photo("imageio:chelsea.png")
    # the two crops of china.jpg are different regions: different aspect ratios and content
    pagoda, lake = S._photo_canvas("china_pagoda", 64), S._photo_canvas("china_lake", 64)
    assert pagoda.shape != lake.shape


def test_gray_sources_never_get_desaturate():
    gray = {s.name for s in S.SOURCES if s.gray}
    assert len(gray) >= 6
    cfg = SynthConfig(out=Path("unused"), clips_per_source=60, seed=0)
    plans = plan_clips(cfg, list(S.SOURCES))
    used = [n for p in plans if p.source in gray for n, _ in p.degradations]
    assert "desaturate" not in used and len(set(used)) >= 5  # the gray sources still get the other degradations
    assert any(n == "desaturate" for p in plans if p.source not in gray for n, _ in p.degradations)
    assert plan_clips(cfg, list(S.SOURCES)) == plans  # deterministic per seed


def _tiny(out: Path, **kw) -> SynthConfig:
    return SynthConfig(out=out, clips_per_source=3, size=64, seconds=1.0, fps=8.0, seed=3, sources=TINY_SOURCES,
                       twin_fraction=0.5, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    return out, synthesize(_tiny(out), progress=False)


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_corpus_files_and_records(corpus):
    out, summary = corpus
    recs = _manifest(out)
    clips = [r for r in recs if r["twin_of"] is None]
    assert len(clips) == 3 * len(TINY_SOURCES) == summary["clips"]
    assert sum(summary["overall_levels_clips"].values()) == len(clips)
    for r in recs:
        assert not Path(r["video"]).is_absolute() and (out / r["video"]).is_file()
        assert set(r["scores"]) == {*D.ALL_DIMENSIONS, "overall"}
        assert all(0.0 <= v <= 1.0 for v in r["scores"].values())
        assert r["scores"] == {k: round(v, 4) for k, v in D.targets(
            [(d["name"], d["strength"]) for d in r["degradations"]]).items()}
        assert len(r["degradations"]) <= 2 + (r["twin_of"] is not None)
    import av

    with av.open(str(out / clips[0]["video"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3)


def test_corpus_splits_are_disjoint_by_source(corpus):
    out, _ = corpus
    by_source: dict[str, set[str]] = {}
    for r in _manifest(out):
        by_source.setdefault(r["source"], set()).add(r["split"])
    assert all(len(s) == 1 for s in by_source.values())
    assert {sp for s in by_source.values() for sp in s} == {"train", "val", "test"}


def test_wrong_prompt_twins(corpus):
    out, _ = corpus
    recs = {r["id"]: r for r in _manifest(out)}
    pairs = [json.loads(line) for line in (out / "pairs.jsonl").read_text().splitlines()]
    assert pairs, "no wrong-prompt twins written"
    for p in pairs:
        a, b = recs[p["id"]], recs[p["twin"]]
        assert b["twin_of"] == a["id"] and a["video"] == b["video"] and a["split"] == b["split"]
        assert a["prompt"] != b["prompt"] and a["prompt"] == S.SOURCE_BY_NAME[a["source"]].prompt
        assert b["scores"]["prompt_alignment"] < a["scores"]["prompt_alignment"]
        assert b["scores"]["overall"] < a["scores"]["overall"]


def _decoded(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(float)


def test_same_seed_same_corpus_and_existing_corpus_needs_overwrite(corpus, tmp_path):
    out, _ = corpus
    again = tmp_path / "again"
    synthesize(_tiny(again), progress=False)
    assert (again / "manifest.jsonl").read_bytes() == (out / "manifest.jsonl").read_bytes()
    cfg = _tiny(again)
    srcs, _ = usable_sources(cfg)
    plans = plan_clips(cfg, srcs)
    assert all(np.array_equal(render_clip(p, cfg), render_clip(p, cfg)) for p in plans[:8])
    # x264 in this PyAV/FFmpeg build is not bit-repeatable (seen: ~1–2 grey levels apart), so compare decoded content
    for r in _manifest(out)[:8]:
        a, b = _decoded(again / r["video"]), _decoded(out / r["video"])
        assert a.shape == b.shape and np.abs(a - b).mean() < 3.0  # another clip differs by tens
    with pytest.raises(ConfigError, match="overwrite"):
        synthesize(_tiny(again), progress=False)
    other_seed = tmp_path / "seed4"
    cfg = _tiny(other_seed)
    cfg.seed = 4
    synthesize(cfg, progress=False)
    assert (other_seed / "manifest.jsonl").read_bytes() != (out / "manifest.jsonl").read_bytes()


def test_bad_settings_raise_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--size"):
        SynthConfig(out=tmp_path, size=63)
    with pytest.raises(ConfigError, match="--sources"):
        synthesize(SynthConfig(out=tmp_path, sources=["nope"]), progress=False)


# ---------------------------------------------------------------- extra sources (--extra-sources)

def _write_source_clip(path: Path, seed: int, n: int = 16, fps: float = 8.0, size: int = 80) -> np.ndarray:
    """A moving textured clip written as a real H.264 file; returns its frames."""
    from llmvqa.video.writer import write_video

    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
    frames = np.stack([base[2 * t : 2 * t + size, 3 * t : 3 * t + size] for t in range(n)])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames, fps=fps, crf=10)
    return frames


@pytest.fixture
def registry(monkeypatch):
    """Extra sources registered by a test do not leak into the shared registry."""
    monkeypatch.setattr(S, "SOURCE_BY_NAME", dict(S.SOURCE_BY_NAME))
    return S.SOURCE_BY_NAME


def test_file_sources_read_the_manifest_group_by_prompt_and_note_what_is_left_out(tmp_path):
    _write_source_clip(tmp_path / "a" / "one.mp4", 0)
    _write_source_clip(tmp_path / "a" / "two.mp4", 1)
    _write_source_clip(tmp_path / "b" / "three.mp4", 2)
    (tmp_path / "b" / "unlisted_prompt.mp4").write_bytes(b"x")
    known = "AnimateDiff/__assets__/animations/compare/new_0.gif"  # described in EXAMPLE_PROMPTS
    (tmp_path / known).parent.mkdir(parents=True)
    (tmp_path / known).write_bytes(b"x")
    (tmp_path / "MANIFEST.csv").write_text(
        "path,source,license,prompt\n"
        "a/one.mp4,x,MIT,a red fox in the snow\n"
        "a/two.mp4,x,MIT,A red fox in the snow\n"          # same content rendered twice: one group
        "b/three.mp4,x,MIT,a sailing boat on a lake\n"
        "b/unlisted_prompt.mp4,x,MIT,\n"                    # no prompt anywhere: left out
        "b/missing.mp4,x,MIT,a cat\n"                       # listed but not there: left out
        f"{known},x,Apache-2.0,\n")
    sources, notes = S.file_sources(tmp_path)
    by_file = {Path(s.loader[len("file:"):]).name: s for s in sources}
    assert set(by_file) == {"one.mp4", "two.mp4", "three.mp4", "new_0.gif"}
    assert all(s.kind == "video" and s.split_kind == "file" and s.name.startswith("file_") for s in sources)
    assert len({s.name for s in sources}) == 4
    assert by_file["one.mp4"].unit == by_file["two.mp4"].unit != by_file["three.mp4"].unit
    assert by_file["new_0.gif"].prompt.startswith("a black-and-white portrait") and by_file["new_0.gif"].unit == "ad_compare_0"
    assert len(notes) == 2 and any("unlisted_prompt.mp4" in n and "no prompt" in n for n in notes)
    assert any("missing.mp4" in n and "missing" in n for n in notes)
    with pytest.raises(ConfigError, match="MANIFEST.csv"):
        S.file_sources(tmp_path / "a")


def test_every_clip_of_the_developers_aigc_examples_has_a_prompt():
    root = Path("/work/shared/data/aigc_examples")
    if not (root / "MANIFEST.csv").is_file():
        pytest.skip("aigc_examples is only on developer machines")
    sources, notes = S.file_sources(root)
    assert notes == [] and len(sources) == 108
    assert len({s.name for s in sources}) == len(sources)


def test_a_source_about_as_fast_as_the_clip_plays_real_frames_not_blends(tmp_path, registry):
    _write_source_clip(tmp_path / "slowish.mp4", 3, n=20, fps=7.5)
    (tmp_path / "MANIFEST.csv").write_text("path,prompt\nslowish.mp4,a texture moving right\n")
    (src,), _ = S.file_sources(tmp_path)
    S.register([src])
    out = S.render(src, 64, 16, 8.0, np.random.default_rng(0))
    assert out.shape == (16, 64, 64, 3)
    shot, _ = S._video_shot(src.name, 64)  # the decoded shot, resized to 64 × 64: the crop is all of it
    assert shot.shape[1:3] == (64, 64)
    # every output frame is one decoded source frame (a blend of two would match neither)
    for f in out:
        assert min(np.abs(f.astype(int) - s.astype(int)).mean() for s in shot) < 0.5
    diffs = [np.abs(out[i].astype(int) - out[i + 1].astype(int)).mean() for i in range(15)]
    assert min(diffs) > 1.0  # no held frames either


def test_synth_with_extra_sources_splits_by_group(tmp_path, registry):
    root = tmp_path / "extra"
    for i, prompt in enumerate(["a red fox in the snow", "a red fox in the snow", "a sailing boat on a lake",
                                "a bowl of oranges", "a city street at night"]):
        _write_source_clip(root / f"clip{i}.mp4", 10 + i)
        with (root / "MANIFEST.csv").open("a") as f:
            f.write(("path,prompt\n" if i == 0 else "") + f"clip{i}.mp4,{prompt}\n")
    extra, _ = S.file_sources(root)
    cfg = SynthConfig(out=tmp_path / "corpus", size=64, seconds=1.0, clips_per_source=2, extra_sources=root,
                      sources=TINY_SOURCES + [s.name for s in extra])
    summary = synthesize(cfg, progress=False)
    records = [json.loads(line) for line in (cfg.out / "manifest.jsonl").read_text().splitlines()]
    split_of = {r["source"]: r["split"] for r in records}
    assert {s.name for s in extra} <= set(split_of)
    fox = [s.name for s in extra if "fox" in s.prompt]
    assert split_of[fox[0]] == split_of[fox[1]]  # the same content never crosses a split
    for r in records:  # a wrong prompt never names the same content
        if r["twin_of"] and r["source"] in fox:
            assert "fox" not in r["prompt"]
    assert summary["settings"]["extra_sources"] == str(root)
    assert all((cfg.out / r["video"]).is_file() for r in records)
