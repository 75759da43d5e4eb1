"""The text and files of the human-rating evaluations (numbers: ``llmvqa.evaluation.human``).

- ``cv_markdown``: eval/human_cv.py's table (report.md);
- ``interval_record`` / ``write_interval`` / ``interval_from_report``: the overall score's 80% interval from the
  held-out errors, as a model's ``interval.json`` (what ``llmvqa rate`` reports);
- ``prior_pairs_markdown``: eval/prior_pairs.py's table;
- ``directions_markdown``: eval/statistic_directions.py's table.

Every file goes through ``llmvqa.evaluation.report.save_report``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from llmvqa.evaluation.human import CHECKS, REAL_SOURCE, heldout_interval, human_table
from llmvqa.evaluation.report import save_report

INTERVAL_FILE = "interval.json"
"""The interval of a model's overall score, in its folder."""


def _f(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


# ---------------------------------------------------------------------------- eval/human_cv.py
def cv_markdown(report: Mapping) -> str:
    """eval/human_cv.py's report (``human.cross_validate``) as Markdown: one row per scorer, SRCC of each
    ``CHECKS`` entry, within-generator SRCC, real > generated, interval coverage; then the held-out interval."""
    checks = list(CHECKS)
    lines = [f"# Agreement with people: {report['ratings']} ({report['clips']} clips, {report['folds']} folds "
             f"grouped by {report['grouped_by']}, {report['steps']} calibration steps per fold)", "",
             "SRCC of each reported aspect with the human rating it stands for (overall rating = mean of static "
             "and temporal); every clip scored by a model calibrated without its fold.", "",
             "| | " + " | ".join(checks) + " | within-generator static / temporal | real > generated | interval coverage |",
             "|---" * (len(checks) + 4) + "|"]
    for row in report["rows"]:
        a = row["agreement"]
        cells = [_f(a[c]["srcc"]) if c in a else "—" for c in checks]
        wg = row.get("within_generator")
        wg_s = f"{_f(wg['static']['mean_generated'])} / {_f(wg['temporal']['mean_generated'])}" if wg else "—"
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {wg_s} | {_f(row.get('real_outranks_generated'))}"
                     f" | {_f(row.get('coverage'))} |")
    lines += ["", f"Within-generator SRCC is the mean over the generated sources (not {REAL_SOURCE}); "
              "interval coverage: share of clips whose human overall rating lies in the stated 80% interval "
              "(each fold's model states its own, from its calibration)."]
    fid = report.get("fidelity")
    if fid:
        lines += ["", f"The scorer against the prior it reads (held out): pooled SRCC {fid['pooled_srcc']:.3f}, mean |difference| "
                      f"{fid['mean_abs_difference']:.3f}; offset per fold (scorer − prior) "
                      + ", ".join(f"{r['offset']:+.2f}" for r in fid["folds"])
                      + f" (spread {fid['offset_spread']:.3f}); SRCC inside each fold "
                      + ", ".join(_f(r["srcc"]) for r in fid["folds"]) + "."]
    iv = report.get("interval")
    if iv:
        lines += ["", f"Interval from the held-out errors: ±{iv['half_width']:.3f} for {iv['coverage']:.0%}; expected "
                      f"coverage on new clips (each fold against the other folds' quantile): {iv['expected_coverage']:.1%}."]
    return "\n".join(lines) + "\n"


def interval_record(interval: Mapping, ratings: str) -> dict:
    """A model's interval.json from a ``heldout_interval`` measured on the clips of ``ratings``: coverage,
    half_width, fitted_on, expected_coverage and how it was measured."""
    how = (f"{interval['coverage']:.0%} quantile of the calibrated model's held-out |overall score - human mean| "
           f"on {interval['n']} clips of {ratings}, {interval['folds']} folds grouped by prompt (eval/human_cv.py); "
           f"coverage expected on new clips (nested by fold): {interval['expected_coverage']:.1%}")
    return {"coverage": interval["coverage"], "half_width": interval["half_width"], "fitted_on": interval["n"],
            "expected_coverage": interval["expected_coverage"], "how": how}


def write_interval(model_dir: str | Path, interval: Mapping, ratings: str) -> Path:
    """Write ``interval_record`` to ``model_dir``/interval.json; returns its path."""
    return save_report(Path(model_dir) / INTERVAL_FILE, interval_record(interval, ratings))["json"]


def interval_from_report(report: str | Path | Mapping, clips: Sequence) -> dict:
    """The ``heldout_interval`` of an earlier eval/human_cv.py report (its file or its content) from its held-out
    predictions; ``clips`` (the rated clips, any order) supply the human ratings of the clips it names. Folds are
    the report's own, or (an older report without them) the same prompt-grouped folds recomputed."""
    if not isinstance(report, Mapping):
        report = json.loads(Path(report).read_text(encoding="utf-8"))
    pred = report["predictions"]
    by_name = {c.name: c for c in clips}
    ordered = [by_name[n] for n in pred["names"]]
    folds = pred.get("fold")
    if not folds:
        from llmvqa.train.human_data import prompt_folds

        folds = prompt_folds([c.prompt for c in ordered], report["folds"]).tolist()
    return heldout_interval(pred["model"]["overall"], human_table([c.ratings for c in ordered])["overall"], folds)


# ---------------------------------------------------------------------------- eval/prior_pairs.py
def _share(v: float | None) -> str:
    return "—" if v is None else f"{v:.1%}"


def prior_pairs_markdown(rows: Sequence[Mapping], *, chains: int, clips: int, folds: int, test_chains: int) -> str:
    """eval/prior_pairs.py's ``human.prior_setting`` rows as Markdown: one row per weight : margin (: the range
    hinges' quantile, when the row has them; + the within-source pairs' weight : margin, when it has them), then
    the share of ordered chain pairs by kind."""
    def name(r: Mapping) -> str:
        out = f"{r['weight']:g} : {r['margin']:g}"
        out += f" : {r['outside']:g}" if r.get("outside") is not None else ""
        return out + (f" + {r['source_weight']:g} : {r['source_margin']:g}" if r.get("source_weight") else "")

    synth = any("synth" in r for r in rows)
    lines = [f"# The human prior ranked by {chains} chains: fetv_dev ({clips} clips, {folds} prompt-grouped "
             f"folds) against {test_chains} test-split chains", "",
             "| weight : margin | overall ~ static | overall ~ temporal | alignment | chain pairs ordered (test) | "
             "(val) | carphone overall (pristine / distorted) | carphone static |"
             + (" synth test SRCC (all / right prompt / within source) |" if synth else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if synth else "")]
    for r in rows:
        c = r["carphone"]
        line = (f"| {name(r)} | {r['static']:.3f} | {r['temporal']:.3f} | {r['alignment']:.3f} | "
                f"{r['chains_ordered']:.1%} | {_share(r.get('val_chains_ordered'))} | {c['pristine']:.2f} / {c['distorted']:.2f} | "
                f"{c['pristine_static']:.2f} / {c['distorted_static']:.2f} |")
        if synth:
            sy = r.get("synth")
            line += (f" {sy['srcc']:.3f} / {sy['srcc_right_prompt']:.3f} / {sy['srcc_within_source']:.3f} |" if sy else " — |")
        lines.append(line)
    lines += ["", "By kind (share of ordered pairs): " + "; ".join(
        name(r).replace(" ", "") + " " + ", ".join(f"{k} {v:.0%}" for k, v in r["by_kind"].items()) for r in rows)]
    if any(r.get("source_weight") for r in rows):
        lines += ["", "+ w : m: the synth train split's within-source pairs (`human_data.source_pairs`) join the chain "
                  "pairs, weight w each, margin m × the corpus' drop."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- eval/statistic_directions.py
ASSUMED = {True: "higher better", False: "lower better", None: "—"}
"""How the directions table words a statistic's ``higher_is_better``."""


def directions_markdown(rows: Sequence[Mapping], clips: int, ratings: str) -> str:
    """``human.directions`` rows as a Markdown table under a one-line title."""
    lines = [f"SRCC of each statistic with the human ratings of {clips} clips ({ratings})", "",
             "| statistic | stream | assumed | static | temporal | alignment | verdict |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['statistic']} | {r['stream']} | {ASSUMED[r['assumed']]} | {r['static']:.2f} | {r['temporal']:.2f} | "
              f"{r['alignment']:.2f} | {r['verdict']} |" for r in rows]
    return "\n".join(lines) + "\n"


__all__ = ["ASSUMED", "INTERVAL_FILE", "cv_markdown", "directions_markdown", "interval_from_report", "interval_record",
           "prior_pairs_markdown", "write_interval"]
