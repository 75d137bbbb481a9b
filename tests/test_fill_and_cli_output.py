"""What the CLIs and the card tell a user: how many vocabulary ids the sample filled (the rest are never-seen
fill tokens), the same report lines from `tinystories-prepare --report` and `tinystories-report`, and paths
printed as the user typed them."""
import json
import runpy

import numpy as np
import pytest
from conftest import REPO
from transformers import GPT2Tokenizer

from tinystories_hf import PrepareConfig, load_stories, prepare
from tinystories_hf.hub.push import main as push_main
from tinystories_hf.pipeline import main as prepare_main
from tinystories_hf.report.write import main as report_main
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

EOS_BASE = 50256


@pytest.fixture(scope="module")
def demo_train_ids():
    """GPT-2 ids of the demo's train stories from transformers' own tokenizer (the vocabulary sample: all of
    train, 3,000 stories < 100K)."""
    files = gpt2_bpe_files()
    gpt2 = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    stories, _ = load_stories("demo")
    return gpt2(list(stories["train"]["text"]))["input_ids"]


def test_vocabulary_fill_is_counted_and_follows_the_rule(prepared_demo, demo_train_ids, tmp_path):
    seen = sorted({i for ids in demo_train_ids for i in ids} - {EOS_BASE})
    info, tokenizer = prepared_demo.info, prepared_demo.tokenizer
    assert tokenizer.vocab_size == 500 and len(seen) < 498  # the demo has fewer distinct tokens than room
    assert info["vocab_sample"]["ids_in_sample"] == tokenizer.ids_in_sample == len(seen)
    assert info["vocab_sample"]["fill_ids"] == 498 - len(seen)
    assert sorted(tokenizer.base_ids[2:2 + len(seen)].tolist()) == seen
    # Fill rule: the never-seen tokens with the lowest base ids, in base id order.
    fill = [i for i in range(50257) if i not in set(seen) and i != EOS_BASE][:498 - len(seen)]
    assert tokenizer.base_ids[2 + len(seen):].tolist() == fill
    saved = json.loads((prepared_demo.output / "prepare_info.json").read_text())
    assert saved["vocab_sample"]["ids_in_sample"] == len(seen)

    assert push_main([str(prepared_demo.output), "--to-folder", str(tmp_path / "hub")]) == 0
    card = " ".join((tmp_path / "hub" / "README.md").read_text().split())
    assert (f"restricted to the {len(seen)} tokens that occur on a seeded train sample (3,000 stories), by "
            f"decreasing frequency (ids 2..{len(seen) + 1})") in card
    assert f"so ids {len(seen) + 2}..499 are fill: tokens the sample never saw, lowest base id first." in card
    assert "most frequent tokens" not in card


def test_prepare_report_prints_what_report_prints(tmp_path, monkeypatch, capsys, demo_train_ids):
    monkeypatch.chdir(tmp_path)
    seen = len({i for ids in demo_train_ids for i in ids} - {EOS_BASE})
    assert prepare_main(["--source", "demo", "--output", "d", "--vocab-size", "300", "--num-proc", "1",
                         "--report"]) == 0
    prepared = capsys.readouterr().out.splitlines()
    vocabulary = next(line for line in prepared if line.startswith("vocabulary: 300 ids"))
    assert f"(eos 0, unk 1), {seen} tokens of the vocabulary sample," in vocabulary and vocabulary.endswith(" -> d")
    assert prepared[prepared.index(vocabulary) + 1] == (
        f"note: the vocabulary sample (3,000 stories) holds only {seen} distinct tokens: ids {seen + 2}..299 are "
        f"fill (tokens it never saw, lowest base id first); --vocab-size {seen + 2} keeps exactly the sample's tokens")
    assert report_main(["d"]) == 0
    reported = capsys.readouterr().out.splitlines()
    assert reported[-1] == "report: d/report/report.md" and reported[0].startswith("| split | stories read |")
    assert prepared[-len(reported):] == reported  # the same lines, after prepare's own table

    # With the sample's own size there is no fill and no note.
    assert prepare_main(["--source", "demo", "--output", "exact", "--vocab-size", str(seen + 2), "--num-proc",
                         "1"]) == 0
    printed = capsys.readouterr().out
    assert "note:" not in printed and f"{seen} tokens of the vocabulary sample" in printed
    info = json.loads((tmp_path / "exact" / "prepare_info.json").read_text())
    assert (info["vocab_sample"]["ids_in_sample"], info["vocab_sample"]["fill_ids"]) == (seen, 0)
    assert np.array_equal(prepare(PrepareConfig(source="demo", output="again", vocab_size=seen + 2,
                                                num_proc=1)).tokenizer.base_ids,
                          np.array(json.loads((tmp_path / "d" / "tokenizer" / "tinystories_vocab.json")
                                              .read_text())["base_ids"][:seen + 2]))


def test_model_sizes_without_a_prepared_folder_names_where_the_tokenizer_goes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(REPO / "scripts" / "model_sizes.py"))["main"]
    assert main([]) == 2  # the default --data tinystories_prepared does not exist here
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [("error: tinystories_prepared/tokenizer/tinystories_vocab.json: not found; pass a folder written "
                   "by tinystories-prepare (run it first) or a tokenizer folder written by save_pretrained")]
