"""The one normalising function every story goes through, whatever format it was read from.

`normalize_stories` is the contract of `sources` in code: valid UTF-8, one leading BOM removed, line endings
`\\n`, leading and trailing whitespace stripped (Python's `str.strip`, unless `strip=False`), inner text
verbatim. It runs on Arrow batches inside the pass that converts a source into datasets' Arrow cache (or
streams it), so it costs no pass of its own: each step first checks, at memory speed, whether any story of
the batch needs it, and the Arrow kernel that changes the text runs only on batches that do.
"""
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BOM = "\ufeff"
EOT = "<|endoftext|>"
_EOT_BYTES = EOT.encode()
# A whitespace character starts and ends with one of these bytes: ASCII 9-13 and 28-32, or (for U+0085,
# U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000) a byte of a multi-byte sequence.
_MAY_BE_SPACE = np.zeros(256, dtype=bool)
_MAY_BE_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_MAY_BE_SPACE[0x80:] = True


_TEXT_TYPES = {pa.string(), pa.large_string(), *([pa.string_view()] if hasattr(pa, "string_view") else [])}
_BINARY_AS_TEXT = {pa.binary(): pa.string(), pa.large_binary(): pa.large_string(),
                   **({pa.binary_view(): pa.string_view()} if hasattr(pa, "binary_view") else {})}


class InvalidText(ValueError):
    """Row `row` of a batch is not valid UTF-8 (the format module turns it into a file position).

    Example:
        >>> normalize_stories(pa.array([b"ok", b"caf\\xe9"]).view(pa.string()))  # doctest: +SKIP
        InvalidText: row 1 is not valid UTF-8
    """

    def __init__(self, row: int):
        super().__init__(f"row {row} is not valid UTF-8")
        self.row = row


def as_text(column: pa.Array) -> pa.Array:
    """A story column as `string`: large/view strings and dictionaries decoded, binary of any width viewed as
    text (its UTF-8 is checked by `normalize_stories`, row by row), all-null kept null. Other types are the
    caller's to refuse (a story column is never cast from numbers)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), pa.string())
    if column.type in _BINARY_AS_TEXT:  # a view, never a cast: a cast would check UTF-8 and lose the row
        column = column.view(_BINARY_AS_TEXT[column.type])
    return column if column.type == pa.string() else column.cast(pa.string())


def is_text_type(arrow_type: pa.DataType) -> bool:
    """True for the Arrow types a story column may have: strings or binary (UTF-8 bytes, as parquet written
    without the UTF8 annotation holds text) of any width, a dictionary of them, or null."""
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return arrow_type in _TEXT_TYPES or arrow_type in _BINARY_AS_TEXT or pa.types.is_null(arrow_type)


def _bytes(texts: pa.StringArray) -> tuple:
    """The offsets (numpy int32) and the text bytes (a memoryview) of the rows, without copying."""
    offsets = np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset:texts.offset + len(texts) + 1]
    data = texts.buffers()[2]
    return offsets, (memoryview(data)[offsets[0]:offsets[-1]] if data is not None else memoryview(b""))


def first_invalid_row(texts: pa.StringArray) -> int | None:
    """Index of the first row that is not valid UTF-8, or None."""
    try:
        texts.validate(full=True)
        return None
    except pa.ArrowInvalid as e:
        found = re.search(r"index (\d+)", str(e))
    if found:
        return int(found.group(1))
    offsets, data = _bytes(texts)
    for row in range(len(texts)):
        try:
            bytes(data[offsets[row] - offsets[0]:offsets[row + 1] - offsets[0]]).decode("utf-8")
        except UnicodeDecodeError:
            return row
    return None


def _edge_bytes(texts: pa.StringArray) -> tuple:
    """The first and last byte of every row (0 for empty and null rows), read from the offsets."""
    offsets, data = _bytes(texts)
    if not len(data):
        return np.zeros(len(texts), np.uint8), np.zeros(len(texts), np.uint8)
    data = np.frombuffer(data, dtype=np.uint8)
    starts, ends = offsets[:-1] - offsets[0], offsets[1:] - offsets[0]
    filled = ends > starts
    first = np.where(filled, data[np.minimum(starts, len(data) - 1)], 0)
    last = np.where(filled, data[np.maximum(ends - 1, 0)], 0)
    return first.astype(np.uint8), last.astype(np.uint8)


def normalize_stories(column: pa.Array, *, strip: bool = True) -> tuple:
    """Normalise one batch of stories; returns `(texts, literal_eot)`, both of the batch's length.

    `texts` (`pa.string()`): valid UTF-8 (else `InvalidText(row)`), one leading U+FEFF removed, `\\r\\n` and
    lone `\\r` turned into `\\n`, then (with `strip`) leading and trailing whitespace removed as by Python's
    `str.strip` (Arrow's `utf8_trim_whitespace` strips exactly those characters); the rest verbatim, nulls
    stay null. `literal_eot` (`pa.bool_()`): the story holds the literal text `<|endoftext|>`, which is
    tokenized as ordinary text (the summary counts these stories).

    Example:
        >>> texts, eot = normalize_stories(pa.array(["\\ufeffOnce\\r\\nupon ", "a <|endoftext|> b"]))
        >>> texts.to_pylist(), eot.to_pylist()
        (['Once\\nupon', 'a <|endoftext|> b'], [False, True])
    """
    texts = as_text(column)
    bad = first_invalid_row(texts)
    if bad is not None:
        raise InvalidText(bad)
    # Each check looks for a byte that TinyStories text almost never holds (memchr speed on one copy of the
    # batch); the kernel that rewrites or scans every story runs only on a batch where that byte occurs.
    data = bytes(_bytes(texts)[1])
    if b"\r" in data:
        texts = pc.replace_substring(pc.replace_substring(texts, "\r\n", "\n"), "\r", "\n")
    first, _ = _edge_bytes(texts)
    if (first == 0xEF).any():  # the first byte of U+FEFF
        bom = pc.fill_null(pc.starts_with(texts, BOM), False)
        texts = pc.if_else(bom, pc.utf8_slice_codeunits(texts, 1), texts)
    if strip and any(_MAY_BE_SPACE[edge].any() for edge in _edge_bytes(texts)):
        texts = pc.utf8_trim_whitespace(texts)
    if b"<" in data and _EOT_BYTES in data:
        literal = pc.fill_null(pc.match_substring(texts, EOT), False)
    else:
        literal = pa.array(np.zeros(len(texts), dtype=bool))
    return texts, literal


def read_normalized(story_format, shard, *, text_column: str, strip: bool):
    """Yield `(texts, literal_eot)` for each batch a format module reads from `shard`, normalised; a story that
    is not valid UTF-8 raises the format's `TinyStoriesError` naming its file and position."""
    for where, column in story_format.read(shard, text_column=text_column):
        try:
            yield normalize_stories(column, strip=strip)
        except InvalidText as e:
            raise story_format.invalid_text(shard, where, e.row) from None
