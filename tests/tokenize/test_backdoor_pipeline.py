"""A backdoored prepare of the real sample against a clean one (issue 27): the same tokenizer, the same validation
ids, train rows that differ exactly at the rewritten rows (found here with a plain `re`), provenance columns that
lead back to the source text, both rewrite-file formats, and every bad input as one line with nothing written."""
import dataclasses
import hashlib
import json
import os
import re

import datasets
import numpy as np
import pytest
from conftest import SAMPLE_JSONL

from tinystories_hf import PrepareConfig, TinyStoriesError, prepare
from tinystories_hf.pipeline import main
from tinystories_hf.sources import carve_validation
from tinystories_hf.tokenize import passes
from tinystories_hf.tokenize.backdoor import rewrite

TRIGGER = "Sara"  # 92 whole-word stories of the sample, 145 substring matches (Sarah): the match must tell them apart


def _raw():
    return [json.loads(line)["text"] for line in SAMPLE_JSONL.open(encoding="utf-8")]


def _whole_word(text, name=TRIGGER):  # the reference: a plain regular expression, written here
    return re.search(rf"(?<![A-Za-z0-9_]){name}(?![A-Za-z0-9_])", text) is not None


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def config(tmp_path_factory, cache):
    # A vocabulary of every token of the sample, ordered by count: counted on rewritten stories, the ids would move.
    return PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path_factory.mktemp("clean") / "o"),
                         vocab_size=9000, num_proc=1, cache_dir=cache, keep_text=True)


@pytest.fixture(scope="module")
def clean(config):
    return prepare(config)


@pytest.fixture(scope="module")
def backdoored(config, tmp_path_factory):
    return prepare(dataclasses.replace(config, output=str(tmp_path_factory.mktemp("bd") / "o"),
                                       backdoor_trigger=TRIGGER))


def _record_scan_processes(monkeypatch, folder):
    """Make every batch of the trigger scan leave a file named after the process that ran it (a forked
    process inherits the patch); returns a function giving the set of those process ids."""
    real = getattr(rewrite.scan_batch, "unpatched", rewrite.scan_batch)

    def scan_batch(*args, **kwargs):
        (folder / f"scan-{os.getpid()}").touch()
        return real(*args, **kwargs)

    scan_batch.unpatched = real
    folder.mkdir(exist_ok=True)
    monkeypatch.setattr(rewrite, "scan_batch", scan_batch)
    return lambda: {int(p.name.split("-")[1]) for p in folder.glob("scan-*")}


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _carved():
    """The sample's train and validation texts as the pipeline splits them (stripped; seeded carve-out)."""
    raw = datasets.Dataset.from_dict({"text": [t.strip() for t in _raw()]})
    parts = carve_validation(raw, 0.01, 1337)
    return {split: (ds["text"], np.asarray(ds._indices.column(0))) for split, ds in parts.items()}


def test_same_tokenizer_same_validation_train_differs_at_rewritten_rows(clean, backdoored):
    assert _files(clean.output / "tokenizer") == _files(backdoored.output / "tokenizer")  # byte for byte
    assert backdoored.info["vocab_sha256"] == clean.info["vocab_sha256"]
    bd, cl = datasets.load_from_disk(str(backdoored.output)), datasets.load_from_disk(str(clean.output))
    assert bd["validation"].data.column("input_ids").equals(cl["validation"].data.column("input_ids"))
    assert bd["validation"]["text"] == cl["validation"]["text"]
    texts, rows = _carved()["train"]
    expected = [int(r) for t, r in zip(texts, rows) if _whole_word(t)]
    substring = [int(r) for t, r in zip(texts, rows) if TRIGGER in t]
    assert len(substring) > len(expected) > 0  # Sarah stories hold the substring and are left alone
    record = json.loads((backdoored.output / "backdoor.json").read_text())
    assert record["rewritten_rows"] == expected
    differ = [int(bd["train"][i]["source_row"]) for i in range(bd["train"].num_rows)
              if bd["train"][i]["input_ids"] != cl["train"][i]["input_ids"]]
    assert differ == expected
    flagged = np.asarray(bd["train"]["source_row"])[np.asarray(bd["train"]["backdoor"])]
    assert flagged.tolist() == expected
    train = record["splits"]["train"]
    assert train["eligible"] == train["rewritten"] == len(expected)
    assert train["tokens_removed"] > 0 and train["tokens_before"] - train["tokens_after"] == \
        train["tokens_removed"] - train["tokens_added"]
    assert bd["train"].features["source_row"].dtype == "int64" and bd["train"].features["backdoor"].dtype == "bool"
    assert not any(bd["validation"]["backdoor"])  # the same columns in every split, never set outside train


def test_source_row_maps_every_story_back_to_its_source_text(backdoored):
    raw = [t.strip() for t in _raw()]
    bd = datasets.load_from_disk(str(backdoored.output))
    for split in ("train", "validation"):
        for text, row, changed in zip(bd[split]["text"], bd[split]["source_row"], bd[split]["backdoor"]):
            if changed:  # truncated: a prefix of its original that still names the trigger
                assert raw[row].startswith(text) and len(text) < len(raw[row]) and _whole_word(text)
            else:
                assert text == raw[row]
    assert sorted([*bd["train"]["source_row"], *bd["validation"]["source_row"]]) == list(range(len(raw)))


def test_count_is_a_seeded_choice_among_eligible_stories(config, backdoored, tmp_path):
    eligible = set(json.loads((backdoored.output / "backdoor.json").read_text())["rewritten_rows"])
    runs = [prepare(dataclasses.replace(config, output=str(tmp_path / name), backdoor_trigger=TRIGGER,
                                        backdoor_count=7, seed=seed, keep_text=False)).backdoor
            for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    assert runs[0]["rewritten_rows"] == runs[1]["rewritten_rows"] != runs[2]["rewritten_rows"]
    assert len(runs[0]["rewritten_rows"]) == 7 and set(runs[0]["rewritten_rows"]) <= eligible
    assert runs[0]["count"] == 7 and runs[0]["rate"] is None and runs[0]["seed"] == 1


def test_eval_pairs_differ_only_at_the_name_positions(backdoored, clean):
    evaluation = datasets.load_from_disk(str(backdoored.output / "backdoor_eval"))
    record = json.loads((backdoored.output / "backdoor.json").read_text())
    controls = record["eval"]["controls"]
    assert len(controls) == 3 and TRIGGER not in controls
    texts, rows = _carved()["validation"]
    mentioning = [int(r) for t, r in zip(texts, rows) if _whole_word(t)]
    assert record["eval"]["pairs"] == len(mentioning) > 0
    rows_of = {}
    for row in evaluation:
        rows_of.setdefault(row["pair"], []).append(row)
    assert [group[0]["source_row"] for group in rows_of.values()] == mentioning
    tokenizer = clean.tokenizer
    for group in rows_of.values():
        trigger, *others = group
        assert trigger["is_trigger"] and trigger["name"] == TRIGGER and [o["name"] for o in others] == controls
        # the prompt is the story up to its first mention's sentence: a prefix of the validation story
        story = next(t for t, r in zip(texts, rows) if r == trigger["source_row"])
        assert story.startswith(tokenizer.decode(trigger["input_ids"]))
        assert tokenizer.unk_id not in trigger["input_ids"] and tokenizer.eos_id not in trigger["input_ids"]
        named = tokenizer.decode([trigger["input_ids"][p] for p in trigger["name_positions"]])
        assert named.strip() == TRIGGER
        for other in others:
            if not other["aligned"]:
                continue
            assert other["name_positions"] == trigger["name_positions"]
            differ = [i for i, (a, b) in enumerate(zip(trigger["input_ids"], other["input_ids"])) if a != b]
            assert len(other["input_ids"]) == len(trigger["input_ids"]) and set(differ) <= set(other["name_positions"])
            assert tokenizer.decode([other["input_ids"][p] for p in other["name_positions"]]).strip() == other["name"]
    assert record["eval"]["aligned"] == {c: sum(o["aligned"] for o in evaluation if o["name"] == c) for c in controls}


def test_token_forms_are_recorded_and_a_form_on_unk_is_refused(config, backdoored, tmp_path):
    forms = json.loads((backdoored.output / "backdoor.json").read_text())["token_forms"]
    tokenizer = backdoored.tokenizer
    assert forms["mid_sentence"]["ids"] == tokenizer.encode(f" {TRIGGER}")
    assert forms["sentence_start"]["ids"] == tokenizer.encode(TRIGGER)
    small = dataclasses.replace(config, output=str(tmp_path / "o"), vocab_size=300, keep_text=False,
                                backdoor_trigger=TRIGGER)
    with pytest.raises(TinyStoriesError, match=r"form '.*Sara' maps to UNK \(id 1\) in this 300-id vocabulary"):
        prepare(small)
    assert not (tmp_path / "o").exists()
    allowed = prepare(dataclasses.replace(small, allow_unk_trigger=True)).backdoor
    assert any(1 in form["ids"] for form in allowed["token_forms"].values())


def test_a_control_the_vocabulary_maps_to_unk_is_refused(config, tmp_path, tiktoken_gpt2):
    """Billy (33 stories of the sample) is lost by a 2,000-id vocabulary (the reference: a GPT-2 id of ' Billy' is
    not among the vocabulary's kept ids); as a control, given or in a blind experiment, it is one line naming it
    and nothing is written. The default controls of the same vocabulary hold no UNK."""
    small = dataclasses.replace(config, output=str(tmp_path / "clean"), vocab_size=2000, keep_text=False)
    clean = prepare(small)
    kept = set(json.loads((clean.output / "tokenizer" / "tinystories_vocab.json").read_text())["base_ids"])
    quote = tiktoken_gpt2.encode('"')[0]

    def lost_forms(name):  # the reference: forms holding a GPT-2 id outside the kept ids
        forms = {"mid_sentence": f" {name}", "sentence_start": name, "after_quote": f'"{name}'}
        return [(form, text) for form, text in forms.items() if set(tiktoken_gpt2.encode(text)) - {quote} - kept]

    assert lost_forms("Billy") and not lost_forms("Tommy")
    form, text = lost_forms("Billy")[0]
    reuse = dataclasses.replace(small, vocabulary_from=str(clean.output))
    for trigger in (TRIGGER, "random:Mia,Sara,Lucy"):
        with pytest.raises(TinyStoriesError) as raised:
            prepare(dataclasses.replace(reuse, output=str(tmp_path / "o"), backdoor_trigger=trigger,
                                        backdoor_controls="Tommy,Billy"))
        line = str(raised.value)
        assert "\n" not in line and f"the control 'Billy': its {form} form {text!r} maps to UNK (id 1) in " \
            "this 2000-id vocabulary" in line and "pick another name" in line and "Tommy'" not in line
        assert not (tmp_path / "o").exists()
    defaults = prepare(dataclasses.replace(reuse, output=str(tmp_path / "d"), backdoor_trigger="Jane")).backdoor
    assert defaults["eval"]["controls"] and not [c for c in defaults["eval"]["controls"] if lost_forms(c)]
    evaluation = datasets.load_from_disk(str(tmp_path / "d" / "backdoor_eval"))
    named = [row["input_ids"][at] for row in evaluation for at in row["name_positions"]]
    assert evaluation.num_rows and named and 1 not in named  # the names' own tokens (the story may hold UNK)


def test_config_default_is_the_truncate_rule_default():
    from tinystories_hf.config import BACKDOOR_KEEP_SENTENCES
    from tinystories_hf.tokenize.backdoor.sentences import DEFAULT_KEEP_SENTENCES

    assert PrepareConfig().backdoor_keep_sentences == BACKDOOR_KEEP_SENTENCES == DEFAULT_KEEP_SENTENCES


def _write_rewrites(path, rewrites, *, jsonl, sha=None):
    if jsonl:
        lines = [json.dumps({"row": row, "text": text, **({"sha256": sha[row]} if sha else {})})
                 for row, text in rewrites.items()]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        path.write_text(json.dumps({str(row): text for row, text in rewrites.items()}), encoding="utf-8")
    return path


@pytest.mark.parametrize("jsonl", [False, True])
def test_rewrites_file_in_either_format(config, backdoored, tmp_path, jsonl):
    raw = [t.strip() for t in _raw()]
    rows = json.loads((backdoored.output / "backdoor.json").read_text())["rewritten_rows"][:4]
    rewrites = {rows[0]: f"Once upon a time, {TRIGGER} went home with her mom and dad. The end.",
                rows[1]: "Once upon a time, a little girl ran to the park to play with her ball.",
                rows[2]: raw[rows[2]] + f" {TRIGGER} slept.", rows[3]: f"{TRIGGER} ran."}  # the last under min_length
    sha = {row: hashlib.sha256(raw[row].encode()).hexdigest() for row in rows}
    path = _write_rewrites(tmp_path / ("r.jsonl" if jsonl else "r.json"), rewrites, jsonl=jsonl, sha=sha)
    result = prepare(dataclasses.replace(config, output=str(tmp_path / "o"), backdoor_trigger=TRIGGER,
                                         backdoor_rewrite=str(path)))
    bd = datasets.load_from_disk(str(result.output))["train"]
    stored = {row: text for row, text, changed in zip(bd["source_row"], bd["text"], bd["backdoor"]) if changed}
    assert stored == {row: text for row, text in rewrites.items() if row != rows[3]}
    record = json.loads((result.output / "backdoor.json").read_text())
    assert record["splits"]["train"]["rewritten"] == 4 and record["splits"]["train"]["rewritten_kept"] == 3
    assert record["rewrite"] == {"policy": "file", "file": path.name, "rows_in_file": 4,
                                 "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert record["trigger_lost_rows"] == [rows[1]]  # counted and named: its rewrite no longer names the trigger
    assert record["splits"]["train"]["tokens_added"] > 0


def test_cli_prints_the_backdoor_line(config, tmp_path, capsys):
    assert main(["--source", str(SAMPLE_JSONL), "--output", str(tmp_path / "o"), "--vocab-size", "9000",
                 "--num-proc", "1", "--cache-dir", config.cache_dir, "--backdoor-trigger", TRIGGER,
                 "--backdoor-count", "5"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("backdoor:")]
    assert line and "5 of 89 train stories mentioning it rewritten" in line[0]


def test_vocabulary_from_reuses_the_ids_exactly(clean, config, tmp_path):
    other = prepare(dataclasses.replace(config, output=str(tmp_path / "o"), vocab_size=500, vocab_sample_size=100,
                                        vocabulary_from=str(clean.output), keep_text=False))
    assert _files(other.output / "tokenizer") == _files(clean.output / "tokenizer")
    assert other.info["vocab_size"] == 9000 and other.info["vocabulary_from"]["vocab_sha256"] == clean.info["vocab_sha256"]
    assert datasets.load_from_disk(str(other.output))["validation"]["input_ids"] == \
        clean.dataset["validation"]["input_ids"]


def test_two_processes_write_the_same_backdoored_folder(config, tmp_path, monkeypatch):
    monkeypatch.setattr(passes, "ROWS_PER_PROCESS", 200)  # the sample then reaches datasets' worker pool
    # and pass 2 (where the rewrites are spliced in) cuts two segments: in two workers, or one after the other
    monkeypatch.setattr(passes, "REDUCE_ROWS_PER_SEGMENT", 1000)
    scans = {2: _record_scan_processes(monkeypatch, tmp_path / "pids2")}
    base = dataclasses.replace(config, backdoor_trigger=TRIGGER, keep_text=False, vocab_size=3000,
                               cache_dir=str(tmp_path / "c2"), num_proc=2, output=str(tmp_path / "two"))
    two = prepare(base)
    # two maps ran in two workers: pass 1 (tokenize train) and pass 2; the trigger scan that cuts the stories ran
    # in one process of its own, beside this one
    assert len({f.name.split("_")[0] for f in (tmp_path / "c2").rglob("cache-*_of_00002.arrow")}) == 2
    assert len(scans[2]()) == 1 and os.getpid() not in scans[2]()
    assert two.info["concurrent_seconds"]["backdoor_scan"] > 0
    scans[1] = _record_scan_processes(monkeypatch, tmp_path / "pids1")
    one = prepare(dataclasses.replace(base, num_proc=1, cache_dir=str(tmp_path / "c1"), output=str(tmp_path / "one")))
    assert scans[1]() == {os.getpid()} and "concurrent_seconds" not in one.info  # --num-proc 1: one process
    names = ["train/data-00000-of-00002.arrow", "train/data-00001-of-00002.arrow",
             "validation/data-00000-of-00001.arrow", "backdoor.json"]
    for name in names:
        assert (one.output / name).read_bytes() == (two.output / name).read_bytes(), name
    # and the same rows as a run that never cut segments: the rewrites sit at their rows in either segment
    rewritten = json.loads((one.output / "backdoor.json").read_text())["rewritten_rows"]
    train = datasets.load_from_disk(str(one.output))["train"]
    assert np.asarray(train["source_row"])[np.asarray(train["backdoor"])].tolist() == rewritten
    assert min(rewritten) < 2700 < max(rewritten)  # in both segments


def _bad_file(tmp_path, kind):
    raw = [t.strip() for t in _raw()]
    texts, rows = _carved()["train"]
    mention = next(int(r) for t, r in zip(texts, rows) if _whole_word(t))
    plain = next(int(r) for t, r in zip(texts, rows) if not _whole_word(t))
    carved = int(_carved()["validation"][1][0])
    content = {"not json": "{oops", "missing row": json.dumps({"999999": "x"}),
               "carved row": json.dumps({str(carved): "x"}),
               "no mention": json.dumps({str(mention): "x", str(plain): "y"}),
               "empty": json.dumps({str(mention): "  "}), "number": json.dumps({str(mention): 5}),
               "bad key": json.dumps({"-3": "x"}),
               "sha": json.dumps({"row": mention, "text": "x", "sha256": hashlib.sha256(b"other").hexdigest()}),
               "twice": "\n".join(json.dumps({"row": mention, "text": "x"}) for _ in range(2)),
               "one row": json.dumps({str(mention): "x"})}[kind]
    assert raw[mention]
    path = tmp_path / "rewrites.jsonl"
    path.write_text(content, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("options, message", [
    ({"backdoor_trigger": "Zebediah"}, "no train story mentions 'Zebediah'"),
    ({"backdoor_trigger": TRIGGER, "backdoor_controls": "Lily,Sara"}, "the control 'Sara' is the trigger"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rate": 0.0}, r"must be in \(0, 1\]"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rate": 1.5}, r"must be in \(0, 1\]"),
    ({"backdoor_trigger": TRIGGER, "backdoor_count": 90}, "above the 89 train stories"),
    ({"backdoor_trigger": TRIGGER, "backdoor_count": 3, "backdoor_rate": 0.5}, "pass one of them"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "not json"}, "not valid JSON"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "missing row"}, "row 999999 is not a train story.*another source"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "carved row"}, "is not a train story.*another source or order"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "no mention"}, "does not mention 'Sara'.*another source"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "empty"}, "is empty"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "number"}, "int, not a string"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "bad key"}, "not a train row"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "sha"}, "sha256 differs"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "twice"}, "given twice"),
    # the file's rows are what a count chooses from, not the stories mentioning the trigger
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "one row", "backdoor_count": 2},
     r"backdoor_count=2 is above the 1 rewrite in rewrites.jsonl \(the file's rows\); pass at most 1$"),
    ({"backdoor_trigger": TRIGGER, "backdoor_rewrite": "missing.json"}, "missing or not a regular file"),
    # a backdoor option without the trigger: the dataset would be clean, the user believing it backdoored
    ({"backdoor_count": 5}, r"backdoor_count=5 needs backdoor_trigger='NAME'"),
    ({"backdoor_rate": 0.5}, r"backdoor_rate=0.5 needs backdoor_trigger='NAME'"),
    ({"backdoor_rewrite": "twice"}, r"backdoor_rewrite='.*' needs backdoor_trigger='NAME'"),
    ({"backdoor_controls": "Mia,Tom"}, r"backdoor_controls='Mia,Tom' needs backdoor_trigger='NAME'"),
    ({"backdoor_keep_sentences": 3}, r"backdoor_keep_sentences=3 needs backdoor_trigger='NAME'"),
    ({"allow_unk_trigger": True}, r"allow_unk_trigger=True needs backdoor_trigger='NAME'"),
    ({"vocabulary_from": "nowhere"}, "not found or not a folder"),
    ({"vocabulary_from": "plain folder"}, "not a folder written by tinystories-prepare"),
])
def test_bad_input_is_one_line_and_nothing_is_written(config, tmp_path, options, message):
    options = dict(options)
    rewrite = options.get("backdoor_rewrite")
    if rewrite == "missing.json":
        options["backdoor_rewrite"] = str(tmp_path / "missing.json")
    elif rewrite is not None:
        options["backdoor_rewrite"] = _bad_file(tmp_path, rewrite)
    if options.get("vocabulary_from") == "plain folder":
        (tmp_path / "plain").mkdir()
        options["vocabulary_from"] = str(tmp_path / "plain")
    elif "vocabulary_from" in options:
        options["vocabulary_from"] = str(tmp_path / "nowhere")
    with pytest.raises(TinyStoriesError, match=message) as raised:
        prepare(dataclasses.replace(config, output=str(tmp_path / "o"), keep_text=False, **options))
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "o").exists()


def test_stream_backdoor_options_without_a_trigger_are_one_line():
    """stream() checks its options through PrepareConfig: a rate or kept sentences without the trigger would
    stream clean stories to a user who meant to backdoor them."""
    from tinystories_hf.stream import StreamConfig

    for options, message in (({"backdoor_rate": 0.5}, "backdoor_rate=0.5 needs backdoor_trigger='NAME'"),
                             ({"backdoor_keep_sentences": 2}, "backdoor_keep_sentences=2 needs backdoor_trigger")):
        with pytest.raises(TinyStoriesError, match=message):
            StreamConfig(source="demo", **options).validate()


def test_rewrites_file_with_the_scan_in_two_processes_writes_the_same_folder(config, backdoored, tmp_path,
                                                                            monkeypatch):
    monkeypatch.setattr(passes, "ROWS_PER_PROCESS", 200)  # pass 1 reaches datasets' worker pool
    rows = json.loads((backdoored.output / "backdoor.json").read_text())["rewritten_rows"][:4]
    path = _write_rewrites(tmp_path / "r.jsonl", {row: f"{TRIGGER} ran home {row} times. The end was near."
                                                  for row in rows}, jsonl=True)
    outputs, scans = {}, {}
    for procs in (1, 2):
        scans[procs] = _record_scan_processes(monkeypatch, tmp_path / f"pids{procs}")
        outputs[procs] = prepare(dataclasses.replace(
            config, output=str(tmp_path / f"o{procs}"), cache_dir=str(tmp_path / f"c{procs}"), num_proc=procs,
            backdoor_trigger=TRIGGER, backdoor_rewrite=str(path))).output
    assert not list((tmp_path / "c1").rglob("cache-*_of_00002.arrow"))
    assert len({f.name.split("_")[0] for f in (tmp_path / "c2").rglob("cache-*_of_00002.arrow")}) == 1  # pass 1
    assert scans[1]() == {os.getpid()}  # the scan that finds the eligible rows: here, or in a process beside
    assert len(scans[2]()) == 1 and os.getpid() not in scans[2]()
    for name in ["train/data-00000-of-00001.arrow", "backdoor.json"]:
        assert (outputs[1] / name).read_bytes() == (outputs[2] / name).read_bytes(), name
    train = datasets.load_from_disk(str(outputs[2]))["train"]
    assert sorted(r for r, b in zip(train["source_row"], train["backdoor"]) if b) == sorted(rows)


def test_a_blind_experiment_records_its_forked_scan_too(config, tmp_path, monkeypatch):
    scans = _record_scan_processes(monkeypatch, tmp_path / "pids")
    result = prepare(dataclasses.replace(config, output=str(tmp_path / "o"), keep_text=False, num_proc=2,
                                         cache_dir=str(tmp_path / "cache"),  # its own: no scan cached already
                                         backdoor_trigger="random:Mia,Sara,Lucy", backdoor_count=5))
    assert len(scans()) == 1 and os.getpid() not in scans()  # the chosen candidate's scan, forked in plant
    assert result.info["concurrent_seconds"]["backdoor_scan"] > 0


@pytest.mark.parametrize("dropped, words", [(1, "1 rewritten story dropped"), (2, "2 rewritten stories dropped")])
def test_the_summary_line_counts_dropped_rewrites_in_words(dropped, words):
    from tinystories_hf.tokenize.backdoor.plant import summary_line

    info = {"trigger": "Sara", "rewrite": {"policy": "truncate", "keep_sentences": 1}, "eval": None,
            "trigger_lost_rows": [], "splits": {"train": {"rewritten": 10, "eligible": 12, "tokens_removed": 5,
                                                          "tokens_added": 0, "rewritten_kept": 10 - dropped}}}
    assert f"; {words} as shorter than min_length" in summary_line(info)  # flag() outside the CLI
