"""The jobs file of ``python -m psdnet_qgis batch``: one scene per CSV line -> :class:`Job`.

The whole file is read and checked on the client before any cluster starts, so a bad cell
on line 40 is reported at once rather than after 39 scenes, and :mod:`engine.batch.runner` only
ever runs checked jobs. Standard library only at import (the CLI's parser loads it).
"""

from __future__ import annotations

import csv
import inspect
import os
from dataclasses import dataclass, field
from typing import Any

from psdnet_qgis.core.options import RunOptions, is_model_path
from psdnet_qgis.errors import PSDNetInputError

#: Columns of the jobs CSV besides pan, ms and out, and the pansharpen() keyword of each.
OPTION_COLUMNS = {
    "method": "method", "model": "model", "pan_band": "pan_band", "tile": "tile",
    "overlap": "overlap", "batch": "batch_size", "precision": "precision", "float32": "out_dtype",
    "sensor": "sensor", "adapt_seconds": "adapt_seconds",
    # 8-band MS with a 4-band model (engine.mixed): "2;3;5;7" (or "2,3,5,7" quoted) and the method
    "model_bands": "model_bands", "other_method": "other_method",
    # per-scene calibration of PSDNet runs (default true)
    "calibrate": "calibrate",
}
PATH_COLUMNS = ("pan", "ms", "out")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"0", "false", "no", "n"}


@dataclass(frozen=True)
class Job:
    """One scene of the jobs file.

    Attributes:
        line: line of the jobs file (for messages).
        pan, ms: absolute input paths.
        out: absolute final output path.
        options: keyword arguments of :func:`engine.run.pansharpen` (method, model, ...).
    """

    line: int
    pan: str
    ms: str
    out: str
    options: dict = field(default_factory=dict)


def _column_name(name: str) -> str:
    return (name or "").strip().lower().replace("-", "_").replace(" ", "_")


def _engine_parameters() -> set[str]:
    from psdnet_qgis.engine.run import pansharpen

    return set(inspect.signature(pansharpen).parameters)


def _resolve(path: str, base: str) -> str:
    path = os.path.expanduser(path)
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(base, path))


def _convert(column: str, value: str, where: str, base: str) -> Any:
    """One CSV cell -> the pansharpen() value of its column (``where`` names the cell)."""
    if column in ("pan_band", "tile", "overlap", "batch"):
        try:
            n = int(value)
        except ValueError:
            raise PSDNetInputError(f"{where}: '{value}' is not a whole number; write e.g. 1.") from None
        if n < (1 if column in ("pan_band", "batch") else 0):
            raise PSDNetInputError(f"{where}: {n} is too small; give a positive number.")
        return n
    if column == "adapt_seconds":
        try:
            s = float(value)
        except ValueError:
            raise PSDNetInputError(f"{where}: '{value}' is not a number of seconds; write e.g. 30.") from None
        if s < 0:
            raise PSDNetInputError(f"{where}: {s} is negative; give 0 or more seconds.")
        return s
    if column in ("float32", "calibrate"):
        v = value.lower()
        if v not in _TRUE | _FALSE:
            raise PSDNetInputError(f"{where}: '{value}' is not yes/no; write 1 or 0.")
        if column == "calibrate":
            return v in _TRUE
        return "float32" if v in _TRUE else None
    if column == "model" and is_model_path(value):
        return _resolve(value, base)
    return value


def _read_rows(csv_path: str) -> list[tuple[int, list[str]]]:
    """(line number, cells) of the file's non-blank lines, the header first; never empty."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            rows = [(reader.line_num, row) for row in reader]
    except OSError as exc:
        raise PSDNetInputError(f"Jobs file '{csv_path}' cannot be read ({exc.strerror}); check the path.") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise PSDNetInputError(f"Jobs file '{csv_path}' is not a UTF-8 CSV file ({exc}); save it as CSV.") from None
    rows = [(n, row) for n, row in rows if any(c.strip() for c in row)]
    if not rows:
        raise PSDNetInputError(f"Jobs file '{csv_path}' is empty; write a header line 'pan,ms' and one line per scene.")
    return rows


def _read_header(csv_path: str, row: list[str]) -> list[str]:
    """The header's column names, normalised; every one known, and pan and ms present."""
    header = [_column_name(c) for c in row]
    known = set(PATH_COLUMNS) | set(OPTION_COLUMNS)
    unknown = [c for c in header if c not in known]
    if unknown:
        raise PSDNetInputError(
            f"Jobs file '{csv_path}': unknown column(s) {', '.join(repr(c) for c in unknown)}; "
            f"the columns are {', '.join(sorted(known))}."
        )
    missing = [c for c in ("pan", "ms") if c not in header]
    if missing:
        raise PSDNetInputError(
            f"Jobs file '{csv_path}': no {' or '.join(repr(c) for c in missing)} column; the header "
            "line needs at least 'pan,ms'."
        )
    return header


def _row_options(where: str, cells: dict[str, str], defaults: dict[str, Any], engine_params: set[str],
                 base: str) -> dict[str, Any]:
    """pansharpen() keywords of one line: the defaults, overridden by its non-empty option cells.

    ``where`` names the line in messages; a column this engine has no keyword for is refused
    rather than dropped, so an old engine never silently ignores a setting. The choices are
    checked as the engine checks them (:meth:`core.options.RunOptions.validate`).
    """
    options = {k: v for k, v in defaults.items() if v is not None}
    for column, value in cells.items():
        if column in PATH_COLUMNS:
            continue
        kw = OPTION_COLUMNS[column]
        if kw not in engine_params:
            raise PSDNetInputError(
                f"{where}: column '{column}' is not an option of this version's engine "
                "(pansharpen has no such setting); remove the column."
            )
        options[kw] = _convert(column, value, f"{where}, column '{column}'", base)
    try:
        RunOptions(**options).validate()
    except PSDNetInputError as err:
        raise PSDNetInputError(f"{where}: {err}") from None
    return options


def _read_job(csv_path: str, line: int, row: list[str], header: list[str], out_dir: str,
              defaults: dict[str, Any], engine_params: set[str]) -> Job:
    """The :class:`Job` of one line: its cells checked, paths resolved, output named."""
    base = os.path.dirname(csv_path)
    where = f"Jobs file '{csv_path}', line {line}"
    if len(row) > len(header):
        raise PSDNetInputError(f"{where}: {len(row)} cells but {len(header)} columns; quote cells that contain commas.")
    cells = {c: v.strip() for c, v in zip(header, row, strict=False) if v.strip()}  # short rows: empty cells
    for c in ("pan", "ms"):
        if c not in cells:
            raise PSDNetInputError(f"{where}: the '{c}' cell is empty; give a raster path.")
    options = _row_options(where, cells, defaults, engine_params, base)
    pan, ms = _resolve(cells["pan"], base), _resolve(cells["ms"], base)
    if "out" in cells:
        out = _resolve(cells["out"], base)
    else:
        stem = os.path.splitext(os.path.basename(ms))[0]
        out = os.path.join(os.path.abspath(out_dir), f"{stem}_{options['method']}.tif")
    if out in (pan, ms):  # checked here: a complete "output" would otherwise be skipped
        raise PSDNetInputError(f"{where}: the output '{out}' is also an input; give another 'out' cell.")
    return Job(line=line, pan=pan, ms=ms, out=out, options=options)


def read_jobs(csv_path: str, out_dir: str, defaults: dict[str, Any] | None = None) -> list[Job]:
    """Parse the jobs CSV into :class:`Job` objects.

    The header names the columns (case and ``-``/``_`` do not matter): ``pan`` and ``ms``
    (required), ``out`` (default ``<out_dir>/<ms file stem>_<method>.tif``), and any of
    :data:`OPTION_COLUMNS`; an empty cell takes the value of ``defaults`` (the command-line
    flags). Relative paths are resolved against the CSV's folder.

    Args:
        csv_path: the jobs file.
        out_dir: folder of the outputs without an ``out`` cell.
        defaults: pansharpen() keyword defaults (method, model, device, tile, ...).

    Returns:
        The jobs, in file order.

    Raises:
        PSDNetInputError: missing or unreadable file, unknown or missing columns, a bad
            cell, two jobs with the same output (message names the line and the fix).
    """
    csv_path = os.path.abspath(csv_path)
    defaults = dict(defaults or {})
    defaults.setdefault("method", "psdnet")
    engine_params = _engine_parameters()
    rows = _read_rows(csv_path)
    header = _read_header(csv_path, rows[0][1])
    jobs: list[Job] = []
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        job = _read_job(csv_path, line, row, header, out_dir, defaults, engine_params)
        if job.out in seen:
            raise PSDNetInputError(
                f"Jobs file '{csv_path}', lines {seen[job.out]} and {line} write the same output '{job.out}'; "
                "give one of them another 'out' cell."
            )
        seen[job.out] = line
        jobs.append(job)
    if not jobs:
        raise PSDNetInputError(f"Jobs file '{csv_path}' has a header but no scene; add one line per scene.")
    return jobs
