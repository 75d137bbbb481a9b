"""TinyStoriesV2 raw text (`TinyStoriesV2-GPT4-train.txt`): each story followed by a separator line.

A separator is a line that holds `<|endoftext|>` and nothing else but whitespace. The literal inside a line
of text is ordinary text, as in every other format. A story is the text between two separator lines (the
first one: from the start of the file), without the line ending of its last line; the text after the last
separator is a story if it holds anything but whitespace. A separator right after another gives an empty
story (counted and skipped downstream). A file without any separator line is refused: it is not in this
format (one story per line, stories joined by inline literals, CR-only line endings), and reading it as
one story would silently train on garbage. A UTF-8 byte order mark at the start of the file is skipped.

Files are cut into byte ranges that begin at a story start (`eot_ranges`): the shards of the parallel
conversion and of streaming. Each range is read in blocks of a few MB; one `bytes.find` per separator.
"""
import sys

import pyarrow as pa
from datasets.utils.file_utils import xopen

from ..errors import TinyStoriesError

NAME = "TinyStoriesV2 text"
SUFFIXES = (".txt",)
EOT_LINE = "<|endoftext|>"
_EOT = EOT_LINE.encode()
_BOM = b"\xef\xbb\xbf"
BLOCK_BYTES = 8 << 20  # bytes read at a time (a longer story is read whole)
SHARD_BYTES = 1 << 20  # ranges of a file: at least this many bytes each ...
MAX_SHARDS = 64  # ... and at most this many per file (64 divides evenly among 2, 4, 8, ... ranks)


def _blank(raw: bytes) -> bool:
    return not raw or not raw.decode("utf-8", "replace").strip()


def separator_lines(data: bytes, *, final: bool, begin: int = 0) -> list:
    """`(start, end)` of every separator line of `data` from offset `begin` (a line start): `end` is just
    after its `\\n`. A last line without `\\n` counts only if `final` (it ends the file)."""
    spans, pos = [], data.find(_EOT, begin)
    while pos >= 0:
        start = max(begin, data.rfind(b"\n", begin, pos) + 1)
        newline = data.find(b"\n", pos + len(_EOT))
        end = len(data) if newline < 0 else newline + 1
        if (newline >= 0 or final) and _blank(data[start:pos]) and _blank(data[pos + len(_EOT):end]):
            spans.append((start, end))
            pos = data.find(_EOT, end)
        else:
            pos = data.find(_EOT, pos + len(_EOT))
    return spans


def _story_end(data: bytes, start: int, end: int) -> int:
    """The end of a story's text: its last line's `\\n` or `\\r\\n` belongs to the separator line after it."""
    if end > start and data[end - 1] == 0x0A:
        end -= 1
        if end > start and data[end - 1] == 0x0D:
            end -= 1
    return end


def _size(f) -> int:
    f.seek(0, 2)
    return f.tell()


def _first_story_start(f, at: int, limit: int):
    """The offset just after the first separator line that begins after `at` (at the file start: from the
    first line), searched up to about `limit`; None if there is none. Reads a growing window."""
    f.seek(at)
    data, window = b"", 1 << 16
    while True:
        chunk = f.read(window)
        data += chunk
        eof = not chunk
        begin = len(_BOM) if at == 0 and data.startswith(_BOM) else 0
        if at > 0:  # skip the line `at` falls in: it may begin before `at`
            newline = data.find(b"\n")
            begin = newline + 1 if newline >= 0 else len(data)
        spans = separator_lines(data, final=eof, begin=begin)
        if spans:
            return at + spans[0][1]
        if eof or at + len(data) >= limit:
            return None
        window *= 2


def _no_separator_error(path: str) -> TinyStoriesError:
    """What a file without a separator line holds instead, and how to fix it (read once, on this path only)."""
    lines = cr = crlf = literals = 0
    blank, head, last = True, b"", b"\n"
    with xopen(path, "rb") as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            head = head or block[:4]
            lines += block.count(b"\n")
            cr += block.count(b"\r")
            crlf += block.count(b"\r\n")
            literals += block.count(_EOT)
            last = block[-1:]
            blank = blank and _blank(block.replace(_BOM, b""))
    where = f"{path}: no line holds only {EOT_LINE}"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return TinyStoriesError(f"{path}: the file is UTF-16, not UTF-8; re-encode it (e.g. iconv -f utf-16 -t "
                                "utf-8 FILE > FIXED) and pass the fixed file")
    if blank:
        return TinyStoriesError(f"{path}: no stories found (the file holds only whitespace); pass a file with stories")
    if cr > crlf:
        return TinyStoriesError(f"{where}: its {cr - crlf:,} line endings are CR only; convert them to LF (e.g. "
                                "tr '\\r' '\\n' < FILE > FIXED) and pass the fixed file")
    if literals:
        return TinyStoriesError(f"{where}, but the text holds it {literals:,} times inside lines (stories joined as "
                                f"'...the end.{EOT_LINE}Once upon...'); put each separator on its own line (e.g. "
                                f"sed 's/{EOT_LINE}/\\n{EOT_LINE}\\n/g' FILE > FIXED) and pass the fixed file")
    lines += last != b"\n"
    return TinyStoriesError(f"{where} ({lines:,} lines, no separator): not TinyStoriesV2 text; if it holds one "
                            "story per line, convert it to JSON Lines (e.g. jq -cR '{text: .}' FILE > FILE.jsonl) "
                            "and pass that")


def eot_ranges(path, *, shard_bytes: int = SHARD_BYTES, max_shards: int = MAX_SHARDS) -> list:
    """Cut a V2 .txt file into `(path, start, end)` byte ranges that each begin at a story start.

    Streaming uses them as shards, so DataLoader workers and DDP ranks split even a single file. Reading the
    ranges one after another gives exactly the stories of the whole file: a cut is placed just after a
    separator line, found by reading forward from an evenly spaced offset (a few KB per cut). Raises
    `TinyStoriesError` if the file has no separator line at all.

    Example:
        >>> eot_ranges("TinyStoriesV2-GPT4-train.txt")[:2]  # doctest: +SKIP
        [('TinyStoriesV2-GPT4-train.txt', 0, 34781932), ('TinyStoriesV2-GPT4-train.txt', 34781932, 69563410)]
    """
    path = str(path)
    with xopen(path, "rb") as f:
        size = _size(f)
        if _first_story_start(f, 0, size) is None:
            raise _no_separator_error(path)
        parts = max(1, min(max_shards, size // shard_bytes))
        starts = [0]
        for j in range(1, parts):
            cut = _first_story_start(f, max(size * j // parts, starts[-1]), size * (j + 1) // parts)
            if cut is not None and starts[-1] < cut < size:
                starts.append(cut)
    return [(path, a, b) for a, b in zip(starts, starts[1:] + [size])]


def shards(files, *, text_column: str) -> list:
    """Each file's `eot_ranges`: the files are checked for separator lines here, before any conversion."""
    return [r for path in files for r in eot_ranges(path)]


def read(shard, *, text_column: str):
    """Yield `((path, [(start, end) of each story in the file]), binary stories)` per block of the range."""
    path, start, end = shard
    with xopen(path, "rb") as f:
        f.seek(start)
        pending, at, remaining = b"", start, end - start  # `pending`: unfinished text, beginning at byte `at`
        while True:
            chunk = f.read(min(BLOCK_BYTES, remaining))
            remaining -= len(chunk)
            final = remaining <= 0 or not chunk
            data = pending + chunk
            skip = len(_BOM) if at == 0 and data.startswith(_BOM) else 0
            rows, cursor = [], skip
            for line_start, line_end in separator_lines(data, final=final, begin=skip):
                rows.append((cursor, _story_end(data, cursor, line_start)))
                cursor = line_end
            if final and not _blank(data[cursor:]):
                rows.append((cursor, _story_end(data, cursor, len(data))))
            if rows:
                stories = pa.array([data[a:b] for a, b in rows], pa.binary()).view(pa.string())
                yield (path, [(at + a, at + b) for a, b in rows]), stories
            if final:
                return
            pending, at = data[cursor:], at + cursor


def invalid_text(shard, where, row: int) -> TinyStoriesError:
    """The error for story `row` of a block that is not valid UTF-8: the byte offset and line of the bad byte."""
    path, spans = where
    start, end = spans[row]
    with xopen(path, "rb") as f:
        f.seek(start)
        raw = f.read(end - start)
        try:
            raw.decode("utf-8")
            offset = start
        except UnicodeDecodeError as e:
            offset = start + e.start
        f.seek(0)
        line, done = 1, 0
        while done < offset:
            block = f.read(min(BLOCK_BYTES, offset - done))
            line += block.count(b"\n")
            done += len(block)
    return TinyStoriesError(f"{path}: line {line}: not valid UTF-8 at byte offset {offset}; re-encode the file as "
                            "UTF-8 (e.g. iconv -f latin1 -t utf-8)")


def read_eot_ranges(ranges, *, strip: bool = True):
    """Yield `{"text": story}` from `(path, start, end)` ranges made by `eot_ranges`, normalised as prepare
    reads them."""
    from .normalize import read_normalized

    for shard in ranges:
        for texts, _ in read_normalized(sys.modules[__name__], shard, text_column="text", strip=strip):
            yield from ({"text": text} for text in texts.to_pylist())


def read_eot_stories(paths, *, strip: bool = True):
    """Yield `{"text": story}` from whole TinyStoriesV2 files, normalised as prepare reads them.

    Example:
        >>> next(read_eot_stories(["TinyStoriesV2-GPT4-valid.txt"]))["text"][:16]  # doctest: +SKIP
        'Once upon a time'
    """
    yield from read_eot_ranges([r for path in paths for r in eot_ranges(path, max_shards=1)], strip=strip)
