"""Where `llmvqa batch` reads its list and writes its results: CSV or Parquet, resumable.

Lists: a folder of videos, a CSV or a Parquet file (columns video[,prompt]; paths relative to the list's folder).
Results: ``--out results.csv`` (rows appended and flushed one by one) or ``--out results.parquet`` (a folder of
part files, each written whole under a temporary name and renamed, ``PARQUET_ROWS`` rows at a time and at the end).
Both engines (one process, or Ray) write through a :class:`ResultSink`; a run reads what its output already holds,
skips the (video file, prompt) pairs rated there and tries the failed ones again.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmvqa.errors import DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")
BASE_COLUMNS = ("video", "path", "prompt", "status", "score", "score_100", "level", "spread")
TAIL_COLUMNS = ("justification", "error", "seconds")
NUMERIC = ("score", "score_100", "spread", "seconds")
"""Columns stored as numbers in Parquet (with every ``*_score``); CSV keeps the same values as text."""
PARQUET_ROWS = 16
"""Rows per Parquet part: a killed run loses at most this many results (they are rated again on resume)."""


@dataclass(frozen=True)
class Job:
    video: str
    """The video as listed."""
    path: str
    """Where to read it."""
    prompt: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What resuming compares: the resolved file (example:NAME as is) and the prompt."""
        return resume_key(self.path, self.prompt or "")


def resume_key(path: str, prompt: str) -> tuple[str, str]:
    if path.startswith("example:"):
        return path, prompt
    try:
        return str(Path(path).resolve()), prompt
    except (OSError, RuntimeError, ValueError):
        return path, prompt


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def collect_jobs(source: str | Path, prompt_column: str = "prompt") -> list[Job]:
    """The videos of a folder (sorted, recursive) or of a CSV / Parquet list (paths relative to its folder)."""
    src = Path(source)
    if src.is_dir() and not is_parquet(src):
        files = sorted(p for p in src.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not files:
            raise DataError(str(src), "no video files found", f"put videos ({', '.join(VIDEO_SUFFIXES)}) in it")
        return [Job(str(p), str(p)) for p in files]
    if not src.exists():
        raise DataError(str(src), "not found", "pass a folder of videos, or a CSV or Parquet list with a 'video' column")
    rows, fields = _read_list(src)
    if "video" not in fields:
        raise DataError(str(src), f"has no 'video' column (columns: {fields})", "name the column of video paths 'video'")
    base = src.parent if src.is_file() else src
    jobs = []
    for row in rows:
        video = _text(row.get("video"))
        if not video:
            continue
        path = video if video.startswith("example:") or Path(video).is_absolute() else str(base / video)
        jobs.append(Job(video, path, _text(row.get(prompt_column)) or None))
    return jobs


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _read_list(src: Path) -> tuple[list[dict], list[str]]:
    if is_parquet(src):
        try:
            import pyarrow.parquet as pq

            table = pq.read_table(src)
        except ImportError as err:
            raise DataError(str(src), "reading Parquet needs pyarrow", "pip install pyarrow") from err
        except Exception as err:  # not Parquet, truncated ...
            raise DataError(str(src), f"unreadable Parquet ({type(err).__name__}: {err})",
                            "pass a Parquet file with a 'video' column") from err
        return table.to_pylist(), list(table.column_names)
    with src.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader), list(reader.fieldnames or [])


def row_key(row: dict[str, Any]) -> tuple[str, str]:
    """The resume key of an output row (``Job.key`` of the job that wrote it)."""
    return resume_key(_text(row.get("path")) or _text(row.get("video")), _text(row.get("prompt")))


def row_status(rows: Iterable[dict]) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(keys whose last row is ok, keys whose last row is an error) of output rows."""
    status: dict[tuple[str, str], str] = {}
    for row in rows:
        if row.get("video"):
            status[row_key(row)] = _text(row.get("status")) or "ok"
    return {k for k, v in status.items() if v == "ok"}, {k for k, v in status.items() if v != "ok"}


def columns(dimension_names: Iterable[str]) -> list[str]:
    per = [c for n in dimension_names for c in (f"{n}_score", f"{n}_level")]
    return [*BASE_COLUMNS, *per, *TAIL_COLUMNS]


class ResultSink:
    """Rows of one batch output. ``done`` / ``failed_before``: resume keys whose last row is ok / an error;
    ``header``: the columns already there (None for a new output); ``repaired``: a torn end was removed."""

    done: set[tuple[str, str]]
    failed_before: set[tuple[str, str]]
    header: list[str] | None
    repaired: bool = False

    def start(self, fieldnames: list[str]) -> None:
        raise NotImplementedError

    def write(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _index(self, rows: Iterable[dict]) -> None:
        self.done, self.failed_before = row_status(rows)


class CsvSink(ResultSink):
    """Append to a CSV, one flushed row per video; a row torn by a killed run is cut on the next start."""

    def __init__(self, out: Path):
        self.out = out
        self.repaired = repair_tail(out)
        self.done, self.failed_before, self.header = set(), set(), None
        if out.is_file() and out.stat().st_size > 0:
            with out.open(newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                if not reader.fieldnames or "video" not in reader.fieldnames:
                    raise DataError(str(out), "exists but is not a llmvqa batch result (no 'video' column)",
                                    "choose another --out or delete the file")
                self._index(reader)
                self.header = list(reader.fieldnames)
        self._file = None

    def start(self, fieldnames: list[str]) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.out.open("a", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._file, fieldnames=fieldnames, extrasaction="ignore", restval="")
        if self.header is None:
            self._writer.writeheader()
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class ParquetSink(ResultSink):
    """A folder of Parquet parts (``part-00000.parquet`` …): numbers as doubles, the rest as strings."""

    def __init__(self, out: Path, rows_per_part: int = PARQUET_ROWS):
        try:
            import pyarrow  # noqa: F401
        except ImportError as err:
            raise DataError(str(out), "writing Parquet needs pyarrow", "pip install pyarrow, or use --out results.csv") from err
        if out.exists() and not out.is_dir():
            raise DataError(str(out), "exists and is not a folder of Parquet parts", "choose another --out")
        self.out, self.rows_per_part = out, rows_per_part
        self.done, self.failed_before, self.header = set(), set(), None
        parts = sorted(out.glob("part-*.parquet")) if out.is_dir() else []
        for tmp in out.glob(".part-*.tmp") if out.is_dir() else []:
            tmp.unlink()  # a part being written when a run was killed: its rows are rated again
            self.repaired = True
        if parts:
            import pyarrow.parquet as pq

            try:
                tables = [pq.read_table(p) for p in parts]
            except Exception as err:
                raise DataError(str(out), f"holds an unreadable part ({type(err).__name__}: {err})",
                                "remove the broken part file (its videos are rated again)") from err
            self.header = list(tables[0].column_names)
            self._index(r for t in tables for r in t.to_pylist())
        self._next = len(parts)
        self._rows: list[dict] = []

    def start(self, fieldnames: list[str]) -> None:
        self.fieldnames = list(self.header or fieldnames)
        self.out.mkdir(parents=True, exist_ok=True)

    def write(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.rows_per_part:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        data = {}
        for name in self.fieldnames:
            values = [r.get(name, "") for r in self._rows]
            if name in NUMERIC or name.endswith("_score"):
                data[name] = pa.array([float(v) if _text(v) else None for v in values], pa.float64())
            else:
                data[name] = pa.array([_text(v) for v in values], pa.string())
        tmp = self.out / f".part-{self._next:05d}.tmp"
        pq.write_table(pa.table(data), tmp)
        tmp.rename(self.out / f"part-{self._next:05d}.parquet")
        self._next += 1
        self._rows = []

    def close(self) -> None:
        self._flush()


def open_sink(out: str | Path) -> ResultSink:
    """The sink of ``--out``: Parquet for a .parquet / .pq name, CSV otherwise."""
    out = Path(out)
    return ParquetSink(out) if is_parquet(out) else CsvSink(out)


def read_results(out: str | Path) -> list[dict[str, Any]]:
    """Every row of a batch output (CSV or Parquet), as written."""
    out = Path(out)
    if is_parquet(out):
        import pyarrow.parquet as pq

        return [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    with out.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def repair_tail(out: Path) -> bool:
    """Cut a last line without its newline (a row torn when a run was killed mid-write); True if cut."""
    if not out.is_file() or out.stat().st_size == 0:
        return False
    with out.open("rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return False
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)  # 0 when even the header is torn
    return True
