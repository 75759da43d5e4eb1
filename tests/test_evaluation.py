"""Evaluation suite: baselines, per-dimension / wrong-prompt checks, justification scores, judge, report, CLI.

Everything runs on tiny generated data with a fake assessor (no model, no video decoding).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import numpy as np
import pytest

from llmvqa.dimensions import load_dimensions
from llmvqa.errors import ModelError
from llmvqa.evaluation import baselines as B
from llmvqa.evaluation.datasets import load_eval_items, reference_levels, twin_pairs
from llmvqa.evaluation.judge import Judge, JudgeConfig, config_from, parse_scores
from llmvqa.evaluation.justification import coverage, evaluate_bench, level_agreement, score_answer, self_consistent
from llmvqa.evaluation.metrics import srcc
from llmvqa.evaluation.report import markdown, write_report
from llmvqa.evaluation.suite import EvalConfig, dimension_accuracy, evaluate_dataset, wrong_prompt_check
from llmvqa.levels import LEVEL_TO_WEIGHT, LEVELS, LevelRating, level_of_score
from llmvqa.result import RatingResult

DIMS = list(load_dimensions().dimensions)


# ----------------------------------------------------------------------------- fakes and tiny data
def probs_for(score: float) -> list[float]:
    """Level probabilities (LEVELS order) whose expected score is ``score`` (mass on two adjacent levels)."""
    s = float(np.clip(score, 1.0, 5.0))
    lo = math.floor(s) if s < 5 else 4
    frac = s - lo
    p = [0.0] * 5
    p[5 - lo] = 1.0 - frac  # weight lo sits at index 5 - lo
    p[5 - lo - 1] += frac
    return p


class FakeAssessor:
    """Rates from a table: (video name, prompt) → (overall score, {dimension: score}, statistics)."""

    name = "fake"

    def __init__(self, table: dict, fail: set[str] = frozenset()):
        self.table, self.fail, self.calls = table, fail, []

    def rate(self, video, prompt=None, explain=True, dimensions=True):
        name = Path(video).name
        self.calls.append((name, prompt, explain, dimensions))
        if name in self.fail:
            raise RuntimeError(f"cannot decode {name}")
        score, dims, stats = self.table[(name, prompt or "")]
        overall = LevelRating.from_probs("overall", probs_for(score))
        drs = {k: LevelRating.from_probs(k, probs_for(v)) for k, v in dims.items()} if dimensions else {}
        text = f"Blurry edges. The overall quality of this video is {overall.level}." if explain else None
        return RatingResult(video=str(video), overall=overall, prompt=prompt, dimensions=drs,
                            statistics=dict(stats), justification=text)


def write_synth(root: Path, n: int = 24, seed: int = 0) -> tuple[Path, dict]:
    """A tiny synth manifest (empty video files) with one wrong-prompt twin per 4th clip, and a fake table.

    The fake model ranks overall quality right (score = 1 + 4 · target), gets every dimension
    level right except ``noise`` (always "excellent"), and rates wrong-prompt alignment low.
    The statistic ``sharpness`` is informative (= target), ``noise`` is random.
    """
    rng = np.random.default_rng(seed)
    (root / "videos").mkdir(parents=True)
    lines, table = [], {}
    for i in range(n):
        video = f"videos/c{i:02d}.mp4"
        (root / video).write_bytes(b"")
        split = "train" if i < n // 2 else "test"
        scores = {d: float(rng.uniform(0.05, 0.95)) for d in DIMS}
        scores["prompt_alignment"] = float(rng.uniform(0.5, 0.95))  # the twin's wrong prompt scores 0.02
        scores["overall"] = float(rng.uniform(0.05, 0.95))
        prompt = f"a scene number {i}"
        twin = i % 4 == 0
        lines.append({"id": f"c{i:02d}", "video": video, "prompt": prompt, "source": f"s{i}", "split": split,
                      "degradations": [], "scores": scores, "twin_of": None})
        stats = {"sharpness": scores["overall"] * 5 + 2, "noise": float(rng.uniform(0, 20)), "prompt_alignment": 0.5}
        dims = {d: LEVEL_TO_WEIGHT[lv] for d, lv in reference_levels(scores).items() if d in DIMS}
        dims["noise"] = 5.0
        table[(Path(video).name, prompt)] = (1 + 4 * scores["overall"], dims, stats)
        if twin:
            wrong = dict(scores, prompt_alignment=0.02)
            lines.append({"id": f"c{i:02d}_wp", "video": video, "prompt": "a red bus", "source": f"s{i}",
                          "split": split, "degradations": [{"name": "wrong_prompt", "strength": 1.0}],
                          "scores": wrong, "twin_of": f"c{i:02d}"})
            table[(Path(video).name, "a red bus")] = (1 + 4 * scores["overall"], dict(dims, prompt_alignment=1.1),
                                                      dict(stats, prompt_alignment=0.0))
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    return manifest, table


# ----------------------------------------------------------------------------- baselines
def test_best_single_stat_picks_the_informative_column_with_its_sign():
    rng = np.random.default_rng(0)
    y = rng.uniform(1, 5, 80)
    x = rng.normal(size=(80, 4))
    x[:, 2] = -3 * y + rng.normal(scale=0.3, size=80)  # informative, negatively
    best = B.best_single_stat(x[:60], y[:60], ["a", "b", "c", "d"])
    assert (best.name, best.sign) == ("c", -1.0)
    pred = B.predict_best_stat(best, x[:60], x[60:])
    assert srcc(pred, y[60:]) > 0.9


def test_ridge_on_split_and_cross_validation_learns_a_linear_target():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 5))
    x[rng.random(x.shape) < 0.03] = np.nan  # missing values are imputed
    y = 2 * np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 3]) + rng.normal(scale=0.1, size=90)
    pred, alpha = B.fit_predict_ridge(x[:60], y[:60], x[60:])
    assert srcc(pred, y[60:]) > 0.9 and alpha > 0
    oof = B.cross_val_ridge(x, y, k=5)
    assert np.isfinite(oof).all() and srcc(oof, y) > 0.9
    noise = rng.normal(size=90)
    assert abs(srcc(B.cross_val_ridge(x, noise, k=5), noise)) < 0.4  # out-of-fold: no memorizing


def test_run_baselines_from_stat_dicts_both_protocols():
    rng = np.random.default_rng(2)
    y = rng.uniform(0, 1, 40)
    stats = [{"sharpness": float(v * 5), "noise": float(rng.uniform(0, 20))} for v in y]
    out = B.run_baselines(stats[20:], y[20:], stats[:20], y[:20])
    assert out["best_stat"]["statistic"] == "sharpness" and out["ridge"]["protocol"] == "train split"
    assert len(out["ridge"]["pred"]) == 20 and srcc(out["ridge"]["pred"], y[20:]) > 0.9
    cv = B.run_baselines(stats, y, k=4)
    assert cv["best_stat"]["fold_statistics"] == ["sharpness"] * 4
    assert srcc(cv["best_stat"]["pred"], y) > 0.95


# ----------------------------------------------------------------------------- level checks
def test_dimension_accuracy_on_a_hand_case():
    pred = [{"sharpness": "good", "noise": "bad", "overall": "fair"}, {"sharpness": "fair", "overall": "fair"}]
    ref = [{"sharpness": "good", "noise": "fair", "overall": "fair"}, {"sharpness": "good", "noise": "bad"}]
    acc = dimension_accuracy(pred, ref)
    assert acc["sharpness"] == {"accuracy": 0.5, "within_one": 1.0, "n": 2, "majority": 1.0,  # both refs good
                                "balanced_accuracy": 0.5, "majority_balanced": 1.0}
    assert acc["noise"] == {"accuracy": 0.0, "within_one": 0.0, "n": 1, "majority": 1.0,  # bad vs fair: 2 apart
                            "balanced_accuracy": 0.0, "majority_balanced": 1.0}
    # balanced accuracy: the mean of per-level recalls (good: 2 of 2 right, bad: 0 of 1) = 0.5; majority 1/2
    two = dimension_accuracy([{"x": "good"}, {"x": "good"}, {"x": "fair"}], [{"x": "good"}, {"x": "good"}, {"x": "bad"}])
    assert two["x"]["accuracy"] == pytest.approx(2 / 3) and two["x"]["balanced_accuracy"] == pytest.approx(0.5)
    assert two["x"]["majority_balanced"] == pytest.approx(0.5)
    assert acc["overall"]["n"] == 1  # the second video has no reference overall


def test_wrong_prompt_check_on_a_hand_case():
    pairs = [(("good", 4.1), ("poor", 2.0)),    # lower level, lower score
             (("fair", 3.2), ("fair", 2.9)),    # same level, lower score
             (("fair", 3.0), ("fair", 3.1)),    # same level, higher score
             (("poor", 2.0), ("good", 3.9))]    # higher
    r = wrong_prompt_check(pairs)
    assert r["pairs"] == 4
    assert r["lower_level"] == 0.25 and r["lower_score"] == 0.5 and r["lower_level_or_tied_lower_score"] == 0.5
    assert wrong_prompt_check([]) == {"pairs": 0}


# ----------------------------------------------------------------------------- datasets
def test_synth_manifest_items_levels_and_twins(tmp_path):
    manifest, _ = write_synth(tmp_path, n=8)
    items, bad = load_eval_items(manifest)
    assert not bad and len(items) == 10  # 8 clips + 2 twins
    assert {it.split for it in items} == {"train", "test"}
    assert all(0 <= it.target <= 1 and it.levels["overall"] in LEVELS for it in items)
    assert {"technical", "motion", "semantic"} <= set(items[0].levels)  # groups added
    pairs = twin_pairs(items)
    assert len(pairs) == 2 and all(items[i].video == items[j].video and items[j].prompt == "a red bus" for i, j in pairs)
    test_items, _ = load_eval_items(manifest, split="test")
    assert len(test_items) == 5 and len(twin_pairs(test_items)) == 1
    assert reference_levels({"overall": 0.95, "sharpness": 0.1})["sharpness"] == "bad"


def test_t2vqa_and_instruct_inputs(tmp_path):
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "info.txt").write_text("a.mp4|a cat|61.5\nb.mp4|a dog|x\nmissing.mp4|p|3\n", encoding="utf-8")
    items, bad = load_eval_items(tmp_path / "info.txt")
    assert [(it.video, it.prompt, it.target) for it in items] == [("a.mp4", "a cat", 61.5)] and len(bad) == 2
    recs = [{"id": f"r{i}", "video": "a.mp4", "prompt": "a cat", "scores": {"overall": 0.7}, "split": "test",
             "levels": {"overall": "good"}, "conversations": [], "task": "rating"} for i in range(3)]
    (tmp_path / "inst.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    items, _ = load_eval_items(tmp_path / "inst.jsonl")
    assert len(items) == 1 and items[0].target == 0.7 and items[0].levels == {"overall": "good"}


# ----------------------------------------------------------------------------- the full run and report
def test_evaluate_dataset_writes_a_complete_report(tmp_path):
    manifest, table = write_synth(tmp_path / "synth", n=24)
    items, _ = load_eval_items(manifest)
    test = [it for it in items if it.split == "test"]
    train = [it for it in items if it.split == "train"]
    fake = FakeAssessor(table, fail={"c23.mp4"})
    report = evaluate_dataset(fake, test, EvalConfig(progress=False), train_items=train,
                              stats_fn=lambda it: table[(it.path.name, it.prompt)][2])
    assert report["dataset"]["failed"] == 1 and report["failures"][0]["video"] == "videos/c23.mp4"
    assert all(c[3] for c in fake.calls) and not any(c[2] for c in fake.calls)  # levels on, score-only
    corr = report["correlation"]
    assert set(corr) == {"model", "ridge", "best_stat"} and corr["model"]["srcc"] > 0.99
    assert report["baselines"]["best_stat"]["statistic"] == "sharpness"
    acc = report["dimension_accuracy"]
    assert acc["noise"]["accuracy"] < 0.5 and acc["sharpness"]["accuracy"] == 1.0
    assert report["wrong_prompt"]["pairs"] == 3 and report["wrong_prompt"]["lower_level"] == 1.0

    paths = write_report(report, tmp_path / "out")
    data = json.loads(paths["json"].read_text())
    assert {"dataset", "correlation", "baselines", "predictions", "failures", "dimension_accuracy",
            "wrong_prompt"} <= set(data)
    assert len(data["predictions"]) == len(test) - 1
    assert {"score", "target", "level", "baselines", "dimensions"} <= set(data["predictions"][0])
    md = paths["markdown"].read_text()
    for row in ("| llmvqa model |", "| ridge on statistics |", "| best single statistic (sharpness) |", "| noise |"):
        assert row in md
    assert paths["png"].stat().st_size > 1000 and paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_explain_checks_self_consistency_and_no_split_uses_cross_validation(tmp_path):
    manifest, table = write_synth(tmp_path, n=12)
    items, _ = load_eval_items(manifest)
    report = evaluate_dataset(FakeAssessor(table), items, EvalConfig(explain=True, dimensions="off", folds=3,
                                                                      progress=False))
    assert report["self_consistency"] == {"fraction": 1.0, "likeliest_level_fraction": 1.0, "n": len(items)}
    assert "fold" in report["baselines"]["ridge"]["protocol"] and "dimension_accuracy" not in report
    assert "Self-consistency" in markdown(report)


# ----------------------------------------------------------------------------- justifications
ENTRY = {"id": "q1", "question": "How do the clarity and flicker look?", "reference": "…",
         "levels": {"sharpness": "poor", "flicker": "good", "overall": "fair"},
         "dimensions_asked": ["sharpness", "flicker"]}


def test_justification_scores_on_hand_written_answers():
    good = ("Edges are soft. In terms of clarity, this video is poor. Brightness holds steady between frames. "
            "In terms of flicker, this video is good. The overall quality of this video is fair.")
    half = "In terms of clarity, this video is poor. The overall quality of this video is excellent."
    assert level_agreement(good, ENTRY["levels"]) == 1.0
    assert level_agreement(half, ENTRY["levels"]) == 0.5
    assert level_agreement("Looks fine to me.", ENTRY["levels"]) is None
    assert coverage(good, ENTRY["dimensions_asked"]) == 1.0
    assert coverage(half, ENTRY["dimensions_asked"]) == 0.5
    assert coverage("the crispness of edges and fine details is lacking", ["sharpness"]) == 1.0  # by definition
    assert self_consistent(good, 3.1) and not self_consistent(good, level="good")
    assert not self_consistent(half, 3.1)  # says excellent, the score says fair
    assert not self_consistent("In terms of clarity, this video is poor.", 2.0)  # no overall sentence
    s = score_answer(ENTRY, half, 3.1)
    assert (s.level_agreement, s.coverage, s.self_consistent) == (0.5, 0.5, False)


def test_evaluate_bench_records_failures_and_averages():
    answers = {"q1": "In terms of clarity, this video is poor. The overall quality of this video is fair.",
               "q2": "In terms of flicker, this video is bad. The overall quality of this video is good."}
    entries = [ENTRY, dict(ENTRY, id="q2"), dict(ENTRY, id="q3")]

    def answer_fn(entry):
        if entry["id"] == "q3":
            raise RuntimeError("video missing")
        return answers[entry["id"]], 3.0

    out = evaluate_bench(entries, answer_fn, judge=lambda q, r, a: {"correctness": 4.0 if "fair" in a else 2.0})
    s = out["summary"]
    assert s["n"] == 2 and s["level_agreement"] == 0.5 and s["self_consistent"] == 0.5
    assert s["judge"] == {"correctness": 3.0} and out["failures"][0]["id"] == "q3"


# ----------------------------------------------------------------------------- judge
def test_judge_through_a_mock_transport():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["auth"] = str(request.url), request.headers.get("authorization")
        body = json.loads(request.content)
        seen["model"], seen["prompt"] = body["model"], body["messages"][0]["content"]
        reply = 'Scores: {"correctness": 4, "context": 5, "detail": 7, "temporal": 2.5}'
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": reply}}]})

    cfg = JudgeConfig(url="http://judge.local/v1/", model="m1", api_key="k")
    judge = Judge(cfg, client=httpx.Client(transport=httpx.MockTransport(handler)))
    scores = judge("Q?", "REF", "ANS")
    assert scores == {"correctness": 4.0, "context": 5.0, "detail": 5.0, "temporal": 2.5}  # clipped to 5
    assert seen["url"] == "http://judge.local/v1/chat/completions" and seen["auth"] == "Bearer k"
    assert seen["model"] == "m1" and "REF" in seen["prompt"] and "ANS" in seen["prompt"]

    def broken(request):
        return httpx.Response(500, text="oops")

    with pytest.raises(ModelError, match="judge request failed"):
        Judge(cfg, client=httpx.Client(transport=httpx.MockTransport(broken)))("q", "r", "a")

    def slow(request):
        raise httpx.ReadTimeout("too slow", request=request)

    with pytest.raises(ModelError, match="did not answer"):
        Judge(cfg, client=httpx.Client(transport=httpx.MockTransport(slow)))("q", "r", "a")


def test_judge_configuration():
    assert config_from(None, None) is None
    cfg = config_from("http://x/v1", "m", env={"LLMVQA_JUDGE_API_KEY": "secret"})
    assert cfg.api_key == "secret"
    assert config_from("http://x/v1", "m", env={}).api_key is None
    with pytest.raises(Exception, match="only one"):
        config_from("http://x/v1", None)
    with pytest.raises(ValueError):
        parse_scores("no json here")


# ----------------------------------------------------------------------------- command line
def test_cli_evaluate_on_a_synth_split(tmp_path, monkeypatch, capsys):
    from llmvqa.assessor import Assessor
    from llmvqa.cli import main
    from llmvqa.features import VideoFeatures
    from llmvqa.statistics import STREAMS

    manifest, table = write_synth(tmp_path / "synth", n=16)
    fake = FakeAssessor(table)

    class FakeExtractor:
        key = "k"

        def extract(self, path, content_hash_=None):
            prompt_free = next(v[2] for k, v in table.items() if k[0] == Path(path).name)
            tokens = {s: np.zeros((2, 4), np.float32) for s in STREAMS}
            return VideoFeatures(tokens=tokens, stats={k: v for k, v in prompt_free.items() if k != "prompt_alignment"},
                                 alignment_basis=None, meta={})

        def prompt_stats(self, features, prompt):
            return {"prompt_alignment": 0.5}

    fake.extractor = FakeExtractor()
    monkeypatch.setattr(Assessor, "from_pretrained", classmethod(lambda cls, path=None, device=None: fake))
    out = tmp_path / "report"
    code = main(["evaluate", str(manifest), "--split", "test", "--out", str(out), "--cache", "none", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| llmvqa model |" in printed and "wrong_prompt" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"]["kind"] == "synth" and report["dataset"]["split"] == "test"
    assert report["baselines"]["ridge"]["protocol"] == "train split" and report["baselines"]["ridge"]["n_train"] == 10
    assert (out / "scatter.png").stat().st_size > 0


def test_real_assessor_with_a_fake_model_through_the_suite_and_bench(tmp_path, monkeypatch):
    """The real Assessor (fake model and extractor): per-dimension levels, explain, chat-based bench answers."""
    from llmvqa.assessor import Assessor
    from llmvqa.cli import main
    from llmvqa.features import VideoFeatures
    from llmvqa.statistics import STREAMS

    manifest, table = write_synth(tmp_path / "synth", n=12)
    by_name = {k[0]: v for k, v in table.items()}

    class Extractor:
        key = "k"

        def extract(self, path, content_hash_=None):
            tokens = {s: np.zeros((2, 4), np.float32) for s in STREAMS}
            return VideoFeatures(tokens=tokens, stats={"sharpness": by_name[Path(path).name][2]["sharpness"]},
                                 alignment_basis=None, meta={"video": Path(path).name})

        def prompt_stats(self, features, prompt):
            return {"prompt_alignment": 0.0 if prompt == "a red bus" else 0.6}

    class Model:
        def score(self, features, prompt=None, question=None, *, prompt_stats=None, answer_prefix=None):
            overall = by_name[features.meta["video"]][0]
            if question and "prompt alignment" in question:
                return probs_for(1.0 if prompt_stats["prompt_alignment"] == 0 else 4.0)
            return probs_for(overall)

        def explain(self, features, prompt=None, *, prompt_stats=None, **planned):
            p = self.score(features, prompt, prompt_stats=prompt_stats)
            return f"The overall quality of this video is {level_of_score(float(np.dot(p, [5, 4, 3, 2, 1])))}.", p

        def chat(self, features, messages, prompt=None, *, prompt_stats=None, **rating):
            return "In terms of clarity, this video is poor. The overall quality of this video is bad."

    assessor = Assessor(Model(), Extractor(), name="tiny")
    items, _ = load_eval_items(manifest, split="test")
    report = evaluate_dataset(assessor, items, EvalConfig(explain=True, progress=False))
    assert report["self_consistency"]["fraction"] == 1.0 and not report["failures"]
    assert report["wrong_prompt"]["pairs"] == 1 and report["wrong_prompt"]["lower_level"] == 1.0
    assert "prompt_alignment" in report["dimension_accuracy"] and "technical" in report["dimension_accuracy"]

    bench = [{"id": "b1", "video": "videos/c06.mp4", "prompt": "a scene number 6", "question": "Why?",
              "reference": "…", "levels": {"sharpness": "poor", "overall": "bad"}, "dimensions_asked": ["sharpness"]}]
    (tmp_path / "bench.json").write_text(json.dumps(bench), encoding="utf-8")
    monkeypatch.setattr(Assessor, "from_pretrained", classmethod(lambda cls, path=None, device=None: assessor))
    out = tmp_path / "bench_report"
    assert main(["evaluate", "--bench", str(tmp_path / "bench.json"), "--root", str(tmp_path / "synth"),
                 "--out", str(out), "--cache", "none", "--no-progress"]) == 0
    s = json.loads((out / "report.json").read_text())["bench"]["summary"]
    assert (s["n"], s["level_agreement"], s["coverage"]) == (1, 1.0, 1.0)
    said_bad_right = level_of_score(table[("c06.mp4", "a scene number 6")][0]) == "bad"
    assert s["self_consistent"] == float(said_bad_right)
    assert "Justification benchmark" in (out / "report.md").read_text()
