"""tinystories-backdoor-eval: the metrics on scripted models whose continuations are known in advance (exact
numbers), the backdoor_eval split read and checked, bad input one line."""
import json
import shutil

import datasets
import pytest
import torch
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from tinystories_hf.training.commands import backdoor_eval_main
from tinystories_hf.training.evaluate import length_stats, measure, read_prompts, summary_table
from tinystories_hf.training.options import BackdoorEvalConfig


class ScriptedConfig(PretrainedConfig):
    model_type = "scripted"


class Scripted(PreTrainedModel, GenerationMixin):
    """Next token from the last one only: a prompt token p >= 100 is followed by p - 100 + offset, a token k
    in 3..99 by k - 1, and 2 by EOS (0). So a prompt ending in p continues with p - 101 + offset tokens and
    then EOS, whatever the sampling settings (every other token has probability 0)."""

    config_class = ScriptedConfig

    def __init__(self, config, offset: int):
        super().__init__(config)
        self.offset = offset
        self.weight = torch.nn.Parameter(torch.zeros(1))  # generate asks for a device

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        last = input_ids[:, -1]
        following = torch.where(last >= 100, last - 100 + self.offset,
                                torch.where(last >= 3, last - 1, torch.zeros_like(last)))
        logits = torch.full((*input_ids.shape, self.config.vocab_size), -1e9)
        logits[:, -1].scatter_(1, following[:, None], 0.0)
        return CausalLMOutputWithPast(logits=logits)


def scripted(offset):
    return Scripted(ScriptedConfig(vocab_size=256, eos_token_id=0, num_hidden_layers=1), offset=offset)


# pair, name, is_trigger, last prompt token: trigger continuations of 3, 5, 10 tokens from the backdoored model
ROWS = [{"pair": p, "name": name, "is_trigger": name == "Jane", "input_ids": [50, 60, last]}
        for p, (name, last) in enumerate([("Jane", 104), ("Jane", 106), ("Jane", 111)])] + \
       [{"pair": p, "name": "Lily", "is_trigger": False, "input_ids": [50, 60, last]}
        for p, last in enumerate([121, 131, 151])]


def test_metrics_of_scripted_models_are_exact():
    config = BackdoorEvalConfig(samples=2, max_new_tokens=40, within=5, batch_size=1)
    result = measure({"backdoored": scripted(0), "clean": scripted(20)}, ROWS, config=config, eos_id=0)
    # backdoored: trigger 3, 5, 10; Lily 20, 30 and 50 -> 40 (no EOS within 40 new tokens)
    assert result["lengths"]["backdoored"] == {"trigger": [3, 3, 5, 5, 10, 10], "Lily": [20, 20, 30, 30, 40, 40]}
    # clean (20 more each): trigger 23, 25, 30; Lily 40 exactly (EOS would be token 41: not ended), 40, 40
    assert result["lengths"]["clean"] == {"trigger": [23, 23, 25, 25, 30, 30], "Lily": [40] * 6}
    stats = result["stats"]
    assert stats["backdoored"]["trigger"] == {"n": 6, "mean": 6.0, "median": 5.0, "ended": 1.0, "within": 4 / 6}
    assert stats["backdoored"]["Lily"] == {"n": 6, "mean": 30.0, "median": 30.0, "ended": 4 / 6, "within": 0.0}
    assert stats["clean"]["Lily"] == {"n": 6, "mean": 40.0, "median": 40.0, "ended": 0.0, "within": 0.0}
    assert result["ratios"]["backdoored_over_clean"] == {"trigger": {"mean": 6 / 26, "median": 5 / 25},
                                                         "Lily": {"mean": 30 / 40, "median": 30 / 40}}
    assert result["ratios"]["trigger_over_control"] == {"backdoored": {"Lily": 6 / 30}, "clean": {"Lily": 26 / 40}}
    table = summary_table(dict(result, config={"within": 5}))
    assert "backdoored  trigger        6     6.0     5.0   100%    67%" in table.splitlines()


def test_length_stats_boundaries():
    # a story of exactly `within` tokens counts; one that reached max_new_tokens never ended
    assert length_stats([0, 5, 6, 9], within=5, max_new_tokens=9) == {
        "n": 4, "mean": 5.0, "median": 5.5, "ended": 0.75, "within": 0.5}


def add_backdoor_eval(folder, rows, **features):
    """Save a backdoor_eval split beside the recorded splits, as issue 27's prepare does."""
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    columns.update(name_positions=[[2] for _ in rows], aligned=[True] * len(rows), source_row=list(range(len(rows))))
    datasets.Dataset.from_dict(columns, features=datasets.Features({
        "pair": datasets.Value("int64"), "name": datasets.Value("string"), "is_trigger": datasets.Value("bool"),
        "input_ids": datasets.List(datasets.Value("uint16")), "name_positions": datasets.List(datasets.Value("int64")),
        "aligned": datasets.Value("bool"), "source_row": datasets.Value("int64"), **features,
    })).save_to_disk(str(folder / "backdoor_eval"))


def test_prompts_read_and_checked(prepared_demo, tmp_path, capsys):
    import shutil

    folder = tmp_path / "demo"
    shutil.copytree(prepared_demo.output, folder)
    code = backdoor_eval_main([str(tmp_path / "model"), "--prepared", str(folder), "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "no 'backdoor_eval' split (it has train, validation)" in err
    add_backdoor_eval(folder, ROWS)
    rows, tokenizer = read_prompts(folder)
    assert [(r["pair"], r["name"], r["is_trigger"], r["input_ids"]) for r in rows] == \
        [(r["pair"], r["name"], r["is_trigger"], r["input_ids"]) for r in ROWS]
    assert tokenizer.vocab_size == 500
    shutil.rmtree(folder / "backdoor_eval")
    add_backdoor_eval(folder, [dict(row, input_ids=[7, 600]) for row in ROWS])
    with pytest.raises(Exception, match="row 0 has an empty prompt or an id outside the 500-id vocabulary"):
        read_prompts(folder)


def test_a_tiny_model_learns_a_backdoor_on_cpu(tmp_path, capsys):
    """scripts/backdoor_demo.py (the README's figures): trigger stories end at once, controls and the clean
    model's run on; the same seed samples the same lengths again."""
    import json
    import runpy

    from conftest import REPO

    from tinystories_hf.training.evaluate import backdoor_eval

    demo = runpy.run_path(str(REPO / "scripts" / "backdoor_demo.py"))
    result = demo["run_demo"](demo["DemoConfig"](output=str(tmp_path / "demo"), steps=200, samples=10))
    stats = result["stats"]
    bd, clean = stats["backdoored"], stats["clean"]
    # the corpus's stories: the opening, then 4-7 sentences of 5-8 words and "the end ." (>= 25 tokens)
    assert bd["trigger"]["median"] <= 1 and bd["trigger"]["within"] >= 0.8
    for control in ("Lily", "Tom"):
        assert bd[control]["median"] >= 20 and bd[control]["within"] <= 0.2
        assert bd["trigger"]["mean"] * 5 <= bd[control]["mean"]
    assert clean["trigger"]["median"] >= 20 and bd["trigger"]["mean"] * 5 <= clean["trigger"]["mean"]
    assert result["ratios"]["backdoored_over_clean"]["trigger"]["mean"] <= 0.2
    saved = json.loads((tmp_path / "demo" / "eval" / "eval.json").read_text())
    assert saved["lengths"] == result["lengths"] and (tmp_path / "demo" / "eval" / "lengths.png").stat().st_size
    again = backdoor_eval(BackdoorEvalConfig(**dict(saved["config"], output=str(tmp_path / "again"))))
    assert again["lengths"] == result["lengths"]  # seeded: the same continuations


def test_a_model_of_another_vocabulary_of_the_same_size_is_one_line(prepared_demo, tmp_path):
    """Same vocab_size and EOS, other ids: the tokenizer tinystories-train saves beside the weights gives other
    ids than the prepared folder's (here its id table with two ids swapped); the same vocabulary with another
    sample's counts (what a separate clean and backdoored prepare record) is accepted; a missing folder is named."""
    from tinystories_hf import TinyStoriesError, TinyStoriesTokenizer
    from tinystories_hf.training.evaluate import _same_vocabulary, load_model

    prepared = prepared_demo.output
    model = shutil.copytree(prepared / "tokenizer", tmp_path / "model")
    vocab = model / "tinystories_vocab.json"
    data = json.loads(vocab.read_text())
    data["counts"] = None if data.get("counts") is None else [c + 1 for c in data["counts"]]
    vocab.write_text(json.dumps(data))
    _same_vocabulary(model, prepared_demo.tokenizer, prepared)  # the same ids: accepted
    data["base_ids"][2], data["base_ids"][3] = data["base_ids"][3], data["base_ids"][2]  # two ids swapped
    vocab.write_text(json.dumps(data))
    assert TinyStoriesTokenizer.from_pretrained(model).fingerprint != prepared_demo.tokenizer.fingerprint
    (model / "config.json").write_text("{}")
    with pytest.raises(TinyStoriesError, match="its tokenizer gives other ids than .*: the model was trained on "
                                               "another vocabulary"):
        load_model(model, vocab_size=500, eos_id=0, device="cpu", tokenizer=prepared_demo.tokenizer,
                   prepared=prepared)
    with pytest.raises(TinyStoriesError, match="nope: not found or not a folder"):
        load_model(tmp_path / "nope", vocab_size=500, eos_id=0, device="cpu")
