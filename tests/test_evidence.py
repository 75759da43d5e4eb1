"""Time-located evidence (llmvqa.evidence), the plans built on it (llmvqa.justify), the
justification validator and the controlled-defect helpers."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from llmvqa.encoders.motion import PAIR_FEATURES
from llmvqa.evaluation.defects import DIMENSION_OF, Defect, insert_defect, located
from llmvqa.evaluation.justification import violations
from llmvqa.evidence import Evidence, evidence_text, find_evidence, frame_times
from llmvqa.features import VideoFeatures
from llmvqa.justify import chat_plan, justification_plan, question_intent, question_target, question_window

T = 17  # frames, 0.25 s apart: 0 … 4 s


def crafted(freeze=(), flicker=(), blur=(), noise=(), shake=()) -> VideoFeatures:
    """Features whose per-pair rows and per-frame series carry the given defects (pair / frame indices)."""
    rng = np.random.default_rng(0)
    rows = np.zeros((T - 1, len(PAIR_FEATURES)), np.float32)
    col = {c: PAIR_FEATURES.index(c) for c in PAIR_FEATURES}
    rows[:, col["dt"]] = 0.25
    rows[:, col["frame_diff"]] = 0.02
    rows[:, col["median_dx"]] = 0.01 + rng.normal(0, 0.0005, T - 1)  # a steady pan
    rows[:, col["luma_change"]] = rng.normal(0, 0.3, T - 1) / 255
    for i in freeze:
        rows[i, col["frozen"]] = 1.0
    for k, i in enumerate(flicker):
        rows[i, col["luma_change"]] = (25 if k % 2 == 0 else -25) / 255
    for k, i in enumerate(shake):
        rows[i, col["median_dx"]] = 0.01 + (0.05 if k % 2 == 0 else -0.05)
    sharp = np.full(T, 6.0) + rng.normal(0, 0.1, T)
    sharp[list(blur)] = 3.5
    sigma = np.full(T, 1.0) + rng.normal(0, 0.05, T)
    sigma[list(noise)] = 12.0
    emb = torch.nn.functional.normalize(torch.ones(8, 16) + 0.01 * torch.randn(8, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    return VideoFeatures(
        tokens={"technical": torch.zeros(8, 4), "motion": torch.from_numpy(rows), "semantic": emb},
        stats={"sharpness": 6.0, "noise": 1.0, "blockiness": 1.0, "underexposure": 0.0, "overexposure": 0.0,
               "saturation": 0.3},
        meta={"timestamps": json.dumps([0.25 * i for i in range(T)])},
        series={"sharpness": torch.tensor(sharp, dtype=torch.float32), "noise": torch.tensor(sigma, dtype=torch.float32),
                "brightness": torch.full((T,), 0.5)},
    )


def by_kind(ev: list[Evidence]) -> dict[str, Evidence]:
    return {e.kind: e for e in ev}


def test_a_clean_clip_has_no_evidence():
    assert find_evidence(crafted()) == []
    assert evidence_text([]) == "Measured in this clip: no defect stands out."


def test_each_local_defect_is_found_where_it_is():
    ev = by_kind(find_evidence(crafted(freeze=(8, 9), flicker=(2, 3, 4), blur=range(12, 17), noise=(5, 6),
                                       shake=(13, 14, 15))))
    assert set(ev) == {"freeze", "flicker", "blur", "noise", "shake"}
    assert (ev["freeze"].start, ev["freeze"].end) == (2.0, 2.5)
    assert ev["freeze"].text == "the picture freezes from 2.0 s to 2.5 s" and ev["freeze"].dimension == "smoothness"
    assert ev["flicker"].start == 0.5 and ev["flicker"].dimension == "flicker"
    assert ev["blur"].start == pytest.approx(2.875) and ev["blur"].end == 4.0 and ev["blur"].dimension == "sharpness"
    assert 1.0 <= ev["noise"].start <= 1.25 and ev["noise"].dimension == "noise"
    assert ev["shake"].start == pytest.approx(3.25)
    assert all(e.local for e in ev.values())


def test_one_brightness_step_or_a_fade_is_not_flicker_and_all_frozen_is_static():
    f = crafted()
    rows = f.tokens["motion"].numpy()
    rows[6, PAIR_FEATURES.index("luma_change")] = 30 / 255  # a light switched on: one step
    assert "flicker" not in by_kind(find_evidence(f))
    rows[:, PAIR_FEATURES.index("frozen")] = 1.0
    ev = find_evidence(f)
    assert [e.kind for e in ev] == ["static"] and not ev[0].local


def test_whole_clip_defects_come_from_the_statistics():
    f = crafted()
    f.stats.update(underexposure=0.4, blockiness=1.6)
    ev = by_kind(find_evidence(f))
    assert ev["dark"].text == "about 40% of the picture is crushed to black" and ev["dark"].dimension == "exposure"
    assert ev["blocky"].dimension == "compression" and not ev["blocky"].local


def test_frame_times_fall_back_to_the_pair_durations():
    f = crafted()
    del f.meta["timestamps"]
    np.testing.assert_allclose(frame_times(f), [0.25 * i for i in range(T)])


# ---------------------------------------------------------------- plans
LEVELS = {"overall": "fair", "technical": "good", "motion": "poor", "semantic": "good", "sharpness": "good",
          "noise": "excellent", "compression": "good", "exposure": "good", "color": "good", "dynamic_degree": "good",
          "smoothness": "poor", "flicker": "excellent", "temporal_consistency": "good", "semantic_consistency": "good"}


def test_the_default_text_of_a_plan_passes_the_validator_and_cites_every_defect():
    ev = find_evidence(crafted(freeze=(8, 9), flicker=(2, 3, 4)))
    text = justification_plan(LEVELS, ev).default_text(random.Random(0))
    assert violations(text, LEVELS, [e.text for e in ev]) == []
    assert "The picture freezes from 2.0 s to 2.5 s." in text  # smoothness is poor: the evidence as it is
    assert "Minor (flicker): brightness jumps up and down" in text  # flicker still rates excellent
    assert "In terms of flicker" not in text  # a minor flaw is named for its dimension, without a level
    assert "In terms of noise" not in text  # praised briefly
    assert text.index("freezes") < text.index("In terms of motion quality") < text.index("The overall quality")


def test_the_validator_catches_what_a_plan_never_writes():
    assert "states two levels" in " ".join(violations(
        "In terms of clarity, this video is good. In terms of clarity, this video is poor. "
        "The overall quality of this video is fair.", {"overall": "fair"}))
    assert violations("It freezes at 3.0 s. The overall quality of this video is fair.", {"overall": "fair"},
                      ["the picture freezes from 2.0 s to 2.5 s"])
    assert violations("The overall quality of this video is good.", {"overall": "fair"})


def test_questions_map_to_intents_targets_and_windows():
    assert question_intent("which part looks worst?") == "worst"
    assert question_intent("why is the motion poor?") == "why" and question_target("why is the motion poor?") == "motion"
    assert question_intent("how could the generator improve this video?") == "improve"
    assert question_intent("is there any flicker in the first second?") == "yesno"
    assert question_target("is there any flicker in the first second?") == "flicker"
    assert question_target("is it blurry?") == "sharpness"
    assert question_window("is there any flicker in the first second?", 4.0)[:2] == (0.0, 1.0)
    assert question_window("anything wrong in the last 2 seconds?", 4.0)[:2] == (2.0, 4.0)


def test_chat_plans_hold_only_true_answers():
    ev = find_evidence(crafted(freeze=(8, 9)))
    worst = chat_plan("which part looks worst?", LEVELS, ev, 4.0)
    assert worst.slots[0].texts == ["The picture freezes from 2.0 s to 2.5 s."]
    flicker = chat_plan("is there any flicker?", LEVELS, ev, 4.0).default_text()
    assert flicker == "I measured no flicker problem."
    freeze = chat_plan("does it freeze in the first second?", LEVELS, ev, 4.0).default_text()
    assert freeze.startswith("Not in the first 1.0 s; elsewhere, the picture freezes from 2.0 s")
    fix = chat_plan("how could it improve?", LEVELS, ev, 4.0).default_text()
    assert "2.0 s to 2.5 s" in fix
    why = chat_plan("why is the motion smoothness poor?", LEVELS, ev, 4.0).default_text()
    assert why.endswith("In terms of motion smoothness, this video is poor.")


def test_a_low_level_without_a_measured_defect_is_never_answered_no_problem():
    """carphone_distorted: compression rates fair, but no statistic marks a time range. "Which part looks
    worst?" named no defect at all, and "how could it improve?" said the clip could stay as it is."""
    levels = {**LEVELS, "overall": "good", "motion": "good", "smoothness": "excellent", "compression": "fair"}
    worst = chat_plan("which part looks worst?", levels, [], 4.0).default_text()
    assert worst.startswith("No single part stands out; the weakest aspect is compression artifacts")
    assert worst.endswith("In terms of compression artifacts, this video is fair.")
    assert violations(worst, levels, closes_with_overall=False) == []
    fix = chat_plan("how could it improve?", levels, [], 4.0).default_text()
    assert fix == "Encode at a higher bitrate to reduce the compression artifacts."
    why = chat_plan("why is the technical quality only good?", levels, [], 4.0).default_text()
    assert "I measured no" not in why and "compression artifacts" in why
    assert why.endswith("In terms of technical quality, this video is good.")
    assert violations(why, levels, closes_with_overall=False) == []
    yes = chat_plan("is there any blocking?", levels, [], 4.0).default_text()
    assert "I measured no" not in yes and yes.endswith("In terms of compression artifacts, this video is fair.")
    # every dimension at good or better: nothing is invented
    fine = {k: ("good" if v in ("fair", "poor", "bad") else v) for k, v in levels.items()}
    assert chat_plan("which part looks worst?", fine, [], 4.0).default_text() == "I measured no defect in this clip."
    assert chat_plan("how could it improve?", fine, [], 4.0).default_text().startswith("I measured no defect to fix")
    assert chat_plan("is there any blocking?", fine, [], 4.0).default_text() == "I measured no compression artifacts problem."


# ---------------------------------------------------------------- controlled defects on a real clip
@pytest.fixture(scope="module")
def extractor():
    from llmvqa.encoders.pipeline import FeatureExtractor

    return FeatureExtractor()


@pytest.fixture(scope="module")
def carphone():
    from llmvqa.assessor import resolve_video
    from llmvqa.video.loader import load_clip
    from llmvqa.video.probe import probe

    path = resolve_video("example:carphone_pristine")
    clip = load_clip(path, nframes=probe(path).num_frames)
    return clip.frames[:120], 29.97


@pytest.mark.parametrize("kind,start,end", [("freeze", 1.0, 1.7), ("noise", 2.6, 3.6), ("blur", 2.0, 4.0)])
def test_a_defect_inserted_in_real_footage_is_found_in_time(tmp_path, extractor, carphone, kind, start, end):
    from llmvqa.video.writer import write_video

    frames, fps = carphone
    defect = Defect(kind, start, end)
    path = write_video(tmp_path / "c.mp4", insert_defect(frames, fps, defect, np.random.default_rng(0)), fps=fps)
    ev = find_evidence(extractor.extract(path))
    mine = [e for e in ev if e.dimension == DIMENSION_OF[kind]]
    assert mine and abs(mine[0].start - start) <= 0.5, [e.to_dict() for e in ev]
    assert located(f"{mine[0].sentence} In terms of clarity, this video is fair.", defect, "clarity")[1]


def test_a_time_counts_only_when_cited_for_the_affected_dimension():
    d = Defect("freeze", 2.0, 2.5)
    right = ("The picture freezes from 2.0 s to 2.5 s. In terms of motion smoothness, this video is poor. "
             "The overall quality of this video is fair.")
    wrong = ("Brightness jumps up and down from 2.1 s to 2.6 s. In terms of flicker, this video is fair. "
             "No problem was measured in motion smoothness. The overall quality of this video is fair.")
    assert located(right, d, "motion smoothness") == (True, True)
    minor = "Minor (motion smoothness): the picture freezes from 2.0 s to 2.5 s. The overall quality of this video is fair."
    assert located(minor, d, "motion smoothness") == (True, True)
    assert located(wrong, d, "motion smoothness") == (True, False)
