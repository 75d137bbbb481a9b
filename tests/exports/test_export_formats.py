"""`tinystories-export --format llmc` and `--format megatron` against the peers, on the real sample.

llm.c / modded-nanogpt: the shards are read by readers written here from the peers' code (modded-nanogpt's
`_load_data_shard` checks, llm.c's `llmc/dataloader.h` checks, llm.c's `train_llama3.py` for the uint32
variant), and with GPT-2's own vocabulary their tokens are llm.c's `dev/data/tinystories.py` encoding of the same
stories, computed with tiktoken (`[eot] + encode_ordinary(text.strip())` per story).
Megatron: the files are byte for byte what megatron-core's own `IndexedDatasetBuilder` writes for the same
documents (`preprocess_data.py --append-eod`: `add_document(ids + [eod], [len])` per story, `finalize`), and
megatron-core's `IndexedDataset` and a numpy reader written from the layout read them back.
Every format again with a window of 997 ids, so the 8M-id window cut falls inside stories."""
import glob
import json
import os
import re
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import word_level_tokenizer

from tinystories_hf import PrepareConfig, prepare
from tinystories_hf.exports import ExportConfig, export, frames, llmc, main, megatron

EOT = 50256


@pytest.fixture(scope="module")
def megatron_core():
    with warnings.catch_warnings():  # "Transformer Engine and Apex are not installed": not used by the reader
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


@pytest.fixture(scope="module")
def gpt2_stories(prepared_gpt2_full, tiktoken_gpt2):
    """Each split's stories encoded by tiktoken's GPT-2 (`encode_ordinary(text.strip())`), in the stored order."""
    return {split: [tiktoken_gpt2.encode_ordinary(t.strip()) for t in prepared_gpt2_full.dataset[split]["text"]]
            for split in ("train", "validation")}


def llmc_reference(stories) -> np.ndarray:
    """llm.c's dev/data/tinystories.py process_shard: all_tokens.append(eot); all_tokens.extend(tokens)."""
    return np.array([t for ids in stories for t in [EOT, *ids]], dtype=np.uint16)


def read_llmc_shard(path, *, magic=20240520, version=1, dtype=np.uint16) -> np.ndarray:
    """modded-nanogpt's _load_data_shard and llm.c's dataloader_load_shard_, in numpy: header of 256 int32,
    magic, version, token count > 0, file size == 1024 + itemsize x count, then the tokens."""
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[0] == magic, "magic number mismatch in the data .bin file"
    assert header[1] == version, "unsupported version"
    count = int(header[2])
    assert count > 0
    assert os.path.getsize(path) == 256 * 4 + count * np.dtype(dtype).itemsize, "file size is not as expected"
    with open(path, "rb") as f:
        f.seek(256 * 4)
        tokens = np.frombuffer(f.read(), dtype=np.dtype(dtype).newbyteorder("<"))
    assert len(tokens) == count, "number of tokens read does not match header"
    return tokens


def read_megatron(prefix) -> tuple:
    """The .idx read from the layout (megatron/core/datasets/indexed_dataset.py), then each sequence from the
    .bin: (dtype, documents index, [ids per sequence])."""
    raw = Path(prefix + ".idx").read_bytes()
    assert raw[:9] == b"MMIDIDX\x00\x00" and struct.unpack("<Q", raw[9:17])[0] == 1
    dtype = {8: np.uint16, 4: np.int32}[raw[17]]
    sequences, documents = struct.unpack("<QQ", raw[18:34])
    lengths = np.frombuffer(raw, "<i4", sequences, 34)
    pointers = np.frombuffer(raw, "<i8", sequences, 34 + 4 * sequences)
    doc_index = np.frombuffer(raw, "<i8", documents, 34 + 12 * sequences)
    assert len(raw) == 34 + 12 * sequences + 8 * documents
    data = np.fromfile(prefix + ".bin", dtype=np.dtype(dtype).newbyteorder("<"))
    itemsize = np.dtype(dtype).itemsize
    return dtype, doc_index, [data[p // itemsize:p // itemsize + n].tolist() for p, n in zip(pointers, lengths)]


def test_llmc_shards_are_llm_cs_tinystories_encoding_read_by_its_loaders(prepared_gpt2_full, gpt2_stories,
                                                                          tmp_path):
    out = export(ExportConfig(prepared=str(prepared_gpt2_full.output), format="llmc", output=str(tmp_path / "ts"),
                              shard_tokens=300_000)).output
    val = sorted(glob.glob(str(out / "TinyStories_val_*.bin")))  # the peers' --input_val_bin / val_files glob
    train = sorted(glob.glob(str(out / "TinyStories_train_*.bin")))
    assert [os.path.basename(p) for p in val] == ["TinyStories_val_000000.bin"]
    assert [os.path.basename(p) for p in train] == [f"TinyStories_train_{i:06d}.bin" for i in range(1, 5)]
    assert np.array_equal(read_llmc_shard(val[0]), llmc_reference(gpt2_stories["validation"]))
    shards = [read_llmc_shard(p) for p in train]
    assert np.array_equal(np.concatenate(shards), llmc_reference(gpt2_stories["train"]))
    # whole stories, each shard at most --shard-tokens and within one story of the others; every shard starts
    # with EOT, the BOS modded-nanogpt aligns its batches to
    sizes, longest = [len(s) for s in shards], max(len(ids) + 1 for ids in gpt2_stories["train"])
    assert max(sizes) <= 300_000 and max(sizes) - min(sizes) <= longest and all(s[0] == EOT for s in shards)
    # llm.c's dataloader_init: every shard must hold B * T * processes + 1 tokens (B=4, T=1024 by default)
    assert min(sizes) >= 4 * 1024 + 1
    info = json.loads((out / "export_info.json").read_text())
    assert info["separator_id"] == EOT and info["model_desc"] == "gpt-2"
    assert sorted(info["files"]) == sorted(os.path.basename(p) for p in val + train)


def test_llmc_llama3_variant_is_what_train_llama3_reads(prepared_spm, tmp_path):
    """--model-desc llama-3: magic 20240801, version 7, uint32, the same tokens (BOS 1 before each story of a
    SentencePiece vocabulary, as llm.c's llama-3 puts <|begin_of_text|>)."""
    narrow = export(ExportConfig(prepared=str(prepared_spm.output), format="llmc", output=str(tmp_path / "a"))).output
    wide = export(ExportConfig(prepared=str(prepared_spm.output), format="llmc", output=str(tmp_path / "b"),
                               model_desc="llama-3")).output
    for name in ("TinyStories_val_000000.bin", "TinyStories_train_000001.bin"):
        tokens = read_llmc_shard(wide / name, magic=20240801, version=7, dtype=np.uint32)
        assert np.array_equal(tokens, read_llmc_shard(narrow / name))
    train = prepared_spm.dataset["train"]["input_ids"]
    assert read_llmc_shard(narrow / "TinyStories_train_000001.bin").tolist() == [t for ids in train for t in [1, *ids]]


def test_megatron_files_are_megatron_cores_own_and_read_back(prepared_gpt2_full, gpt2_stories, megatron_core,
                                                            tmp_path):
    out = export(ExportConfig(prepared=str(prepared_gpt2_full.output), format="megatron",
                              output=str(tmp_path / "m"))).output
    for split, stories in gpt2_stories.items():
        prefix = str(out / f"TinyStories_{split}_text_document")
        # preprocess_data.py --append-eod: doc_ids.append(eod); builder.add_document(doc_ids, [len]) with the
        # list of ids; finalize
        reference = str(tmp_path / f"reference_{split}")
        builder = megatron_core.IndexedDatasetBuilder(reference + ".bin",
                                                      dtype=megatron_core.DType.optimal_dtype(50_257))
        for ids in stories:
            builder.add_document(ids + [EOT], [len(ids) + 1])
        builder.finalize(reference + ".idx")
        for suffix in (".bin", ".idx"):
            assert Path(prefix + suffix).read_bytes() == Path(reference + suffix).read_bytes(), suffix
        dataset = megatron_core.IndexedDataset(prefix)  # the reader Megatron's GPTDataset uses
        assert len(dataset) == len(stories) and dataset.index.dtype == np.uint16
        assert np.array_equal(dataset.document_indices, np.arange(len(stories) + 1))
        assert all(dataset[i].tolist() == ids + [EOT] for i, ids in enumerate(stories))
        dtype, doc_index, sequences = read_megatron(prefix)
        assert dtype is np.uint16 and doc_index.tolist() == list(range(len(stories) + 1))
        assert sequences == [ids + [EOT] for ids in stories]


def test_megatrons_dtype_rule_at_its_boundary(megatron_core):
    """Megatron's DType.optimal_dtype: uint16 below 65,500 ids (code 8), int32 from 65,500 (code 4)."""
    for size in (3, 50_257, 65_499, 65_500, 65_536, 65_537, 2**20):
        expected = megatron_core.DType.optimal_dtype(size)
        assert np.dtype(megatron.dtype(size)) == np.dtype(expected).newbyteorder("<"), size
        assert megatron.CODES[megatron.dtype(size)] == megatron_core.DType.code_from_dtype(expected)


def test_a_window_cut_inside_stories_changes_no_byte(prepared_gpt2_full, gpt2_stories, megatron_core, tmp_path,
                                                    monkeypatch):
    """The export's 8M-id window made 997 ids: many cuts, stories longer than a window; every format still
    equals its reference."""
    monkeypatch.setattr(frames, "WINDOW_TOKENS", 997)
    checked = []
    check = frames._check
    monkeypatch.setattr(frames, "_check", lambda *a, **k: checked.append(1) or check(*a, **k))
    prepared = str(prepared_gpt2_full.output)
    val, train = gpt2_stories["validation"], gpt2_stories["train"]
    out = export(ExportConfig(prepared=prepared, format="nanogpt", output=str(tmp_path / "n"))).output
    after = lambda stories: np.array([t for ids in stories for t in [*ids, EOT]], dtype=np.uint16)
    assert np.array_equal(np.fromfile(out / "val.bin", np.uint16), after(val))
    assert np.array_equal(np.fromfile(out / "train.bin", np.uint16), after(train))
    out = export(ExportConfig(prepared=prepared, format="llama2c", output=str(tmp_path / "l"))).output
    assert np.array_equal(np.fromfile(out / "tok50257" / "data01.bin", np.uint16), llmc_reference(train))
    out = export(ExportConfig(prepared=prepared, format="llmc", output=str(tmp_path / "c"))).output
    assert np.array_equal(read_llmc_shard(out / "TinyStories_train_000001.bin"), llmc_reference(train))
    out = export(ExportConfig(prepared=prepared, format="megatron", output=str(tmp_path / "m"))).output
    assert read_megatron(str(out / "TinyStories_train_text_document"))[2] == [ids + [EOT] for ids in train]
    longest = max(len(ids) for ids in train)
    assert longest > 997 and len(checked) > 4 * sum(map(len, train)) // 997 // 2  # default window: 8 calls


def test_the_uint16_limit_is_exactly_65536_ids(tmp_path, megatron_core, capsys):
    """65,536 ids (the largest id 65,535 in the stories) export as uint16 where the format is uint16; 65,537 ids
    are one line for nanogpt, llama2c and llm.c's gpt-2 shards, and llm.c's llama-3 shards keep id 65,536."""
    folders = {}
    for size in (65_534, 65_535):  # + UNK and EOS: 65,536 and 65,537 ids
        tok = word_level_tokenizer(size, {"unk": "[UNK]", "eos": "</s>"}, tmp_path / f"tok{size}",
                                   {"eos_token": "</s>"})
        source = tmp_path / f"s{size}.jsonl"
        source.write_text("".join(json.dumps({"text": f"w{i} w{size - 1} w{i * 7} zz"}) + "\n" for i in range(300)))
        folders[size + 2] = prepare(PrepareConfig(source=str(source), output=str(tmp_path / f"p{size}"), num_proc=1,
                                                  min_length=0, tokenizer=str(tok), vocab_size="full")).output
    for ids, folder in folders.items():  # UNK ("zz") is the largest id of the stories, EOS (ids - 1) the largest
        assert max(max(s) for s in prepare_ids(folder)) == ids - 2
    small, large = folders[65_536], folders[65_537]
    out = export(ExportConfig(prepared=str(small), format="nanogpt", output=str(tmp_path / "n"))).output
    assert np.fromfile(out / "train.bin", np.uint16).tolist() == [t for s in prepare_ids(small) for t in [*s, 65_535]]
    out = export(ExportConfig(prepared=str(small), format="llama2c", output=str(tmp_path / "l"), max_seq_len=4)).output
    assert np.fromfile(out / "tok65536" / "data01.bin", np.uint16).tolist() == [
        t for s in prepare_ids(small) for t in [65_535, *s]]
    out = export(ExportConfig(prepared=str(small), format="llmc", output=str(tmp_path / "c"))).output
    assert read_llmc_shard(out / "TinyStories_train_000001.bin").tolist() == [
        t for s in prepare_ids(small) for t in [65_535, *s]]
    for fmt in ("nanogpt", "llama2c", "llmc"):
        assert main([str(large), "--format", fmt, "--output", str(tmp_path / "o")]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.fullmatch(r"error: .*/p65535: its vocabulary of 65,537 ids does not fit the uint16 ids .*", line)
        assert not (tmp_path / "o").exists()
    assert "pass --model-desc llama-3 (uint32) for llm.c's train_llama3.py" in line
    out = export(ExportConfig(prepared=str(large), format="llmc", model_desc="llama-3",
                              output=str(tmp_path / "c4"))).output
    assert read_llmc_shard(out / "TinyStories_train_000001.bin", magic=20240801, version=7, dtype=np.uint32
                           ).tolist() == [t for s in prepare_ids(large) for t in [65_536, *s]]
    for folder, size in ((small, 65_536), (large, 65_537)):  # Megatron: int32 from 65,500 ids
        out = export(ExportConfig(prepared=str(folder), format="megatron", output=str(tmp_path / f"m{size}"))).output
        dataset = megatron_core.IndexedDataset(str(out / "TinyStories_train_text_document"))
        assert dataset.index.dtype == np.int32
        assert [dataset[i].tolist() for i in range(len(dataset))] == [[*s, size - 1] for s in prepare_ids(folder)]


def prepare_ids(folder) -> list:
    from tinystories_hf import load_prepared

    return list(load_prepared(folder)[0]["train"]["input_ids"])


def test_shard_bounds_balance_whole_stories():
    """Hand-computed: the fewest shards, cut at the first story boundary past each equal share."""
    assert llmc.shard_bounds(np.array([5, 5, 5, 5, 5, 5, 5]), 20) == [(0, 4), (4, 7)]  # 20 + 15
    assert llmc.shard_bounds(np.array([10, 1, 1, 1, 1, 10]), 12) == [(0, 3), (3, 6)]  # 12 + 12
    assert llmc.shard_bounds(np.array([6, 6, 6]), 10) == [(0, 1), (1, 2), (2, 3)]  # 2 shards: 12 > 10; so 3
    assert llmc.shard_bounds(np.array([4, 4, 4]), 4) == [(0, 1), (1, 2), (2, 3)]
    assert llmc.shard_bounds(np.array([3] * 10), 30) == [(0, 10)]


# ---- faults: one line, nothing written ----

def _fails(capsys, argv, message, out):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(message, lines[-1]), lines[-1]
    assert "Traceback" not in "\n".join(lines)
    assert not out.exists()


def test_options_and_inputs_the_new_formats_cannot_take_are_one_line(prepared_gpt2_full, tmp_path, capsys):
    folder, out = str(prepared_gpt2_full.output), tmp_path / "o"
    _fails(capsys, [folder, "--format", "llmc", "--output", str(out), "--shard-tokens", "0"],
           r"error: --shard-tokens 0 must be at least 1", out)
    _fails(capsys, [folder, "--format", "llmc", "--output", str(out), "--shard-tokens", str(2**31)],
           r"error: --shard-tokens 2147483648 must be at most 2147483647", out)
    _fails(capsys, [folder, "--format", "llmc", "--output", str(out), "--model-desc", "llama-2"],
           r"error: --model-desc llama-2 is not one of gpt-2, llama-3", out)
    _fails(capsys, [folder, "--format", "megatron", "--output", str(out), "--name", "../escape"],
           r"error: --name \.\./escape is not a plain file name .*", out)
    _fails(capsys, [folder, "--format", "llmc", "--output", str(out), "--shard-tokens", "500"],
           r"error: (validation|train) story \d+ has \d+ tokens with its separator, more than --shard-tokens 500; "
           r"raise it", out)
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".o")]


def test_a_split_without_stories_and_an_existing_export_are_one_line(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.jsonl").write_text("".join(json.dumps({"text": f"Once upon a time a dog ran to the park {i}."}) + "\n"
                                                for i in range(300)))
    (source / "validation.jsonl").write_text(json.dumps({"text": "Hi."}) + "\n")
    folder = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "p"), vocab_size=300, num_proc=1)).output
    for fmt in ("llmc", "megatron"):
        _fails(capsys, [str(folder), "--format", fmt, "--output", str(tmp_path / "o")],
               r"error: .*/p: no stories in a 'validation' split; .*", tmp_path / "o")
    folder = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "p"), vocab_size=300, num_proc=1,
                                   min_length=0, overwrite=True)).output
    for fmt, first in (("llmc", "TinyStories_val_000000.bin"), ("megatron", "TinyStories_train_text_document.bin")):
        out = tmp_path / fmt
        assert main([str(folder), "--format", fmt, "--output", str(out)]) == 0
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        assert main([str(folder), "--format", fmt, "--output", str(out)]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"error: {out / first} already exists; pass --overwrite to replace it or choose another --output")
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
