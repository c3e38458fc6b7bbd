"""Atomic Parquet/JSON writes and checked reads: a killed run never leaves a half file that looks done.

Every failure here is an ``InputError`` (or an ``OutputError``) whose message names the file, and
where it applies the row, the column or the byte: the CLI prints it and exits 2, with no traceback.
A write that fails (a read-only folder, a full disk) removes its temp file, so nothing half-written
stays behind.
"""

from __future__ import annotations

import codecs
import errno
import gzip
import json
import os
import shutil
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path

import pandas as pd


class InputError(ValueError):
    """A stage input that is missing or malformed; the message names the file and the field."""


class ArtifactError(InputError):
    """An input at one of the pipeline's own paths that is missing or broken (e.g. a model folder).

    The CLI adds which stage writes ``path`` (from the stage table) to the message.
    """

    def __init__(self, message: str, path: str | Path):
        super().__init__(message)
        self.path = str(path)


class OutputError(InputError):
    """A stage output that cannot be written (read-only folder, no permission, disk full).

    A subclass of InputError so that every entry point reporting bad inputs reports this too.
    """


# errno -> what it means for the folder an output goes to, and the fix
_WRITE_ERRORS = {
    errno.EROFS: ("is on a read-only file system", "pass an output path on a writable disk"),
    errno.EACCES: ("is not writable by this user", "make it writable (chmod/chown) or pass another output path"),
    errno.EPERM: ("is not writable by this user", "make it writable (chmod/chown) or pass another output path"),
    errno.ENOSPC: ("is on a full disk", "free some space, or pass an output path on another disk"),
    errno.EDQUOT: ("is on a disk where your quota is used up", "free some space, or pass another output path"),
    errno.ENOTDIR: ("cannot be made: a file is in the way of a folder on its path", "move that file away"),
    errno.EEXIST: ("cannot be made: a file is in the way of a folder on its path", "move that file away"),
}
# pyarrow sometimes reports the OS error only in its message
_WRITE_ERROR_TEXT = {
    "Read-only file system": errno.EROFS,
    "Permission denied": errno.EACCES,
    "No space left on device": errno.ENOSPC,
    "Disk quota exceeded": errno.EDQUOT,
}


def _write_errno(e: OSError) -> int | None:
    if e.errno in _WRITE_ERRORS:
        return e.errno
    return next((code for text, code in _WRITE_ERROR_TEXT.items() if text in str(e)), None)


def _free_mib(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**20:.0f} MiB free"
    except OSError:
        return "free space unknown"


def output_error(path: str | Path, e: OSError) -> OutputError | None:
    """The clear error for an OSError met while writing ``path`` (a file or a folder), None if not a write error."""
    code = _write_errno(e)
    if code is None:
        return None
    path = Path(path)
    folder = path.parent
    what, fix = _WRITE_ERRORS[code]
    extra = f" ({_free_mib(folder)})" if code in (errno.ENOSPC, errno.EDQUOT) else ""
    return OutputError(
        f"{path}: cannot be written: the output folder {folder} {what}{extra} [{errno.errorcode[code]}]; {fix}"
    )


@contextmanager
def _writing(path: Path):
    """Create ``path``'s folder, yield its temp name; on success rename it to ``path``, else remove it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        err = output_error(path, e)
        if err is None:
            raise
        raise err from e
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        tmp.replace(path)
    except BaseException as e:
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        err = output_error(path, e) if isinstance(e, OSError) else None
        if err is None:
            raise
        raise err from e


def write_parquet(df: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with _writing(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def write_json(obj, path: str | Path) -> Path:
    return write_text(json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n", path)


def write_text(text: str, path: str | Path) -> Path:
    path = Path(path)
    with _writing(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def write_dir_atomic(out_dir: str | Path, fill: Callable[[Path], None]) -> Path:
    """``fill`` a temp folder beside ``out_dir``, then rename it: a killed or failed write leaves no half folder."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        fill(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        err = output_error(out_dir, e) if isinstance(e, OSError) else None
        if err is None:
            raise
        raise err from e
    return out_dir


def read_text(path: str | Path) -> str:
    """A text file's contents; InputError naming the file and the byte offset when it is not UTF-8."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    check_utf8(path)
    return path.read_text(encoding="utf-8")


def check_utf8(path: str | Path, chunk_size: int = 1 << 24) -> None:
    """Check a (possibly large) text file is UTF-8 without holding it in memory; InputError if not."""
    path = Path(path)
    start, lines, carry = 0, 0, b""  # start: the file offset of buf[0]
    with open(path, "rb") as f:
        while True:
            data = f.read(chunk_size)
            buf = carry + data
            try:
                _, used = codecs.utf_8_decode(buf, "strict", not data)
            except UnicodeDecodeError as e:
                line = lines + buf.count(b"\n", 0, e.start) + 1
                raise InputError(
                    f"{path}: not UTF-8 text: byte 0x{buf[e.start]:02x} at line {line}, byte offset "
                    f"{start + e.start} ({e.reason}); save the file as UTF-8"
                ) from e
            if not data:
                return
            lines += buf.count(b"\n", 0, used)
            start += used
            carry = buf[used:]


def read_parquet(path: str | Path, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a stage's Parquet input and check that the columns it needs are there."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found (was the stage that writes it run?)")
    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise InputError(
            f"{path}: not a readable Parquet file, truncated or corrupt ({e}); "
            "delete it and rerun the stage that writes it"
        ) from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    return df


def read_shards(paths: Iterable[str | Path], required: Iterable[str] = ()) -> pd.DataFrame:
    required = list(required)
    return pd.concat([read_parquet(p, required) for p in paths], ignore_index=True)


def check_token_ids(df: pd.DataFrame, column: str, vocab_size: int, source: str | Path, tokenizer_of: str) -> None:
    """Every id in list column ``column`` must be in ``[0, vocab_size)``: InputError naming file, row, column.

    A corpus written with another model's tokenizer shows up here, before any model sees an id
    (an embedding lookup out of range would fail deep inside torch, or silently on a GPU).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if df.empty:
        return
    try:
        arr = pa.array(df[column], from_pandas=True)
        flat, parents = pc.list_flatten(arr), pc.list_parent_indices(arr)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
        raise InputError(f"{source}: column {column!r}: expected lists of token ids ({e})") from e
    if len(flat) == 0:
        return
    if not pa.types.is_integer(flat.type):
        raise InputError(f"{source}: column {column!r}: token ids must be integers, got {flat.type}")
    bad = pc.or_(pc.less(flat, 0), pc.greater_equal(flat, vocab_size))
    if not pc.any(bad).as_py():
        return
    i = pc.index(bad, True).as_py()
    row, tok = parents[i].as_py(), flat[i].as_py()
    n_bad = int(pc.sum(bad).as_py())
    raise InputError(
        f"{source}: row {row}: column {column!r}: token id {tok} is out of range for the tokenizer of "
        f"{tokenizer_of} (vocabulary size {vocab_size}; {n_bad} id(s) out of range in the file): the corpus was "
        "made with another tokenizer; rerun the stages that write it with this model"
    )


FILE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv")


def _read_json(path: Path) -> pd.DataFrame:
    text = read_text(path)  # InputError naming the byte offset when it is not UTF-8
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from e
    if isinstance(obj, dict) and isinstance(obj.get("problems"), dict):
        obj = list(obj["problems"].values())  # CHAMP: {"problems": {id: record}, "concepts": ..., "hints": ...}
    if isinstance(obj, dict):
        lists = [v for v in obj.values() if isinstance(v, list)]
        if len(obj) == 1 and lists and all(isinstance(r, dict) for r in lists[0]):
            obj = lists[0]  # {"test": [records]} / {"data": [records]}
        elif lists and len(lists) == len(obj) and len({len(v) for v in lists}) == 1:
            return pd.DataFrame(obj)  # column-oriented
        else:
            raise InputError(f"{path}: JSON must be a list of records or a dict of equal-length columns")
    if not isinstance(obj, list):
        raise InputError(f"{path}: JSON must be a list of records, got {type(obj).__name__}")
    for i, rec in enumerate(obj):
        if not isinstance(rec, dict):
            raise InputError(f"{path}: row {i}: not a JSON object ({type(rec).__name__})")
    return pd.DataFrame.from_records(obj)


def _read_jsonl(path: Path, text: str | None = None) -> pd.DataFrame:
    records = []
    for lineno, line in enumerate((read_text(path) if text is None else text).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{path}: line {lineno}: not valid JSON ({e.msg})") from e
        if not isinstance(rec, dict):
            raise InputError(f"{path}: line {lineno}: not a JSON object")
        records.append(rec)
    return pd.DataFrame.from_records(records)


def read_table(path: str | Path) -> pd.DataFrame:
    """A local Parquet / JSONL (or .jsonl.gz) / JSON / CSV file as a DataFrame; InputError when missing or bad."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if path.name.lower().endswith(".jsonl.gz"):
        try:
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as e:
            raise InputError(f"{path}: not a readable gzipped JSONL file ({e})") from e
        return _read_jsonl(path, text)
    if suffix == ".parquet":
        try:
            return pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a corrupt file
            raise InputError(f"{path}: not a readable Parquet file ({e})") from e
    if suffix == ".jsonl":
        return _read_jsonl(path)
    if suffix == ".json":
        return _read_json(path)
    if suffix == ".csv":
        check_utf8(path)
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        except Exception as e:
            raise InputError(f"{path}: not a readable CSV file ({e})") from e
    raise InputError(f"{path}: unsupported file type {suffix!r}; expected one of {list(FILE_SUFFIXES)}")
