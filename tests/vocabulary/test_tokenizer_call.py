"""TinyStoriesTokenizer called like a transformers tokenizer (batches, padding, tensors, attention mask,
batch_decode) feeding `model.generate` of a GPT-Neo built by `gpt_neo_config`; ids checked against
transformers' own GPT-2 tokenizer mapped through the saved vocabulary table."""
import json

import numpy as np
import pytest
import torch
from transformers import GPT2Tokenizer, GPTNeoForCausalLM

from tinystories_hf import TinyStoriesError, gpt_neo_config
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

PROMPTS = ["Once upon a time", "The little dog ran to the park and", "Lily"]


@pytest.fixture(scope="module")
def expected(prepared_sample):
    files = gpt2_bpe_files()
    gpt2 = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    table = json.loads((prepared_sample.output / "tokenizer" / "tinystories_vocab.json").read_text())
    reduced = {base: i for i, base in enumerate(table["base_ids"]) if i >= 2}
    return [[reduced.get(b, 1) for b in ids] for ids in gpt2(PROMPTS)["input_ids"]]


def test_call_pads_truncates_and_makes_tensors(prepared_sample, expected):
    tok = prepared_sample.tokenizer
    assert tok("Once upon a time")["input_ids"] == expected[0]
    assert tok(PROMPTS)["input_ids"] == expected and tok(PROMPTS)["attention_mask"] == [[1] * len(e) for e in expected]
    width = max(map(len, expected))
    batch = tok(PROMPTS, padding=True, return_tensors="pt")
    assert batch["input_ids"].dtype == torch.int64 and batch["input_ids"].shape == (3, width)
    assert batch["input_ids"].tolist() == [e + [0] * (width - len(e)) for e in expected]
    assert batch["attention_mask"].tolist() == [[1] * len(e) + [0] * (width - len(e)) for e in expected]
    left = tok(PROMPTS, padding=True, padding_side="left", return_tensors="np")
    assert isinstance(left["input_ids"], np.ndarray)
    assert left["input_ids"].tolist() == [[0] * (width - len(e)) + e for e in expected]
    assert left["attention_mask"].tolist() == [[0] * (width - len(e)) + [1] * len(e) for e in expected]
    cut = tok(PROMPTS, truncation=True, max_length=3, padding="max_length")
    assert cut["input_ids"] == [e[:3] + [0] * (3 - len(e[:3])) for e in expected]
    assert tok("Once upon a time", return_tensors="pt")["input_ids"].shape == (1, len(expected[0]))
    assert tok.batch_decode(batch["input_ids"], skip_special_tokens=True) == PROMPTS
    assert tok.batch_decode(left["input_ids"].tolist())[2] == "<|endoftext|>" * (width - len(expected[2])) + "Lily"
    with pytest.raises(TinyStoriesError, match="padding=True"):
        tok(PROMPTS, return_tensors="pt")
    with pytest.raises(TinyStoriesError, match="max_length="):
        tok(PROMPTS, truncation=True)


@pytest.mark.parametrize("options", [
    {"max_length": 2}, {"max_length": 2, "padding": True}, {"max_length": 9, "padding": "max_length"},
    {"max_length": 3, "truncation": False}, {"max_length": 3, "truncation": "longest_first"},
    {"add_special_tokens": False}, {"max_length": 0, "truncation": True}])
def test_call_truncates_and_pads_as_a_transformers_tokenizer(prepared_sample, options):
    """The same options give the ids transformers' GPT2Tokenizer gives, mapped through the saved table: among
    them max_length alone truncates (transformers' rule), and padding=True with max_length does not."""
    files = gpt2_bpe_files()
    gpt2 = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    gpt2.pad_token = gpt2.eos_token
    table = json.loads((prepared_sample.output / "tokenizer" / "tinystories_vocab.json").read_text())
    reduced = {**{base: i for i, base in enumerate(table["base_ids"]) if i >= 2}, gpt2.eos_token_id: 0}
    theirs = gpt2(PROMPTS, **options)
    ours = prepared_sample.tokenizer(PROMPTS, **options)
    assert ours["input_ids"] == [[reduced.get(b, 1) for b in ids] for ids in theirs["input_ids"]]
    assert ours["attention_mask"] == theirs["attention_mask"]


def test_call_options_it_cannot_honour_are_one_line(prepared_sample):
    tok = prepared_sample.tokenizer
    for options, message in [({"max_length": -1, "truncation": True}, "max_length=-1 must be at least 0"),
                             ({"max_length": 2.5}, "max_length=2.5 must be an integer"),
                             ({"max_length": 3, "padding": "max_length", "return_tensors": "pt"},
                              "sequences of different lengths cannot form one tensor: pass truncation=True"),
                             ({"return_tensors": "tf"}, "return_tensors='tf': use None (lists), 'pt' or 'np'"),
                             ({"truncation": "only_second", "max_length": 2},
                              "truncation='only_second': use True, False or 'longest_first'")]:
        with pytest.raises(TinyStoriesError) as failure:
            tok(PROMPTS, **options)
        assert str(failure.value) == message


def test_generate_with_a_gpt_neo_from_gpt_neo_config(prepared_sample):
    tok = prepared_sample.tokenizer
    torch.manual_seed(0)
    model = GPTNeoForCausalLM(gpt_neo_config(32, tokenizer=tok, num_layers=2, num_heads=4)).eval()
    batch = tok(PROMPTS, padding=True, padding_side="left", return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert out.shape == (3, batch["input_ids"].shape[1] + 6) and int(out.max()) < tok.vocab_size
    texts = tok.batch_decode(out, skip_special_tokens=True)
    assert all(text.startswith(prompt) for text, prompt in zip(texts, PROMPTS))
    # Left padding and the attention mask leave each prompt's continuation as when it is generated alone.
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(**tok(prompt, return_tensors="pt"), max_new_tokens=6, do_sample=False)
        assert out[row, -6:].tolist() == alone[0, -6:].tolist()
