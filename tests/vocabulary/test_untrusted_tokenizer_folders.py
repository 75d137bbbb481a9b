"""A tokenizer folder made elsewhere is untrusted input: its AutoTokenizer module reads and writes only files of
its own folder; this package loads its own folders from their data and never runs the code any folder ships
(`trust_remote_code=False` everywhere); validate and push refuse a module that is not the package's own."""
import json
import re
import shutil
from pathlib import Path

import pytest
from output import one_error_line
from transformers import AutoTokenizer

import tinystories_hf.vocabulary.tokenization_tinystories as module
from tinystories_hf import TinyStoriesError, TinyStoriesTokenizer, load_base_tokenizer
from tinystories_hf.hub.push import main as push_main
from tinystories_hf.pipeline import main as prepare_main
from tinystories_hf.store.folder import file_sha256
from tinystories_hf.store.validate import main as validate_main
from tinystories_hf.stream import main as stream_main
from tinystories_hf.vocabulary.base import base_special_ids

MARKER = "ran-the-folders-code"
# What a crafted module would do on import: leave a file beside itself (the tests look for it).
POISON = f"import pathlib\npathlib.Path(__file__).with_name({MARKER!r}).write_text('x')\n" \
         "raise SystemExit('the folder's code ran')\n"


def _tree(root) -> set:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file()}


def _one_line(capsys) -> str:
    return one_error_line(capsys.readouterr().err)  # after validate's and export's progress bars


def test_the_module_reads_its_base_file_only_inside_its_folder(prepared_demo, tmp_path):
    """`base_file: "../outside/tokenizer.json"` (the base tokenizer placed there): refused when loaded, by the
    module and by TinyStoriesTokenizer; the intact folder saves only inside its target."""
    folder = shutil.copytree(prepared_demo.output / "tokenizer", tmp_path / "crafted_base_file")
    (tmp_path / "outside").mkdir()
    shutil.copy(folder / "base" / "tokenizer.json", tmp_path / "outside" / "tokenizer.json")
    vocab = json.loads((folder / "tinystories_vocab.json").read_text())
    for name in ("../outside/tokenizer.json", str(tmp_path / "outside" / "tokenizer.json"), "base/../base/tokenizer.json"):
        (folder / "tinystories_vocab.json").write_text(json.dumps(dict(vocab, base_file=name)))
        with pytest.raises(ValueError, match=rf"base_file {re.escape(repr(name))} is not one of base/tokenizer\.json, "
                                             r"tokenizer\.json, base/tokenizer\.model"):
            AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
        with pytest.raises(TinyStoriesError, match=r"tinystories_vocab\.json: key 'base_file' is "):
            TinyStoriesTokenizer.from_pretrained(folder)
    (folder / "tinystories_vocab.json").write_text(json.dumps(vocab))
    auto = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=True)
    assert auto("Once upon a time")["input_ids"] == prepared_demo.tokenizer.encode("Once upon a time")
    before = _tree(tmp_path)
    auto.save_pretrained(str(tmp_path / "saved" / "t"))
    assert {f for f in _tree(tmp_path) - before if not f.startswith("saved/t/")} == set()
    assert (tmp_path / "saved" / "t" / "base" / "tokenizer.json").read_bytes() == \
        (folder / "base" / "tokenizer.json").read_bytes()
    auto.table["base_file"] = "../../escape/tokenizer.json"  # the table edited after loading: still refused
    with pytest.raises(ValueError, match="base_file '../../escape/tokenizer.json' is not one of"):
        auto.save_pretrained(str(tmp_path / "again" / "t"))
    assert not (tmp_path / "escape").exists()
    assert module.BASE_FILES == tuple(sorted(module.BASE_FILES, key=["base/tokenizer.json", "tokenizer.json",
                                                                     "base/tokenizer.model"].index))


def test_this_projects_folder_as_tokenizer_loads_from_its_data_never_its_code(prepared_demo, tmp_path, capsys):
    """`--tokenizer PREPARED/tokenizer` (a reduced GPT-2 vocabulary: no tokenizer.json at its top) gives the
    folder's base tokenizer, GPT-2's BPE, read from base/tokenizer.json; its module, replaced by code that
    leaves a file, never runs (transformers would have asked "Do you wish to run the custom code?")."""
    folder = shutil.copytree(prepared_demo.output, tmp_path / "p")
    (folder / "tokenizer" / "tokenization_tinystories.py").write_text(POISON)
    for path in (folder / "tokenizer", folder):
        base = load_base_tokenizer(str(path))
        assert base.get_vocab_size() == 50_257 and base.encode("Once upon a time").ids == [7454, 2402, 257, 640]
        assert base_special_ids(base, str(path)) == {"eos": 50_256, "bos": None, "unk": None}  # GPT-2's own
    source = tmp_path / "s.jsonl"
    source.write_text("".join(json.dumps({"text": f"Once upon a time there was a dog number {i}."}) + "\n"
                              for i in range(40)))
    assert prepare_main(["--source", str(source), "--output", str(tmp_path / "out"), "--tokenizer",
                         str(folder / "tokenizer"), "--vocab-size", "full", "--num-proc", "1"]) == 0
    assert json.loads((tmp_path / "out" / "prepare_info.json").read_text())["vocab_size"] == 50_257
    assert not list(tmp_path.rglob(MARKER))


def test_a_folder_that_needs_its_own_code_is_one_line_and_the_code_never_runs(tmp_path, capsys):
    """A tokenizer folder of someone else's (an auto_map naming its module, no tokenizer.json): one line, from
    load_base_tokenizer and from the command, and the module was never imported."""
    folder = tmp_path / "third_party_tok"
    folder.mkdir()
    (folder / "evil.py").write_text(POISON)
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "EvilTokenizer", "auto_map": {"AutoTokenizer": ["evil.EvilTokenizer", None]}}))
    expected = (f"tokenizer {str(folder)!r} loads only by running Python code it ships (its tokenizer_config.json's "
                "auto_map), which tinystories-hf never runs; pass a folder with tokenizer.json or a SentencePiece "
                ".model")
    with pytest.raises(TinyStoriesError) as raised:
        load_base_tokenizer(str(folder))
    assert str(raised.value) == expected
    assert prepare_main(["--source", "demo", "--output", str(tmp_path / "out"), "--tokenizer", str(folder)]) == 2
    assert _one_line(capsys) == f"error: {expected}"
    assert stream_main(["--source", "demo", "--max-stories", "20", "--base-tokenizer", str(folder)]) == 2
    assert _one_line(capsys) == f"error: {expected}"
    assert not list(tmp_path.rglob(MARKER)) and not (tmp_path / "out").exists()


def test_validate_and_push_refuse_a_replaced_module_even_with_its_hash_re_recorded(prepared_demo, tmp_path, capsys):
    folder = shutil.copytree(prepared_demo.output, tmp_path / "p")
    module_file = folder / "tokenizer" / "tokenization_tinystories.py"
    assert module_file.read_bytes() == Path(module.__file__).read_bytes()  # what prepare wrote: the package's own
    module_file.write_text(POISON)
    info = json.loads((folder / "prepare_info.json").read_text())
    info["tokenizer_files"]["tokenization_tinystories.py"] = file_sha256(module_file)
    (folder / "prepare_info.json").write_text(json.dumps(info, indent=2))
    expected = (f"error: {module_file} differs from tinystories-hf's own module (the code AutoTokenizer runs with "
                "trust_remote_code=True: replaced, or from another version); do not load it with "
                "trust_remote_code=True, re-create the folder with tinystories-prepare")
    assert validate_main([str(folder)]) == 2
    assert _one_line(capsys) == expected
    assert push_main([str(folder), "--to-folder", str(tmp_path / "hub")]) == 2
    assert _one_line(capsys) == expected
    assert not (tmp_path / "hub").exists() and not list(tmp_path.rglob(MARKER))
