"""`tinystories-train-tokenizer`: a byte-level BPE and llama2.c's SentencePiece BPE trained on the real sample,
checked against independent references: `tokenizers` loading the saved tokenizer.json, transformers'
AutoTokenizer, and a model trained by calling sentencepiece directly with llama2.c's settings on llama2.c's
text (`tinystories.py train_vocab`: each story `.strip()`-ed, then a newline, in a tiny.txt)."""
import hashlib
import json
import os
import sys

import datasets
import numpy as np
import processes
import pytest
import sentencepiece as spm
from conftest import SAMPLE_EOT, SAMPLE_JSONL
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from tinystories_hf import PrepareConfig, TinyStoriesError, prepare
from tinystories_hf.vocabulary.train_tokenizer import TrainTokenizerConfig, main, train_tokenizer


def _tree(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _train_texts(prepared) -> list:
    return list(datasets.load_from_disk(str(prepared.output))["train"]["text"])


def test_bpe_is_a_byte_level_bpe_with_the_endoftext_eos_and_no_unk(trained_bpe, prepared_bpe, sample_stories):
    folder = trained_bpe.output
    assert sorted(p.name for p in folder.iterdir()) == ["special_tokens_map.json", "tokenizer.json",
                                                        "tokenizer_config.json", "train_info.json"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tokenizer.get_vocab_size(with_added_tokens=True) == 4096
    assert tokenizer.token_to_id("<|endoftext|>") == 0
    from tokenizers.pre_tokenizers import ByteLevel

    assert all(tokenizer.token_to_id(byte) is not None for byte in ByteLevel.alphabet())  # all 256 bytes
    weird = "naïve café 🙂 日本語 \x00\x7f ２３"  # characters the sample never holds: bytes, never UNK
    assert tokenizer.decode(tokenizer.encode(weird).ids) == weird
    assert all(tokenizer.decode(tokenizer.encode(s).ids) == s for s in sample_stories[:500])
    info = json.loads((folder / "train_info.json").read_text())
    stories = "".join(json.dumps(text) + "\n" for text in _train_texts(prepared_bpe))  # prepare's train split
    assert info["sample"] == {"stories": 5465, "of": 5465, "seed": 1337, "rows": "all",  # the sample's train split
                              "stories_sha256": hashlib.sha256(stories.encode()).hexdigest()}


def test_the_pipeline_stores_the_ids_tokenizers_and_plain_autotokenizer_give(prepared_bpe, trained_bpe):
    """The trained folder loads with plain AutoTokenizer (no remote code); it, `tokenizers` on the saved json
    and the prepared folder agree on every story; a literal <|endoftext|> in a story is text, not EOS."""
    tokenizer = Tokenizer.from_file(str(trained_bpe.output / "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(str(trained_bpe.output))
    data = datasets.load_from_disk(str(prepared_bpe.output))
    for split in ("train", "validation"):
        texts, stored = list(data[split]["text"]), list(data[split]["input_ids"])
        assert stored == [e.ids for e in tokenizer.encode_batch(texts)]
        assert stored == auto(texts)["input_ids"]
    assert auto.eos_token_id == 0 and prepared_bpe.tokenizer.separator_id == 0
    literal = "The cat<|endoftext|>sat."
    assert 0 not in auto(literal)["input_ids"] and auto(literal)["input_ids"] == prepared_bpe.tokenizer.encode(literal)
    assert auto.decode(auto(literal)["input_ids"]) == literal


def _llama2c_model(tmp_path, texts, vocab_size=4096) -> spm.SentencePieceProcessor:
    """llama2.c's train_vocab, by hand: tiny.txt then SentencePieceTrainer.train with its settings."""
    tiny = tmp_path / "tiny.txt"
    with open(tiny, "w", encoding="utf-8") as of:
        of.writelines(text.strip() + "\n" for text in texts)
    spm.SentencePieceTrainer.train(input=str(tiny), model_prefix=str(tmp_path / f"tok{vocab_size}"),
                                   model_type="bpe", vocab_size=vocab_size, self_test_sample_size=0,
                                   input_format="text", character_coverage=1.0, num_threads=2, split_digits=True,
                                   allow_whitespace_only_pieces=True, byte_fallback=True,
                                   unk_surface=r" \342\201\207 ", normalization_rule_name="identity")
    return spm.SentencePieceProcessor(model_file=str(tmp_path / f"tok{vocab_size}.model"))


def test_sentencepiece_is_the_model_llama2c_trains_on_the_same_text(trained_spm, prepared_spm, tmp_path):
    """Same pieces, scores, piece types and normalizer as sentencepiece called directly with llama2.c's settings
    on llama2.c's text of the same stories (the train split the trainer sampled, in its order), and the same ids
    for every story; the model file is named tok4096.model and holds unk 0, bos 1, eos 2 as llama2.c's."""
    ours = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    texts = _train_texts(prepared_spm)
    theirs = _llama2c_model(tmp_path, texts)
    assert ours.get_piece_size() == theirs.get_piece_size() == 4096
    assert [(ours.id_to_piece(i), ours.get_score(i), ours.is_control(i), ours.is_byte(i)) for i in range(4096)] == \
        [(theirs.id_to_piece(i), theirs.get_score(i), theirs.is_control(i), theirs.is_byte(i)) for i in range(4096)]
    assert (ours.unk_id(), ours.bos_id(), ours.eos_id()) == (theirs.unk_id(), theirs.bos_id(), theirs.eos_id()) == \
        (0, 1, 2)
    assert ours.encode(texts) == theirs.encode(texts)
    assert ours.encode("Hello  world") == theirs.encode("Hello  world")  # the normalizer: identity, extra spaces out


def test_prepared_ids_are_sentencepiece_encode_of_every_story(prepared_spm, trained_spm):
    model = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    data = datasets.load_from_disk(str(prepared_spm.output))
    for split in ("train", "validation"):
        assert list(data[split]["input_ids"]) == model.encode(list(data[split]["text"]))
    tokenizer = prepared_spm.tokenizer
    assert (tokenizer.eos_id, tokenizer.bos_id, tokenizer.unk_id, tokenizer.separator_id) == (2, 1, 0, 2)
    assert data["train"].features["input_ids"] == datasets.List(datasets.Value("uint16"))


def test_autotokenizer_of_a_sentencepiece_folder_needs_remote_code_and_gives_the_stored_ids(prepared_spm):
    folder = prepared_spm.output / "tokenizer"
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        AutoTokenizer.from_pretrained(str(folder))
    auto = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    data = datasets.load_from_disk(str(prepared_spm.output))["validation"]
    assert auto(list(data["text"]))["input_ids"] == list(data["input_ids"])
    assert [auto.decode(ids) for ids in data["input_ids"]] == [prepared_spm.tokenizer.decode(i) for i in data["input_ids"]]


def test_the_same_stories_in_another_layout_give_byte_identical_tokenizers_and_folders(trained_bpe, trained_spm,
                                                                                       prepared_spm, tmp_path):
    """The sample as V2 raw text (stories-eot.txt) instead of jsonl: the same files, byte for byte."""
    for trained in (trained_bpe, trained_spm):
        model = trained.info["config"]["model"]
        again = train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_EOT), model=model, num_proc=2,
                                                     output=str(tmp_path / model)))
        ours, theirs = _tree(trained.output), _tree(again.output)
        assert ours == theirs and len(ours) >= 2  # train_info.json included: it names no path, no layout
        info = (again.output / "train_info.json").read_text()
        assert "stories-eot" not in info and "tinystories-sample" not in info and str(tmp_path) not in info
    folder = prepare(PrepareConfig(source=str(SAMPLE_EOT), output=str(tmp_path / "p"), num_proc=1, keep_text=True,
                                   tokenizer=str(tmp_path / "sentencepiece" / "tok4096.model"), vocab_size="full",
                                   max_length=None, min_length=0)).output
    assert json.loads((folder / "prepare_info.json").read_text())["data_files"] == \
        json.loads((prepared_spm.output / "prepare_info.json").read_text())["data_files"]


def test_two_runs_in_two_processes_give_byte_identical_folders(trained_bpe, trained_spm, tmp_path):
    """Other hash seeds (tokenizers counts words in a hash map) and another process: the same bytes, all files."""
    for trained in (trained_bpe, trained_spm):
        model = trained.info["config"]["model"]
        run = processes.run([sys.executable, "-m", "tinystories_hf.vocabulary.train_tokenizer", "--source", str(SAMPLE_JSONL),
                             "--model", model, "--num-proc", "1", "--output", str(tmp_path / model)],
                            capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-2000:]
        assert _tree(tmp_path / model) == _tree(trained.output)
        assert f"trained a 4,096-id {model} tokenizer on 5,465 of 5,465 train stories in " in run.stdout


@pytest.fixture(scope="module")
def split_source(tmp_path_factory, sample_stories):
    """A folder with its own validation split: train.jsonl (the first 2,000 real stories) and validation.jsonl."""
    folder = tmp_path_factory.mktemp("split") / "stories"
    folder.mkdir()
    for name, stories in (("train", sample_stories[:2000]), ("validation", sample_stories[2000:2100])):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in stories))
    return folder


def test_the_sample_seed_picks_the_stories_on_a_source_with_its_own_validation(split_source, sample_stories,
                                                                              tmp_path):
    """No validation is carved here, so only the sample depends on the seed: seeds 1 and 2 give different
    tokenizers; each train_info.json names its sample by the sha256 of exactly the rows numpy's seeded choice
    picks (an independent reading of the documented rule); sample 'all' is the sha256 of the whole train file."""
    def train(seed, name, sample_size=500):
        return train_tokenizer(TrainTokenizerConfig(source=str(split_source), output=str(tmp_path / name),
                                                    vocab_size=400, sample_size=sample_size, seed=seed, num_proc=1))

    def sha(stories):
        return hashlib.sha256("".join(json.dumps(s) + "\n" for s in stories).encode()).hexdigest()

    one, two = train(1, "one"), train(2, "two")
    assert one.info["source"] == {"validation": "source"}
    assert _tree(one.output)["tokenizer.json"] != _tree(two.output)["tokenizer.json"]
    for seed, result in ((1, one), (2, two)):
        rows = sorted(np.random.default_rng(seed).choice(2000, size=500, replace=False))
        assert result.info["sample"]["stories_sha256"] == sha([sample_stories[r].strip() for r in rows])
    every = train(1, "all", sample_size=None)
    assert every.info["sample"]["stories_sha256"] == sha([s.strip() for s in sample_stories[:2000]])


def test_a_sample_is_seeded_rows_of_train(tmp_path, sample_stories):
    """--sample-size 1000: a seeded choice of the train rows; another seed, another tokenizer; the same seed,
    the same one."""
    def train(seed, name):
        return train_tokenizer(TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / name),
                                                    vocab_size=600, sample_size=1000, seed=seed, num_proc=1))
    a, b, c = train(1, "a"), train(1, "b"), train(2, "c")
    assert _tree(a.output) == _tree(b.output) != _tree(c.output)
    assert a.info["sample"]["stories"] == 1000 and a.info["sample"]["of"] == 5465


@pytest.mark.parametrize("argv, message", [
    (["--model", "wordpiece"], "error: --model wordpiece is not one of bpe, sentencepiece"),
    (["--vocab-size", "256"], ("error: --vocab-size 256 is below the byte alphabet: it must hold the 256 byte tokens "
                              "and <|endoftext|> (use 257 or more; llama2.c's example is 4096)")),
    (["--model", "sentencepiece", "--vocab-size", "259"], ("error: --vocab-size 259 is below the byte alphabet: it "
     "must hold the 256 byte pieces of byte_fallback, <unk>, <s>, </s> and at least one piece (use 260 or more; "
     "llama2.c's example is 4096)")),
    (["--sample-size", "0"], "error: --sample-size 0 must be at least 1"),
])
def test_options_that_cannot_work_are_one_line(tmp_path, capsys, argv, message):
    assert main(["--source", "demo", "--output", str(tmp_path / "out"), *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.jsonl"
    path.write_text("".join(json.dumps({"text": f"The dog ran {i % 3} times."}) + "\n" for i in range(40)))
    return path


# tiny_source's units: the words The, dog, ran (3 bytes each), 0, 1, 2 (1 each), times. (6) and the whitespace run
# " " (1). bpe: 257 + their 19 bytes = 276 ids. sentencepiece: 259 + the substrings of each unit with its "▁"
# (n + 1 symbols: n(n + 1) / 2 with n = 4, 4, 4, 2, 2, 2, 7, 2: 10 * 3 + 3 * 3 + 28 + 3 = 70) = 329.
@pytest.mark.parametrize("model, vocab_size, message", [
    ("bpe", 276, (r"^error: the 39 sampled stories hold too few distinct token pairs for --vocab-size 276: training "
                  r"stopped at \d+ ids; lower it to at most \d+ or sample more stories \(--sample-size\)$")),
    ("sentencepiece", 329, (r"^error: the sampled stories cannot fill --vocab-size 329 pieces \(sentencepiece: at "
                            r"most \d+\); lower it or sample more stories \(--sample-size\)$")),
    *[(model, size, (rf"^error: the 39 sampled stories cannot fill --vocab-size {size}: they hold at most {most} ids "
                     r"\(the byte alphabet, the specials and the tokens their distinct words allow\); lower it, or "
                     r"sample more stories \(--sample-size\)$"))
      for model, most in (("bpe", 276), ("sentencepiece", 329)) for size in (most + 1, 10**9, 2**31, 2**64)],
])
def test_a_vocabulary_the_corpus_cannot_fill_is_one_line(tiny_source, tmp_path, capsys, model, vocab_size, message):
    """Above the bound: one line before training (10**9 made tokenizers abort allocating, 2**64 an OverflowError,
    2**31 sentencepiece's INVALID_ARGUMENT); at the bound, the trainers' own limits, one line too."""
    assert main(["--source", str(tiny_source), "--output", str(tmp_path / "out"), "--model", model,
                 "--vocab-size", str(vocab_size), "--num-proc", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.match(message, err.strip().splitlines()[-1]), err[-500:]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.lock"]  # nothing half-written


@pytest.mark.parametrize("model", ["bpe", "sentencepiece"])
def test_the_bound_is_never_below_what_training_reaches(model, tmp_path):
    """On 300 real stories: asked for the bound, each trainer stops at or below it (so no size a trainer could
    fill is refused); the ids it reached are read from its own message."""
    import re

    from tinystories_hf.vocabulary.train_tokenizer import read_sample

    stories = [json.loads(line)["text"] for _, line in zip(range(300), SAMPLE_JSONL.open(encoding="utf-8"))]
    bound = read_sample([[s.strip() for s in stories]])["most_ids"][model]
    config = TrainTokenizerConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / "out"), model=model, num_proc=1,
                                  vocab_size=bound, sample_size=300)
    with pytest.raises(TinyStoriesError) as caught:
        train_tokenizer(config)
    reached = re.search(r"(?:stopped at|at most) (\d+)", str(caught.value))
    assert reached, str(caught.value)
    assert int(reached.group(1)) <= bound


def test_an_existing_output_is_kept_without_overwrite(trained_bpe, capsys):
    before = _tree(trained_bpe.output)
    assert main(["--source", "demo", "--output", str(trained_bpe.output), "--vocab-size", "300"]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {trained_bpe.output} already exists; pass --overwrite to "
                                               "replace it or choose another --output")
    assert _tree(trained_bpe.output) == before


def test_without_sentencepiece_installed_the_extra_is_named(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)  # import sentencepiece now fails as if not installed
    assert main(["--source", "demo", "--output", str(tmp_path / "out"), "--model", "sentencepiece"]) == 2
    assert capsys.readouterr().err.strip() == ('error: a SentencePiece tokenizer (.model) needs sentencepiece, which is '
                                               'not installed: pip install "tinystories-hf[sentencepiece]"')


def test_a_model_file_that_is_not_sentencepiece_is_one_line(tmp_path, capsys):
    from tinystories_hf.pipeline import main as prepare_main

    for name, data in (("garbage.model", b"not a model at all"), ("empty.model", b""),
                       ("json.model", json.dumps({"model": {}}).encode())):
        (tmp_path / name).write_bytes(data)
        assert prepare_main(["--source", "demo", "--output", str(tmp_path / "out"), "--tokenizer",
                             str(tmp_path / name), "--vocab-size", "full"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / name}: not a SentencePiece model (") and \
            err[0].endswith("pass a .model file written by sentencepiece (llama2.c's train_vocab, "
                            "tinystories-train-tokenizer --model sentencepiece)"), err


def test_the_default_vocab_size_with_a_small_trained_tokenizer_says_to_keep_its_ids(trained_bpe, tmp_path, capsys):
    from tinystories_hf.pipeline import main as prepare_main

    assert prepare_main(["--source", "demo", "--output", str(tmp_path / "out"), "--tokenizer",
                         str(trained_bpe.output)]) == 2
    assert capsys.readouterr().err.strip() == ("error: --vocab-size 10000 exceeds the base tokenizer's 4095 regular "
                                               "tokens + 2 specials; lower it, or keep its own ids with --vocab-size full")


def test_a_trained_tokenizer_can_be_reduced_too(trained_spm, tmp_path, sample_stories):
    """A reduced vocabulary over a SentencePiece base (Llama 2's 32K to 1,000, say): its ids remap sentencepiece's."""
    result = prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / "r"), num_proc=1, vocab_size=1000,
                                   tokenizer=str(trained_spm.output / "tok4096.model")))
    model = spm.SentencePieceProcessor(model_file=str(trained_spm.output / "tok4096.model"))
    tokenizer = result.tokenizer
    ids = tokenizer.encode(sample_stories[0])
    assert ids == tokenizer.remap(model.encode(sample_stories[0])).tolist() and max(ids) < 1000
    assert np.array_equal(tokenizer.base_ids[ids][np.array(ids) > 1], np.array(model.encode(sample_stories[0]))[
        np.array(ids) > 1])
    auto = AutoTokenizer.from_pretrained(str(result.output / "tokenizer"), trust_remote_code=True)
    assert auto(sample_stories[:50])["input_ids"] == tokenizer.encode_batch(sample_stories[:50])


# ---- sentencepiece's absl warnings are not the user's concern; its errors are ----

ABSL_NOTE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
DEPRECATED = ("W0000 00:00:1796653429.693905    1505 spec_parser.h:259] --self_test_sample_size is deprecated and "
              "ignored.")


def test_sentencepiece_training_prints_its_progress_and_none_of_absls_warnings(tmp_path, capfd):
    from tinystories_hf.vocabulary.train_tokenizer import LLAMA2C_SETTINGS

    spm.SentencePieceTrainer.train(sentence_iterator=iter(["The dog ran.", "The cat sat."] * 50), vocab_size=280,
                                   model_writer=open(tmp_path / "direct.model", "wb"), minloglevel=1,  # noqa: SIM115
                                   **LLAMA2C_SETTINGS)
    direct = capfd.readouterr().err  # what sentencepiece prints on its own, with llama2.c's settings
    assert "--self_test_sample_size is deprecated and ignored." in direct
    argv = ["--source", str(SAMPLE_JSONL), "--model", "sentencepiece", "--vocab-size", "512", "--output",
            str(tmp_path / "tok")]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "deprecated" not in err and "absl" not in err, err
    assert "sentencepiece: reading 5,465 train stories: 100%" in err
    # an error of sentencepiece's own still reaches the user: one line, after the warning it prints
    assert main([*argv[:5], "99999", "--output", str(tmp_path / "too-big")]) == 2
    err = capfd.readouterr().err
    assert "deprecated" not in err and err.strip().splitlines()[-1].startswith(
        "error: the sampled stories cannot fill --vocab-size 99999 pieces (sentencepiece: at most ")


def test_the_native_stderr_filter_drops_only_the_noise_and_passes_every_other_line(capfd):
    from tinystories_hf.vocabulary.train_tokenizer import native_noise_filtered

    with native_noise_filtered():
        os.write(2, f"\rbar   0%|{ABSL_NOTE}\n".encode())  # after a progress bar's update, as sentencepiece's come
        os.write(2, b"E0000 00:00:1.5    7 trainer_interface.cc:1] a real error\n")
        os.write(2, f"{DEPRECATED}\n".encode())
        os.write(2, f"{DEPRECATED} and more\n".encode())  # not the noise line: passed on whole
        os.write(2, "W0000 unicode \u00e9 and bytes \xff\n".encode("utf-8", "surrogateescape")[:-3] + b"\xff\n")
        print("python's own line", file=sys.stderr)
    print("after the block", file=sys.stderr)
    err = capfd.readouterr().err
    # Python's own line goes to stderr directly, the native lines through the filter's thread: it may come between
    # any two of them (even after the bar's update), never inside a line written whole.
    assert err.count("python's own line\n") == 1, err
    lines = set(err.replace("python's own line\n", "", 1).split("\n"))
    assert lines == {"\rbar   0%|E0000 00:00:1.5    7 trainer_interface.cc:1] a real error",  # the bar's update stays
                     f"{DEPRECATED} and more", "W0000 unicode \u00e9 and bytes \ufffd",
                     "after the block", ""}, err


def test_no_strip_sentencepiece_trains_on_llama2cs_own_text(split_source, tmp_path):
    """--no-strip keeps each story's whitespace in the source, but llama2.c's train_vocab always writes
    `story.strip()` then a newline: the model is the one sentencepiece trains on that text (every piece and
    score), not the one the unstripped lines would give (tabs, which sentencepiece's own normalizer keeps)."""
    source = tmp_path / "padded"
    source.mkdir()
    for name in ("train", "validation"):
        stories = [json.loads(line)["text"] for line in (split_source / f"{name}.jsonl").open(encoding="utf-8")]
        padded = [f"\t {s} \t\n" if i % 2 else s for i, s in enumerate(stories[:800])]
        (source / f"{name}.jsonl").write_text("".join(json.dumps({"text": s}) + "\n" for s in padded))
    padded = [json.loads(line)["text"] for line in (source / "train.jsonl").open(encoding="utf-8")]
    result = train_tokenizer(TrainTokenizerConfig(source=str(source), output=str(tmp_path / "out"), num_proc=1,
                                                  model="sentencepiece", vocab_size=600, sample_size=None,
                                                  strip=False))
    assert result.info["config"]["strip"] is False and result.info["sample"]["stories"] == 800
    ours = spm.SentencePieceProcessor(model_file=str(result.output / "tok600.model"))
    (tmp_path / "llama2c").mkdir()
    theirs = _llama2c_model(tmp_path / "llama2c", padded, vocab_size=600)  # it strips, as llama2.c does

    def pieces(model):
        return [(model.id_to_piece(i), model.get_score(i)) for i in range(model.get_piece_size())]

    assert pieces(ours) == pieces(theirs)
    unstripped = tmp_path / "raw"
    unstripped.mkdir()
    (unstripped / "tiny.txt").write_text("".join(padded), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(unstripped / "tiny.txt"), model_prefix=str(unstripped / "tok600"),
                                   model_type="bpe", vocab_size=600, self_test_sample_size=0, input_format="text",
                                   character_coverage=1.0, num_threads=2, split_digits=True,
                                   allow_whitespace_only_pieces=True, byte_fallback=True,
                                   unk_surface=r" \342\201\207 ", normalization_rule_name="identity")
    assert pieces(spm.SentencePieceProcessor(model_file=str(unstripped / "tok600.model"))) != pieces(ours)
