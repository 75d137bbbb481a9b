"""What every text format shares about its files: how they are opened, what a line is, which encodings are
refused, and the error for a file without stories.

A line ends at `\\n`, `\\r\\n` or a lone `\\r`: the three line endings `normalize_stories` turns into `\\n`,
the ones pyarrow's JSON reader splits at, and the ones the V2 reader finds separator lines by; error
positions count lines the same way (Unicode separators such as U+2028 and U+0085 are text, not line ends).
"""
import contextlib
import gzip
import zlib

from datasets.utils.file_utils import xopen

from ..errors import TinyStoriesError

_UTF16_32 = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16",
             b"\xfe\xff": "UTF-16"}


@contextlib.contextmanager
def open_bytes(path: str):
    """The file's bytes, decompressed if its name ends in `.gz` (local paths and `hf://` URLs alike). An error
    while it is read (a damaged gzip stream, a file cut short, an I/O error) becomes the one-line
    `TinyStoriesError` "could not read PATH: ..."."""
    try:
        with xopen(path, "rb") as raw:
            yield gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        reason = (str(e).splitlines() or [""])[0]
        fix = "" if getattr(e, "errno", None) else "; the file is damaged or cut short: copy or download it again"
        raise TinyStoriesError(f"could not read {path}: {type(e).__name__}: {reason}{fix}") from None


def count_lines(data: bytes) -> int:
    """How many line endings `data` holds (`\\n`, `\\r\\n` or a lone `\\r`, one each).

    Example:
        >>> count_lines(b"a\\r\\nb\\rc\\nd")
        3
    """
    cr = data.count(b"\r")
    return data.count(b"\n") + cr - (data.count(b"\r\n") if cr else 0)


def ends_line(data: bytes) -> bool:
    """True if `data` ends with a line ending."""
    return data.endswith((b"\n", b"\r"))


def line_at(f, offset: int, block: int = 8 << 20) -> int:
    """The 1-based line of byte `offset` of the binary file `f`, read from its start in blocks."""
    f.seek(0)
    line, done, last = 1, 0, b""
    while done < offset:
        data = f.read(min(block, offset - done))
        if not data:
            break
        line += count_lines(data) - (last == b"\r" and data[:1] == b"\n")  # a \r\n cut between two blocks
        done, last = done + len(data), data[-1:]
    return line


def encoding_error(path: str, head: bytes) -> TinyStoriesError | None:
    """The error for a file that starts like UTF-16 or UTF-32 text (a byte order mark, or a NUL byte beside
    each ASCII character), else None: the stories must be UTF-8."""
    name = next((name for bom, name in _UTF16_32.items() if head.startswith(bom)), None)
    even, odd = head[:1024:2], head[1:1024:2]
    if name is None and len(odd) >= 4 and {even.count(0), odd.count(0)} == {0, len(odd)}:
        name = "UTF-16LE" if odd.count(0) else "UTF-16BE"  # ASCII text without a byte order mark
    if name is None:
        return None
    return TinyStoriesError(f"{path}: the file is {name}, not UTF-8; re-encode it (e.g. iconv -f {name.lower()} -t "
                            "utf-8 FILE > FIXED) and pass the fixed file")


def no_stories(path: str, holds: str) -> TinyStoriesError:
    """The error for a file without a single story (`holds`: what it holds instead)."""
    return TinyStoriesError(f"{path}: the file holds no stories ({holds}); remove it or pass a file with stories")
