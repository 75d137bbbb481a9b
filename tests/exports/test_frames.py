"""The export's read window at its real size (`frames.WINDOW_TOKENS`, 8M ids): stories of millions of ids read
in several windows, cut only between stories, framed into the stream a plain numpy concatenation gives, and an
id outside the vocabulary in a later window named by its row."""
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tinystories_hf import TinyStoriesError
from tinystories_hf.exports import frames


def _table(stories: list) -> pa.Table:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in stories])]).astype(np.int32)
    ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(np.concatenate(stories), pa.uint16()))
    return pa.table({"input_ids": ids, "length": pa.array([len(s) for s in stories], pa.int32())})


@pytest.fixture(scope="module")
def stories():
    """5M + 4M + 10 ids, then one story longer than a window (9M) and a short one: 18M ids in all."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 1_000, n, dtype=np.uint16) for n in (5_000_000, 4_000_000, 10, 9_000_000, 3)]


def test_stories_past_one_window_are_cut_between_stories_and_framed_whole(stories):
    assert frames.WINDOW_TOKENS == 8_388_608
    parts = [(Path("a.arrow"), _table(stories[:3])), (Path("b.arrow"), _table(stories[3:]))]
    windows = list(frames.story_windows(parts, vocab_size=1_000, fix="fix"))
    # a.arrow: the 8,388,608th id falls in story 1, so the window ends before it; b.arrow: the 9M story is
    # longer than a window and is read whole, with the next one
    assert [lengths.tolist() for lengths, _ in windows] == [[5_000_000], [4_000_000, 10], [9_000_000, 3]]
    after = np.concatenate([np.append(s, 999) for s in stories])
    before = np.concatenate([np.insert(s, 0, 998) for s in stories])
    got_after = np.concatenate([frames.framed(lengths, values, 999, before=False) for lengths, values in windows])
    got_before = np.concatenate([frames.framed(lengths, values, 998, before=True) for lengths, values in windows])
    assert np.array_equal(got_after, after) and np.array_equal(got_before, before)
    # rows 1..3 only (a shard's range), across both files
    part = list(frames.story_windows(parts, 1, 4, vocab_size=1_000, fix="fix"))
    assert [lengths.tolist() for lengths, _ in part] == [[4_000_000, 10], [9_000_000]]
    assert np.array_equal(np.concatenate([v for _, v in part]), np.concatenate(stories[1:4]))


def test_an_id_outside_the_vocabulary_in_a_later_window_names_its_row(stories):
    bad = [s.copy() for s in stories[:3]]
    bad[2][7] = 1_000  # row 2, read in the second window of the file
    parts = [(Path("a.arrow"), _table(bad))]
    with pytest.raises(TinyStoriesError) as raised:
        list(frames.story_windows(parts, vocab_size=1_000, fix="fix"))
    assert str(raised.value) == "a.arrow: row 2 holds id 1,000, outside the vocabulary of 1,000 ids; fix"
    assert list(frames.story_windows(parts, vocab_size=1_001, fix="fix"))  # the same ids in a larger vocabulary
