"""`tinystories-export` to the trainers people run unchanged, byte for byte against independent references on the
real sample: nanoGPT's `data/openwebtext/prepare.py` encoding (tiktoken `encode_ordinary` + EOT, uint16) and
llama2.c's `tinystories.py process_shard` (`[bos] + sp.encode(text.strip())`, uint16), each peer's reader
reproduced in a few lines (nanoGPT's memmap windows; llama2.c's sorted shards, first one validation, and
`PretokDataset`'s windows), faults one line each with nothing half-written."""
import glob
import io
import itertools
import json
import os
import pickle
import pickletools
import re
import shutil
import signal

import numpy as np
import processes
import pytest
import sentencepiece as spm
from conftest import SAMPLE_EOT, word_level_tokenizer

from tinystories_hf import PrepareConfig, TinyStoriesError, prepare
from tinystories_hf.exports import ExportConfig, export, main

EOT = 50256


def _texts_and_ids(result, split):
    data = result.dataset[split]
    return list(data["text"]), list(data["input_ids"])


def _bin(path) -> np.ndarray:
    return np.fromfile(path, dtype=np.uint16)


def _safe_pickle(data: bytes):
    """nanoGPT's `pickle.load(f)`, but refusing anything that could run code: only dicts, ints and strings."""
    opcodes = {op.name for op, _, _ in pickletools.genops(data)}
    assert not opcodes & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "BUILD", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "EXT1",
                          "EXT2", "EXT4", "PERSID", "BINPERSID"}, opcodes

    class Refuse(pickle.Unpickler):
        def find_class(self, module, name):
            raise AssertionError(f"meta.pkl names {module}.{name}")

    return Refuse(io.BytesIO(data)).load()


def test_nanogpt_bins_are_nanogpts_prepare_of_the_same_stories(prepared_gpt2_full, tiktoken_gpt2, tmp_path):
    out = export(ExportConfig(prepared=str(prepared_gpt2_full.output), format="nanogpt", output=str(tmp_path / "ts")))
    assert sorted(os.listdir(out.output)) == ["export_info.json", "meta.pkl", "train.bin", "val.bin"]
    for split, name in (("train", "train.bin"), ("validation", "val.bin")):
        texts, _ = _texts_and_ids(prepared_gpt2_full, split)
        reference = []
        for text in texts:  # nanoGPT's process(): ids = enc.encode_ordinary(text); ids.append(enc.eot_token)
            ids = tiktoken_gpt2.encode_ordinary(text)
            ids.append(tiktoken_gpt2.eot_token)
            reference.extend(ids)
        assert np.array_equal(_bin(out.output / name), np.array(reference, dtype=np.uint16))
    # nanoGPT's train.py get_batch: random windows of a memmap, y one token after x
    data = np.memmap(out.output / "train.bin", dtype=np.uint16, mode="r")
    block, rng = 256, np.random.default_rng(0)
    for i in rng.integers(0, len(data) - block, 8):
        x, y = data[i:i + block].astype(np.int64), data[i + 1:i + 1 + block].astype(np.int64)
        assert np.array_equal(x[1:], y[:-1])
    meta = _safe_pickle((out.output / "meta.pkl").read_bytes())
    assert meta["vocab_size"] == 50257 and len(meta["itos"]) == 50257
    assert meta["itos"][EOT] == "<|endoftext|>" and meta["stoi"]["\n"] == 198  # sample.py's default start "\n"
    # sample.py's decode: ''.join(itos[i] for i in l) gives the ASCII stories back
    texts, ids = _texts_and_ids(prepared_gpt2_full, "validation")
    ascii_stories = [(t, i) for t, i in zip(texts, ids) if t.isascii()]
    assert len(ascii_stories) > 40 and all("".join(meta["itos"][k] for k in i) == t for t, i in ascii_stories)


def test_llama2c_shards_are_process_shard_of_the_same_stories(prepared_spm, trained_spm, tmp_path):
    out = export(ExportConfig(prepared=str(prepared_spm.output), format="llama2c", output=str(tmp_path / "data"),
                              shard_stories=2000))
    sp = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    assert sorted(os.listdir(out.output)) == ["export_info.json", "tok4096", "tok4096.model"]
    assert (out.output / "tok4096.model").read_bytes() == (trained_spm.output / "tok4096.model").read_bytes()
    shards = sorted(glob.glob(str(out.output / "tok4096" / "*.bin")))  # PretokDataset's order
    assert [os.path.basename(s) for s in shards] == ["data00.bin", "data01.bin", "data02.bin", "data03.bin"]

    def process_shard(texts):  # llama2.c's: tokens = enc.encode(text.strip(), bos=True, eos=False)
        return np.array([t for text in texts for t in [sp.bos_id()] + sp.encode(text.strip())], dtype=np.uint16)

    train, _ = _texts_and_ids(prepared_spm, "train")
    validation, _ = _texts_and_ids(prepared_spm, "validation")
    assert np.array_equal(np.concatenate([_bin(s) for s in shards[1:]]), process_shard(train))  # train: shards[1:]
    assert np.array_equal(_bin(shards[0]), process_shard(validation))  # validation: shards[:1]
    assert np.array_equal(_bin(shards[1]), process_shard(train[:2000]))  # --shard-stories stories per shard
    # PretokDataset.__iter__: num_batches = len(m) // max_seq_len - 1 > 0; windows of max_seq_len + 1
    max_seq_len, stories = 256, []
    for shard in shards[1:]:
        m = np.memmap(shard, dtype=np.uint16, mode="r")
        num_batches = len(m) // max_seq_len - 1
        assert num_batches > 0
        chunk = m[(num_batches - 1) * max_seq_len:num_batches * max_seq_len + 1].astype(np.int64)
        assert np.array_equal(chunk[:-1][1:], chunk[1:][:-1])
        stream = np.asarray(m).tolist()
        starts = [i for i, t in enumerate(stream) if t == sp.bos_id()] + [len(stream)]
        stories += [sp.decode(stream[a + 1:b]) for a, b in itertools.pairwise(starts)]
    assert stories == [sp.decode(sp.encode(t.strip())) for t in train]  # the stories come back, in order


def test_a_vocabulary_without_a_bos_puts_its_eos_before_each_story(prepared_sample, tmp_path):
    """The reduced GPT-Neo vocabulary has EOS 0 and no BOS: llama2c gets 0 before each story, nanoGPT after."""
    _, train = _texts_and_ids(prepared_sample, "train")
    for fmt, name, frame in (("llama2c", "tok10000/data01.bin", lambda ids: [0] + ids),
                             ("nanogpt", "train.bin", lambda ids: ids + [0])):
        out = export(ExportConfig(prepared=str(prepared_sample.output), format=fmt, output=str(tmp_path / fmt)))
        assert _bin(out.output / name).tolist() == [t for ids in train for t in frame(ids)]
    assert not list((tmp_path / "llama2c").glob("*.model"))  # no SentencePiece model to give llama2.c


def test_a_last_shard_too_small_for_max_seq_len_joins_the_one_before(prepared_spm, tmp_path):
    out = export(ExportConfig(prepared=str(prepared_spm.output), format="llama2c", output=str(tmp_path / "d"),
                              shard_stories=5460, max_seq_len=1024))  # 5 stories (~1,100 tokens) left: < 2 x 1024
    assert sorted(os.listdir(out.output / "tok4096")) == ["data00.bin", "data01.bin"]
    assert len(_bin(out.output / "tok4096" / "data01.bin")) == sum(len(i) + 1 for i in prepared_spm.dataset["train"]
                                                                   ["input_ids"])


def test_exports_are_byte_identical_for_any_num_proc_and_layout(prepared_gpt2_full, tmp_path):
    """The sample as V2 .txt, prepared with 1 process, against the jsonl fixture prepared with 2."""
    other = prepare(PrepareConfig(source=str(SAMPLE_EOT), output=str(tmp_path / "p"), vocab_size="full",
                                  max_length=None, min_length=0, num_proc=1))
    for fmt in ("nanogpt", "llama2c"):
        a = export(ExportConfig(prepared=str(prepared_gpt2_full.output), format=fmt, output=str(tmp_path / f"a{fmt}")))
        b = export(ExportConfig(prepared=str(other.output), format=fmt, output=str(tmp_path / f"b{fmt}")))
        files = {name: f["sha256"] for name, f in a.files.items()}
        assert files == {name: f["sha256"] for name, f in b.files.items()} and len(files) >= 2


def test_the_command_prints_what_it_wrote(prepared_sample, tmp_path, capsys):
    assert main([str(prepared_sample.output), "--format", "llama2c", "--output", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out.splitlines()
    tokens = sum(prepared_sample.info["splits"][s]["tokens"] + prepared_sample.info["splits"][s]["kept"]
                 for s in ("train", "validation"))
    assert re.fullmatch(rf"exported {re.escape(str(prepared_sample.output))} as llama2c: {tokens:,} tokens in "
                        rf"[0-9.]+ s -> {re.escape(str(tmp_path / 'd'))}", out[0])
    assert [line.split()[-1] for line in out[1:]] == ["tok10000/data00.bin", "tok10000/data01.bin"]
    info = json.loads((tmp_path / "d" / "export_info.json").read_text())
    assert info["separator_id"] == 0 and info["separator"] == "before each story (BOS)"


# ---- faults: one line, nothing half-written at OUT ----

def _fails(capsys, argv, message, out):
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(message, lines[-1]), lines[-1]
    assert "Traceback" not in "\n".join(lines)
    assert not out.exists() or sorted(os.listdir(out)) != []
    assert not list(out.parent.glob(f".{out.name}.partial*"))


def test_a_damaged_or_cut_prepared_folder_is_one_line(prepared_sample, tmp_path, capsys):
    folder = shutil.copytree(prepared_sample.output, tmp_path / "p")
    next((folder / "train").glob("*.arrow")).unlink()
    _fails(capsys, [str(folder), "--output", str(tmp_path / "o")],
           r"error: .*/p/train/data-00000-of-00001\.arrow: missing \(1 recorded data file\(s\) missing\); the folder "
           r"is incomplete, re-create the folder with tinystories-prepare", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    shutil.rmtree(folder / "validation")
    _fails(capsys, [str(folder), "--output", str(tmp_path / "o")], r"error: .*missing.*", tmp_path / "o")
    _fails(capsys, [str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")],
           r"error: .*nowhere not found; pass a folder written by tinystories-prepare.*", tmp_path / "o")


def test_a_split_that_kept_no_story_and_a_too_small_shard_are_one_line(tmp_path, capsys):
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.jsonl").write_text("".join(json.dumps({"text": f"Once upon a time a dog ran to the park {i}."})
                                                + "\n" for i in range(300)))
    (source / "validation.jsonl").write_text(json.dumps({"text": "Hi."}) + "\n")
    folder = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "p"), vocab_size=300, num_proc=1)).output
    for fmt in ("nanogpt", "llama2c"):
        _fails(capsys, [str(folder), "--format", fmt, "--output", str(tmp_path / "o")],
               r"error: .*(kept no story|no stories in a 'validation' split).*", tmp_path / "o")
    (source / "validation.jsonl").write_text(json.dumps({"text": "Once upon a time a dog ran to the park."}) + "\n")
    folder = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "p"), vocab_size=300, num_proc=1,
                                   overwrite=True)).output
    _fails(capsys, [str(folder), "--format", "llama2c", "--output", str(tmp_path / "o")],
           r"error: tok300/data00\.bin would hold 12 tokens \(validation stories 0\.\.0\), fewer than 2 x --max-seq-len "
           r"256, and llama2\.c's PretokDataset stops on it; lower --max-seq-len to the max_seq_len you train with, "
           r"raise --shard-stories, or prepare more validation stories", tmp_path / "o")


def test_ids_that_do_not_fit_uint16_are_one_line_naming_the_vocabulary(tmp_path, capsys):
    folder = word_level_tokenizer(70_000, {"unk": "[UNK]", "eos": "</s>"}, tmp_path / "tok", {"eos_token": "</s>"})
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": f"w{i} w69999 w{i * 3}"}) + "\n" for i in range(200)))
    prepared = prepare(PrepareConfig(source=str(tmp_path / "s.jsonl"), output=str(tmp_path / "p"), min_length=0,
                                     tokenizer=str(folder), vocab_size="full", num_proc=1)).output
    for fmt in ("nanogpt", "llama2c"):
        _fails(capsys, [str(prepared), "--format", fmt, "--output", str(tmp_path / "o")],
               rf"error: .*/p: its vocabulary of 70,002 ids does not fit the uint16 ids {fmt} reads \(at most 65,536\); "
               r"prepare it with a smaller vocabulary", tmp_path / "o")


def test_options_and_an_existing_output_are_one_line(prepared_sample, tmp_path, capsys):
    _fails(capsys, [str(prepared_sample.output), "--format", "gguf", "--output", str(tmp_path / "o")],
           r"error: --format gguf is not one of nanogpt, llama2c", tmp_path / "o")
    _fails(capsys, [str(prepared_sample.output), "--max-seq-len", "0", "--output", str(tmp_path / "o")],
           r"error: --max-seq-len 0 must be at least 1", tmp_path / "o")
    export(ExportConfig(prepared=str(prepared_sample.output), output=str(tmp_path / "o")))
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    _fails(capsys, [str(prepared_sample.output), "--output", str(tmp_path / "o")],
           r"error: .*/o already exists; pass --overwrite to replace it or choose another --output", tmp_path / "o")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("x")
    _fails(capsys, [str(prepared_sample.output), "--output", str(mine), "--overwrite"],
           r"error: .*/mine exists and is not a folder written by tinystories-export; refusing to replace it", mine)
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before


def test_a_full_disk_is_one_line_and_leaves_nothing(prepared_gpt2_full, mount_tmpfs, capsys):
    disk = mount_tmpfs("small", "size=1m")
    _fails(capsys, [str(prepared_gpt2_full.output), "--output", str(disk / "ts")],
           rf"error: {re.escape(str(disk / 'ts'))}: no space left on its device; free space there or choose "
           r"another --output", disk / "ts")
    assert sorted(os.listdir(disk)) == [".ts.lock"]


def test_ctrl_c_during_an_export_is_one_line_and_the_previous_output_stays(prepared_sample, tmp_path):
    out = tmp_path / "o"
    export(ExportConfig(prepared=str(prepared_sample.output), output=str(out)))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    marker, log = tmp_path / "marker", tmp_path / "stderr"

    def child():
        import sys
        import time

        from tinystories_hf import exports as package

        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        write = package.StreamWriter.write

        def paused(self, stream):  # the first window is written, then a Ctrl-C
            write(self, stream)
            marker.touch()
            time.sleep(600)

        package.StreamWriter.write = paused
        os._exit(main([str(prepared_sample.output), "--output", str(out), "--overwrite"]))

    proc = processes.fork(child)
    processes.wait_until(marker.exists, what="the export's first window", alive=proc.is_alive, log=log)
    assert (tmp_path / ".o.partial" / "train.bin").exists()
    os.kill(proc.pid, signal.SIGINT)
    assert processes.finish(proc, what="the interrupted export") == 130
    assert log.read_text().splitlines()[-1] == f"interrupted; {out} unchanged"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".o")) == [".o.lock"]


def test_the_api_raises_the_same_lines_naming_its_arguments(prepared_sample, tmp_path):
    with pytest.raises(TinyStoriesError, match=r"^format='gguf' is not one of nanogpt, llama2c$"):
        export(ExportConfig(prepared=str(prepared_sample.output), format="gguf", output=str(tmp_path / "o")))
    with pytest.raises(TinyStoriesError, match=r"^shard_stories=2.5 must be an integer$"):
        export(ExportConfig(prepared=str(prepared_sample.output), shard_stories=2.5, output=str(tmp_path / "o")))
