"""`tinystories-export` to the trainers people run unchanged, byte for byte against independent references on the
real sample: nanoGPT's `data/openwebtext/prepare.py` encoding (tiktoken `encode_ordinary` + EOT, uint16) and
llama2.c's `tinystories.py process_shard` (`[bos] + sp.encode(text.strip())`, uint16), each peer's reader
reproduced in a few lines (nanoGPT's memmap windows; llama2.c's sorted shards, first one validation, and
`PretokDataset`'s windows), faults one line each with nothing half-written."""
import errno
import glob
import hashlib
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
from conftest import SAMPLE_EOT, SAMPLE_JSONL, word_level_tokenizer

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
    # GPT-2's own ids: no meta.pkl, so nanoGPT's train.py builds GPT-2's model and sample.py uses tiktoken's GPT-2
    assert sorted(os.listdir(out.output)) == ["export_info.json", "train.bin", "val.bin"]
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
    # sample.py without meta.pkl: encode = enc.encode(s, allowed_special={"<|endoftext|>"}), decode = enc.decode
    assert tiktoken_gpt2.encode("Once upon a time", allowed_special={"<|endoftext|>"}) == [7454, 2402, 257, 640]
    texts, _ = _texts_and_ids(prepared_gpt2_full, "validation")
    stream = _bin(out.output / "val.bin").tolist()
    cuts = [-1] + [i for i, t in enumerate(stream) if t == EOT]
    assert [tiktoken_gpt2.decode(stream[a + 1:b]) for a, b in itertools.pairwise(cuts)] == texts


def test_nanogpt_meta_pkl_for_any_other_vocabulary_is_what_sample_py_reads(prepared_sample, tmp_path):
    out = export(ExportConfig(prepared=str(prepared_sample.output), format="nanogpt", output=str(tmp_path / "ts")))
    assert sorted(os.listdir(out.output)) == ["export_info.json", "meta.pkl", "train.bin", "val.bin"]
    meta = _safe_pickle((out.output / "meta.pkl").read_bytes())
    assert meta["vocab_size"] == 10_000 and len(meta["itos"]) == 10_000  # train.py's model size
    assert meta["itos"][0] == "<|endoftext|>" and meta["itos"][1] == "<|unk|>"
    assert meta["itos"][meta["stoi"]["\n"]] == "\n"  # sample.py's default start "\n"
    # sample.py's decode: ''.join(itos[i] for i in l) gives the ASCII train stories back (train has no UNK)
    texts, ids = _texts_and_ids(prepared_sample, "train")
    ascii_stories = [(t, i) for t, i in zip(texts, ids) if t.isascii() and len(i) < 512]  # 512: cut stories
    assert len(ascii_stories) > 4000 and all("".join(meta["itos"][k] for k in i) == t for t, i in ascii_stories)
    # stoi: each text to the lowest id with that text (bytes of a character cut in two decode alike, as U+FFFD)
    by_text = sorted((text, i) for i, text in meta["itos"].items())
    lowest = {text: min(i for _, i in group) for text, group in itertools.groupby(by_text, key=lambda p: p[0])}
    assert meta["stoi"] == lowest and len(lowest) < len(meta["itos"])
    assert meta["stoi"]["\ufffd"] == min(i for i, text in meta["itos"].items() if text == "\ufffd")
    assert sum(text == "\ufffd" for text in meta["itos"].values()) > 1


def test_llama2c_shards_are_process_shard_of_the_same_stories(prepared_spm, trained_spm, tmp_path):
    out = export(ExportConfig(prepared=str(prepared_spm.output), format="llama2c", output=str(tmp_path / "data"),
                              shard_stories=2000))
    sp = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    assert sorted(os.listdir(out.output)) == [".tok4096.lock", "tok4096", "tok4096.model"]  # the lock: llama2.c's
    assert sorted(os.listdir(out.output / "tok4096")) == ["data00.bin", "data01.bin", "data02.bin", "data03.bin",
                                                          "export_info.json"]
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
    assert sorted(glob.glob("*.bin", root_dir=out.output / "tok4096")) == ["data00.bin", "data01.bin"]
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
    info = json.loads((tmp_path / "d" / "tok10000" / "export_info.json").read_text())
    assert info["separator_id"] == 0 and info["separator"] == "before each story (EOS)"  # GPT-Neo has no BOS
    assert sorted(info["files"]) == ["tok10000/data00.bin", "tok10000/data01.bin"]


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
           r"error: --format gguf is not one of nanogpt, llama2c, llmc, megatron", tmp_path / "o")
    _fails(capsys, [str(prepared_sample.output), "--max-seq-len", "0", "--output", str(tmp_path / "o")],
           r"error: --max-seq-len 0 must be at least 1", tmp_path / "o")
    export(ExportConfig(prepared=str(prepared_sample.output), output=str(tmp_path / "o")))
    before = {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()}
    _fails(capsys, [str(prepared_sample.output), "--output", str(tmp_path / "o")],
           r"error: .*/o/train\.bin already exists; pass --overwrite to replace it or choose another --output",
           tmp_path / "o")
    assert {p.name: p.read_bytes() for p in (tmp_path / "o").iterdir()} == before
    (tmp_path / "file").write_text("x")
    _fails(capsys, [str(prepared_sample.output), "--output", str(tmp_path / "file")],
           r"error: .*/file is a file, not a folder; choose another --output", tmp_path / "none")
    _fails(capsys, [str(prepared_sample.output), "--output", str(prepared_sample.output / "export")],
           r"error: --output .*/export overlaps the source .*; write it elsewhere", tmp_path / "none")


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

        from tinystories_hf.exports import frames as package

        os.dup2(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        write = package.StreamWriter.write

        def paused(self, lengths, stream):  # the first window is written, then a Ctrl-C
            write(self, lengths, stream)
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
    with pytest.raises(TinyStoriesError, match=r"^format='gguf' is not one of nanogpt, llama2c, llmc, megatron$"):
        export(ExportConfig(prepared=str(prepared_sample.output), format="gguf", output=str(tmp_path / "o")))
    with pytest.raises(TinyStoriesError, match=r"^shard_stories=2.5 must be an integer$"):
        export(ExportConfig(prepared=str(prepared_sample.output), shard_stories=2.5, output=str(tmp_path / "o")))


# ---- a prepared folder is untrusted input: an export never writes wrong data, or outside OUT, with exit 0 ----

FORMATS = ("nanogpt", "llama2c", "llmc", "megatron")


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _record(folder, *names) -> None:
    """Record the sha256 of `names` in prepare_info.json, as someone covering an edit would."""
    info = json.loads((folder / "prepare_info.json").read_text())
    for name in names:
        info["data_files"][name] = _sha256(folder / name)
    (folder / "prepare_info.json").write_text(json.dumps(info, indent=2))


def _add_split(folder, source: str, split: str, *, record: bool = True) -> None:
    """A split `split` made of a copy of `source`, named in dataset_dict.json and prepare_info.json (its
    counts), the hashes of dataset_dict.json (and, with `record`, of the split's files) recorded: the folder
    passes load_prepared's checks."""
    shutil.copytree(folder / source, folder / split)
    (folder / "dataset_dict.json").write_text(json.dumps({"splits": [*json.loads(
        (folder / "dataset_dict.json").read_text())["splits"], split]}))
    info = json.loads((folder / "prepare_info.json").read_text())
    info["splits"][split] = info["splits"][source]
    (folder / "prepare_info.json").write_text(json.dumps(info, indent=2))
    _record(folder, "dataset_dict.json", *([f"{split}/{p.name}" for p in (folder / split).iterdir()] if record else []))


def test_two_changed_bytes_of_ids_never_export(prepared_sample, tmp_path, capsys):
    """2 bytes of one story's ids in the train Arrow file: the recorded sha256 names the file; with the hash
    re-recorded, the ids checked while framing name the file and row; an edit within the vocabulary, the hash."""
    folder = shutil.copytree(prepared_sample.output, tmp_path / "p")
    arrow = next((folder / "train").glob("*.arrow"))
    data = arrow.read_bytes()
    needle = np.array(prepared_sample.dataset["train"][100]["input_ids"][:12], "<u2").tobytes()
    at = data.index(needle)
    assert data.count(needle) == 1
    arrow.write_bytes(data[:at + 4] + b"\xff\xff" + data[at + 6:])  # id 65,535 in a 10,000-id vocabulary
    hashed = (rf"error: {re.escape(str(arrow))}: differs from its sha256 in prepare_info\.json; the folder was edited "
              rf"or damaged: run tinystories-validate {re.escape(str(folder))} to check it, then re-create the folder "
              r"with tinystories-prepare")
    _fails(capsys, [str(folder), "--output", str(tmp_path / "o")], hashed, tmp_path / "o")
    arrow.write_bytes(data[:at + 4] + np.array([10_000], "<u2").tobytes() + data[at + 6:])  # the first id past it
    _record(folder, f"train/{arrow.name}")
    for fmt in FORMATS:
        _fails(capsys, [str(folder), "--format", fmt, "--output", str(tmp_path / fmt)],
               rf"error: {re.escape(str(arrow))}: row 100 holds id 10,000, outside the vocabulary of 10,000 ids; the "
               rf"folder was altered or damaged: run tinystories-validate .*", tmp_path / fmt)
        assert not (tmp_path / fmt).exists() or os.listdir(tmp_path / fmt) == [".tok10000.lock"]  # llama2c: data/
    arrow.write_bytes(data[:at + 4] + np.array([5], "<u2").tobytes() + data[at + 6:])  # a valid id, unrecorded
    _fails(capsys, [str(folder), "--format", "llmc", "--output", str(tmp_path / "o")], hashed, tmp_path / "o")


def test_a_length_that_is_not_its_number_of_ids_never_exports(prepared_sample, tmp_path, capsys):
    """The `length` column (which the shards are planned by) edited, the file's hash re-recorded: one line."""
    import pyarrow as pa

    folder = shutil.copytree(prepared_sample.output, tmp_path / "p")
    arrow = next((folder / "validation").glob("*.arrow"))
    with pa.OSFile(str(arrow)) as source:  # read into memory: the file is rewritten below
        table = pa.ipc.open_stream(source).read_all()
    lengths = table.column("length").to_pylist()
    lengths[7] += 1
    table = table.set_column(table.schema.get_field_index("length"), table.schema.field("length"),
                             pa.array(lengths, pa.int32()))
    with pa.OSFile(str(arrow), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    _record(folder, f"validation/{arrow.name}")
    for fmt in ("llama2c", "llmc"):
        _fails(capsys, [str(folder), "--format", fmt, "--output", str(tmp_path / "o")],
               rf"error: {re.escape(str(arrow))}: row 7 has length {lengths[7]:,} but {lengths[7] - 1:,} ids; the "
               r"folder was altered or damaged: .*", tmp_path / "o")


def test_two_splits_that_would_share_a_file_are_one_line(prepared_sample, tmp_path, capsys):
    folder = shutil.copytree(prepared_sample.output, tmp_path / "p")
    _add_split(folder, "validation", "val", record=False)  # its Arrow file in no record: an altered folder
    _fails(capsys, [str(folder), "--output", str(tmp_path / "o")],
           rf"error: {re.escape(str(folder))}/val/data-00000-of-00001\.arrow: is not among the data files recorded "
           r"in prepare_info\.json; the folder was edited or damaged: .*", tmp_path / "o")
    _record(folder, *[f"val/{p.name}" for p in (folder / "val").iterdir()])
    _fails(capsys, [str(folder), "--output", str(tmp_path / "o")],
           r"error: .*/p: splits 'validation' and 'val' would both be written to val\.bin \(nanoGPT names validation "
           r"val\.bin\); rename or drop one of them, or export with another --format", tmp_path / "o")
    assert not (tmp_path / "o").exists()
    out = export(ExportConfig(prepared=str(folder), format="megatron", output=str(tmp_path / "m"))).output
    assert (out / "TinyStories_val_text_document.bin").read_bytes() == (
        out / "TinyStories_validation_text_document.bin").read_bytes()
    _add_split(folder, "validation", "Validation")  # one file with the other on a case-insensitive disk
    _fails(capsys, [str(folder), "--format", "megatron", "--output", str(tmp_path / "o")],
           r"error: .*/p: the export would write 'TinyStories_Validation_text_document\.bin' twice \(also as "
           r"'TinyStories_validation_text_document\.bin'\); rename one of the splits, .*", tmp_path / "o")


def test_a_split_named_to_escape_never_becomes_a_path_outside_out(prepared_sample, tmp_path, capsys):
    folder = shutil.copytree(prepared_sample.output, tmp_path / "in" / "p")
    _add_split(folder, "validation", "../../escape", record=False)  # its data: tmp_path/escape
    out = tmp_path / "out" / "deep" / "o"
    for fmt in FORMATS:
        assert main([str(folder), "--format", fmt, "--output", str(out)]) == 2
        line = capsys.readouterr().err.strip().splitlines()[-1]
        assert re.fullmatch(r"error: .*'\.\./\.\./escape'.*", line), line
        assert not out.exists()
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "escape" in str(p.relative_to(tmp_path))]
    assert written and all(p.parent == tmp_path / "escape" for p in written)  # the crafted split's own files only


def test_export_info_describes_what_was_read_when_the_folder_is_replaced_meanwhile(prepared_sample, prepared_demo,
                                                                                  tmp_path, monkeypatch):
    from tinystories_hf.exports import frames

    folder = shutil.copytree(prepared_sample.output, tmp_path / "p")
    reference = export(ExportConfig(prepared=str(prepared_sample.output), output=str(tmp_path / "ref"))).output
    write, swapped = frames.StreamWriter.write, []

    def write_then_replace(self, lengths, stream):  # after the first window: another folder at the same path
        write(self, lengths, stream)
        if not swapped:
            shutil.rmtree(folder)
            shutil.copytree(prepared_demo.output, folder)
            swapped.append(True)

    monkeypatch.setattr(frames.StreamWriter, "write", write_then_replace)
    out = export(ExportConfig(prepared=str(folder), output=str(tmp_path / "o"))).output
    assert swapped and {p.name: p.read_bytes() for p in out.iterdir()} == {
        p.name: p.read_bytes() for p in reference.iterdir()}  # export_info.json included
    info = json.loads((out / "export_info.json").read_text())
    assert info["prepared"]["vocab_sha256"] == prepared_sample.info["vocab_sha256"]
    recorded = json.loads((prepared_sample.output / "prepare_info.json").read_text())["data_files"]
    assert info["prepared"]["data_files"] == {k: v for k, v in recorded.items() if k.endswith(".arrow")}


def test_exports_of_folders_prepared_with_one_and_two_processes_are_identical(tmp_path, monkeypatch):
    """export_info.json included: it names the folder by its data, not by prepare_info.json's timings."""
    from tinystories_hf.tokenize import passes as tokenize

    monkeypatch.setattr(tokenize, "ROWS_PER_PROCESS", 1_000)  # two encode workers for the sample's train split
    folders = [prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / f"p{n}"), num_proc=n)).output
               for n in (1, 2)]
    assert (folders[0] / "prepare_info.json").read_bytes() != (folders[1] / "prepare_info.json").read_bytes()
    for fmt in FORMATS:
        outs = [export(ExportConfig(prepared=str(f), format=fmt, output=str(tmp_path / f"{fmt}{i}"))).output
                for i, f in enumerate(folders)]
        trees = [{str(p.relative_to(o)): p.read_bytes() for p in o.rglob("*") if p.is_file()} for o in outs]
        assert trees[0] == trees[1] and any(name.endswith("export_info.json") for name in trees[0])


def test_empty_stories_the_export_lacks_are_recorded_and_said(tmp_path, capsys):
    """prepare skips empty stories; nanoGPT's prepare.py and llama2.c's process_shard would keep each as a lone
    EOT/BOS: the export says how many, in export_info.json and on its output."""
    source = tmp_path / "src"
    source.mkdir()
    story = "Once upon a time a dog ran to the park {}."
    (source / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in
                                                [story.format(i) for i in range(200)] + ["", "  \n "]))
    (source / "validation.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in
                                                     ["", story.format(0), story.format(1)]))
    folder = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "p"), vocab_size=300, num_proc=1)).output
    assert main([str(folder), "--format", "llama2c", "--output", str(tmp_path / "d"), "--max-seq-len", "8"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: the source's 3 empty stories are not in the export (tinystories-prepare skips them); the peers' own "
        "scripts keep each as a lone separator (see the README's Exports section)")
    info = json.loads((tmp_path / "d" / "tok300" / "export_info.json").read_text())
    assert info["empty_stories_not_exported"] == {"validation": 1, "train": 2}


# ---- the trainers' data folders hold other things: the export owns its entries there, not the folder ----

def _tree(folder) -> dict:
    """Every file under `folder` but the writer locks."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def test_llama2c_owns_tok_n_in_llama2cs_data_folder_and_nothing_else(prepared_spm, tmp_path, capsys):
    data = tmp_path / "llama2.c" / "data"  # as llama2.c's tinystories.py download and a tok512 pretokenize left it
    (data / "TinyStories_all_data").mkdir(parents=True)
    (data / "TinyStories_all_data" / "data00.json").write_text("[]")
    (data / "TinyStories_all_data.tar.gz").write_bytes(b"\x1f\x8b" + bytes(100))
    (data / "tok512").mkdir()
    (data / "tok512" / "data00.bin").write_bytes(bytes(8))
    (data / "tok512.model").write_bytes(b"another vocabulary")
    theirs = _tree(data)
    argv = [str(prepared_spm.output), "--format", "llama2c", "--output", str(data)]
    assert main(argv) == 0
    mine = {k: v for k, v in _tree(data).items() if k.startswith("tok4096")}
    assert _tree(data) == {**theirs, **mine} and max(mine) == "tok4096/export_info.json"
    assert mine["tok4096.model"] == prepared_spm.tokenizer.base_tokenizer.model
    assert sorted(p.name for p in data.iterdir() if p.name.startswith(".")) == [".tok4096.lock"]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {data / 'tok4096'} already exists; pass --overwrite to replace it or choose another --output")
    assert main([*argv, "--overwrite", "--shard-stories", "3000"]) == 0
    assert _tree(data) == {**theirs, **{k: v for k, v in _tree(data).items() if k.startswith("tok4096")}}
    assert sorted(os.listdir(data / "tok4096")) == ["data00.bin", "data01.bin", "data02.bin", "export_info.json"]
    # a tok4096/ that llama2.c's own pretokenize wrote is never replaced, --overwrite or not
    shutil.rmtree(data / "tok4096")
    (data / "tok4096").mkdir()
    (data / "tok4096" / "data00.bin").write_bytes(bytes(8))
    before = _tree(data)
    assert main([*argv, "--overwrite"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {data / 'tok4096'} exists and was not written by tinystories-export; move it away or choose another "
        "--output")
    assert _tree(data) == before
    # llama2.c's own tok4096.model (train_vocab), the one the folder was prepared with: taken as it is
    shutil.rmtree(data / "tok4096")
    assert main(argv) == 0
    (data / "tok4096.model").write_bytes(b"a different model")
    shutil.rmtree(data / "tok4096")
    assert main([*argv, "--overwrite"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {data / 'tok4096.model'} exists and was not written by tinystories-export; move it away or choose "
        "another --output")


def test_nanogpt_writes_beside_the_users_files_and_drops_its_own_stale_ones(prepared_sample, prepared_gpt2_full,
                                                                          tmp_path, capsys):
    folder = tmp_path / "nanoGPT" / "data" / "tinystories"
    folder.mkdir(parents=True)
    (folder / "prepare.py").write_text("# the user's own\n")
    (folder / "readme.md").write_text("notes\n")
    theirs = _tree(folder)
    assert main([str(prepared_sample.output), "--output", str(folder)]) == 0
    assert sorted(_tree(folder)) == ["export_info.json", "meta.pkl", "prepare.py", "readme.md", "train.bin", "val.bin"]
    # GPT-2's own vocabulary over it: no meta.pkl, and the previous export's is gone (sample.py would read it)
    assert main([str(prepared_gpt2_full.output), "--output", str(folder), "--overwrite"]) == 0
    reference = export(ExportConfig(prepared=str(prepared_gpt2_full.output), output=str(tmp_path / "ref"))).output
    assert _tree(folder) == {**theirs, **_tree(reference)}
    # nanoGPT's own data/shakespeare_char/ (its prepare.py wrote train.bin): never replaced
    other = tmp_path / "shakespeare_char"
    other.mkdir()
    (other / "train.bin").write_bytes(bytes(4))
    assert main([str(prepared_sample.output), "--output", str(other), "--overwrite"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {other / 'train.bin'} exists and was not written by tinystories-export; move it away or choose "
        "another --output")
    assert _tree(other) == {"train.bin": bytes(4)}


def test_a_run_stopped_while_moving_its_files_in_is_finished_by_the_next(prepared_sample, prepared_gpt2_full,
                                                                         tmp_path, monkeypatch, capsys):
    """The moves into a folder with the user's files stop after the first (as a kill would leave them): the next
    run, before anything else, finishes them: the second export, whole, and the user's file."""
    from tinystories_hf.exports.placement import Placement

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    export(ExportConfig(prepared=str(prepared_sample.output), output=str(folder)))  # with meta.pkl
    move, moved = Placement._move_in, []

    def stop_after_one(self, name, trash):
        if moved:
            raise OSError(errno.EIO, "Input/output error", str(self.output / name))
        moved.append(name)
        move(self, name, trash)

    monkeypatch.setattr(Placement, "_move_in", stop_after_one)
    assert main([str(prepared_gpt2_full.output), "--output", str(folder), "--overwrite"]) == 2
    assert moved == ["train.bin"] and (tmp_path / ".data.commit").is_dir()
    assert (folder / "meta.pkl").exists()  # the first export's, still recorded by its export_info.json
    monkeypatch.setattr(Placement, "_move_in", move)
    assert main([str(prepared_gpt2_full.output), "--output", str(folder)]) == 2  # finishes, then: already exists
    assert "train.bin already exists" in capsys.readouterr().err.strip().splitlines()[-1]
    reference = export(ExportConfig(prepared=str(prepared_gpt2_full.output), output=str(tmp_path / "ref"))).output
    assert _tree(folder) == {"notes.txt": b"mine", **_tree(reference)}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".data")) == [".data.lock"]
