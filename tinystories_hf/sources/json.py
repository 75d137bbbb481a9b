"""JSON: JSON Lines (`.jsonl`, `.json`: one object per line) or one JSON array of objects; `.gz` compressed too.

JSON Lines are parsed by pyarrow in blocks of a few MB with the story field as the only column of an explicit
string schema: other fields are ignored, whatever their types. A story that is not a string (or null) is an
error, never a cast. On any parse error the failing block is read again line by line with Python's `json`
to name the file's absolute line (1-based) and what is wrong with it. A JSON array (first character `[`) is
read whole with Python's `json`, as `datasets`' own JSON builder does; its errors name the line or the item.
"""
import contextlib
import gzip
import io
import json
import zlib

import pyarrow as pa
import pyarrow.json as paj
from datasets.utils.file_utils import xopen

from ..errors import TinyStoriesError, flag

NAME = "JSON"
SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
BLOCK_BYTES = 16 << 20
BATCH_ROWS = 10_000
_KINDS = {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _kind(value) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def shards(files, *, text_column: str) -> list:
    """One shard per file (a JSON file is parsed from its start)."""
    return [str(path) for path in files]


@contextlib.contextmanager
def _open(path: str):
    with xopen(path, "rb") as raw:
        yield gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw


def _not_a_story(path: str, where: str, text_column: str, value) -> TinyStoriesError:
    return TinyStoriesError(f"{path}: {where}: {text_column!r} holds {_kind(value)}, not a string; make every "
                            f"story a JSON string (null is allowed) or pick the story field with "
                            f"{flag('text_column')} NAME")


def _bad_line(path: str, block: bytes, first_line: int, text_column: str):
    """The error for the first line of `block` that is not a JSON object with a string (or null) story."""
    for i, raw in enumerate(block.split(b"\n")):
        if not raw.strip():
            continue
        where = f"line {first_line + i}"
        try:
            value = json.loads(raw.decode("utf-8-sig" if first_line + i == 1 else "utf-8"))
        except UnicodeDecodeError as e:
            return TinyStoriesError(f"{path}: {where}: not valid UTF-8 (byte {e.start + 1} of the line); "
                                    "re-encode the file as UTF-8")
        except json.JSONDecodeError as e:
            at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at"
            return TinyStoriesError(f"{path}: {where}: not valid JSON ({e.msg}{at} column {e.colno}); JSON Lines "
                                    "hold one complete object per line")
        if not isinstance(value, dict):
            return TinyStoriesError(f"{path}: {where}: {_kind(value)}, not a JSON object; JSON Lines hold one "
                                    "object per line, e.g. {\"text\": \"Once upon a time...\"}")
        story = value.get(text_column)
        if story is not None and not isinstance(story, str):
            return _not_a_story(path, where, text_column, story)
        if isinstance(story, str) and not story.isascii():
            try:
                story.encode("utf-8")
            except UnicodeEncodeError as e:  # json allows "\ud800"; it is no Unicode text
                return TinyStoriesError(f"{path}: {where}: {text_column!r} holds a lone surrogate escape "
                                        f"(\\u{ord(story[e.start]):04x}), which is not text; fix the story")
    return None


def _last_line(block: bytes, first: int) -> int:
    return first + block.count(b"\n") - block.endswith(b"\n")


def _fields(path: str) -> list:
    """The fields of the first objects of a JSON Lines file (to name them when the story field is missing)."""
    found = {}
    with _open(path) as f:
        for number, raw in zip(range(1000), f):
            with contextlib.suppress(ValueError):
                value = json.loads(raw.decode("utf-8-sig" if number == 0 else "utf-8"))
                found.update(dict.fromkeys(value) if isinstance(value, dict) else {})
    return list(found)


def _read_lines(path: str, f, head: bytes, text_column: str):
    options = paj.ParseOptions(explicit_schema=pa.schema([(text_column, pa.string())]),
                               unexpected_field_behavior="ignore")
    line, pending, seen = 1, head, False
    while True:
        chunk = f.read(BLOCK_BYTES)
        data = pending + chunk
        cut = data.rfind(b"\n") + 1 if chunk else len(data)
        if chunk and cut == 0:  # a line longer than the block: read on
            pending = data
            continue
        block, pending = data[:cut], data[cut:]
        if block.strip():
            try:
                table = paj.read_json(io.BytesIO(block), parse_options=options,
                                      read_options=paj.ReadOptions(block_size=max(1 << 20, len(block) // 4)))
            except (pa.ArrowInvalid, UnicodeDecodeError) as e:
                error = _bad_line(path, block, line, text_column)
                last = _last_line(block, line)
                raise error or TinyStoriesError(f"{path}: lines {line}..{last}: {str(e).splitlines()[0]}") from None
            column = table.column(0)
            seen = seen or column.null_count < len(column)
            yield from (((path, line, block), chunk) for chunk in column.chunks)  # as parsed: no copy
        line += block.count(b"\n")
        if not chunk:
            break
    fields = [] if seen else _fields(path)
    if not seen and text_column not in fields:
        raise TinyStoriesError(f"{path}: no column {text_column!r} (columns found: {', '.join(fields) or 'none'}); "
                               f"pass {flag('text_column')} NAME")


def _read_array(path: str, data: bytes, text_column: str):
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise TinyStoriesError(f"{path}: line {line}: not valid UTF-8; re-encode the file as UTF-8") from None
    except json.JSONDecodeError as e:
        raise TinyStoriesError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if not isinstance(items, list):
        raise TinyStoriesError(f"{path}: one JSON {_kind(items)[2:]} where JSON Lines (one object per line) or an "
                               "array of objects is expected")
    stories = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TinyStoriesError(f"{path}: item {i}: {_kind(item)}, not an object; the array must hold one "
                                   "object per story, e.g. {\"text\": \"Once upon a time...\"}")
        story = item.get(text_column)
        if story is not None and not isinstance(story, str):
            raise _not_a_story(path, f"item {i}", text_column, story)
        stories.append(story)
    if items and all(text_column not in item for item in items):
        fields = list(dict.fromkeys(key for item in items[:1000] for key in item))
        raise TinyStoriesError(f"{path}: no column {text_column!r} (columns found: {', '.join(fields) or 'none'}); "
                               f"pass {flag('text_column')} NAME")
    for start in range(0, len(stories), BATCH_ROWS):
        try:
            column = pa.array(stories[start:start + BATCH_ROWS], pa.string())
        except (pa.ArrowException, UnicodeEncodeError):  # a lone surrogate escape (\ud800) is no UTF-8 text
            column = pa.array([s.encode("utf-8", "surrogatepass") if s is not None else None
                               for s in stories[start:start + BATCH_ROWS]], pa.binary()).view(pa.string())
        yield (path, start, None), column


def read(path: str, *, text_column: str):
    """Yield `((path, first line or item, block), story column)` per block of the file."""
    try:
        with _open(path) as f:
            head = f.read(BLOCK_BYTES)
            start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
            if start == b"[":
                yield from _read_array(path, head + f.read(), text_column)
            else:
                yield from _read_lines(path, f, head, text_column)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        reason = (str(e).splitlines() or [""])[0]
        raise TinyStoriesError(f"could not read {path}: {type(e).__name__}: {reason}") from None


def invalid_text(shard, where, row: int) -> TinyStoriesError:
    """The error for a story of batch `where` that is not valid UTF-8, found again line by line."""
    path, first, block = where
    if block is None:  # a JSON array: `first` is the batch's first item
        return TinyStoriesError(f"{path}: item {first + row}: not valid UTF-8 (a lone surrogate escape); "
                                "fix the story's text")
    return _bad_line(path, block, first, "\0") or TinyStoriesError(
        f"{path}: lines {first}..{_last_line(block, first)}: not valid UTF-8; re-encode the file as UTF-8")
