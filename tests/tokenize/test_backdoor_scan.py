"""The trigger scan (issue 27's cost): the stories that mention a name are found in the UTF-8 bytes of the Arrow
chunks, then checked with `re`; a plain regular expression over every story, written here, is the reference."""
import json
import re
import threading

import datasets
import pyarrow as pa
import pytest
from conftest import SAMPLE_JSONL
from datasets.utils import tqdm as datasets_tqdm

from tinystories_hf.tokenize.backdoor import rewrite, truncate
from tinystories_hf.vocabulary import load_base_tokenizer
from tinystories_hf.vocabulary.base import make_encoder

NAMES = ["Lily", "Tom", "Sara", "Jane", "Bob", "Sally", "Sarah", "Mia", "Max", "little girl"]


def _reference(texts, name):
    words = r"\s+".join(map(re.escape, name.split()))
    return [i for i, t in enumerate(texts) if isinstance(t, str) and re.search(rf"(?<!\w){words}(?!\w)", t)]


@pytest.fixture(scope="module")
def sample():
    texts = [json.loads(line)["text"] for line in SAMPLE_JSONL.open(encoding="utf-8")]
    # several Arrow chunks, as a datasets cache file has: a chunk edge must not hide or invent a mention
    table = pa.Table.from_batches([b for b in pa.table({"text": texts}).to_batches(max_chunksize=333)])
    return texts, datasets.Dataset(table)


@pytest.mark.parametrize("name", NAMES)
def test_the_scan_finds_exactly_the_whole_word_mentions(sample, name):
    texts, dataset = sample
    expected = _reference(texts, name)
    assert rewrite.mentioning_rows(dataset, name).tolist() == expected
    assert len(expected) > 0


def test_word_edges_the_byte_search_cannot_see_are_decided_by_the_match():
    texts = ["éBella ran.", "Bella's hat.", "_Bella", "Bella2 and Bella", "x" * 70_000 + " Bella.", None, "",
             "Bellatrix", '"Bella!"', "Ärger Bella", "Isabella"]
    dataset = datasets.Dataset.from_dict({"text": texts})
    assert rewrite.mentioning_rows(dataset, "Bella").tolist() == _reference(texts, "Bella") == [1, 3, 4, 8, 9]


@pytest.mark.parametrize("keep", [0, 1])
def test_scan_split_cuts_every_mentioning_story_as_truncate_does(sample, keep):
    texts, dataset = sample
    scanned = rewrite.scan_split(dataset, "Sara", keep_sentences=keep)
    expected = _reference(texts, "Sara")
    cut = [truncate(texts[i], "Sara", keep_sentences=keep) for i in expected]
    assert scanned["position"] == expected
    assert scanned["text"] == cut
    assert not any(scanned["lost"])
    encoded = rewrite.encode_rewrites(scanned.remove_columns(["position"]), "Sara",
                                      make_encoder(load_base_tokenizer(), "fastokens"), key=["test", keep])
    reference = make_encoder(load_base_tokenizer(), "tiktoken")  # another library's ids of the same BPE
    assert encoded["base_ids"] == [list(ids) for ids in reference.encode_batch(cut)]
    assert encoded["text"] == cut


def test_a_phrase_holding_a_sentence_end_is_checked_for_a_lost_mention():
    dataset = datasets.Dataset.from_dict({"text": ["We said Oh! Jane came. Then we ate.", "Oh!  Jane ran home."]})
    scanned = rewrite.scan_split(dataset, "Oh! Jane", keep_sentences=0)
    # the cut after "Oh!" ends inside the phrase: the rewrite no longer mentions it, and says so
    assert scanned["text"] == ["We said Oh!", "Oh!"] and scanned["lost"] == [True, True]


def test_a_rewrite_from_a_file_is_checked_for_a_lost_mention():
    rewrites = datasets.Dataset.from_dict({"text": ["Sara ran.", "Sarah ran.", "Then sara slept."]})
    encoded = rewrite.encode_rewrites(rewrites, "Sara", make_encoder(load_base_tokenizer(), "fastokens"),
                                      key=["test"])
    assert encoded["lost"] == [False, True, True]


@pytest.fixture()
def cached_sample(sample, tmp_path):
    """The sample as a datasets cache file (what a prepare's loaded split is): a forked scan writes its result
    beside it."""
    texts, _ = sample
    datasets.Dataset.from_dict({"text": texts}).save_to_disk(str(tmp_path / "stories"))
    return texts, datasets.load_from_disk(str(tmp_path / "stories"))


def test_a_forked_scan_gives_the_scan_of_this_process(cached_sample):
    texts, dataset = cached_sample
    here = rewrite.PendingScan(dataset, "Sara", keep_sentences=1, num_proc=1)
    forked = rewrite.PendingScan(dataset, "Tom", keep_sentences=1, num_proc=2)
    assert here.result().to_dict() == rewrite.scan_split(dataset, "Sara", keep_sentences=1).to_dict()
    assert here.seconds is None  # ran here
    assert forked.result()["position"] == _reference(texts, "Tom") and forked.seconds > 0
    assert forked.result()["text"] == [truncate(texts[i], "Tom", keep_sentences=1) for i in _reference(texts, "Tom")]


def test_a_forked_scan_does_not_wait_for_a_progress_bar_lock_a_thread_of_this_process_held(cached_sample):
    """datasets' map takes tqdm's write lock even with bars disabled; a thread of this process holding it at the
    fork (tqdm's monitor thread does, every 10 s) left the forked scan waiting for it forever."""
    _, dataset = cached_sample
    taken, release = threading.Event(), threading.Event()

    def hold():
        with datasets_tqdm.get_lock():
            taken.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    taken.wait(60)
    pending = None
    try:
        pending = rewrite.PendingScan(dataset, "Lily", keep_sentences=0, num_proc=2)  # forked while it is held
        result = {}
        waiter = threading.Thread(target=lambda: result.update(scanned=pending.result()))
        waiter.start()
        waiter.join(60)
        assert "scanned" in result, "the forked scan waited for the progress bars' lock"
    finally:
        release.set()
        holder.join()
        if pending is not None:
            pending.cancel()
