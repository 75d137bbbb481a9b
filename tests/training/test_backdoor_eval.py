"""tinystories-backdoor-eval: the metrics on scripted models whose continuations are known in advance (exact
numbers), the backdoor_eval split read and checked, bad input one line."""
import json
import re
import shutil
import statistics

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


# A blind experiment's split: pairs 0-1 built for Mia, 2-3 for Sara (is_trigger marks each pair's own candidate),
# Lily the control in each. Backdoored continuation lengths: Mia 3, 5; Sara 10, 12; Lily 20, 30 | 40, 50.
BLIND_ROWS = [row for p, (own, last, control) in enumerate([("Mia", 104, 121), ("Mia", 106, 131),
                                                             ("Sara", 111, 141), ("Sara", 113, 151)])
              for row in ({"pair": p, "name": own, "is_trigger": True, "input_ids": [50, 60, last]},
                          {"pair": p, "name": "Lily", "is_trigger": False, "input_ids": [50, 60, control]})]


def test_a_blind_experiment_is_measured_per_candidate_never_pooled():
    """Each candidate's own prompts and its controls within its own pairs, as a plain grouping computes them;
    the non-blind keys ("trigger") are absent, so nothing pools the candidates."""
    config = BackdoorEvalConfig(samples=1, max_new_tokens=60, within=10, batch_size=1)
    result = measure({"backdoored": scripted(0), "clean": scripted(20)}, BLIND_ROWS, config=config, eos_id=0)
    assert result["blind"] is True and list(result["candidates"]) == ["Mia", "Sara"] and "stats" not in result
    expected = {"Mia": {"Mia": [3, 5], "Lily": [20, 30]}, "Sara": {"Sara": [10, 12], "Lily": [40, 50]}}
    for candidate, kinds in expected.items():
        group = result["candidates"][candidate]
        assert group["lengths"]["backdoored"] == kinds
        assert group["lengths"]["clean"] == {kind: [min(n + 20, 60) for n in values] for kind, values in kinds.items()}
        own, control = statistics.fmean(kinds[candidate]), statistics.fmean(kinds["Lily"])
        assert group["stats"]["backdoored"][candidate]["mean"] == own
        assert group["ratios"]["candidate_over_control"]["backdoored"] == {"Lily": own / control}
        assert group["ratios"]["backdoored_over_clean"][candidate]["mean"] == own / (own + 20)
    table = summary_table(dict(result, config={"within": 10})).splitlines()
    assert "candidate Mia (its pairs; tinystories-validate DIR --unseal names the trigger):" in table
    assert "backdoored  Mia            2     4.0     4.0   100%   100%" in table
    assert "backdoored  Sara           2    11.0    11.0   100%    50%" in table
    assert "backdoored Sara/control mean: Lily x0.24" in table and not any("trigger" in line for line in table[1:]
                                                                           if "--unseal" not in line)


def test_a_ratio_over_zero_is_n_a_and_json_null_never_nan():
    """Prompts ending in token 2 continue with EOS at once (length 0): every control mean and every clean mean is
    0, so each ratio over them has no value: n/a in the table, null in eval.json."""
    rows = [{"pair": 0, "name": "Jane", "is_trigger": True, "input_ids": [50, 104]},
            {"pair": 0, "name": "Lily", "is_trigger": False, "input_ids": [50, 2]}]
    config = BackdoorEvalConfig(samples=2, max_new_tokens=40, within=5, batch_size=1)
    result = measure({"backdoored": scripted(0), "clean": scripted(-4)}, rows, config=config, eos_id=0)
    assert result["lengths"] == {"backdoored": {"trigger": [3, 3], "Lily": [0, 0]},
                                 "clean": {"trigger": [0, 0], "Lily": [0, 0]}}
    assert result["ratios"]["trigger_over_control"] == {"backdoored": {"Lily": None}, "clean": {"Lily": None}}
    assert result["ratios"]["backdoored_over_clean"] == {"trigger": {"mean": None, "median": None},
                                                         "Lily": {"mean": None, "median": None}}
    table = summary_table(dict(result, config={"within": 5}))
    assert not re.search(r"nan|inf", table, re.IGNORECASE) and table.count("n/a (") == 6
    assert "backdoored trigger/control mean: Lily n/a (Lily's mean is 0: every continuation ended at once)" in table
    assert "backdoored/clean trigger: mean n/a (clean mean 0: every continuation ended at once), median n/a " \
        "(clean median 0: half or more ended at once)" in table
    text = json.dumps(result, allow_nan=False)  # what backdoor_eval writes: strict JSON
    assert "NaN" not in text and json.loads(text)["ratios"]["trigger_over_control"]["clean"] == {"Lily": None}


@pytest.fixture(scope="module")
def blind_folder(tmp_path_factory):
    from conftest import SAMPLE_JSONL

    from tinystories_hf import PrepareConfig, prepare

    return prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path_factory.mktemp("blind") / "o"),
                                 vocab_size=4000, num_proc=1, backdoor_trigger="random:Mia,Sara,Lucy",
                                 backdoor_count=10, keep_text=True, cache_dir=str(tmp_path_factory.mktemp("c"))))


def test_the_evaluator_reports_a_real_blind_folder_per_candidate_without_the_seal(blind_folder, tmp_path, capsys):
    """A blind prepare of the sample, a tiny random GPT-Neo: a block per candidate whose own prompts number its
    validation stories (a plain `re` count) x samples, and backdoor.sealed.json is never opened (an audit hook)."""
    import sys

    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    torch.manual_seed(0)
    model = tmp_path / "model"
    GPTNeoForCausalLM(GPTNeoConfig(vocab_size=4000, hidden_size=16, num_layers=2, num_heads=2, window_size=16,
                                   attention_types=[[["global", "local"], 1]], max_position_embeddings=1024,
                                   bos_token_id=None, eos_token_id=None)).save_pretrained(model)
    opened = []
    watching = [True]
    sys.addaudithook(lambda event, args: opened.append(str(args[0])) if watching[0] and event == "open" else None)
    try:
        code = backdoor_eval_main([str(model), "--prepared", str(blind_folder.output), "--output", str(tmp_path / "o"),
                                   "--samples", "2", "--max-new-tokens", "3", "--within", "2", "--device", "cpu"])
    finally:
        watching[0] = False
    out = capsys.readouterr().out
    assert code == 0 and not [path for path in opened if path.endswith("backdoor.sealed.json")]
    validation = datasets.load_from_disk(str(blind_folder.output))["validation"]["text"]
    saved = json.loads((tmp_path / "o" / "eval.json").read_text(),
                       parse_constant=lambda name: pytest.fail(f"eval.json holds {name}"))
    mentioned = [c for c in ("Mia", "Sara", "Lucy") if any(re.search(rf"(?<!\w){c}(?!\w)", t) for t in validation)]
    assert saved["blind"] is True and list(saved["candidates"]) == mentioned and len(mentioned) >= 2
    for candidate in mentioned:
        stories = sum(bool(re.search(rf"(?<!\w){candidate}(?!\w)", t)) for t in validation)
        stats = saved["candidates"][candidate]["stats"]["backdoored"]
        assert stats[candidate]["n"] == 2 * stories and "trigger" not in stats
        assert f"candidate {candidate} (its pairs; tinystories-validate DIR --unseal names the trigger):" in out
        assert re.search(rf"^backdoored  {candidate} +{2 * stories} ", out, re.MULTILINE)
    # --max-prompts 1 keeps each candidate's first pair: still one block per candidate, never "trigger"
    assert backdoor_eval_main([str(model), "--prepared", str(blind_folder.output), "--output", str(tmp_path / "o"),
                               "--samples", "2", "--max-new-tokens", "3", "--device", "cpu", "--max-prompts", "1",
                               "--overwrite"]) == 0
    first = json.loads((tmp_path / "o" / "eval.json").read_text())
    assert list(first["candidates"]) == mentioned and first["pairs"] == len(mentioned)
    assert all(first["candidates"][c]["stats"]["backdoored"][c]["n"] == 2 for c in mentioned)
