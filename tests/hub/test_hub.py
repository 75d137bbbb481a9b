"""The Hub repository layout: written locally, loaded back, pushed (its wiring), and the offline errors."""
import json
import os
import shutil
import sys
from pathlib import Path

import datasets
import huggingface_hub
import processes
import pytest
import yaml

from tinystories_hf import (
    PrepareConfig,
    TinyStoriesError,
    TinyStoriesTokenizer,
    load_prepared,
    prepare,
    write_hub_folder,
)
from tinystories_hf.hub.push import main
from tinystories_hf.store.folder import read_prepare_info
from tinystories_hf.store.validate import main as validate_main

FAKE_TOKEN = "hf_notARealTokenJustForThisTest0123"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _files(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _card_yaml(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def hub_folder(prepared_sample, tmp_path_factory):
    out = tmp_path_factory.mktemp("hub") / "ts_hub"
    assert main([str(prepared_sample.output), "--to-folder", str(out)]) == 0
    return out


def test_to_folder_writes_the_repository_layout(hub_folder, prepared_sample):
    assert sorted(_files(hub_folder)) == ["README.md", "data/train-00000-of-00001.parquet",
                                          "data/validation-00000-of-00001.parquet", "prepare_info.json",
                                          "tokenization_tinystories.py", "tokenizer/base/tokenizer.json", "tokenizer/base/tokenizer_config.json",
                                          "tokenizer/tinystories_vocab.json", "tokenizer/tokenization_tinystories.py",
                                          "tokenizer/tokenizer_config.json"]
    prepared = prepared_sample.output
    for name in ("prepare_info.json", "tokenizer/tinystories_vocab.json", "tokenizer/base/tokenizer.json"):
        assert (hub_folder / name).read_bytes() == (prepared / name).read_bytes()
    assert not list(hub_folder.parent.glob(".ts_hub.partial-*"))


def test_load_dataset_of_the_folder_gives_the_prepared_ids(hub_folder, prepared_sample):
    pushed = datasets.load_dataset(str(hub_folder))
    saved = datasets.load_from_disk(str(prepared_sample.output))
    assert set(pushed) == set(saved) == {"train", "validation"}
    for split in saved:
        assert pushed[split].features == saved[split].features
        assert pushed[split].features["input_ids"] == datasets.List(datasets.Value("uint16"))
        assert list(pushed[split]["input_ids"]) == list(saved[split]["input_ids"])
        assert list(pushed[split]["text"]) == list(saved[split]["text"])


def test_card_yaml_declares_splits_and_features_and_the_body_license_and_citation(hub_folder, prepared_sample):
    meta = _card_yaml(hub_folder)
    counts = prepared_sample.info["splits"]
    assert meta["license"] == "cdla-sharing-1.0"
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "validation", "path": "data/validation-*"}]}]
    features = {f["name"]: f for f in meta["dataset_info"]["features"]}
    assert features["input_ids"] == {"name": "input_ids", "list": "uint16"}
    assert features["length"] == {"name": "length", "dtype": "int32"}
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == {
        split: c["kept"] for split, c in counts.items()}
    body = (hub_folder / "README.md").read_text(encoding="utf-8").split("---\n", 2)[2]
    assert "10,000 ids" in body and "Id 0 is EOS" in body and "id 1 is UNK" in body
    assert f"| train | {counts['train']['stories']:,} | {counts['train']['kept']:,} |" in body
    assert "arXiv:2305.07759" in body and "Eldan" in body and "CDLA-Sharing-1.0" in body
    assert 'load_dataset("USER/NAME")' in body and 'load_prepared("USER/NAME")' in body


def test_tokenizer_and_load_prepared_from_the_folder(hub_folder, prepared_sample):
    tok = TinyStoriesTokenizer.from_pretrained(hub_folder)
    assert tok.fingerprint == prepared_sample.tokenizer.fingerprint and tok.vocab_size == 10_000
    dataset, tokenizer = load_prepared(str(hub_folder))
    assert tokenizer.fingerprint == prepared_sample.tokenizer.fingerprint
    assert list(dataset["validation"]["input_ids"]) == list(prepared_sample.dataset["validation"]["input_ids"])


def test_to_folder_refuses_existing_or_foreign_folders_and_never_half_writes(hub_folder, prepared_sample, tmp_path,
                                                                            monkeypatch, capsys):
    prepared = str(prepared_sample.output)
    assert main([prepared, "--to-folder", str(hub_folder)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "README.md").write_text("my notes")
    assert main([prepared, "--to-folder", str(foreign), "--overwrite"]) == 2
    assert "is not a folder written by tinystories-push" in capsys.readouterr().err
    assert main([prepared, "--to-folder", str(Path(prepared) / "hub")]) == 2
    assert "overlaps the source" in capsys.readouterr().err
    # A failure after the shards are written leaves the previous folder as it was, and no partial folder.
    out = tmp_path / "out"
    shutil.copytree(hub_folder, out)
    before = _files(out)
    monkeypatch.setattr("tinystories_hf.hub.push.dataset_card", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_hub_folder(prepared, out, overwrite=True)
    assert _files(out) == before and sorted(p.name for p in tmp_path.iterdir()) == [".out.lock", "notes", "out"]


def test_altered_folder_is_a_one_line_error(hub_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(hub_folder, broken)
    (broken / "data" / "validation-00000-of-00001.parquet").unlink()
    with pytest.raises(TinyStoriesError, match="broken"):
        load_prepared(str(broken))
    shutil.copytree(hub_folder, tmp_path / "edited")
    info = json.loads((tmp_path / "edited" / "prepare_info.json").read_text())
    info["splits"]["train"]["kept"] += 1
    (tmp_path / "edited" / "prepare_info.json").write_text(json.dumps(info))
    with pytest.raises(TinyStoriesError, match="rows but prepare_info.json records"):
        load_prepared(str(tmp_path / "edited"))


def test_push_sends_what_to_folder_writes(prepared_sample, tmp_path, monkeypatch, capsys):
    """The Hub is unreachable here, so the two upload calls are recorded instead of sent: the data goes to
    DatasetDict.push_to_hub with the shard counts of the local layout, and every other file of the local layout
    goes to HfApi.upload_folder, byte for byte."""
    calls = {}

    def push_to_hub(self, repo_id, **kwargs):
        calls["push_to_hub"] = (repo_id, kwargs, {split: ds.num_rows for split, ds in self.items()})

    def upload_folder(self, *, repo_id, repo_type, folder_path, revision=None, **kwargs):
        calls["upload_folder"] = (repo_id, repo_type, revision, _files(Path(folder_path)))

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", push_to_hub)
    monkeypatch.setattr("tinystories_hf.hub.push.require_hub", lambda what, fix: None)  # the probe would find no Hub
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    prepared = str(prepared_sample.output)
    assert main([prepared, "--repo-id", "me/ts", "--private", "--revision", "v1"]) == 0
    printed = capsys.readouterr()
    assert "https://huggingface.co/datasets/me/ts/tree/v1" in printed.out
    assert FAKE_TOKEN not in printed.out + printed.err

    local = _files(write_hub_folder(prepared, tmp_path / "local", repo_id="me/ts"))
    repo_id, kwargs, rows = calls["push_to_hub"]
    assert (repo_id, kwargs["private"], kwargs["revision"]) == ("me/ts", True, "v1")
    assert kwargs["num_shards"] == {split: sum(1 for f in local if f.startswith(f"data/{split}-")) for split in rows}
    assert rows == {split: c["kept"] for split, c in prepared_sample.info["splits"].items()}
    assert calls["upload_folder"] == ("me/ts", "dataset", "v1",
                                      {f: data for f, data in local.items() if not f.startswith("data/")})
    assert 'load_prepared("me/ts")' in local["README.md"].decode()


def test_push_of_a_backdoored_folder_sends_the_eval_prompts_as_their_own_config(tmp_path, monkeypatch):
    """A backdoored folder's DIR/backdoor_eval goes to Dataset.push_to_hub as the config and folder
    `backdoor_eval` (what --to-folder writes, which load_dataset reads back), never inside the DatasetDict of the
    training splits; the card uploaded declares both configs."""
    from conftest import SAMPLE_JSONL

    calls = {}

    def push_dict(self, repo_id, **kwargs):
        calls["dict"] = sorted(self)

    def push_dataset(self, repo_id, **kwargs):
        calls["dataset"] = (repo_id, kwargs, self.to_list())

    def upload_folder(self, *, repo_id, repo_type, folder_path, revision=None, **kwargs):
        calls["upload_folder"] = _files(Path(folder_path))

    monkeypatch.setattr(datasets.DatasetDict, "push_to_hub", push_dict)
    monkeypatch.setattr(datasets.Dataset, "push_to_hub", push_dataset)
    monkeypatch.setattr("tinystories_hf.hub.push.require_hub", lambda what, fix: None)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    prepared = prepare(PrepareConfig(source=str(SAMPLE_JSONL), output=str(tmp_path / "bd"), vocab_size=4000,
                                     num_proc=1, backdoor_trigger="Sara", cache_dir=str(tmp_path / "cache"))).output
    assert main([str(prepared), "--repo-id", "me/ts"]) == 0
    saved = datasets.load_from_disk(str(prepared / "backdoor_eval")).to_list()
    repo_id, kwargs, rows = calls["dataset"]
    assert calls["dict"] == ["train", "validation"] and repo_id == "me/ts" and rows == saved and saved
    assert (kwargs["config_name"], kwargs["split"], kwargs["data_dir"], kwargs["num_shards"]) == \
        ("backdoor_eval", "backdoor_eval", "backdoor_eval", 1)
    local = write_hub_folder(prepared, tmp_path / "local", repo_id="me/ts")
    assert calls["upload_folder"]["README.md"] == (local / "README.md").read_bytes()
    configs = {c["config_name"]: c["data_files"] for c in _card_yaml(local)["configs"]}
    assert configs["backdoor_eval"] == [{"split": "backdoor_eval", "path": "backdoor_eval/backdoor_eval-*"}]
    assert [f["split"] for f in configs["default"]] == ["train", "validation"]
    assert datasets.load_dataset(str(local), "backdoor_eval")["backdoor_eval"].to_list() == saved
    pytest.importorskip("torch")
    from tinystories_hf.training.evaluate import read_prompts

    assert read_prompts(local)[0] == read_prompts(prepared)[0]  # the evaluator reads the pushed layout too


def test_push_without_token_or_network_and_hub_load_offline_are_one_line_errors(prepared_sample, tmp_path,
                                                                                monkeypatch, capsys):
    """The real code paths, against a Hub endpoint nothing answers on (the discard port of this machine, not in
    offline mode): no test touches the network, on a networked runner either."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    prepared = str(prepared_sample.output)
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    assert main([prepared, "--repo-id", "me/ts"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no Hugging Face token: log in with `hf auth login`")

    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert main([prepared, "--repo-id", "me/ts"]) == 2
    printed = capsys.readouterr()
    assert len(printed.err.strip().splitlines()) == 1 and FAKE_TOKEN not in printed.out + printed.err
    assert printed.err.startswith("error: could not push to Hub dataset 'me/ts'")
    assert "--to-folder OUT" in printed.err

    def no_request(*args, **kwargs):
        raise AssertionError("the probe must stop the load before huggingface_hub retries for half a minute")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_request)
    with pytest.raises(TinyStoriesError, match=r"could not download Hub dataset 'me/ts'.*pass a local folder"):
        load_prepared("me/ts")


def test_load_prepared_and_stream_from_a_repo_in_the_hub_cache(hub_folder, tmp_path):
    """A repository already in the huggingface_hub cache (its documented layout: refs/main -> snapshots/<commit>)
    loads by repo id with HF_HUB_OFFLINE=1, as behind a firewall after one download."""
    repo = tmp_path / "hf" / "hub" / "datasets--me--ts"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(hub_folder, repo / "snapshots" / COMMIT)
    script = ("from tinystories_hf import load_prepared, stream\n"
              "dataset, tokenizer = load_prepared('me/ts')\n"
              "first = next(iter(stream('demo', tokenizer='me/ts')))\n"
              "print(dataset['validation'].num_rows, tokenizer.vocab_size, first['input_ids'][:4])\n")
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    run = processes.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    tok = TinyStoriesTokenizer.from_pretrained(hub_folder)
    rows = datasets.load_dataset(str(hub_folder))["validation"].num_rows
    assert run.stdout.split("\n")[-2] == f"{rows} 10000 {tok.encode('Once upon a time')[:4]}"


def _prepared_with_an_empty_validation_split(tmp: Path) -> Path:
    """A source whose validation stories are all under --min-length: validation keeps 0 rows."""
    story = "Once upon a time, a little dog named Max ran to the park to play with his red ball. He was happy."
    (tmp / "src").mkdir()
    (tmp / "src" / "train.jsonl").write_text("".join(json.dumps({"text": f"{story} {i}"}) + "\n" for i in range(30)))
    (tmp / "src" / "validation.jsonl").write_text(json.dumps({"text": "Hi."}) + "\n")
    out = tmp / "prepared"
    prepare(PrepareConfig(source=str(tmp / "src"), output=str(out), vocab_size=300, num_proc=1,
                          cache_dir=str(tmp / "cache")))
    assert read_prepare_info(out)["splits"]["validation"]["kept"] == 0
    return out


def test_a_split_with_no_rows_is_left_out_named_in_the_card_and_loads_back(tmp_path, capsys):
    prepared = _prepared_with_an_empty_validation_split(tmp_path)
    assert main([str(prepared), "--to-folder", str(tmp_path / "hub")]) == 0
    hub = tmp_path / "hub"
    assert sorted(p.name for p in (hub / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    meta = _card_yaml(hub)
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert "**Empty splits**: `validation` kept no story" in (hub / "README.md").read_text(encoding="utf-8")
    loaded = datasets.load_dataset(str(hub))  # what the Hub serves
    assert list(loaded) == ["train"] and loaded["train"].num_rows == 30
    dataset, _ = load_prepared(hub)  # and the package gives back every split prepare wrote
    saved = datasets.load_from_disk(str(prepared))
    assert {split: ds.num_rows for split, ds in dataset.items()} == {"train": 30, "validation": 0}
    assert dataset["validation"].features == saved["validation"].features
    assert list(dataset["train"]["input_ids"]) == list(saved["train"]["input_ids"])
    capsys.readouterr()
    assert validate_main([str(hub)]) == 0
    assert capsys.readouterr().out.startswith(f"ok {hub} (Hub layout): train 30 rows")


def test_validate_recognises_and_checks_the_hub_layout(hub_folder, prepared_sample, tmp_path, capsys):
    assert validate_main([str(hub_folder)]) == 0
    counts = prepared_sample.info["splits"]
    assert capsys.readouterr().out == (
        f"ok {hub_folder} (Hub layout): train {counts['train']['kept']:,} rows, {counts['train']['tokens']:,} tokens; "
        f"validation {counts['validation']['kept']:,} rows, {counts['validation']['tokens']:,} tokens; ids < 10000; "
        "5 files match their sha256 (the parquet shards have no recorded hash: their content was checked)\n")
    damaged = shutil.copytree(hub_folder, tmp_path / "damaged")
    vocab = damaged / "tokenizer" / "tinystories_vocab.json"
    vocab.write_text(vocab.read_text().replace('"base_ids": [', '"base_ids": [ '))
    assert validate_main([str(damaged)]) == 2
    err = capsys.readouterr().err  # the hashing's progress bar, then the one error line
    assert "Traceback" not in err and [line for line in err.splitlines() if line.startswith("error:")] == [
        err.splitlines()[-1]]
    assert err.splitlines()[-1] == (f"error: {vocab} has changed (sha256 differs from prepare_info.json); the folder "
                                    "was edited or damaged, re-create it with tinystories-prepare")


@pytest.mark.parametrize("edit, message", [
    (lambda card: card.replace("configs:", "nested: " + "[" * 5000 + "]" * 5000 + "\nconfigs:", 1),
     "YAML metadata nested too deeply"),
    (lambda card: card.replace("path: data/train-*", "path: ../../secrets/*", 1),
     "key 'configs[0].data_files[0].path' is '../../secrets/*', not a pattern under data/ or backdoor_eval/"),
    (lambda card: card.replace("---\n", "", 1), "no YAML metadata block (--- ... ---)"),
])
def test_a_damaged_card_is_one_line(hub_folder, tmp_path, edit, message):
    damaged = shutil.copytree(hub_folder, tmp_path / "damaged")
    card = damaged / "README.md"
    card.write_text(edit(card.read_text(encoding="utf-8")), encoding="utf-8")
    with pytest.raises(TinyStoriesError) as raised:
        load_prepared(damaged)
    assert str(raised.value) == f"{card}: {message}; re-create it with tinystories-push --to-folder"


@pytest.mark.parametrize("part", ["README.md", "data"])
def test_a_pushed_folder_missing_its_card_or_data_is_named_as_one(hub_folder, tmp_path, capsys, part):
    """Without data/ or README.md the folder was taken for a damaged *prepared* folder ("dataset_dict.json is
    missing (and 6 more ...)", re-create it with tinystories-prepare)."""
    damaged = shutil.copytree(hub_folder, tmp_path / "damaged")
    shutil.rmtree(damaged / part) if part == "data" else (damaged / part).unlink()
    message = (f"{damaged / part}: missing from a folder written by tinystories-push --to-folder; re-create it with "
               "tinystories-push --to-folder")
    with pytest.raises(TinyStoriesError) as raised:
        load_prepared(damaged)
    assert str(raised.value) == message
    assert validate_main([str(damaged)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_a_card_that_links_outside_the_folder_is_refused_unread(hub_folder, tmp_path):
    """A README.md linked to /etc/passwd was read (then refused as "no YAML metadata block")."""
    damaged = shutil.copytree(hub_folder, tmp_path / "damaged")
    outside = tmp_path / "elsewhere.md"
    outside.write_text((damaged / "README.md").read_text(encoding="utf-8"), encoding="utf-8")  # a valid card
    (damaged / "README.md").unlink()
    (damaged / "README.md").symlink_to(outside)
    with pytest.raises(TinyStoriesError) as raised:
        load_prepared(damaged)
    assert str(raised.value) == (f"{damaged / 'README.md'}: a symlink to {outside}, outside the folder; re-create it "
                                 "with tinystories-push --to-folder")
