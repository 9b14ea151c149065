"""The run directory: the only module that writes files (DESIGN §6).

Layout::

    runs/latest -> 2026-11-23_11-05-12_mnist-mlp
    runs/2026-11-23_11-05-12_mnist-mlp/
      config.yaml  manifest.json  summary.csv
      trials/003_he_normal-relu-s0/{trial.json, epochs.csv, layers.csv, steps.csv, step_layers.csv,
                                    histograms.npz}
      checkpoints/<group id>.npz   (``checkpoints``: each group's state after its last epoch)
      .lock                        (``lock``, its only other writer: there while a process writes the run)

Every file is written atomically — a temp file in the same directory, fsync,
rename, fsync of the directory — so a crash leaves the old or the new version,
never a torn one. Readers skip leftover ``.*.tmp`` files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from init_lab.catalog.errors import RunDirError
from init_lab.config.grid import sanitize
from init_lab.runschema.columns import LATER_COLUMNS, TABLES, TRIAL_FILE
from init_lab.runschema.records import Manifest, TrialRecord

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
SUMMARY_FILE = "summary.csv"
TRIALS_DIR = "trials"
LATEST = "latest"
REPORT_DIR = "report"
CHECKPOINTS_DIR = "checkpoints"

_UMASK = os.umask(0)
os.umask(_UMASK)  # read once: temp files are created 0600, the result should honour the umask


# --- atomic primitives ----------------------------------------------------------


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a mix."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _json_safe(value: Any) -> Any:
    # strict JSON has no NaN/inf: a non-finite number becomes null (the status says why)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Temp file in the same directory, fsync, rename, fsync the directory: old or new, never torn."""
    atomic_write_with(path, lambda f: f.write(data))


def atomic_write_with(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """``atomic_write_bytes`` for content that ``write`` streams into the open temp file (a checkpoint's arrays:
    no in-memory copy of the whole file first)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o666 & ~_UMASK)
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with full float precision (repr), so identical runs give byte-identical tables."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()


def atomic_write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, csv_text(columns, rows))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc}); delete it to have the trial rerun.") from exc


# --- run directories ------------------------------------------------------------


def create_run_dir(out: Path, name: str, now: datetime | None = None) -> Path:
    """A new, uniquely named run directory under ``out`` (exclusive mkdir: concurrent sweeps never share one)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create output directory {out}: {exc.strerror or exc}.") from exc
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    base = f"{stamp}_{sanitize(name, 60)}"
    for attempt in range(1, 1000):
        candidate = out / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise RunDirError(f"cannot create run directory in {out}: {exc.strerror or exc}.") from exc
        (candidate / TRIALS_DIR).mkdir()
        return candidate
    raise RunDirError(f"too many runs named {base} in {out}.")


def update_latest(out: Path, run_dir: Path) -> None:
    """Point ``out/latest`` at ``run_dir``, atomically (a symlink, or a pointer file where links fail)."""
    link = Path(out) / LATEST
    tmp = Path(out) / f".{LATEST}.{os.getpid()}.{run_dir.name}.tmp"
    try:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(run_dir.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        if link.is_symlink():
            link.unlink()
        if link.is_dir():
            return  # a real directory named 'latest': leave the user's data alone
        atomic_write_text(link, run_dir.name + "\n")


def resolve_run_dir(path: str | Path, runs: str | Path = "runs") -> Path:
    """A run directory from a path, 'latest', or a 'latest' pointer file; RunDirError if it is none."""
    p = Path(path)
    if str(path) == LATEST and not p.exists():
        p = Path(runs) / LATEST
    if p.is_file() and p.name == LATEST:  # pointer file
        p = p.parent / p.read_text(encoding="utf-8").strip()
    p = p.resolve() if p.exists() else p
    if not p.is_dir():
        raise RunDirError(f"{path} is not a directory (a run directory looks like runs/2026-11-23_11-05-12_name).")
    if not (p / CONFIG_FILE).is_file():
        raise RunDirError(f"{path} is not an initlab run directory: it has no {CONFIG_FILE}.")
    return p


def write_files(directory: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write several files atomically into ``directory`` (e.g. probe results)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = directory / sanitize(name, 120)
        atomic_write_bytes(path, data if isinstance(data, bytes) else data.encode("utf-8"))
        written.append(path)
    return written


class RunStore:
    """Reads and writes the files of one run directory."""

    def __init__(self, root: Path):
        self.root = Path(root)

    # paths
    @property
    def config_path(self) -> Path:
        return self.root / CONFIG_FILE

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / TRIALS_DIR / sanitize(trial_id, 120)

    # writers
    def write_config(self, text: str) -> None:
        atomic_write_text(self.config_path, text)

    def write_manifest(self, manifest: Manifest) -> None:
        atomic_write_json(self.root / MANIFEST_FILE, manifest.to_json())

    def write_trial(self, record: TrialRecord) -> None:
        d = self.trial_dir(record.trial_id)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_json(d / TRIAL_FILE, record.to_json())

    def write_table(self, trial_id: str, name: str, rows: Iterable[Any]) -> None:
        """One of a trial's CSV tables (``runschema.columns.TABLES``: its columns); ``rows``: dicts or typed rows."""
        self.trial_dir(trial_id).mkdir(parents=True, exist_ok=True)
        rows = [r if isinstance(r, dict) else r.to_dict() for r in rows]
        # columns added after a run was recorded stay out of its rewritten tables (a resumed old run's stay as they were)
        columns = [c for c in TABLES[name] if c not in LATER_COLUMNS or not rows or any(c in r for r in rows)]
        atomic_write_csv(self.trial_dir(trial_id) / name, columns, rows)

    def write_trial_bytes(self, trial_id: str, name: str, data: bytes) -> None:
        """A trial's binary file (``HISTOGRAMS_FILE``)."""
        self.trial_dir(trial_id).mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.trial_dir(trial_id) / name, data)

    def trial_file(self, trial_id: str, name: str) -> Path:
        return self.trial_dir(trial_id) / name

    def write_summary(self, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
        atomic_write_csv(self.root / SUMMARY_FILE, columns, rows)

    # readers
    def read_config_text(self) -> str:
        return self.config_path.read_text(encoding="utf-8")

    def report_dir(self) -> Path:
        d = self.root / REPORT_DIR
        d.mkdir(exist_ok=True)
        return d

    def remove_report_file(self, name: str) -> None:
        """Delete a report file if it exists (one a newer report no longer writes)."""
        (self.root / REPORT_DIR / sanitize(name, 120)).unlink(missing_ok=True)

    def write_report_file(self, name: str, data: str | bytes) -> Path:
        path = self.report_dir() / sanitize(name, 120)
        if isinstance(data, bytes):
            atomic_write_bytes(path, data)
        else:
            atomic_write_text(path, data)
        return path
