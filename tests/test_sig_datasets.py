"""SIG dataset adapters (bad rows with line numbers) and safe relative video paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmvqa.corpus.datasets import hash_split, load_items
from llmvqa.corpus.paths import relative_video, resolve_video
from llmvqa.errors import DataError
from llmvqa.sig.build import BuildConfig, DictStats, build
from llmvqa.statistics import STATISTICS


def _touch(root: Path, *names: str) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0")


def _lines(bad) -> list[int]:
    return [b.line for b in bad]


# ---------------------------------------------------------------- paths


def test_paths_refuse_absolute_and_escaping(tmp_path):
    root = tmp_path / "root"
    _touch(root, "a/clip.mp4")
    assert resolve_video(root, "a/clip.mp4") == (root / "a/clip.mp4").absolute()
    assert resolve_video(root, "a/../a/clip.mp4") == (root / "a/clip.mp4").absolute()
    for bad in ("/etc/passwd", "../secret.mp4", "a/../../secret.mp4", "C:\\videos\\x.mp4", ""):
        with pytest.raises(DataError):
            resolve_video(root, bad)
    with pytest.raises(DataError, match="leaves the root"):
        resolve_video(root, "../x.mp4")
    with pytest.raises(DataError, match="absolute"):
        resolve_video(root, "/abs/x.mp4")
    assert relative_video(root, root / "a" / "clip.mp4") == "a/clip.mp4"
    with pytest.raises(DataError, match="outside the root"):
        relative_video(root, tmp_path / "elsewhere.mp4")


# ---------------------------------------------------------------- adapters


def test_t2vqa_info_txt_with_bad_rows(tmp_path):
    _touch(tmp_path, "videos/00000_07.mp4", "videos/00001_03.mp4", "videos/00002_01.mp4")
    info = tmp_path / "info.txt"
    info.write_text(
        "00000_07.mp4|a cat | on a mat|61.5\n"   # prompt containing the separator
        "00001_03.mp4|a dog|not-a-number\n"      # line 2: bad MOS
        "\n"
        "missing.mp4|a bird|40\n"                # line 4: missing file
        "00002_01.mp4|a fish|12.25\n"
        "garbage line without separators\n"      # line 6
        "../../etc/passwd|x|3\n"                 # line 7: leaves the root
    )
    items, bad = load_items("t2vqa", info, tmp_path / "videos")
    assert [(it.video, it.prompt, it.mos, it.line) for it in items] == [
        ("00000_07.mp4", "a cat | on a mat", 61.5, 1), ("00002_01.mp4", "a fish", 12.25, 5)]
    assert _lines(bad) == [2, 4, 6, 7]
    assert "not a number" in str(bad[0]) and str(bad[0]).startswith(f"{info}:2")
    assert "leaves the root" in bad[3].reason


def test_csv_konvid_and_lsvq_styles(tmp_path):
    _touch(tmp_path, "3337642103.mp4", "4005967519.mp4", "ia-batch1/clip_a.mp4")
    konvid = tmp_path / "KoNViD_1k_mos.csv"
    konvid.write_text("flickr_id,mos\n3337642103,4.64\n4005967519,n/a\n9999999999,3.0\n")
    items, bad = load_items("csv", konvid, tmp_path)
    assert [(it.video, it.mos) for it in items] == [("3337642103.mp4", 4.64)]  # suffix found
    assert _lines(bad) == [3, 4]
    lsvq = tmp_path / "LSVQ_whole_train.csv"
    lsvq.write_text("name,p1,MOS,split\nia-batch1/clip_a,1,71.2,test\n")
    items, bad = load_items("csv", lsvq, tmp_path)
    assert [(it.video, it.mos, it.split) for it in items] == [("ia-batch1/clip_a.mp4", 71.2, "test")] and not bad
    nocol = tmp_path / "x.csv"
    nocol.write_text("foo,bar\n1,2\n")
    with pytest.raises(DataError, match="no video column"):
        load_items("csv", nocol, tmp_path)


def test_folder_and_jsonl(tmp_path):
    root = tmp_path / "vids"
    _touch(root, "b.mp4", "sub/a.gif", "notes.txt")
    items, bad = load_items("folder", root)
    assert [it.video for it in items] == ["b.mp4", "sub/a.gif"] and not bad
    assert all(it.mos is None and it.split in ("train", "val", "test") for it in items)
    jl = tmp_path / "list.jsonl"
    jl.write_text("\n".join([
        json.dumps({"video": "b.mp4", "prompt": "p", "mos": 3.5}),
        "{broken json",
        json.dumps({"video_path": "sub/a.gif", "score": "x"}),
        json.dumps({"path": "sub/a.gif", "split": "val"}),
        json.dumps({"prompt": "no video"}),
    ]) + "\n")
    items, bad = load_items("jsonl", jl, root)
    # no split given: sha256("p")[:8] / 0xFFFFFFFF = 0.080 < the 10% test fraction -> "test"
    assert [(it.video, it.prompt, it.mos, it.split) for it in items][0] == ("b.mp4", "p", 3.5, "test")
    assert items[1].video == "sub/a.gif" and items[1].split == "val"
    assert _lines(bad) == [2, 3, 5]


def test_synth_manifest(tmp_path):
    _touch(tmp_path, "clips/bikes_blur.mp4", "clips/bikes_ref.mp4")
    manifest = tmp_path / "manifest.jsonl"
    rows = [
        {"video": "clips/bikes_blur.mp4", "prompt": "", "source": "bikes", "split": "train",
         "degradations": [{"kind": "blur", "sigma": 2.0}],
         "scores": {"sharpness": 0.1, "prompt_alignment": 0.9, "overall": 0.3}},
        {"video": "clips/bikes_ref.mp4", "prompt": "", "source": "bikes", "split": "train",
         "degradations": [], "scores": {"sharpness": 0.95, "overall": 0.9}},
        {"video": "clips/gone.mp4", "source": "bikes", "split": "train", "scores": {}},
        {"video": "clips/bikes_ref.mp4", "source": "bikes", "scores": {"sharpness": "high"}},
        # a wrong-prompt twin: same video, another prompt, low prompt alignment
        {"video": "clips/bikes_blur.mp4", "prompt": "a cat", "source": "bikes", "split": "train",
         "scores": {"sharpness": 0.1, "prompt_alignment": 0.05, "overall": 0.2}},
    ]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items, bad = load_items("synth", manifest)
    assert [it.targets for it in items] == [rows[0]["scores"], rows[1]["scores"], rows[4]["scores"]]
    assert items[0].source == "bikes" and items[0].degradations == rows[0]["degradations"]
    assert _lines(bad) == [3, 4]
    # synth targets override the stats expert; stats fill the dimensions the manifest lacks
    stats = DictStats({it.video: {s.name: sum(s.typical) / 2 for s in STATISTICS} for it in items}, tmp_path)
    res = build(items, tmp_path, stats, BuildConfig(), kind="synth")
    assert len({r["id"] for r in res.records}) == len(res.records)  # the twin gets its own ids
    by_video = {(r["video"], r["prompt"]): r for r in res.records}
    blurred = by_video["clips/bikes_blur.mp4", ""]
    assert "prompt_alignment" not in blurred["scores"]  # no prompt: the target is dropped
    assert by_video["clips/bikes_blur.mp4", "a cat"]["levels"]["prompt_alignment"] == "bad"
    assert blurred["scores"]["sharpness"] == 0.1 and blurred["levels"]["sharpness"] == "bad"
    assert blurred["scores"]["overall"] == 0.3 and blurred["levels"]["overall"] == "poor"
    assert "flicker" in blurred["levels"]


def test_hash_split_is_deterministic_and_spread():
    splits = [hash_split(f"prompt {i}") for i in range(400)]
    assert splits == [hash_split(f"prompt {i}") for i in range(400)]
    assert 0.7 < splits.count("train") / 400 < 0.9 and splits.count("test") > 20


def test_unknown_kind_and_missing_input(tmp_path):
    with pytest.raises(DataError, match="unknown dataset kind"):
        load_items("lsvq2", tmp_path)
    with pytest.raises(DataError, match="not found"):
        load_items("t2vqa", tmp_path / "nope.txt")
