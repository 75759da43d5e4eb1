"""The one video loader: ``probe`` a file, ``load_clip`` evenly sampled frames, encoder ``views``."""

from llmvqa.video import views
from llmvqa.video.config import VideoLimits
from llmvqa.video.loader import load_clip, sample_indices
from llmvqa.video.probe import probe
from llmvqa.video.types import Clip, VideoInfo

__all__ = ["Clip", "VideoInfo", "VideoLimits", "load_clip", "probe", "sample_indices", "views"]
