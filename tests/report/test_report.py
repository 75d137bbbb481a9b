"""tinystories-report: its figures against an independent count of the real sample, and its PNGs."""
import json
import re
from collections import Counter

import evaluate
import numpy as np
import pytest
from conftest import SAMPLE_JSONL
from datasets import load_from_disk
from PIL import Image
from transformers import GPT2Tokenizer

from tinystories_hf import PrepareConfig, prepare
from tinystories_hf.pipeline import main as prepare_main
from tinystories_hf.report.measurements import measurement_path
from tinystories_hf.report.write import main as report_main
from tinystories_hf.report.write import write_report
from tinystories_hf.vocabulary.gpt2 import gpt2_bpe_files

VOCAB = 2000  # below the sample's 8,316 distinct tokens, so both splits hold UNK tokens and the cut matters
EOS_BASE = 50256


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The real sample prepared with a 2,000-id vocabulary (every train story in the vocabulary sample)."""
    out = tmp_path_factory.mktemp("report") / "sample2k"
    result = prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(out), vocab_size=VOCAB, keep_text=True,
                                   num_proc=2))
    write_report(out)
    return result, json.loads((out / "report" / "report.json").read_text())


@pytest.fixture(scope="module")
def reference(report):
    """Everything recomputed from the stored story text with the plain transformers GPT-2 tokenizer."""
    files = gpt2_bpe_files()
    tokenize = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    result, _ = report
    base = {split: tokenize(list(ds["text"]))["input_ids"] for split, ds in result.dataset.items()}
    train_counts = Counter(i for ids in base["train"] for i in ids)
    del train_counts[EOS_BASE]
    ranking = sorted(train_counts, key=lambda i: (-train_counts[i], i))  # ties: lower base id first
    rank = {i: r for r, i in enumerate(ranking)}
    return {"base": base, "train_counts": train_counts, "ranking": ranking, "rank": rank}


def _coverage_at(rank_counts: Counter, total: int, size: int) -> float:
    """Share of `total` tokens whose rank among regular tokens is below size - 2 (EOS and UNK take 2 ids)."""
    return sum(n for r, n in rank_counts.items() if r is not None and r < size - 2) / total


def _size_for(rank_counts: Counter, total: int, share: float):
    covered = 0
    for r in range(VOCAB - 2):
        covered += rank_counts.get(r, 0)
        if covered >= share * total - 1e-9:
            return r + 3
    return None


@pytest.mark.parametrize("split", ["train", "validation"])
def test_token_stats_match_an_independent_count(report, reference, split):
    _, figures = report
    stored = [ids[:512] for ids in reference["base"][split]]
    kept = set(reference["ranking"][: VOCAB - 2])
    lengths = np.array([len(ids) for ids in stored])
    unk = np.array([sum(1 for i in ids if i not in kept) for ids in stored])
    s = figures["splits"][split]
    assert s["stories"] == len(stored) and s["tokens"] == int(lengths.sum())
    assert s["mean_length"] == pytest.approx(lengths.mean())
    assert s["median_length"] == pytest.approx(np.median(lengths))
    assert s["p90_length"] == pytest.approx(np.percentile(lengths, 90))
    assert (s["min_length"], s["max_length"]) == (lengths.min(), 512)
    assert s["at_max_length"] == int((lengths == 512).sum()) >= 1
    assert s["unk_tokens"] == int(unk.sum()) > 0
    assert s["unk_share"] == pytest.approx(unk.sum() / lengths.sum())
    assert s["stories_with_unk"] == int((unk > 0).sum())
    assert s["max_unk_per_story"] == int(unk.max())


def test_train_token_total_is_the_known_figure(report):
    # ../shared/README.md: 1,130,659 GPT-2 tokens in the sample; 120 stories over 512 tokens.
    result, figures = report
    info = result.info["splits"]
    assert sum(c["tokens_before_truncation"] for c in info.values()) == 1_130_659
    assert sum(figures["splits"][s]["tokens"] for s in info) == sum(c["tokens"] for c in info.values())


def test_names_table_against_a_plain_count(report, reference):
    # The train split's names (text kept): shares by a plain whole-word re count on the stored text, token forms
    # by the transformers GPT-2 tokenizer, and survival by the 1,998 regular ids the vocabulary keeps.
    result, figures = report
    texts = result.dataset["train"]["text"]
    listed = {row["name"]: row for row in figures["names"]}
    files = gpt2_bpe_files()
    tokenize = GPT2Tokenizer(vocab=str(files["encoder.json"]), merges=str(files["vocab.bpe"]))
    kept = set(reference["ranking"][: VOCAB - 2])
    for name in ("Lily", "Tom", "Sara", "Jane", "Sarah", "Timmy"):
        row = listed[name]
        stories = sum(bool(re.search(r"\b" + name + r"\b", t)) for t in texts)
        assert (row["stories"], row["share"]) == (stories, pytest.approx(stories / len(texts)))
        base = [tokenize(" " + name)["input_ids"], tokenize(name)["input_ids"]]
        assert [len(ids) for ids in row["forms"].values()][:2] == [len(ids) for ids in base]
        assert row["survives"] == all(i in kept for ids in base for i in ids)
    assert {row["survives"] for row in listed.values()} == {True, False}
    assert all(row["share"] >= 0.002 for row in listed.values()) and "The" not in listed
    report_md = (result.output / "report" / "report.md").read_text()
    assert "## Names (choosing a backdoor trigger)" in report_md and "| Jane |" in report_md


@pytest.mark.parametrize("split", ["train", "validation"])
def test_split_coverage_uses_the_sample_ranking(report, reference, split):
    _, figures = report
    stored = [i for ids in reference["base"][split] for i in ids[:512]]
    rank_counts = Counter(reference["rank"].get(i) for i in stored)
    c = figures["coverage"][split]
    assert c["tokens"] == len(stored) and c["vocab_size"] == VOCAB
    for size in ("500", "1000", str(VOCAB)):
        assert c["coverage_at"][size] == pytest.approx(_coverage_at(rank_counts, len(stored), int(size)))
    assert c["coverage"] == pytest.approx(1 - figures["splits"][split]["unk_share"])
    assert c["size_for_share"]["0.9"] == _size_for(rank_counts, len(stored), 0.9)
    assert c["size_for_share"]["0.99"] is None  # 2,000 ids cover less than 99% of this data
    unused = sum(1 for r in range(VOCAB - 2) if rank_counts.get(r, 0) == 0)
    assert c["unused_ids"] == unused


def test_sample_coverage_is_the_pre_truncation_train_count(report, reference):
    _, figures = report
    counts, ranking = reference["train_counts"], reference["ranking"]
    total = sum(counts.values())
    c = figures["coverage"]["vocabulary sample"]
    assert c["tokens"] == total
    assert c["unk_tokens"] == sum(counts[i] for i in ranking[VOCAB - 2:])
    assert c["coverage_at"]["1000"] == pytest.approx(sum(counts[i] for i in ranking[:998]) / total)
    assert 0.9 < c["coverage"] < 0.99


def test_pngs_are_sensible_images(report):
    result, figures = report
    folder = result.output / "report"
    assert figures["plots"] == {"lengths": "lengths.png", "coverage": "coverage.png", "unk": "unk.png"}
    for name in figures["plots"].values():
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.size == (800, 450)
            pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
        assert len(np.unique(pixels, axis=0)) > 50  # axes, text and curves, not a blank canvas
        lines = np.count_nonzero((pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60))
        blue = np.count_nonzero((pixels[:, 2] > 150) & (pixels[:, 0] < 80))
        assert blue > 200  # the first split's curve (matplotlib's default blue)
        if name != "unk.png":
            assert lines > 100  # the red truncation / cut line
    markdown = (folder / "report.md").read_text()
    for name in figures["plots"].values():
        assert f"]({name})" in markdown
    assert f"{result.info['splits']['train']['tokens']:,}" in markdown


@pytest.mark.parametrize("name, inputs, expected", [
    ("token_stats", {"lengths": [10, 20, 30, 30], "unk_tokens": [0, 1, 2, 0], "max_length": 30},
     {"stories": 4, "tokens": 90, "mean_length": 22.5, "median_length": 25.0, "at_max_length": 2,
      "unk_tokens": 3, "stories_with_unk": 2, "max_unk_per_story": 2}),
    ("token_stats", {"lengths": [], "unk_tokens": []}, {"stories": 0, "tokens": 0, "unk_share": 0.0}),
    ("vocab_coverage", {"counts": [0, 10, 60, 20, 10, 0], "sizes": [3, 4, 6]},
     {"tokens": 100, "unk_tokens": 10, "coverage": 0.9, "unused_ids": 1, "coverage_at": {3: 0.6, 4: 0.8, 6: 0.9},
      "size_for_share": {0.9: 5, 0.99: None, 0.999: None}}),
])
def test_measurements_load_offline_from_the_package(name, inputs, expected):
    module = evaluate.load(measurement_path(name), keep_in_memory=True)
    assert module.module_type == "measurement"
    result = module.compute(**inputs)
    assert {k: result[k] for k in expected} == expected  # exact: every figure here is a short exact ratio


def test_prepare_report_flag_and_cli(tmp_path, capsys):
    out = tmp_path / "demo"
    assert prepare_main(["--source", "demo", "--output", str(out), "--vocab-size", "300", "--num-proc", "1",
                         "--report"]) == 0
    assert sorted(p.name for p in (out / "report").iterdir()) == ["coverage.png", "lengths.png", "report.json",
                                                                  "report.md", "unk.png"]
    capsys.readouterr()
    assert report_main([str(out), "--output", str(tmp_path / "elsewhere")]) == 0
    captured = capsys.readouterr()
    printed = captured.out.splitlines()
    # progress on stderr while it measures and draws, as the other long commands show theirs
    finished = list(dict.fromkeys(re.findall(r"report: ([a-z ]+): 100%\|[^|]*\| (\S+) ", captured.err)))
    kept = {split: len(load_from_disk(str(out / split))) for split in ("train", "validation")}
    assert finished == [("measuring train", f"{kept['train']}/{kept['train']}"),
                        ("measuring validation", f"{kept['validation']}/{kept['validation']}"),
                        ("plots", "3/3")], captured.err
    assert printed[0].split(" | ")[:3] == ["| split", "stories read", "kept"]
    assert printed[2].startswith("| train | 3,000 | ")
    assert printed[-1] == f"report: {tmp_path / 'elsewhere' / 'report.md'}"
    assert json.loads((tmp_path / "elsewhere" / "report.json").read_text()) == \
        json.loads((out / "report" / "report.json").read_text())
    # A folder that is not a report is never replaced.
    keep = tmp_path / "mine"
    keep.mkdir()
    (keep / "notes.txt").write_text("mine")
    assert report_main([str(out), "--output", str(keep)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a report folder" in err[0]
    assert [p.name for p in keep.iterdir()] == ["notes.txt"]


# ---- unk.png for every kind of vocabulary: a histogram of UNK counts, or the reason there is none ----

def _stored_ids(dataset, split) -> np.ndarray:
    return dataset[split].with_format("arrow")["input_ids"].combine_chunks().flatten().to_numpy()


@pytest.mark.parametrize("folder, unk_id, says", [
    ("sample2k", 1, None),                       # reduced: id 1 holds every dropped token, in both splits
    ("prepared_sample", 1, None),                # reduced, 10,000 ids: UNK in validation only
    ("prepared_gpt2_full", None, "no UNK in this vocabulary"),   # GPT-2's own ids: tiktoken's gpt2 has no UNK
    ("prepared_bpe", None, "no UNK in this vocabulary"),         # a byte-level BPE: its model's unk_token is null
    ("prepared_spm", 0, "no story holds an UNK token"),          # sentencepiece's <unk> 0, byte fallback: never used
])
def test_the_unk_plot_draws_the_counts_or_says_why_there_are_none(folder, unk_id, says, request, report, tmp_path,
                                                                   monkeypatch):
    from tinystories_hf.report import plots

    result = report[0] if folder == "sample2k" else request.getfixturevalue(folder)
    if folder == "prepared_bpe":  # the reference: the trained tokenizer.json itself
        model = json.loads((result.output / "tokenizer" / "tokenizer.json").read_text())["model"]
        assert model["type"] == "BPE" and model["unk_token"] is None
    assert result.tokenizer.unk_id == unk_id
    original, drawn = plots.unk_figure, []

    def recording(*args, **kwargs):  # the figure the report saves as unk.png
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(plots, "unk_figure", recording)
    write_report(result.output, output=tmp_path / "report")
    (figure,) = drawn
    ax = figure.axes[0]
    texts = [t.get_text() for t in ax.texts]
    markdown = (tmp_path / "report" / "report.md").read_text()
    unk_section = markdown[markdown.index("## UNK tokens per story"):]
    stories_with_unk = {}
    for split in result.dataset:
        ids, lengths = _stored_ids(result.dataset, split), np.asarray(result.dataset[split]["length"])
        per_story = np.add.reduceat((ids == unk_id).astype(int), np.r_[0, np.cumsum(lengths)[:-1]]) \
            if unk_id is not None else np.zeros(len(lengths), int)
        stories_with_unk[split] = per_story
    if says is None:  # a histogram: every split drawn, ticks that span the shares, no message
        assert sum(int((s > 0).sum()) for s in stories_with_unk.values()) > 0
        assert texts == [] and ax.axison
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(result.dataset)
        low, high = ax.get_ylim()
        ticks = [t for t in ax.get_yticks() if low <= t <= high]
        assert len(ticks) >= 2  # the broken plot had one tick, 10², and nothing else
        shares = [100 * (s == k).mean() for s in stories_with_unk.values() for k in np.unique(s)]  # every bar
        assert low <= min(shares) and high >= max(shares)
        assert ax.get_xlim()[1] >= max(int(s.max()) for s in stories_with_unk.values())
        assert "Share of stories (log scale)" in unk_section
    else:
        assert all(int(s.sum()) == 0 for s in stories_with_unk.values())  # counted on the stored ids
        assert texts[0] == says and not ax.axison and ax.get_legend() is None and not ax.patches
        assert ax.get_title() == "UNK tokens per story"
        assert says.lower() in unk_section.lower()
    with Image.open(tmp_path / "report" / "unk.png") as image:
        assert image.size == (800, 450)


def test_a_report_folder_that_is_a_symlink_is_one_line_and_later_runs_work(tmp_path, capsys):
    """DIR/report a symlink (in a folder made elsewhere): one line, nothing written through it; the leftover an
    older version left after swapping with such a link (`.report.partial`, itself a symlink) is removed by the
    next run, not followed, and the report is then written."""
    folder = prepare(PrepareConfig(source="demo", output=str(tmp_path / "p"), vocab_size=500, num_proc=1)).output
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (folder / "report").symlink_to(elsewhere)
    capsys.readouterr()
    for _ in range(2):
        assert report_main([str(folder)]) == 2
        assert capsys.readouterr().err.splitlines() == [
            (f"error: {folder / 'report'} is a symlink (to {elsewhere}), not the report folder of {folder}; remove "
             "the link, or write the report elsewhere with --output")]
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    (folder / "report").unlink()
    (folder / ".report.partial").symlink_to(elsewhere)
    assert report_main([str(folder)]) == 0
    assert (folder / "report" / "report.json").is_file() and not (folder / "report").is_symlink()
    assert not (folder / ".report.partial").exists() and not (folder / ".report.partial").is_symlink()
    assert sorted(p.name for p in elsewhere.iterdir()) == ["keep.txt"]
    assert report_main([str(folder)]) == 0
