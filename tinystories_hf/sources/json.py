"""JSON: JSON Lines (`.jsonl`, `.json`: one object per line) or one JSON array of objects; `.gz` compressed too.

JSON Lines are parsed by pyarrow in blocks of a few MB with the story field as the only column of an explicit
string schema: other fields are ignored, whatever they hold. A story that is not a string (or null) is an
error, never a cast, and so is a story field given twice in one object. Each block must give one row per
line that is not blank (pyarrow alone would also take two objects on a line, or an object across lines when
it fits in one of its chunks: the file's size would decide). On any error the failing block is read again
line by line with Python's `json` to name the file's absolute line (1-based; lines end as in `files.py`)
and what is wrong with it. A JSON array (first character `[`) is read whole with Python's `json`, as
`datasets`' own JSON builder does; its errors name the line or the item (0-based).
"""
import io
import json

import pyarrow as pa
import pyarrow.json as paj

from ..errors import TinyStoriesError, flag
from .files import count_lines, encoding_error, ends_line, no_stories, open_bytes

NAME = "JSON"
SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
BLOCK_BYTES = 16 << 20
BATCH_ROWS = 10_000
_KINDS = {dict: "an object", list: "an array", bool: "a boolean", int: "a number", float: "a number", str: "a string"}


def _kind(value) -> str:
    return next((name for kind, name in _KINDS.items() if isinstance(value, kind)), type(value).__name__)


class _Object(dict):
    """A parsed JSON object that remembers the keys it was given more than once."""

    repeated = frozenset()


def _object(pairs) -> _Object:
    found = _Object(pairs)
    if len(found) < len(pairs):
        keys = [key for key, _ in pairs]
        found.repeated = frozenset(key for key in found if keys.count(key) > 1)
    return found


def _loads(text: str):
    return json.loads(text, object_pairs_hook=_object)


def shards(files, *, text_column: str) -> list:
    """One shard per file (a JSON file is parsed from its start)."""
    return [str(path) for path in files]


def _not_a_story(path: str, where: str, text_column: str, value) -> TinyStoriesError:
    return TinyStoriesError(f"{path}: {where}: {text_column!r} holds {_kind(value)}, not a string; make every "
                            f"story a JSON string (null is allowed) or pick the story field with "
                            f"{flag('text_column')} NAME")


def _story_error(path: str, where: str, item, text_column: str):
    """The error for an object whose story field is not one string (or null), else None."""
    if text_column in item.repeated:
        return TinyStoriesError(f"{path}: {where}: {text_column!r} is given more than once in the object; keep "
                                "one story per object")
    story = item.get(text_column)
    if story is not None and not isinstance(story, str):
        return _not_a_story(path, where, text_column, story)
    if isinstance(story, str) and not story.isascii():
        try:
            story.encode("utf-8")
        except UnicodeEncodeError as e:  # json allows "\ud800"; it is no Unicode text
            bad = ord(story[e.start])
            if 0xDC80 <= bad <= 0xDCFF:  # a byte that is not UTF-8, kept by the surrogateescape decoding
                return TinyStoriesError(f"{path}: {where}: not valid UTF-8 ({text_column!r} holds byte "
                                        f"0x{bad - 0xDC00:02x}); re-encode the file as UTF-8")
            return TinyStoriesError(f"{path}: {where}: {text_column!r} holds a lone surrogate escape "
                                    f"(\\u{bad:04x}), which is not text; fix the story")
    return None


def _bad_line(path: str, block: bytes, first_line: int, text_column: str):
    """The error for the first line of `block` that is not one JSON object with a string (or null) story."""
    for i, raw in enumerate(block.splitlines()):
        if not raw.strip():
            continue
        where = f"line {first_line + i}"
        try:  # invalid UTF-8 in a field that is not read is no error: only the story's bytes are text here
            value = _loads(raw.decode("utf-8", "surrogateescape").removeprefix("\ufeff" if first_line + i == 1 else ""))
        except json.JSONDecodeError as e:
            at = "" if e.msg.endswith(" at") else " at"  # "Unterminated string starting at"
            return TinyStoriesError(f"{path}: {where}: not valid JSON ({e.msg}{at} column {e.colno}); JSON Lines "
                                    "hold one complete object per line")
        if not isinstance(value, dict):
            return TinyStoriesError(f"{path}: {where}: {_kind(value)}, not a JSON object; JSON Lines hold one "
                                    "object per line, e.g. {\"text\": \"Once upon a time...\"}")
        error = _story_error(path, where, value, text_column)
        if error:
            return error
    return None


def _last_line(block: bytes, first: int) -> int:
    return first + count_lines(block) - ends_line(block)


def _one_object_per_line(block: bytes, rows: int, breaks: int) -> bool:
    """True if the block's `rows` parsed objects are one per line that is not blank (`breaks`: its line
    endings; fast when no line is blank)."""
    if rows == breaks + (not ends_line(block)):
        return True
    return rows == sum(1 for line in block.splitlines() if line.strip())


def _fields(path: str) -> list:
    """The fields of the first objects of a JSON Lines file (to name them when the story field is missing)."""
    found = {}
    with open_bytes(path) as f:
        for number, raw in zip(range(1000), f):
            try:
                value = json.loads(raw.decode("utf-8-sig" if number == 0 else "utf-8"))
            except ValueError:
                continue
            found.update(dict.fromkeys(value) if isinstance(value, dict) else {})
    return list(found)


def _parse(block: bytes, options):
    """The block's table; a line longer than a quarter of the block is parsed in one chunk (pyarrow cannot
    parse a line that straddles its chunks), and so is the block again before an error is reported."""
    try:
        return paj.read_json(io.BytesIO(block), parse_options=options,
                             read_options=paj.ReadOptions(block_size=max(1 << 20, len(block) // 4)))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return paj.read_json(io.BytesIO(block), parse_options=options,
                             read_options=paj.ReadOptions(block_size=len(block) + 1))


def _read_lines(path: str, f, head: bytes, text_column: str):
    options = paj.ParseOptions(explicit_schema=pa.schema([(text_column, pa.string())]),
                               unexpected_field_behavior="ignore")
    line, pending, seen, rows = 1, head, False, 0
    while True:
        chunk = f.read(BLOCK_BYTES)
        data = pending + chunk
        # cut after the last line ending (not a \r that ends the data: a \n may follow it)
        cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1 if chunk else len(data)
        if chunk and cut == 0:  # a line longer than the block: read on
            pending = data
            continue
        block, pending = data[:cut], data[cut:]
        breaks = count_lines(block)
        if block and not block.isspace():
            try:
                table = _parse(block, options)
                if not _one_object_per_line(block, table.num_rows, breaks):
                    raise pa.ArrowInvalid("not one object per line")
            except (pa.ArrowInvalid, UnicodeDecodeError) as e:
                error = _bad_line(path, block, line, text_column)
                last = _last_line(block, line)
                raise error or TinyStoriesError(f"{path}: lines {line}..{last}: {str(e).splitlines()[0]}; JSON "
                                                "Lines hold one complete object per line") from None
            column = table.column(0)
            seen, rows = seen or column.null_count < len(column), rows + len(column)
            offset = 0
            for part in column.chunks:  # as parsed: no copy
                yield (path, line, block, offset), part
                offset += len(part)
        line += breaks
        if not chunk:
            break
    if not rows:
        raise no_stories(path, "only blank lines" if head else "it is empty")
    fields = [] if seen else _fields(path)
    if not seen and text_column not in fields:
        raise TinyStoriesError(f"{path}: no column {text_column!r} (columns found: {', '.join(fields) or 'none'}); "
                               f"pass {flag('text_column')} NAME")


def _read_array(path: str, data: bytes, text_column: str):
    text = data.decode("utf-8", "surrogateescape").removeprefix("\ufeff")  # a story's bad bytes: its item's error
    try:
        items = _loads(text)
    except json.JSONDecodeError as e:
        line = count_lines(text[:e.pos].encode("utf-8", "surrogateescape")) + 1
        raise TinyStoriesError(f"{path}: line {line}: not valid JSON ({e.msg}); a JSON file holds one array of "
                               "objects, or JSON Lines") from None
    if not isinstance(items, list):
        raise TinyStoriesError(f"{path}: one JSON {_kind(items)[2:]} where JSON Lines (one object per line) or an "
                               "array of objects is expected")
    if not items:
        raise no_stories(path, "an empty array")
    stories = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise TinyStoriesError(f"{path}: item {i}: {_kind(item)}, not an object; the array must hold one "
                                   "object per story, e.g. {\"text\": \"Once upon a time...\"}")
        error = _story_error(path, f"item {i}", item, text_column)
        if error:
            raise error
        stories.append(item.get(text_column))
    if all(text_column not in item for item in items):
        fields = list(dict.fromkeys(key for item in items[:1000] for key in item))
        raise TinyStoriesError(f"{path}: no column {text_column!r} (columns found: {', '.join(fields) or 'none'}); "
                               f"pass {flag('text_column')} NAME")
    for start in range(0, len(stories), BATCH_ROWS):
        yield (path, start, None, 0), pa.array(stories[start:start + BATCH_ROWS], pa.string())


def read(path: str, *, text_column: str):
    """Yield `((path, first line or item, block or None, first row of the chunk), story column)` per chunk that
    pyarrow parsed (JSON Lines) or per `BATCH_ROWS` items (an array)."""
    with open_bytes(path) as f:
        head = f.read(BLOCK_BYTES)
        wrong = encoding_error(path, head)
        if wrong:
            raise wrong
        if head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"[":
            yield from _read_array(path, head + f.read(), text_column)
        else:
            yield from _read_lines(path, f, head, text_column)


def invalid_text(shard, where, row: int) -> TinyStoriesError:
    """The error for row `row` of the JSON Lines chunk `where` that is not valid UTF-8: its line (the block holds
    one object per line that is not blank) and the line's first bad byte. A JSON array's stories are checked
    as it is read."""
    path, first, block, offset = where
    lines = ((i, raw) for i, raw in enumerate(block.splitlines()) if raw.strip())
    i, raw = next(item for n, item in enumerate(lines) if n == offset + row)
    try:
        raw.decode("utf-8")
        byte = ""
    except UnicodeDecodeError as e:
        byte = f" (byte {e.start + 1} of the line)"
    return TinyStoriesError(f"{path}: line {first + i}: not valid UTF-8{byte}; re-encode the file as UTF-8")
