"""Releasing memory-mapped Arrow pages: the file's resident pages go, its data stays, memory that is not a
read-only file mapping is never touched."""
import hashlib
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest

from tinystories_hf.utils.mapped_pages import PageReleaser, pages_released, release_mappings

ROWS = 60_000


def resident_kb(path: Path) -> int:
    """Resident size of this process's mappings of `path`, from /proc/self/smaps."""
    total, inside = 0, False
    with open("/proc/self/smaps") as f:
        for line in f:
            if "-" in line.split(" ", 1)[0]:  # a mapping's header line
                inside = line.rstrip().endswith(str(path))
            elif inside and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


@pytest.fixture
def saved(tmp_path):
    """A saved dataset of ~40 MB of uint16 ids (rows of 0..699 tokens), loaded back memory-mapped."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(0, 700, ROWS)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    values = rng.integers(0, 10_000, offsets[-1]).astype(np.uint16)
    table = pa.table({"input_ids": pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))})
    datasets.Dataset(table).save_to_disk(str(tmp_path / "ds"))
    loaded = datasets.load_from_disk(str(tmp_path / "ds"))
    file = Path(loaded.cache_files[0]["filename"])
    return loaded, file, int(values.astype(np.int64).sum())


def read_all(column) -> int:
    return sum(int(chunk.flatten().to_numpy().astype(np.int64).sum()) for chunk in column.chunks)


def test_release_drops_the_resident_pages_and_keeps_the_data(saved):
    loaded, file, expected = saved
    column = loaded.data.column("input_ids")
    assert read_all(column) == expected
    touched = resident_kb(file)
    assert touched > 0.9 * file.stat().st_size / 1024  # reading every value mapped (nearly) the whole file
    assert release_mappings(column) == 1
    assert resident_kb(file) < 0.05 * touched
    assert read_all(column) == expected  # read again from the page cache


def test_a_pass_keeps_at_most_about_every_bytes_resident(saved):
    loaded, file, expected = saved
    pages, total, peak = PageReleaser(every=4 << 20), 0, 0
    for chunk in loaded.data.column("input_ids").chunks:
        total += int(chunk.flatten().to_numpy().astype(np.int64).sum())
        pages.read(chunk)
        peak = max(peak, resident_kb(file))
    assert total == expected
    size_kb = file.stat().st_size / 1024
    assert size_kb > 35_000 and peak < 8 * 1024  # a 4 MiB step, plus one chunk and the kernel's read-around


def test_memory_that_is_not_a_read_only_file_mapping_is_left_alone(tmp_path):
    in_memory = datasets.Dataset.from_dict({"input_ids": [[i] * 3000 for i in range(2000)]})
    values = np.arange(3_000_000, dtype=np.int64)
    arrays = [pa.chunked_array([pa.array(values)]), in_memory.data.column("input_ids")]
    writable = np.memmap(tmp_path / "w.bin", dtype=np.int64, mode="w+", shape=(1_000_000,))
    writable[:] = 7  # a writable file mapping: releasing it would drop unwritten data
    arrays.append(pa.chunked_array([pa.array(writable)]))
    assert release_mappings(*arrays) == 0
    assert arrays[0].chunk(0).to_numpy()[-1] == 2_999_999
    assert in_memory[1999]["input_ids"] == [1999] * 3000
    assert int(writable.sum()) == 7_000_000


def test_a_save_with_pages_released_is_byte_identical(saved, tmp_path):
    loaded, file, _ = saved
    loaded.save_to_disk(str(tmp_path / "plain"))
    with pages_released(loaded.data, every=0.01):
        loaded.save_to_disk(str(tmp_path / "released"))
    assert resident_kb(file) < 1024  # save_to_disk read the whole table; its pages were released
    digests = [{p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.arrow")}
               for root in (tmp_path / "plain", tmp_path / "released")]
    assert digests[0] == digests[1] and len(digests[0]) == 1
