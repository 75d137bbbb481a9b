"""Keep read-once memory-mapped Arrow data out of the resident set.

datasets memory-maps its Arrow files, and every page a pass reads stays mapped into the reading process
(and counted in its RSS) until the table is closed, although it is page cache the kernel could drop:
one pass over the train split would leave all of its text in the tokenizing workers' RSS. Releasing
unmaps those pages with madvise(MADV_DONTNEED); they stay in the page cache, and a later read maps them
again. Only read-only file mappings are released (on anonymous or writable memory MADV_DONTNEED would
discard data), so an in-memory table is left alone, as is every platform other than Linux.

    pages = PageReleaser()
    for batch in batches:                       # a pass over memory-mapped data
        ...
        pages.read(batch.column("text"))        # every 64 MiB read, the pages read so far are released
    with pages_released(dataset.data):          # while datasets reads a whole table (save_to_disk)
        dataset.save_to_disk(path)
"""
import bisect
import contextlib
import ctypes
import re
import sys
import threading

MADV_DONTNEED = 4
RELEASE_EVERY = 64 << 20  # bytes: each release first reads /proc/self/maps, so release in steps, not per batch
# /proc/self/maps lines of read-only mappings backed by a file (non-zero inode, absolute path).
_FILE_MAPPING = re.compile(rb"^([0-9a-f]+)-([0-9a-f]+) r-[-x][sp] [0-9a-f]+ \S+ [1-9][0-9]* +/", re.MULTILINE)
_madvise = None
if sys.platform.startswith("linux"):
    _madvise = ctypes.CDLL(None, use_errno=True).madvise
    _madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


def file_mappings(*arrays) -> set:
    """(start, end) of the read-only file mappings that hold a buffer of `arrays` (Arrow arrays, chunked
    arrays or table columns). They stay valid while the arrays are alive: their buffers keep them mapped."""
    if _madvise is None:
        return set()
    with open("/proc/self/maps", "rb") as f:
        spans = [(int(m[1], 16), int(m[2], 16)) for m in _FILE_MAPPING.finditer(f.read())]  # sorted
    starts, held = [start for start, _ in spans], set()
    for array in arrays:
        for chunk in getattr(array, "chunks", [array]):
            for buffer in chunk.buffers():  # a nested array's list includes its children's buffers
                i = bisect.bisect_right(starts, buffer.address) - 1 if buffer is not None else -1
                if i >= 0 and buffer.address < spans[i][1]:
                    held.add(spans[i])
    return held


def _release(spans) -> None:
    for start, end in spans:
        _madvise(start, end - start, MADV_DONTNEED)


def release_mappings(*arrays) -> int:
    """Release the pages of the read-only file mappings that hold `arrays`; returns how many mappings."""
    spans = file_mappings(*arrays)
    _release(spans)
    return len(spans)


class PageReleaser:
    """Counts the bytes a pass reads and releases their mappings every `every` bytes, so a pass over
    memory-mapped data keeps at most about `every` bytes of it resident.

    Example:
        >>> pages = PageReleaser()
        >>> for chunk in table.column("input_ids").chunks:  # doctest: +SKIP
        ...     total += pc.sum(chunk.flatten()).as_py()
        ...     pages.read(chunk)
    """

    def __init__(self, every: int = RELEASE_EVERY):
        self.every, self.unreleased = every, 0

    def read(self, *arrays) -> None:
        self.unreleased += sum(array.nbytes for array in arrays)
        if self.unreleased >= self.every:
            release_mappings(*arrays)
            self.unreleased = 0


@contextlib.contextmanager
def pages_released(*tables, every: float = 0.2):
    """While the block runs, release the mappings of `tables` every `every` seconds: for code that reads
    a whole memory-mapped table and offers no hook between batches (save_to_disk)."""
    columns = [column for table in tables for column in table.columns]  # held: the spans stay valid
    spans, done = file_mappings(*columns), threading.Event()

    def release():
        while not done.wait(every):
            _release(spans)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        _release(spans)
