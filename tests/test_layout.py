"""The package's layout: one folder per stage of the data's path, imports pointing one way along it, no import
cycle, and every import path of the flat 0.1 layout still working (with a DeprecationWarning) for one release."""
import ast
import configparser
import functools
import importlib
import sys
import warnings
from pathlib import Path

import processes
import pytest
from conftest import REPO

PACKAGE = REPO / "tinystories_hf"
# The stage of each top-level name, in the order of the data's path; a module may import its own stage and the
# ones before it, never a later one (rank: lower is earlier).
STAGES = {"errors": 0, "supervision": 0, "config": 0, "utils": 0, "_moved": 0,
          "sources": 1, "vocabulary": 2, "tokenize": 3, "store": 4,
          "training": 5, "exports": 5, "hub": 5, "report": 5,
          "pipeline": 6, "stream": 6, "__init__": 7}
# What the flat 0.1 package's modules defined (their public names, read from release 0.1's files): each must
# still import from its old path.
OLD_NAMES = {
    "atomic": ["CACHE_LEASE", "resolve", "check_output", "remove_tree", "recover", "writer_lock", "hold_writer_lock",
               "AT_FDCWD", "RENAME_EXCHANGE", "exchange", "move_into_place", "atomic_folder", "hold_cache_lease"],
    "json_files": ["MAX_BYTES", "Check", "Each", "Nullable", "non_negative", "in_range", "SHA256", "relative_file",
                   "problem", "parse", "read_text", "read_json", "check"],
    "mapped_pages": ["MADV_DONTNEED", "RELEASE_EVERY", "file_mappings", "release_mappings", "PageReleaser",
                     "pages_released"],
    "hub_access": ["HUB_PROBE_SECONDS", "require_hub", "hub_errors"],
    "extras": ["MissingExtraError", "require"],
    "base_tokenizer": ["GPT2_SHA256", "gpt2_bpe_files", "gpt_neo_tokenizer", "load_base_tokenizer", "SPECIAL_NAMES",
                       "base_special_ids", "tokenizer_sha256", "special_ids", "is_gpt2_bpe", "without_lone_surrogates",
                       "HFEncoder", "gpt2_ranks", "TiktokenEncoder", "encode_around_whitespace_runs", "FAST_PACKAGE",
                       "fastokens_available", "FastokensEncoder", "BACKENDS", "make_encoder"],
    "sentencepiece_base": ["MODEL_SUFFIX", "SentencePieceTokenizer", "SentencePieceEncoder"],
    "vocab": ["VOCAB_FILE", "BASE_DIR", "FORMATS", "FORMAT", "EOS_ID", "UNK_ID", "EOS_TOKEN", "UNK_TOKEN", "REDUCED",
              "FULL", "UINT16_IDS", "REMOTE_MODULE", "BASE_FILES", "VOCAB_SCHEMA", "count_base_tokens", "sample_rows",
              "check_vocabulary", "specials_text", "TinyStoriesTokenizer"],
    "train_tokenizer": ["MODELS", "TRAIN_INFO", "BYTE_ALPHABET", "SENTENCEPIECE_THREADS", "LLAMA2C_SETTINGS",
                        "TEXTS_PER_BATCH", "TrainTokenizerConfig", "TrainResult", "sample_texts", "train_bpe",
                        "llama2c_lines", "train_sentencepiece", "train_tokenizer", "main"],
    "tokenization_tinystories": ["VOCAB_FILES", "TinyStoriesHFTokenizer"],
    "validate": ["ValidateConfig", "check_file_hashes", "check_split", "validate_prepared", "main"],
    "adapters": ["torch", "IGNORE_INDEX", "open_split", "StoryTable", "distributed_rank", "TinyStoriesDataset",
                 "TinyStoriesDatasetPacked"],
    "collator": ["torch", "HF_IGNORE_INDEX", "MINGPT_IGNORE_INDEX", "PackingCollator"],
    "sampler": ["torch", "STATE_KEYS", "data_fingerprint", "TinyStoriesSampler"],
    "models": ["PAPER_HIDDEN_SIZES", "gpt_neo_config", "paper_configs", "parameter_count"],
    "measurements": ["MEASUREMENTS", "measurement_path"],
    # modules that are packages now: their old names come through the package
    "store": ["PREPARE_INFO", "TOKENIZER_DIR", "MAX_SHARD_BYTES", "DATA_DIR", "CARD", "MAX_CARD_BYTES", "RECREATE",
              "COUNTS", "FILES", "INFO_SCHEMA", "STATE_SCHEMA", "DATASETS_JSON", "CARD_SCHEMA", "file_sha256",
              "tree_sha256", "shard_counts", "copy_to_disk", "save_dataset_dict", "save_prepared", "read_prepare_info",
              "check_arrow", "download_repo", "is_hub_layout", "card_yaml", "load_hub_folder", "read_prepared",
              "load_prepared"],
    "report": ["REPORT_DIR", "COVERAGE_SIZES", "SHARES", "PLOT_FILES", "ReportConfig", "split_arrays", "measure",
               "plot", "markdown_table", "split_table", "coverage_table", "markdown", "write_report", "report_summary",
               "main"],
    "hub": ["LICENSE", "CITATION", "COUNTERS", "PushConfig", "hub_splits", "card_metadata", "dataset_card",
            "write_repo_files", "write_hub_folder", "push_prepared", "main"],
    "tokenize": ["ENCODE_VERSION", "ENCODE_BATCH_SIZE", "ROWS_PER_PROCESS", "REDUCE_VERSION",
                 "REDUCE_ROWS_PER_SEGMENT", "CHECK_STORIES", "reduced_features", "encode_stories", "check_sample",
                 "reduce_stories", "base_dtype_for", "encode_split", "reduce_split", "content_fingerprint",
                 "text_bytes", "split_counts"],
    "errors": ["Terminated", "TinyStoriesError", "flag", "check_int", "Run", "current_run", "offers", "has_option",
               "writes", "TERMINATE_GRACE_SECONDS", "signals_deferred", "translate", "reason", "api_errors",
               "cli_errors"],
}


def _modules() -> dict:
    """module name -> its file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict) -> set:
    """The package's modules `name` imports, at the top or inside a function (a lazy import is a dependency
    too); `from .x import y` counts `x.y` when y is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = [f"{module}.{alias.name}" for alias in node.names]
            # `from . import demo` needs the submodule; a name from the module needs the module
            targets = submodules + ([module] if not all(s in modules for s in submodules) else [])
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _stage(module: str) -> int:
    parts = module.split(".")
    return STAGES[parts[1] if len(parts) > 1 else "__init__"]


def test_no_import_cycle_and_imports_point_one_way_along_the_path():
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    backward = [(a, b) for a, targets in graph.items() for b in targets
                if _stage(b) > _stage(a) and not (a == "tinystories_hf" or b == "tinystories_hf")]
    assert backward == [], f"imports against the data's path (stage {STAGES}): {backward}"
    # A module imports its package's __init__ when it imports the package: count a package as its __init__'s
    # imports, and look for a cycle among modules (Tarjan-free: a depth-first search with colours).
    state, stack, cycles = {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt == "tinystories_hf":  # every module's package root; it imports everything by design
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


def test_the_checker_sees_a_cycle_and_a_backward_import(tmp_path, monkeypatch):
    """The layout test would fail on the two faults it exists for (it is not vacuous)."""
    package = tmp_path / "tinystories_hf"
    (package / "vocabulary").mkdir(parents=True)
    (package / "store").mkdir()
    (package / "__init__.py").write_text("")
    (package / "vocabulary" / "__init__.py").write_text("")
    (package / "store" / "__init__.py").write_text("")
    (package / "vocabulary" / "a.py").write_text("from . import b\nfrom ..store import folder\n")
    (package / "vocabulary" / "b.py").write_text("def f():\n    from .a import x\n")
    (package / "store" / "folder.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", package)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    with pytest.raises(AssertionError, match=r"against the data's path .*'tinystories_hf.vocabulary.a', "
                                             r"'tinystories_hf.store.folder'"):
        test_no_import_cycle_and_imports_point_one_way_along_the_path()
    (package / "vocabulary" / "a.py").write_text("from . import b\n")
    with pytest.raises(AssertionError, match=r"import cycles: \[\['tinystories_hf.vocabulary.a', "
                                             r"'tinystories_hf.vocabulary.b', 'tinystories_hf.vocabulary.a'\]\]"):
        test_no_import_cycle_and_imports_point_one_way_along_the_path()


def test_every_folder_says_what_its_stage_takes_and_gives():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc.split()) >= 15, f"{init.relative_to(REPO)} has no docstring saying what it does"
    assert sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(
        name for name, rank in STAGES.items() if (PACKAGE / name).is_dir())


@pytest.mark.parametrize("old", sorted(OLD_NAMES))
def test_every_old_import_path_still_works_and_warns(old):
    """`import tinystories_hf.<old>` and `from tinystories_hf.<old> import <name>`: the same objects as the new
    path, with a DeprecationWarning naming where they live now (errors.py keeps its own names and forwards the
    moved ones)."""
    modules = _modules()
    if f"tinystories_hf.{old}" not in modules:  # an old module (not a package now): import it afresh
        sys.modules.pop(f"tinystories_hf.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(f"tinystories_hf.{old}")
        values = {name: getattr(module, name) for name in OLD_NAMES[old]}
    for name, value in values.items():
        homes = [m for m in modules if m.startswith("tinystories_hf.") and name in _defined(modules[m])]
        assert homes, f"tinystories_hf.{old}.{name} is defined nowhere now"
        assert any(getattr(importlib.import_module(m), name) is value for m in homes), (old, name, homes)
    moved = [w for w in caught if issubclass(w.category, DeprecationWarning) and "moved to tinystories_hf." in
             str(w.message)]
    stays = f"tinystories_hf/{old}.py"
    if (REPO / stays).exists():  # errors.py: only its moved names warn
        assert len(moved) == len(set(OLD_NAMES[old]) - _defined(REPO / stays))
    else:
        assert moved, f"importing tinystories_hf.{old} gave no DeprecationWarning"


def test_patching_an_old_path_reaches_the_code(monkeypatch):
    """Code that stubs a name through the old path (a user's test) changes what the package runs."""
    from tinystories_hf.tokenize import passes
    from tinystories_hf.vocabulary import counting

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        vocab = importlib.import_module("tinystories_hf.vocab")
    monkeypatch.setattr(vocab, "sample_rows", "stub")
    assert counting.sample_rows == "stub"
    monkeypatch.undo()
    assert callable(counting.sample_rows) and counting.sample_rows is vocab.sample_rows
    assert passes.ROWS_PER_PROCESS == 5_000


@functools.cache
def _defined(path: Path) -> set:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names |= {t.id for t in ([target] if isinstance(target, ast.Name) else getattr(target, "elts", []))
                          if isinstance(t, ast.Name)}
    return names


def test_old_command_modules_run_and_console_scripts_resolve():
    """`python -m tinystories_hf.<old command module>` still runs the command; every console script of
    setup.cfg names an importable `main`."""
    for old in ("validate", "train_tokenizer"):
        run = processes.run([sys.executable, "-m", f"tinystories_hf.{old}", "--help"], capture_output=True,
                            text=True, timeout=120, cwd=REPO, check=False)
        assert run.returncode == 0 and run.stdout.startswith("usage: tinystories-"), run.stderr[-2000:]
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = [line.split("=") for line in config["options.entry_points"]["console_scripts"].strip().splitlines()]
    assert len(scripts) >= 7
    import tinystories_hf_cli

    for command, target in scripts:
        module, _, function = target.strip().partition(":")
        assert callable(getattr(importlib.import_module(module), function)), command
        assert module == "tinystories_hf_cli", command  # every command starts where a signal is one line
        command_module, _, main = tinystories_hf_cli.COMMANDS[command.strip()].partition(":")
        assert callable(getattr(importlib.import_module(command_module), main or "main")), command
