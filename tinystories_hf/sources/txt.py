"""TinyStoriesV2 raw text (`TinyStoriesV2-GPT4-train.txt`): each story followed by a separator line.

A separator is a line that holds `<|endoftext|>` and nothing else but whitespace; lines end at `\n`, `\r\n`
or a lone `\r` (`files.py`). The literal inside a line of text is ordinary text, as in every other format.
A story is the text between two separator lines (the first one: from the start of the file), without the
line ending of its last line; the text after the last separator is a story if it holds anything but
whitespace. A separator right after another gives an empty story (counted and skipped downstream). A file
without any separator line is refused: it is not in this format (one story per line, stories joined by
inline literals, UTF-16 text), and reading it as one story would silently train on garbage. A UTF-8 byte
order mark at the start of the file is skipped. `.txt.gz` files are read too, as one range (gzip cannot seek).

Files are cut into byte ranges that begin at a story start (`eot_ranges`): the shards of the parallel
conversion and of streaming. Each range is read in blocks of a few MB; one `bytes.find` per separator.
"""
import math
import sys

import pyarrow as pa

from ..errors import TinyStoriesError
from .files import count_lines, encoding_error, ends_line, line_at, no_stories, open_bytes

NAME = "TinyStoriesV2 text"
SUFFIXES = (".txt", ".txt.gz")
EOT_LINE = "<|endoftext|>"
_EOT = EOT_LINE.encode()
_BOM = b"\xef\xbb\xbf"
_UNICODE_BREAKS = ("\u2028".encode(), "\u2029".encode(), "\u0085".encode())  # text here, not line endings
BLOCK_BYTES = 8 << 20  # bytes read at a time (a longer story is read whole)
SHARD_BYTES = 1 << 20  # ranges of a file: at least this many bytes each ...
MAX_SHARDS = 64  # ... and at most this many per file (64 divides evenly among 2, 4, 8, ... ranks)


def _blank(raw: bytes) -> bool:
    return not raw or not raw.decode("utf-8", "replace").strip()


def _line_end(data: bytes, at: int, final: bool):
    """Just after the first line ending from `at` (`\\n`, `\\r\\n` or a lone `\\r`); at a last line without one,
    `len(data)` if `final`, else None, as for a `\\r` that ends `data` (a `\\n` may follow it)."""
    newline, cr = data.find(b"\n", at), data.find(b"\r", at)
    if cr >= 0 and (newline < 0 or cr < newline):
        if cr + 1 < len(data):
            return cr + 2 if data[cr + 1] == 0x0A else cr + 1
        return cr + 1 if final else None
    if newline >= 0:
        return newline + 1
    return len(data) if final else None


def separator_lines(data: bytes, *, final: bool, begin: int = 0) -> list:
    """`(start, end)` of every separator line of `data` from offset `begin` (a line start): `end` is just
    after its line ending. A last line without one counts only if `final` (it ends the file)."""
    spans, pos = [], data.find(_EOT, begin)
    while pos >= 0:
        start = max(begin, data.rfind(b"\n", begin, pos) + 1, data.rfind(b"\r", begin, pos) + 1)
        end = _line_end(data, pos + len(_EOT), final)
        if end is not None and _blank(data[start:pos]) and _blank(data[pos + len(_EOT):end]):
            spans.append((start, end))
            pos = data.find(_EOT, end)
        else:
            pos = data.find(_EOT, pos + len(_EOT))
    return spans


def _story_end(data: bytes, start: int, end: int) -> int:
    """The end of a story's text: its last line's ending belongs to the separator line after it."""
    if end > start and data[end - 1] == 0x0A:
        end -= 1
    if end > start and data[end - 1] == 0x0D:
        end -= 1
    return end


def _first_story_start(f, at: int, limit: float):
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
            begin = _line_end(data, 0, eof) or len(data)
        spans = separator_lines(data, final=eof, begin=begin)
        if spans:
            return at + spans[0][1]
        if eof or at + len(data) >= limit:
            return None
        window *= 2


def _no_separator_error(path: str) -> TinyStoriesError:
    """What a file without a separator line holds instead, and how to fix it (read once, on this path only)."""
    lines = literals = unicode_breaks = size = 0
    blank, head, last = True, b"", b""
    with open_bytes(path) as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            head = head or block[:1024]
            lines += count_lines(block) - (last == b"\r" and block[:1] == b"\n")
            literals += block.count(_EOT)
            unicode_breaks += sum(block.count(b) for b in _UNICODE_BREAKS)
            size, last = size + len(block), block[-1:]
            blank = blank and _blank(block.replace(_BOM, b""))
    where = f"{path}: no line holds only {EOT_LINE}"
    wrong = encoding_error(path, head)
    if wrong:
        return wrong
    if blank:
        return no_stories(path, "only whitespace" if size else "it is empty")
    if literals and unicode_breaks >= literals:
        return TinyStoriesError(f"{where}: the text holds it {literals:,} times beside Unicode line separators "
                                "(U+2028, U+2029 or U+0085), which are text, not line endings; put each separator "
                                "on a line of its own (ending in \\n) and pass the fixed file")
    if literals:
        return TinyStoriesError(f"{where}, but the text holds it {literals:,} times inside lines (stories joined as "
                                f"'...the end.{EOT_LINE}Once upon...'); put each separator on its own line (e.g. "
                                f"sed 's/{EOT_LINE}/\\n{EOT_LINE}\\n/g' FILE > FIXED) and pass the fixed file")
    lines += not ends_line(last)
    return TinyStoriesError(f"{where} ({lines:,} lines, no separator): not TinyStoriesV2 text; if it holds one "
                            "story per line, convert it to JSON Lines (e.g. jq -cR '{text: .}' FILE > FILE.jsonl) "
                            "and pass that")


def eot_ranges(path, *, shard_bytes: int = SHARD_BYTES, max_shards: int = MAX_SHARDS) -> list:
    """Cut a V2 .txt file into `(path, start, end)` byte ranges that each begin at a story start.

    Streaming uses them as shards, so DataLoader workers and DDP ranks split even a single file. Reading the
    ranges one after another gives exactly the stories of the whole file: a cut is placed just after a
    separator line, found by reading forward from an evenly spaced offset (a few KB per cut). A `.gz` file is
    one range `(path, 0, None)`, None for its end. Raises `TinyStoriesError` if the file has no separator line.

    Example:
        >>> eot_ranges("TinyStoriesV2-GPT4-train.txt")[:2]  # doctest: +SKIP
        [('TinyStoriesV2-GPT4-train.txt', 0, 34781932), ('TinyStoriesV2-GPT4-train.txt', 34781932, 69563410)]
    """
    path = str(path)
    with open_bytes(path) as f:
        size = math.inf if path.endswith(".gz") else f.seek(0, 2)
        if _first_story_start(f, 0, size) is None:
            raise _no_separator_error(path)
        if size == math.inf:
            return [(path, 0, None)]
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
    with open_bytes(path) as f:
        f.seek(start)
        pending, at = b"", start  # `pending`: unfinished text, beginning at byte `at`
        remaining = math.inf if end is None else end - start
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
    with open_bytes(path) as f:
        f.seek(start)
        raw = f.read(end - start)
        try:
            raw.decode("utf-8")
            offset = start
        except UnicodeDecodeError as e:
            offset = start + e.start
        line = line_at(f, offset, BLOCK_BYTES)
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
