"""Without torch (the [torch] extra not installed) the package prepares, reports, validates, streams, pushes,
loads, trains tokenizers and exports; the training modules then stop at import with one line naming the extra.

Each check runs in a Python whose site-packages is a view of the test environment's without torch and
accelerate (symlinks to every other entry, .pth files included): to every import, `find_spec` and
`importlib.metadata` there, torch is simply not installed."""
import json
import sys
import sysconfig
from pathlib import Path

import processes
from conftest import REPO

HIDDEN = {"torch", "torchgen", "functorch", "torchvision", "torchaudio", "torchdata", "triton", "nvidia",
          "accelerate"}

CORE = """
import json, sys
from pathlib import Path
from tinystories_hf import TinyStoriesTokenizer, load_prepared, stream
from tinystories_hf.hub.push import main as push_main
from tinystories_hf.pipeline import main as prepare_main
from tinystories_hf.stream import main as stream_main
from tinystories_hf.store.validate import main as validate_main
from tinystories_hf.exports import main as export_main
from tinystories_hf.vocabulary.train_tokenizer import main as train_main

out = Path(sys.argv[1])
out.mkdir()
assert prepare_main(["--source", "demo", "--output", str(out / "demo"), "--vocab-size", "300", "--num-proc", "1",
                     "--report"]) == 0
assert validate_main([str(out / "demo")]) == 0
first = next(iter(stream("demo", tokenizer=str(out / "demo"))))
assert stream_main(["--source", "demo", "--tokenizer", str(out / "demo"), "--max-stories", "50"]) == 0
assert push_main([str(out / "demo"), "--to-folder", str(out / "hub")]) == 0
assert train_main(["--source", "demo", "--output", str(out / "tok"), "--vocab-size", "400", "--num-proc", "1"]) == 0
assert prepare_main(["--source", "demo", "--output", str(out / "full"), "--tokenizer", str(out / "tok"),
                     "--vocab-size", "full", "--max-length", "none", "--num-proc", "1"]) == 0
for fmt in ("nanogpt", "llama2c", "llmc", "megatron"):
    assert export_main([str(out / "full"), "--format", fmt, "--output", str(out / fmt)]) == 0
dataset, tokenizer = load_prepared(out / "hub")
loaded = TinyStoriesTokenizer.from_pretrained(out / "demo")
kept = json.loads((out / "demo" / "prepare_info.json").read_text())["splits"]["train"]["kept"]
batch = loaded(["Once upon a time", "Once"], padding=True, return_tensors="np")["attention_mask"].tolist()
try:
    loaded("Once", return_tensors="pt")
except ImportError as e:
    pt = [type(e).__name__, str(e)]
print(json.dumps({"torch_modules": sorted(m for m, v in sys.modules.items() if v is not None and
                                          m.split(".")[0] in ("torch", "accelerate")),
                  "first": first["input_ids"][:4], "encoded": loaded.encode("Once upon a time"),
                  "rows": dataset["train"].num_rows, "kept": kept, "batch": batch, "pt": pt}))
"""

TRAINING = """
import importlib, json, runpy, sys
import tinystories_hf
from tinystories_hf import MissingExtraError, TinyStoriesError, stream
star = {}
exec("from tinystories_hf import *", star)  # a machine without torch imports every public name it can use
names = {"star": sorted(n for n in star if not n.startswith("__")), "dir": dir(tinystories_hf)}
errors = {}
for name in ("TinyStoriesDataset", "TinyStoriesDatasetPacked", "PackingCollator", "gpt_neo_config",
             "TinyStoriesSampler", "open_split", "distributed_rank", "paper_configs", "parameter_count"):
    try:
        exec(f"from tinystories_hf import {name}")
    except ImportError as e:
        errors[name] = [type(e).__name__, str(e), isinstance(e, TinyStoriesError), isinstance(e, ModuleNotFoundError)]
for module in ("adapters", "collator", "models", "sampler"):
    try:
        importlib.import_module(f"tinystories_hf.training.{module}")
    except MissingExtraError as e:
        errors[module] = [type(e).__name__, str(e)]
try:
    stream("demo", pack=True)
except MissingExtraError as e:
    errors["stream(pack=True)"] = [type(e).__name__, str(e)]
scripts, helps = {}, {}
for script in ("train_smoke", "model_sizes"):
    scripts[script] = runpy.run_path(sys.argv[1] + f"/scripts/{script}.py")["main"](["--data", "nowhere"])
for script in ("train_smoke", "model_sizes", "measure_resume", "benchmark_stream"):  # --help needs no torch
    try:
        runpy.run_path(sys.argv[1] + f"/scripts/{script}.py")["main"](["--help"])
    except SystemExit as e:
        helps[script] = e.code
from tinystories_hf.training.commands import backdoor_eval_main, train_main  # --help and bad options: no torch
for name, main in (("tinystories-train", train_main), ("tinystories-backdoor-eval", backdoor_eval_main)):
    try:
        main(["--help"])
    except SystemExit as e:
        helps[name] = e.code
scripts["tinystories-train"] = train_main(["nowhere"])
scripts["tinystories-backdoor-eval"] = backdoor_eval_main(["nowhere", "--prepared", "nowhere"])
names["help"] = helps
print(json.dumps({"errors": errors, "scripts": scripts, "names": names}))
"""


def torch_free_site(tmp_path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    view = tmp_path / "site-packages"
    view.mkdir()
    for entry in site.iterdir():
        if entry.name.split("-")[0].split(".")[0].lower() not in HIDDEN:
            (view / entry.name).symlink_to(entry)
    return view


def run_python(code, *args, tmp_path):
    """Run `code` with the torch-free site-packages (-S: the real one is never added; PYTHONPATH still is)."""
    start = (f"import site; site.addsitedir({str(torch_free_site(tmp_path))!r})\n"
             "try:\n    import sitecustomize  # the tests' network guard, on PYTHONPATH\nexcept ImportError:\n    pass\n")
    run = processes.run([sys.executable, "-S", "-c", start + code, *map(str, args)], capture_output=True,
                         text=True, timeout=600, cwd=tmp_path, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def test_torch_is_really_absent_in_the_view(tmp_path):
    probe = ("import importlib.util, importlib.metadata\n"
             "print(importlib.util.find_spec('torch'), importlib.util.find_spec('accelerate'))\n"
             "print(sorted(d.metadata['Name'] for d in importlib.metadata.distributions()"
             " if d.metadata['Name'].lower() in ('torch', 'accelerate', 'datasets')))")
    assert run_python(probe, tmp_path=tmp_path).stdout.split("\n")[:2] == ["None None", "['datasets']"]


def test_core_paths_run_without_torch(tmp_path):
    run = run_python(CORE, tmp_path / "out", tmp_path=tmp_path)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    assert figures["torch_modules"] == []  # nothing imported torch or accelerate, not even partly
    assert figures["encoded"] == figures["first"][:4]  # the demo stories begin "Once upon a time"
    assert figures["rows"] == figures["kept"] > 2000
    assert figures["batch"] == [[1, 1, 1, 1], [1, 0, 0, 0]]  # the tokenizer call works, numpy tensors too
    install = 'pip install "tinystories-hf[torch]"'
    assert figures["pt"] == ["MissingExtraError", f"return_tensors='pt' needs torch, which is not installed: {install}"]
    out = tmp_path / "out"
    assert (out / "demo" / "report" / "report.md").is_file() and (out / "hub" / "README.md").is_file()
    assert (out / "nanogpt" / "train.bin").is_file() and (out / "llama2c" / "tok400" / "data01.bin").is_file()


def test_training_modules_without_torch_name_the_extra(tmp_path):
    run = run_python(TRAINING, REPO, tmp_path=tmp_path)
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    install = 'pip install "tinystories-hf[torch]"'
    training = {"TinyStoriesDataset": "adapters", "TinyStoriesDatasetPacked": "adapters", "open_split": "adapters",
                "distributed_rank": "adapters", "TinyStoriesSampler": "sampler", "PackingCollator": "collator",
                "gpt_neo_config": "models", "paper_configs": "models", "parameter_count": "models"}
    for name, module in training.items():
        kind, message, is_tinystories_error, is_module_not_found = figures["errors"][name]
        assert kind == "MissingExtraError" and is_tinystories_error and is_module_not_found
        assert message == f"tinystories_hf.training.{module} needs torch, which is not installed: {install}"
    assert set(figures["errors"]) >= {"adapters", "collator", "models", "sampler", "stream(pack=True)"}
    # `import *` gives the names that need no torch; dir() still lists the training names.
    assert figures["names"]["star"] == sorted(
        ["ExportConfig", "MissingExtraError", "PrepareConfig", "PrepareResult", "StreamConfig", "TinyStoriesError",
         "TinyStoriesTokenizer", "TrainTokenizerConfig", "export", "load_base_tokenizer", "load_prepared",
         "load_stories", "prepare", "push_prepared", "stream", "train_tokenizer", "validate_prepared",
         "write_hub_folder", "write_report"])
    assert set(training) <= set(figures["names"]["dir"])
    assert figures["names"]["help"] == {"train_smoke": 0, "model_sizes": 0, "measure_resume": 0, "benchmark_stream": 0,
                                        "tinystories-train": 0, "tinystories-backdoor-eval": 0}
    assert figures["errors"]["stream(pack=True)"][1] == f"stream(pack=True) needs torch, which is not installed: {install}"
    # The scripts print one error line naming the extra (exit code 2), no traceback.
    assert figures["scripts"] == {"train_smoke": 2, "model_sizes": 2, "tinystories-train": 2,
                                  "tinystories-backdoor-eval": 2}
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 4 and all(line.endswith(install) for line in errors)
    assert f"error: tinystories-train needs torch, which is not installed: {install}" in errors
    assert "Traceback" not in run.stderr


def test_with_torch_every_public_name_imports():
    import tinystories_hf

    star = {}
    exec("from tinystories_hf import *", star)  # noqa: S102 (a star import cannot sit in a function)
    assert {"TinyStoriesSampler", "PackingCollator", "TinyStoriesDatasetPacked", "gpt_neo_config",
            "stream", "prepare"} <= set(star)
    assert all(getattr(tinystories_hf, name) is star[name] for name in tinystories_hf.__all__)
