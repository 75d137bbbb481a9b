"""Streaming: the same ids as a prepared folder, packing, shuffling, DataLoader workers, DDP splits, the CLI."""
import itertools
from collections import Counter

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import SAMPLE_EOT, SAMPLE_JSONL
from datasets.distributed import split_dataset_by_node
from transformers import GPT2Tokenizer

from tinystories_hf import PrepareConfig, TinyStoriesError, load_stories, prepare, stream
from tinystories_hf.sources import carve_validation, eot_ranges, read_eot_ranges, read_eot_stories
from tinystories_hf.stream import main, stream_stories, vocab_from_stream
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

# A prepared folder with non-default lengths, so skipping and truncation are compared too.
LENGTHS = {"max_length": 300, "min_length": 100}


@pytest.fixture(scope="module")
def reference():
    """The plain transformers GPT-2 tokenizer: an independent source of base ids."""
    files = gpt2_bpe_files()
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


@pytest.fixture(scope="module")
def hub_source(tmp_path_factory, sample_stories):
    """The real sample in the Hub repo layout: two train files (5,000 stories) and one validation file (520)."""
    root = tmp_path_factory.mktemp("hub-source")
    (root / "data").mkdir()
    pq.write_table(pa.table({"text": sample_stories[:2500]}), root / "data" / "train-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[2500:5000]}), root / "data" / "train-00001-of-00002.parquet")
    pq.write_table(pa.table({"text": sample_stories[5000:]}), root / "data" / "validation-00000-of-00001.parquet")
    return root


@pytest.fixture(scope="module")
def hub_prepared(hub_source, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub-prepared") / "p"
    return prepare(PrepareConfig(source=str(hub_source), output=str(out), vocab_size=3000, num_proc=2, **LENGTHS))


def _ids(rows) -> list:
    return [list(row["input_ids"]) for row in rows]


def test_first_streamed_stories_have_the_prepared_ids(hub_source, hub_prepared):
    info = hub_prepared.info["splits"]
    assert info["train"]["skipped_short"] > 0 and info["train"]["truncated"] > 0  # both rules are exercised
    train = stream(str(hub_source), tokenizer=str(hub_prepared.output), **LENGTHS)
    assert train.num_shards == 2
    assert _ids(train.take(1000)) == list(hub_prepared.dataset["train"].select(range(1000))["input_ids"])
    assert _ids(train) == list(hub_prepared.dataset["train"]["input_ids"])  # the whole split, in order
    validation = stream(str(hub_source), split="validation", tokenizer=hub_prepared.tokenizer, **LENGTHS)
    rows = list(validation)
    assert _ids(rows) == list(hub_prepared.dataset["validation"]["input_ids"])
    assert [r["length"] for r in rows] == list(hub_prepared.dataset["validation"]["length"])


def test_streamed_v2_txt_matches_the_prepared_sample_around_its_carve_out(prepared_sample):
    """One V2 .txt file (streamed in byte-range shards) against the sample prepared from jsonl, whose
    validation was carved out of train: map each streamed story to its split through the same carve-out."""
    config = prepared_sample.info["config"]
    streamed = _ids(stream(str(SAMPLE_EOT), tokenizer=str(prepared_sample.output)))
    assert len(streamed) == 5520  # no story of the sample is under 10 tokens
    rows = datasets.Dataset.from_dict({"row": list(range(len(streamed)))})
    carved = carve_validation(rows, config["validation_fraction"], config["seed"])
    for split in ("train", "validation"):
        assert [streamed[i] for i in carved[split]["row"]] == list(prepared_sample.dataset[split]["input_ids"])


@pytest.mark.parametrize("layout", ["demo", "jsonl", "hub", "txt-folder", "parquet-file"])
def test_load_stories_streaming_gives_the_eager_stories(layout, hub_source, tmp_path, sample_stories):
    source = {"demo": "demo", "jsonl": str(SAMPLE_JSONL), "hub": str(hub_source),
              "parquet-file": str(hub_source / "data" / "train-00000-of-00002.parquet")}.get(layout)
    if layout == "txt-folder":
        (tmp_path / "v2-train.txt").write_text("".join(s + "\n<|endoftext|>\n" for s in sample_stories[:300]))
        (tmp_path / "v2-valid.txt").write_text("".join(s + "\n<|endoftext|>\n" for s in sample_stories[300:350]))
        source = str(tmp_path)
    streamed, info = load_stories(source, streaming=True)
    eager, _ = load_stories(source)
    assert isinstance(streamed, datasets.IterableDatasetDict)
    if "validation" in streamed:
        for split in ("train", "validation"):
            assert [r["text"] for r in streamed[split]] == list(eager[split]["text"])
    else:  # a single file: streaming keeps every story in train (the carve-out needs the row count)
        assert info.validation.startswith("none")
        assert sorted(r["text"] for r in streamed["train"]) == sorted(list(eager["train"]["text"])
                                                                       + list(eager["validation"]["text"]))


def test_eot_ranges_cut_a_file_at_story_starts_and_read_back_every_story(tmp_path):
    chunk = (b"First story.\r\nSecond line.\r\n<|endoftext|>\r\n<|endoftext|>\n  Third  \n \t<|endoftext|> \n"
             b"<|endoftext|>x is text\n" + b"A longer story line. " * 40 + b"\n<|endoftext|>\n")
    path = tmp_path / "v2.txt"
    path.write_bytes(chunk * 200 + b"Last story without separator.\n")
    ranges = eot_ranges(path, shard_bytes=4096)
    assert len(ranges) > 20 and ranges[0][1] == 0 and ranges[-1][2] == path.stat().st_size
    assert all(a[2] == b[1] for a, b in itertools.pairwise(ranges))  # contiguous
    whole = list(read_eot_stories([str(path)]))
    assert list(read_eot_ranges(ranges)) == whole and len(whole) == 4 * 200 + 1
    data = path.read_bytes()
    for _, start, _ in ranges[1:]:  # every cut is right after a separator line
        assert data[:start].rsplit(b"\n", 2)[-2].strip() == b"<|endoftext|>"
    # An invalid byte in a later shard is reported at its offset in the file, as the eager reader does.
    bad = bytearray(data)
    bad[ranges[-2][1] + 3] = 0xFF
    path.write_bytes(bytes(bad))
    line = data[:ranges[-2][1] + 3].count(b"\n") + 1
    with pytest.raises(TinyStoriesError, match=rf"v2.txt: line {line}: not valid UTF-8 at byte offset {ranges[-2][1] + 3}"):
        list(stream_stories(str(path)))


def test_vocabulary_from_the_first_streamed_stories(sample_stories, reference):
    tok = vocab_from_stream(str(SAMPLE_JSONL), stories=1000, vocab_size=2000)
    counts = np.bincount(np.concatenate([np.array(ids) for ids in reference(sample_stories[:1000])["input_ids"]]),
                         minlength=50257)
    counts[50256] = -1  # EOS is a special, never a regular entry
    expected = sorted(range(50257), key=lambda i: (-counts[i], i))[:1998]
    assert tok.base_ids[2:].tolist() == expected
    assert tok.meta["sample"]["stories"] == 1000 and tok.meta["sample"]["first_streamed"]
    first = next(iter(stream(str(SAMPLE_JSONL), vocab_stories=1000, vocab_size=2000)))
    assert first["input_ids"] == tok.encode(sample_stories[0])


def test_packed_blocks_are_windows_of_the_story_stream(hub_source, hub_prepared):
    tok, block = hub_prepared.tokenizer, 64
    stories = _ids(stream(str(hub_source), split="validation", tokenizer=tok, **LENGTHS))
    tokens = np.concatenate([np.append(s, tok.eos_id) for s in stories])  # EOS after every story
    packed = list(stream(str(hub_source), split="validation", tokenizer=tok, pack=True, block_size=block,
                         pack_stories=len(stories), **LENGTHS))
    assert len(packed) == (len(tokens) - 1) // block
    for i, item in enumerate(packed):
        assert item["x"].dtype == torch.int64 and item["x"].shape == item["y"].shape == (block,)
        assert item["x"].tolist() == tokens[i * block:(i + 1) * block].tolist()
        assert item["y"].tolist() == tokens[i * block + 1:(i + 1) * block + 1].tolist()
    # In groups of 100 stories, each group drops its own tail (< block_size tokens).
    grouped = stream(str(hub_source), split="validation", tokenizer=tok, pack=True, block_size=block,
                     pack_stories=100, **LENGTHS)
    group_tokens = [sum(len(s) + 1 for s in stories[i:i + 100]) for i in range(0, len(stories), 100)]
    assert sum(1 for _ in grouped) == sum((n - 1) // block for n in group_tokens)
    # A minGPT-style loop: the default collate stacks the blocks.
    batch = next(iter(torch.utils.data.DataLoader(grouped, batch_size=8)))
    assert batch["x"].shape == batch["y"].shape == (8, block) and batch["x"].dtype == torch.int64
    assert int(batch["x"].max()) < tok.vocab_size


@pytest.mark.parametrize("source, shards", [("hub", 2), ("jsonl", 1), ("txt", 4)])
def test_dataloader_with_two_workers_delivers_every_story_once(source, shards, hub_source, prepared_sample):
    """Two files; one jsonl file, a single shard (datasets stops the second worker); one V2 .txt file cut
    into byte-range shards that both workers share."""
    path = {"hub": hub_source, "jsonl": SAMPLE_JSONL, "txt": SAMPLE_EOT}[source]
    ds = stream(str(path), tokenizer=prepared_sample.tokenizer)
    assert ds.num_shards == shards
    alone = Counter(tuple(ids) for ids in _ids(ds))
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    workers = Counter(tuple(row["input_ids"]) for row in loader)
    assert workers == alone and sum(workers.values()) == (5000 if source == "hub" else 5520)


def test_shuffle_buffer_and_set_epoch(prepared_sample):
    in_order = _ids(stream(str(SAMPLE_EOT), tokenizer=prepared_sample.tokenizer))
    ds = stream(str(SAMPLE_EOT), tokenizer=prepared_sample.tokenizer, shuffle_buffer=500, seed=7)
    epoch0, again = _ids(ds), _ids(ds)
    ds.set_epoch(1)
    epoch1 = _ids(ds)
    assert epoch0 == again  # same seed and epoch: same order
    assert epoch0 != epoch1 and epoch0 != in_order
    assert sorted(epoch0) == sorted(epoch1) == sorted(in_order)


@pytest.mark.parametrize("world_size", [2, 3])
def test_split_dataset_by_node_gives_disjoint_complete_shares(world_size, prepared_sample):
    ds = stream(str(SAMPLE_EOT), tokenizer=prepared_sample.tokenizer)  # 4 shards: by shards (2), by examples (3)
    shares = [Counter(tuple(ids) for ids in _ids(split_dataset_by_node(ds, rank=rank, world_size=world_size)))
              for rank in range(world_size)]
    assert all(shares) and sum(shares, Counter()) == Counter(tuple(ids) for ids in _ids(ds))
    assert sum(sum(s.values()) for s in shares) == 5520


def test_stream_cli_prints_counters_and_decoded_stories(prepared_sample, sample_stories, reference, tmp_path,
                                                        monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--source", str(SAMPLE_EOT), "--max-stories", "300", "--examples", "2",
                 "--tokenizer", str(prepared_sample.output)]) == 0
    out = capsys.readouterr().out
    lengths = np.array([len(ids) for ids in reference(sample_stories[:300])["input_ids"]])
    header, row = out.splitlines()[:2]
    assert header.split()[:7] == ["split", "stories", "kept", "short", "empty", "truncated", "tokens"]
    assert row.split()[:7] == ["train", "300", "300", "0", "0", f"{int((lengths > 512).sum())}",
                               f"{int(np.minimum(lengths, 512).sum()):,}"]
    assert f"\n{sample_stories[0]}\n" in out and f"\n{sample_stories[1]}\n" in out
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert main(["--source", "demo", "--max-stories", "50", "--vocab-stories", "400", "--vocab-size", "300"]) == 0
    assert "counted on the first 400 streamed train stories" in capsys.readouterr().out


def test_stream_errors_are_one_line(capsys):
    with pytest.raises(TinyStoriesError, match=r"no 'validation' split to stream .*stream split='train'"):
        stream(str(SAMPLE_JSONL), split="validation")
    with pytest.raises(TinyStoriesError, match="^block_size=0 must be at least 1$"):  # API arguments, not flags
        stream("demo", pack=True, block_size=0)
    with pytest.raises(TinyStoriesError, match="^keep_text=True does not apply to packed blocks"):
        stream("demo", pack=True, keep_text=True)
    assert main(["--source", "demo", "--max-length", "5"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --max-length 5 is below --min-length 10: no story could "
                                              "be kept")


def test_keep_text_yields_the_kept_stories(hub_source, hub_prepared, sample_stories):
    rows = list(stream(str(hub_source), split="validation", tokenizer=hub_prepared.tokenizer, keep_text=True,
                       **LENGTHS))
    kept = hub_prepared.info["splits"]["validation"]["kept"]
    assert len(rows) == kept and set(rows[0]) == {"input_ids", "length", "text"}
    texts = [r["text"] for r in rows]
    assert texts == [s for s in sample_stories[5000:] if s in set(texts)]  # source order, skipped ones left out
    assert all(hub_prepared.tokenizer.encode(r["text"])[:300] == r["input_ids"] for r in rows)
