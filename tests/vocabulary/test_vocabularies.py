"""Full vocabularies (`--vocab-size full`), their stored dtype and specials, whole stories, and AutoTokenizer on
every saved tokenizer, each against an independent reference: tiktoken built by its own loader from GPT-2's
files (nanoGPT's `enc.encode_ordinary`), transformers' GPT2Tokenizer, and tokenizers built here by hand."""
import json
import sys

import datasets
import numpy as np
import processes
import pytest
from conftest import SAMPLE_JSONL, word_level_tokenizer
from transformers import AutoTokenizer, GPT2Tokenizer

from tinystories_hf import (
    PackingCollator,
    PrepareConfig,
    TinyStoriesDataset,
    TinyStoriesDatasetPacked,
    TinyStoriesError,
    gpt_neo_config,
    load_prepared,
    prepare,
    stream,
    validate_prepared,
    write_hub_folder,
    write_report,
)
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

EOT = 50256


def _rows(folder, split="train"):
    data = datasets.load_from_disk(str(folder))[split]
    return list(data["text"]), list(data["input_ids"])


def test_gpt2_full_vocabulary_is_tiktokens_ids_of_every_whole_story(prepared_gpt2_full, tiktoken_gpt2):
    folder = prepared_gpt2_full.output
    for split in ("train", "validation"):
        texts, stored = _rows(folder, split)
        assert stored == tiktoken_gpt2.encode_ordinary_batch(texts)
    info = prepared_gpt2_full.info
    assert (info["vocabulary"], info["vocab_size"], info["id_dtype"]) == ("full", 50257, "uint16")
    assert (info["eos_id"], info["bos_id"], info["unk_id"], info["separator_id"]) == (EOT, None, None, EOT)
    assert info["splits"]["train"]["truncated"] == 0 and max(_rows(folder)[1], key=len).__len__() > 512
    assert datasets.load_from_disk(str(folder))["train"].features["input_ids"] == datasets.List(datasets.Value("uint16"))
    assert validate_prepared(folder)["vocab_size"] == 50257


def test_a_full_tokenizer_json_folder_loads_with_plain_autotokenizer(prepared_gpt2_full):
    auto = AutoTokenizer.from_pretrained(str(prepared_gpt2_full.output / "tokenizer"))  # no remote code
    texts, stored = _rows(prepared_gpt2_full.output, "validation")
    assert auto(texts)["input_ids"] == stored
    assert auto.eos_token_id == EOT and auto("a<|endoftext|>b")["input_ids"] == [64, 27, 91, 437, 1659, 5239, 91, 29, 65]
    assert auto.batch_decode(stored) == texts


def test_the_reduced_vocabulary_loads_with_autotokenizer_through_its_module(prepared_sample):
    """`trust_remote_code=True` gives the stored ids (truncated at max_length there), batches, padding, tensors,
    attention masks and decoding of TinyStoriesTokenizer; without it, transformers' own message, never
    "Couldn't instantiate the backend tokenizer"."""
    folder, ours = prepared_sample.output / "tokenizer", prepared_sample.tokenizer
    with pytest.raises(ValueError) as refused:
        AutoTokenizer.from_pretrained(str(folder))
    assert "trust_remote_code=True" in str(refused.value) and "Couldn't instantiate" not in str(refused.value)
    auto = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    data = datasets.load_from_disk(str(prepared_sample.output))
    for split in ("train", "validation"):
        texts, stored = list(data[split]["text"]), list(data[split]["input_ids"])
        assert [ids[:512] for ids in auto(texts)["input_ids"]] == stored
    assert (auto.vocab_size, auto.eos_token_id, auto.unk_token_id, auto.pad_token_id) == (10_000, 0, 1, 0)
    prompts = ["Once upon a time", "The little dog ran to the park and", "Zyzzyva quux"]
    for options in ({}, {"padding": True}, {"padding": True, "return_tensors": "pt"},
                    {"padding": "max_length", "max_length": 12, "truncation": True, "return_tensors": "pt"}):
        theirs, mine = auto(prompts, **options), ours(prompts, **options)
        for key in ("input_ids", "attention_mask"):
            a, b = theirs[key], mine[key]
            assert (a.tolist() if hasattr(a, "tolist") else a) == (b.tolist() if hasattr(b, "tolist") else b), options
    ids = ours.encode("Once upon a time there was a zyzzyva.") + [0]
    assert 1 in ids  # an UNK, then EOS
    assert auto.decode(ids) == ours.decode(ids) and auto.decode(ids, skip_special_tokens=True) == \
        ours.decode(ids, skip_special_tokens=True)
    assert auto.batch_decode([ids, ids[:3]]) == ours.batch_decode([ids, ids[:3]])


def test_the_module_needs_transformers_and_tokenizers_only(prepared_sample, tmp_path):
    """Loaded in a fresh Python where tinystories_hf cannot be imported at all; generate() through it."""
    script = f"""
import sys
sys.modules["tinystories_hf"] = None  # any import of the package fails
import torch
from transformers import AutoTokenizer, GPTNeoConfig, GPTNeoForCausalLM
tok = AutoTokenizer.from_pretrained({str(prepared_sample.output / "tokenizer")!r}, trust_remote_code=True)
tok.padding_side = "left"
model = GPTNeoForCausalLM(GPTNeoConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=2,
                                       attention_types=[[["global", "local"], 1]], max_position_embeddings=64,
                                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
torch.manual_seed(0)
prompts = tok(["Once upon a time", "The dog"], padding=True, return_tensors="pt")
out = model.generate(**prompts, max_new_tokens=5, do_sample=False)
print(out.shape[0], len(tok.batch_decode(out, skip_special_tokens=True)), tok("Once upon a time")["input_ids"])
"""
    run = processes.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split("\n")[-2] == f"2 2 {prepared_sample.tokenizer.encode('Once upon a time')}"


def test_the_pushed_repository_loads_through_both_from_pretrained_routes(prepared_sample, tmp_path):
    """`from_pretrained(REPO + "/tokenizer")` and `from_pretrained(REPO, subfolder="tokenizer")` (transformers
    imports the module from the repository's top for the second): both give the stored ids."""
    hub = write_hub_folder(prepared_sample.output, tmp_path / "hub")
    module = (hub / "tokenizer" / "tokenization_tinystories.py").read_bytes()
    assert (hub / "tokenization_tinystories.py").read_bytes() == module
    data = datasets.load_from_disk(str(prepared_sample.output))["validation"]
    texts, stored = list(data["text"][:50]), list(data["input_ids"][:50])
    for auto in (AutoTokenizer.from_pretrained(str(hub / "tokenizer"), trust_remote_code=True),
                 AutoTokenizer.from_pretrained(str(hub), subfolder="tokenizer", trust_remote_code=True)):
        assert [ids[:512] for ids in auto(texts)["input_ids"]] == stored
        assert auto.decode(stored[0]) == texts[0]


def test_the_packed_datasets_and_the_collator_take_the_folders_separator(prepared_gpt2_full):
    """GPT-2's EOS is 50256, not 0: every story of the packed stream is followed by 50256."""
    folder, tokenizer = prepared_gpt2_full.output, prepared_gpt2_full.tokenizer
    _texts, stored = _rows(folder)
    packed = TinyStoriesDatasetPacked(folder, split="train", block_size=64)
    stream_ids = [t for ids in stored for t in ids + [EOT]]
    assert packed[0][0].tolist() == stream_ids[:64] and packed[3][1].tolist() == stream_ids[3 * 64 + 1:4 * 64 + 1]
    story = TinyStoriesDataset(folder, split="train", block_size=1024)
    x, y = story[0]
    n = len(stored[0])
    assert x[n:].eq(EOT).all() and y[n - 1] == EOT and y[n:].eq(-1).all()
    rows = PackingCollator(tokenizer=tokenizer, block_size=2048, return_dict=True)([{"input_ids": s} for s in stored[:3]])
    assert rows["input_ids"][0, len(stored[0])] == EOT and rows["labels"][0, len(stored[0])] == EOT
    assert gpt_neo_config(64, tokenizer=tokenizer).eos_token_id == EOT
    assert gpt_neo_config(64, tokenizer=tokenizer).vocab_size == 50257
    from tinystories_hf import TinyStoriesSampler  # the sampler's state over these ids, resumed on 3 ranks

    sampler = TinyStoriesSampler(packed, seed=5, rank=0, world_size=2)
    taken = [i for i, _ in zip(sampler, range(4))]
    state = sampler.state_dict(samples=4)
    resumed = TinyStoriesSampler(TinyStoriesDatasetPacked(folder, split="train", block_size=64), seed=5, rank=0,
                                 world_size=3)
    resumed.load_state_dict(state)
    order = sampler.order().tolist()
    assert taken == order[0:8:2] and next(iter(resumed)) == order[8]


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A base tokenizer of 70,002 ids, and stories whose words are ids far above 65,535."""
    root = tmp_path_factory.mktemp("wide")
    folder = word_level_tokenizer(70_000, {"unk": "[UNK]", "eos": "</s>"}, root / "tok", {"eos_token": "</s>"})
    rng = np.random.default_rng(0)
    words = [[int(w) for w in rng.choice(np.r_[65_530:70_000, 0:40], size=30)] for _ in range(400)]
    (root / "s.jsonl").write_text("".join(json.dumps({"text": " ".join(f"w{w}" for w in story)}) + "\n"
                                          for story in words))
    return folder, root / "s.jsonl", words


def test_a_base_of_more_than_65536_ids_is_stored_as_uint32_never_wrapped(wide, tmp_path):
    folder, source, words = wide
    full = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "full"), tokenizer=str(folder),
                                 vocab_size="full", num_proc=1, keep_text=True))
    data = datasets.load_from_disk(str(full.output))
    assert data["train"].features["input_ids"] == datasets.List(datasets.Value("uint32"))
    by_text = {" ".join(f"w{w}" for w in story): story for story in words}
    for split in ("train", "validation"):
        for row in data[split]:
            assert row["input_ids"] == by_text[row["text"]]  # the word's own id, 65,530..69,999 included
    assert full.info["id_dtype"] == "uint32" and full.info["eos_id"] == 70_001 and full.info["unk_id"] == 70_000
    assert validate_prepared(full.output)["vocab_size"] == 70_002
    packed = TinyStoriesDatasetPacked(full.output, split="train", block_size=16)
    assert packed[0][0].tolist() == data["train"][0]["input_ids"][:16]
    # A reduced vocabulary over it: the base ids were counted and remapped as uint32 (a wrap at 65,536 would turn
    # w65540 into w4, which no story holds).
    reduced = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "reduced"), tokenizer=str(folder),
                                    vocab_size=300, num_proc=1, keep_text=True))
    kept = set(reduced.tokenizer.base_ids[2:].tolist())
    assert max(kept) > 65_536 and kept <= set(range(65_530, 70_000)) | set(range(40))
    table = reduced.tokenizer.base_ids
    for row in datasets.load_from_disk(str(reduced.output))["train"]:
        ids, story = np.array(row["input_ids"]), np.array(by_text[row["text"]])  # one id per word
        assert np.array_equal(table[ids[ids != 1]], story[ids != 1])  # every kept word is its own base id
        assert np.all(ids[~np.isin(story, list(kept))] == 1)  # and every other word is UNK


def test_a_vocabulary_of_only_a_bos_separates_stories_with_it(tmp_path):
    folder = word_level_tokenizer(50, {"bos": "<s>"}, tmp_path / "tok", {"bos_token": "<s>"})
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"text": f"w{i % 50} w{(i * 7) % 50} w3"}) + "\n"
                                              for i in range(300)))
    result = prepare(PrepareConfig(source=str(tmp_path / "s.jsonl"), output=str(tmp_path / "out"), min_length=0,
                                   tokenizer=str(folder), vocab_size="full", num_proc=1))
    bos = 50
    assert (result.tokenizer.eos_id, result.tokenizer.bos_id, result.tokenizer.separator_id) == (None, bos, bos)
    packed = TinyStoriesDatasetPacked(result.output, split="train", block_size=8)
    first = datasets.load_from_disk(str(result.output))["train"][0]["input_ids"]
    assert packed[0][0].tolist()[:4] == first + [bos]


def test_full_with_a_tokenizer_of_neither_eos_nor_bos_is_one_line_before_reading(tmp_path, capsys):
    from tinystories_hf.pipeline import main

    folder = word_level_tokenizer(50, {}, tmp_path / "tok")
    assert main(["--source", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "out"), "--tokenizer",
                 str(folder), "--vocab-size", "full"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --vocab-size full keeps the tokenizer {str(folder)!r}'s own ids, but it has neither an EOS nor a BOS "
        "token to separate stories; name one in its tokenizer_config.json (eos_token), or use a reduced vocabulary "
        "(an integer --vocab-size)")


@pytest.fixture(scope="module")
def gpt2():
    files = gpt2_bpe_files()
    return GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))


def test_whole_stories_and_min_length_zero_keep_every_non_empty_story(tmp_path, gpt2):
    """Stories of 1, 600 and 8 tokens and an empty one, 10 of each: with `--max-length none --min-length 0` the
    30 non-empty ones are kept whole and the 10 empty ones skipped and counted; with the defaults (512, 10) the 1-
    and 8-token ones are short and the 600-token ones are cut to 512."""
    texts = ["Hi", "Once" + " the" * 599, "Once upon a time there was a dog", ""]
    assert [len(ids) for ids in gpt2(texts)["input_ids"]] == [1, 600, 8, 0]
    source = tmp_path / "src"
    source.mkdir()
    for split in ("train", "validation"):
        (source / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts * 10))
    whole = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "whole"), num_proc=1,
                                  vocab_size="full", max_length=None, min_length=0))
    counts = {key: whole.info["splits"]["train"][key] for key in ("stories", "kept", "skipped_short",
                                                                   "skipped_empty", "truncated", "tokens")}
    assert counts == {"stories": 40, "kept": 30, "skipped_short": 0, "skipped_empty": 10, "truncated": 0,
                      "tokens": 10 * (1 + 600 + 8)}
    assert sorted(whole.dataset["train"]["length"]) == [1] * 10 + [8] * 10 + [600] * 10
    assert validate_prepared(whole.output)["splits"]["validation"]["rows"] == 30
    default = prepare(PrepareConfig(source=str(source), output=str(tmp_path / "default"), num_proc=1,
                                    vocab_size="full"))
    assert sorted(default.dataset["train"]["length"]) == [512] * 10
    assert {key: default.info["splits"]["train"][key] for key in counts} == \
        {"stories": 40, "kept": 10, "skipped_short": 20, "skipped_empty": 10, "truncated": 10, "tokens": 5120}


def test_stream_with_a_full_folder_gives_its_ids(prepared_gpt2_full):
    texts, stored = _rows(prepared_gpt2_full.output)
    by_text = dict(zip(texts, stored))
    rows = stream(str(SAMPLE_JSONL), tokenizer=str(prepared_gpt2_full.output), max_length=None, min_length=0,
                  keep_text=True).take(300)
    found = [(row["input_ids"], by_text[row["text"]]) for row in rows if row["text"] in by_text]
    assert len(found) >= 290  # the stories streamed that the prepared train split holds (validation was carved)
    assert all(ids == stored_ids for ids, stored_ids in found)
    blocks = stream(str(SAMPLE_JSONL), tokenizer=str(prepared_gpt2_full.output), pack=True, block_size=32,
                    max_length=None, min_length=0)
    block = next(iter(blocks))["x"].tolist()
    first = next(iter(stream(str(SAMPLE_JSONL), tokenizer=str(prepared_gpt2_full.output), max_length=None,
                             min_length=0)))["input_ids"]
    assert block == (first + [EOT])[:32]


def test_report_and_hub_of_a_full_folder(prepared_gpt2_full, tmp_path, tiktoken_gpt2):
    """The report's bytes per token are the stories' UTF-8 bytes over tiktoken's token count; the Hub layout loads
    back with the same ids and dtype, and its card names the vocabulary's own specials."""
    import shutil

    folder = shutil.copytree(prepared_gpt2_full.output, tmp_path / "copy")
    report = write_report(folder)
    texts, _ = _rows(folder, "validation")
    expected = sum(len(t.encode()) for t in texts) / sum(map(len, tiktoken_gpt2.encode_ordinary_batch(texts)))
    assert report["splits"]["validation"]["bytes_per_token"] == pytest.approx(expected, rel=1e-12)
    assert report["coverage"]["validation"]["coverage"] == pytest.approx(1.0)  # no UNK in a byte-level vocabulary
    hub = write_hub_folder(folder, tmp_path / "hub")
    dataset, tokenizer = load_prepared(hub)
    assert list(dataset["validation"]["input_ids"]) == list(prepared_gpt2_full.dataset["validation"]["input_ids"])
    assert tokenizer.separator_id == EOT and tokenizer.kind == "full"
    card = (hub / "README.md").read_text()
    assert "the base tokenizer's own ids (`gpt-neo`, not reduced)" in card and "EOS 50256" in card
    assert "stories are kept whole" in card


def test_report_cli_shows_bytes_per_token_of_three_vocabularies(prepared_gpt2_full, prepared_spm, prepared_sample,
                                                                  tmp_path):
    """The README's comparison comes from this table: tokens per story, UNK share and bytes per token."""
    import shutil

    seen = {}
    for name, result in (("gpt2", prepared_gpt2_full), ("spm", prepared_spm), ("reduced", prepared_sample)):
        folder = shutil.copytree(result.output, tmp_path / name)
        report = write_report(folder)
        seen[name] = report["splits"]["train"]
        assert "bytes/token" in (folder / "report" / "report.md").read_text()
    assert seen["gpt2"]["unk_share"] == seen["spm"]["unk_share"] == 0
    # the reduced vocabulary counts GPT-2's tokens before its UNK remap: the same bytes per token as GPT-2's own
    assert seen["reduced"]["bytes_per_token"] == seen["gpt2"]["bytes_per_token"]
    assert seen["spm"]["bytes_per_token"] < seen["gpt2"]["bytes_per_token"]  # a 4,096-piece vocabulary cuts finer


def test_the_full_vocabulary_option_in_the_api_and_the_cli(tmp_path, capsys):
    from tinystories_hf.pipeline import main

    with pytest.raises(TinyStoriesError, match=r"^vocab_size='fulll' must be an integer or 'full'$"):
        prepare(PrepareConfig(source="demo", output=str(tmp_path / "o"), vocab_size="fulll"))
    assert main(["--source", "demo", "--output", str(tmp_path / "o"), "--vocab-size", "70000"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --vocab-size 70000 does not fit the uint16 token ids of a reduced vocabulary (use at most 65536, or "
        "--vocab-size full to keep the base tokenizer's ids)")
    run = processes.run([sys.executable, "-m", "tinystories_hf.pipeline", "--help"], capture_output=True, text=True)
    assert "'full' keeps the base tokenizer's own ids" in " ".join(run.stdout.split())
    assert "'none' keeps whole stories" in " ".join(run.stdout.split())
