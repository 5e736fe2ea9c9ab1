"""Run-folder files that a kill, a full disk or a crash may have damaged: read, set aside, write.

Readers never raise for a damaged or missing file; they return ``(value, problem)``:

- ``(value, None)``: the file was read;
- ``(None, None)``: the file does not exist (usually not a problem: a trial not finished yet);
- ``(None, problem)``: one line ``<path>: what is wrong; what was expected``.

Writers replace a file atomically: a temporary file in the same folder, unique per process
and call, fsynced, then ``os.replace``; a reader sees the old or the new file, never a part.
A damaged file is never deleted: ``quarantine`` moves it aside to ``<name>.damaged-<n>``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import secrets
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from scm_bench.safe_yaml import MAX_YAML_CHARS, YamlLoadError, excerpt

_CUT = "cut off when it was written?"
_JSON_KIND = {dict: "an object", list: "a list", str: "a string", int: "a number",
              float: "a number", bool: "true/false", type(None): "null"}  # fmt: skip
# What may stand where a JSON value was cut: part of a literal, a number or a \u escape.
_PARTIAL_TOKEN = re.compile(
    r"t(r(ue?)?)?|f(a(l(se?)?)?)?|n(u(ll?)?)?|-?[0-9]*\.?[0-9]*([eE][-+]?[0-9]*)?"
    r"|-?I(n(f(i(n(i(ty?)?)?)?)?)?)?|N(aN?)?"  # Python's json writes inf and nan so
    r"|\\?u[0-9a-fA-F]{0,4}"
)


def _clip(text: str, n: int = 100) -> str:
    """``text`` on one line, cut to ``n`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= n else text[:n] + "…"


def _show(path: Path) -> str:
    """The path for a one-line message (quoted only when it holds odd characters)."""
    text = str(path)
    return text if text.isprintable() else excerpt(text, 200)


def _read_bytes(path: Path) -> tuple[bytes | None, str | None]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, None
    except IsADirectoryError:
        return None, f"{_show(path)}: is a folder; expected a file"
    except OSError as err:
        return None, f"{_show(path)}: cannot read ({err.strerror or type(err).__name__})"
    if not data:
        return None, f"{_show(path)}: empty file (0 bytes; {_CUT})"
    return data, None


def _read_text(path: Path) -> tuple[str | None, str | None]:
    data, problem = _read_bytes(path)
    if data is None:
        return None, problem
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as err:
        if err.reason == "unexpected end of data":  # a multi-byte character cut at the end
            return None, f"{_show(path)}: truncated inside a character ({len(data):,} bytes)"
        return None, f"{_show(path)}: not UTF-8 text (byte {err.start:,}: {err.reason})"


def _cut_json(text: str, err: json.JSONDecodeError) -> bool:
    """The text ends inside the value: a string left open, or an error at a partial token."""
    tail = text[err.pos :].rstrip()
    return err.msg.startswith("Unterminated string") or bool(_PARTIAL_TOKEN.fullmatch(tail))


def read_json_or_none(
    path: str | os.PathLike, expect: type | None = dict
) -> tuple[Any | None, str | None]:
    """The JSON value in ``path`` (a ``dict`` unless ``expect`` says otherwise; ``None``: any).

    A problem says whether the file is empty, truncated (the text ends before the value
    does), not JSON, or of the wrong type.
    """
    path = Path(path)
    text, problem = _read_text(path)
    if text is None:
        return None, problem
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        if _cut_json(text, err):
            size = f"{len(text):,} characters"
            return None, f"{_show(path)}: truncated JSON (ends after {size}; {_CUT})"
        return None, (f"{_show(path)}: not JSON (line {err.lineno}, column {err.colno}: {err.msg})")
    except (ValueError, RecursionError) as err:  # a 5000-digit number; nesting too deep
        why = f"{type(err).__name__}: {_clip(str(err), 60)}"
        return None, f"{_show(path)}: not readable JSON ({why})"
    if expect is not None and not isinstance(value, expect):
        got, want = _JSON_KIND.get(type(value), "?"), _JSON_KIND.get(expect, expect.__name__)
        return None, f"{_show(path)}: top level is {got}; expected {want}"
    return value, None


def read_csv_or_none(
    path: str | os.PathLike,
) -> tuple[list[dict[str, str]] | None, str | None]:
    """The rows of a CSV file with a header line, as ``{column: text}``.

    Our writers end every line with a newline, so a file whose last line has none was cut
    while being written: refused (saying how many fields the cut line kept). So is a quoted
    field left open, or a row whose field count differs from the header. A file cut exactly
    at a line end reads as fewer rows: nothing in a CSV can tell (use a row count elsewhere).
    """
    rows, _, problem = read_csv_text_or_none(path)
    return rows, problem


def read_csv_text_or_none(
    path: str | os.PathLike,
) -> tuple[list[dict[str, str]] | None, str | None, str | None]:
    """(rows as in ``read_csv_or_none``, the checked text for a typed parser, problem): the
    file is read once, for the check and for e.g. ``pandas.read_csv(io.StringIO(text))``."""
    path = Path(path)
    text, problem = _read_text(path)
    if text is None:
        return None, None, problem
    where = _show(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        rows = [(reader.line_num, row) for row in reader if row]
    except csv.Error as err:
        return None, None, f"{where}: not valid CSV (line {reader.line_num}: {err}; {_CUT})"
    if not rows:
        return None, None, f"{where}: no header line; expected a CSV table"
    header = rows[0][1]
    if not text.endswith("\n"):
        line, last = rows[-1]
        if len(rows) == 1:
            return None, None, f"{where}: cut in the header line (no newline after it; {_CUT})"
        kept = f"{len(last)} of {len(header)} fields"
        return None, None, f"{where}: cut mid-line (line {line} has {kept} and no newline; {_CUT})"
    for line, row in rows[1:]:
        if len(row) != len(header):
            n = len(header)
            return None, None, f"{where}: line {line} has {len(row)} fields; the header has {n}"
    return [dict(zip(header, row, strict=True)) for _, row in rows[1:]], text, None


def load_checkpoint_or_none(
    path: str | os.PathLike, *, weights_only: bool = True
) -> tuple[dict | None, str | None]:
    """The ``torch.save``\\ d dict in ``path`` loaded on the CPU, or a problem for a truncated
    or corrupt file instead of torch's exception.

    ``weights_only=True`` (torch's default) loads tensors and plain containers only, which is
    all a trainer checkpoint holds; a complete file needing more is reported, not executed.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None, None
    except OSError as err:
        return None, f"{_show(path)}: cannot read ({err.strerror or type(err).__name__})"
    if path.is_dir() or size == 0:
        return _read_bytes(path)  # the folder / empty-file problem
    import torch

    try:
        value = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        if "Weights only load failed" in str(err) and _complete_zip(path):
            return None, (
                f"{_show(path)}: holds objects beyond tensors and plain containers; "
                "load it with weights_only=False only if you trust it"
            )
        why = _clip(str(err).split(". ")[0])  # torch adds sentences about its internals
        return None, (
            f"{_show(path)}: not a readable checkpoint ({size:,} bytes; truncated or "
            f"corrupt: {type(err).__name__}: {why})"
        )
    if not isinstance(value, dict):
        return None, f"{_show(path)}: holds a {type(value).__name__}; expected a checkpoint dict"
    return value, None


def _complete_zip(path: Path) -> bool:
    """A zip file (torch's format) whose members are all present with matching CRCs."""
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.testzip() is None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return False


def quarantine(path: str | os.PathLike) -> Path:
    """Move a damaged file (or folder) aside to ``<name>.damaged-<n>``, the first free ``n``;
    returns the new path. Nothing is deleted and no earlier quarantined file is overwritten.
    """
    path = Path(path)
    n = 1
    while True:
        target = path.with_name(f"{path.name}.damaged-{n}")
        n += 1
        try:
            os.link(path, target)  # fails if target exists, so two callers never collide
        except FileExistsError:
            continue
        except OSError:  # a folder, or hard links not supported: rename if still free
            if target.exists() or target.is_symlink():
                continue
            os.rename(path, target)
            return target
        with contextlib.suppress(FileNotFoundError):  # another caller moved it: ours is a link
            os.unlink(path)
        return target


def _atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) so no reader or crash ever sees a partial file."""
    data = text.encode("utf-8")
    _atomic_write(path, lambda fh: fh.write(data))


def atomic_torch_save(path: str | os.PathLike, obj: object) -> None:
    """``torch.save(obj, path)`` with the guarantees of :func:`atomic_write_text`."""
    import torch

    _atomic_write(path, lambda fh: torch.save(obj, fh))


def read_text_bounded(path, where: str) -> str:
    """A spec file's UTF-8 text, its size checked before it is read: a file over
    ``MAX_YAML_CHARS`` bytes is a YamlLoadError without reading it (a 400 MB spec once peaked
    at 1.5 GB of memory), and at most that many bytes are ever read (a file that grows, or a
    device that never ends). UnicodeDecodeError for a file that is not UTF-8."""
    with open(path, "rb") as fh:
        data = fh.read(MAX_YAML_CHARS + 1)
    if len(data) > MAX_YAML_CHARS:
        raise YamlLoadError(
            f"{where}: the file is larger than {MAX_YAML_CHARS:,} bytes; allowed: at most "
            f"{MAX_YAML_CHARS:,} characters of YAML (split the spec or generate fewer values)"
        )
    return data.decode("utf-8")
