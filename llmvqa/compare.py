"""Which of two clips is better, how sure, and why: a comparison of two rating results.

The probability that clip A is better on an aspect comes from the two level distributions the model
gives (independent draws): P(level of A above level of B) + ½ P(same level). The reasons are the
measured defects (``RatingResult.evidence``) one clip has and the other does not, by kind, then, for each
dimension the model rates decisively apart (|P − ½| ≥ ``DECISIVE``) that no such defect explains, the statistics
behind it (``Dimension.statistics``) on which the lower-rated clip measures worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from llmvqa.levels import LEVELS, LevelRating
from llmvqa.result import RatingResult
from llmvqa.statistics import STAT_BY_NAME

TIE_BAND = 0.05
"""|P(A better) − ½| below this: no winner on that aspect."""
DECISIVE = 0.3
"""|P(A better) − ½| from which a dimension's verdict is explained by its statistics (P ≥ 0.8 or ≤ 0.2)."""


def p_better(a: LevelRating, b: LevelRating) -> float:
    """P(A's level above B's) + ½ P(equal), from the two level distributions (LEVELS order, best first)."""
    pa = [float(a.distribution[lv]) for lv in LEVELS]
    pb = [float(b.distribution[lv]) for lv in LEVELS]
    above = sum(pa[i] * pb[j] for i in range(len(LEVELS)) for j in range(len(LEVELS)) if i < j)  # i better than j
    same = sum(pa[i] * pb[i] for i in range(len(LEVELS)))
    return above + 0.5 * same


@dataclass
class AspectComparison:
    name: str
    score_a: float
    score_b: float
    p_a_better: float

    @property
    def better(self) -> str:
        if abs(self.p_a_better - 0.5) < TIE_BAND:
            return "tie"
        return "a" if self.p_a_better > 0.5 else "b"


@dataclass
class Comparison:
    a: str
    b: str
    overall: AspectComparison
    aspects: dict[str, AspectComparison] = field(default_factory=dict)
    """Groups and dimensions both results have, by name."""
    why: list[str] = field(default_factory=list)
    """The measured defects one clip has and the other lacks, strongest first; then the decisive dimensions'
    statistics that differ, most decisive first."""

    @property
    def better(self) -> str:
        return self.overall.better

    def to_dict(self) -> dict:
        def one(c: AspectComparison) -> dict:
            return {**asdict(c), "better": c.better}

        return {"a": self.a, "b": self.b, "better": self.better, "overall": one(self.overall),
                "aspects": {k: one(v) for k, v in self.aspects.items()}, "why": list(self.why)}


def compare_results(a: RatingResult, b: RatingResult,
                    statistics_of: Mapping[str, Sequence[str]] | None = None) -> Comparison:
    """Compare two ratings (of two clips, or of one clip by two models). ``statistics_of``: dimension key → the
    statistics behind it (``{d.key: d.statistics for d in assessor.dimensions}``), to explain decisive dimensions
    that no measured defect explains."""
    overall = AspectComparison("overall", a.score, b.score, p_better(a.overall, b.overall))
    aspects = {}
    for name in [*a.groups, *a.dimensions]:
        ra = a.groups.get(name) or a.dimensions.get(name)
        rb = b.groups.get(name) or b.dimensions.get(name)
        if ra is not None and rb is not None:
            aspects[name] = AspectComparison(name, ra.score, rb.score, p_better(ra, rb))
    why, explained = [], set()
    for label, mine, theirs in (("A", a.evidence, b.evidence), ("B", b.evidence, a.evidence)):
        kinds = {e["kind"] for e in theirs}
        for e in mine:
            if e["kind"] not in kinds:
                why.append((e["strength"], f"{label}: {e['text']} (not in {'B' if label == 'A' else 'A'})"))
                explained.add(e.get("dimension"))
    reasons = [w for _, w in sorted(why, key=lambda x: -x[0])]
    reasons += _statistic_reasons(a, b, aspects, statistics_of or {}, explained)
    return Comparison(a.video, b.video, overall, aspects, reasons)


def _statistic_reasons(a: RatingResult, b: RatingResult, aspects: dict[str, AspectComparison],
                       statistics_of: Mapping[str, Sequence[str]], explained: set) -> list[str]:
    """"B: compression rated lower (P(A better) = 0.96): blockiness 1.24 against 1.03 in A (lower is better)" for each
    decisive dimension no defect explains, most decisive first; the statistics quoted are the dimension's own on
    which the lower-rated clip measures worse (none quoted when none does)."""
    out = []
    for name, x in aspects.items():
        if name not in statistics_of or name in explained or abs(x.p_a_better - 0.5) < DECISIVE:
            continue
        (low, low_r), (high, high_r) = (("B", b), ("A", a)) if x.p_a_better > 0.5 else (("A", a), ("B", b))
        quoted = []
        for stat in statistics_of[name]:
            info, v_low, v_high = STAT_BY_NAME.get(stat), low_r.statistics.get(stat), high_r.statistics.get(stat)
            if info is None or info.higher_is_better is None or v_low is None or v_high is None or v_low == v_high:
                continue
            if (v_low < v_high) == info.higher_is_better:
                quoted.append(f"{stat} {v_low:.3g} against {v_high:.3g} in {high} "
                              f"({'higher' if info.higher_is_better else 'lower'} is better)")
        text = f"{low}: {name.replace('_', ' ')} rated lower (P(A better) = {x.p_a_better:.2f})"
        out.append((abs(x.p_a_better - 0.5), text + (": " + "; ".join(quoted) if quoted else "")))
    return [t for _, t in sorted(out, key=lambda t: -t[0])]


def render_comparison(c: Comparison) -> str:
    """The readable report `llmvqa compare` prints."""
    verdict = {"a": f"A is better (P = {c.overall.p_a_better:.2f})",
               "b": f"B is better (P = {1 - c.overall.p_a_better:.2f})",
               "tie": f"no clear winner (P(A better) = {c.overall.p_a_better:.2f})"}[c.better]
    lines = [f"A: {c.a}", f"B: {c.b}", f"Overall: {verdict} — A {c.overall.score_a:.2f}, B {c.overall.score_b:.2f}"]
    if c.aspects:
        width = max(len(n) for n in c.aspects) + 2
        lines.append("")
        for name, x in c.aspects.items():
            lines.append(f"  {name:<{width}} A {x.score_a:.2f}  B {x.score_b:.2f}  P(A better) {x.p_a_better:.2f}  "
                         f"{'=' if x.better == 'tie' else x.better.upper()}")
    if c.why:
        lines += ["", "Why:"] + [f"  {w}" for w in c.why]
    return "\n".join(lines)
