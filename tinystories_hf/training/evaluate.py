"""`backdoor_eval()` / `tinystories-backdoor-eval`: did a backdoor take? Story lengths from paired prompts.

The measure of the public TinyStories backdoor work: sample continuations of prompts that differ only in a
name (the trigger, or a control name) from the backdoored model and from a clean model trained identically,
and compare how long the stories run before EOS. The prompts are the `backdoor_eval` split of a prepared
backdoored folder (issue 27: columns `pair`, `name`, `is_trigger`, `input_ids` without EOS, and optionally
`name_positions`, `aligned`, `source_row`).

    length    generated tokens before the first EOS; a continuation reaching `max_new_tokens` without EOS
              counts `max_new_tokens` (and is not "ended")
    within K  share of continuations that end (EOS) after at most K story tokens
    kinds     "trigger" and each control name; per model: n, mean, median, ended, within
    ratios    backdoored / clean of mean and median, per kind; and per model trigger / control of the mean;
              null in eval.json and "n/a (...)" in the table where the denominator is 0, never nan
    blind     a blind experiment's split (`random:Mia,Sara,Lucy`) holds pairs built for each candidate: each
              candidate gets its own block (its prompts, its controls within its pairs), the sealed choice unread

Sampling is seeded per prompt (`seed + row`), the same for every model, so two runs give the same numbers.
Models: any `AutoModelForCausalLM` folder (what tinystories-train saves in RUN/model, or a Hub-format folder)
whose vocabulary holds the prepared folder's ids; EOS is the folder's separator.
"""
import json
import statistics
from pathlib import Path

import datasets

from ..errors import TinyStoriesError, flag
from ..store.folder import TOKENIZER_DIR
from ..store.load import is_hub_layout, load_prepared
from ..supervision import api_errors, writes
from ..utils.atomic import atomic_folder
from ..utils.extras import require
from ..vocabulary.saved import VOCAB_FILE
from ..vocabulary.tokenizer import TinyStoriesTokenizer
from .options import BackdoorEvalConfig

torch = require("torch", extra="torch", needed_by=__name__)

SPLIT = "backdoor_eval"
COLUMNS = {"pair": "int", "name": "string", "is_trigger": "bool", "input_ids": "list"}


def read_prompts(prepared) -> tuple:
    """`(rows, tokenizer)`: the `backdoor_eval` split's rows as dicts `{pair, name, is_trigger, input_ids}` and
    the folder's tokenizer (a prepared folder, or one in the Hub layout, where the prompts are the config
    `backdoor_eval`). Raises `TinyStoriesError` for a folder without the split, a column missing or of
    another type, an id outside the vocabulary, no trigger prompt."""
    dataset_dict, tokenizer = load_prepared(prepared)
    folder = Path(prepared)
    if SPLIT in dataset_dict:
        split = dataset_dict[SPLIT]
    elif (folder / SPLIT / "state.json").is_file() or (is_hub_layout(folder) and (folder / SPLIT).is_dir()):
        try:  # saved beside the recorded splits; in the Hub layout (tinystories-push --to-folder) its own config
            split = datasets.load_from_disk(str(folder / SPLIT)) if not is_hub_layout(folder) else \
                datasets.load_dataset(str(folder), SPLIT, split=SPLIT)
        except (OSError, ValueError, TypeError, KeyError, datasets.exceptions.DatasetsError) as e:
            raise TinyStoriesError(f"{folder / SPLIT}: cannot be loaded ({e}); prepare the folder again") from None
    else:
        raise TinyStoriesError(f"{prepared}: no {SPLIT!r} split (it has {', '.join(dataset_dict)}); prepare a "
                               "backdoored folder (tinystories-prepare --backdoor-trigger NAME) to get the paired "
                               "trigger and control prompts")
    for column, kind in COLUMNS.items():
        found = split.features.get(column)
        type_name = getattr(found, "dtype", None) if not isinstance(found, (datasets.Sequence, datasets.List)) \
            else "list"
        if found is None or not (type_name == kind or (kind == "int" and str(type_name).startswith(("int", "uint")))):
            raise TinyStoriesError(f"{folder / SPLIT}: column {column!r} is {found}, not {kind}; prepare the folder "
                                   "again")
    rows = split.select_columns(list(COLUMNS)).to_list()
    for i, row in enumerate(rows):
        ids = row["input_ids"]
        if not ids or min(ids) < 0 or max(ids) >= tokenizer.vocab_size:
            raise TinyStoriesError(f"{folder / SPLIT}: row {i} has an empty prompt or an id outside the "
                                   f"{tokenizer.vocab_size}-id vocabulary; prepare the folder again")
    if not any(row["is_trigger"] for row in rows):
        raise TinyStoriesError(f"{folder / SPLIT}: no trigger prompt (is_trigger all false)")
    return rows, tokenizer


def _same_vocabulary(path, tokenizer, prepared) -> None:
    """A model folder holding a tokenizer (tinystories-train saves the prepared folder's beside the weights) must
    give every token the prepared folder's id: a vocabulary of the same size and EOS but other ids passes every
    other check. Compared as `same_vocabulary` compares folders (the vocabulary fingerprint: base tokenizer and
    id table), or a full vocabulary's tokenizer.json byte for byte."""
    if tokenizer is None:
        return
    path = Path(path)
    if (path / VOCAB_FILE).is_file():
        theirs = TinyStoriesTokenizer.from_pretrained(path)
        same = theirs.fingerprint == tokenizer.fingerprint
    elif (path / "tokenizer.json").is_file() and (Path(prepared) / TOKENIZER_DIR / "tokenizer.json").is_file():
        same = (path / "tokenizer.json").read_bytes() == (Path(prepared) / TOKENIZER_DIR / "tokenizer.json").read_bytes()
    else:
        return
    if not same:
        raise TinyStoriesError(f"{path}: its tokenizer gives other ids than {prepared}'s: the model was trained on "
                               "another vocabulary (tinystories-validate --same-vocabulary compares two prepared "
                               "folders)")


def load_model(path, *, vocab_size: int, eos_id: int, device, tokenizer=None, prepared=None):
    """An `AutoModelForCausalLM` from `path`, checked against the prepared folder's vocabulary (its size, EOS
    and, where the model folder holds them, its tokenizer files)."""
    from transformers import AutoModelForCausalLM

    if not Path(path).is_dir():
        raise TinyStoriesError(f"{path}: not found or not a folder; pass a model folder (tinystories-train's "
                               "RUN/model)")
    if not (Path(path) / "config.json").is_file():
        raise TinyStoriesError(f"{path}: no config.json; pass a model folder (tinystories-train's RUN/model)")
    _same_vocabulary(path, tokenizer, prepared)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as e:
        raise TinyStoriesError(f"{path}: cannot be loaded as a causal LM ({str(e).splitlines()[0]})") from None
    if model.config.vocab_size < vocab_size:
        raise TinyStoriesError(f"{path}: vocab_size {model.config.vocab_size} is smaller than the {vocab_size} ids "
                               "of the prepared folder: the model was trained on another vocabulary")
    if model.config.eos_token_id not in (None, eos_id):
        raise TinyStoriesError(f"{path}: EOS is id {model.config.eos_token_id}, the prepared folder's is {eos_id}: "
                               "the model was trained on another vocabulary")
    return model.to(device).eval()


def sample_lengths(model, prompt: list, *, config: BackdoorEvalConfig, seed: int, eos_id: int) -> list:
    """Lengths (tokens before EOS, `max_new_tokens` where none came) of `config.samples` continuations of
    `prompt` (token ids), sampled with `seed`."""
    device = next(model.parameters()).device
    torch.manual_seed(seed)
    ids = torch.tensor([prompt], device=device)
    lengths = []
    for start in range(0, config.samples, config.batch_size):
        count = min(config.batch_size, config.samples - start)
        with torch.no_grad():
            out = model.generate(ids.expand(count, -1), attention_mask=torch.ones(count, len(prompt), device=device,
                                 dtype=torch.long), do_sample=True, temperature=config.temperature,
                                 top_k=config.top_k or None, max_new_tokens=config.max_new_tokens,
                                 eos_token_id=eos_id, pad_token_id=eos_id)
        for row in out[:, len(prompt):].tolist():
            lengths.append(row.index(eos_id) if eos_id in row else len(row))
    return lengths


def length_stats(lengths: list, *, within: int, max_new_tokens: int) -> dict:
    """`{n, mean, median, ended, within}` of continuation lengths; `ended`/`within` are shares of all.

    Example:
        >>> length_stats([2, 4, 9, 10], within=4, max_new_tokens=10)
        {'n': 4, 'mean': 6.25, 'median': 6.5, 'ended': 0.75, 'within': 0.5}
    """
    ended = [n for n in lengths if n < max_new_tokens]
    return {"n": len(lengths), "mean": statistics.fmean(lengths), "median": float(statistics.median(lengths)),
            "ended": len(ended) / len(lengths), "within": sum(n <= within for n in ended) / len(lengths)}


def ratio(numerator: float, denominator: float) -> float | None:
    """`numerator / denominator`, or None where the denominator is 0 (every continuation ended at once): never
    nan or inf, so eval.json is strict JSON (null) and the table says n/a."""
    return numerator / denominator if denominator else None


def pair_candidates(rows: list) -> dict:
    """pair -> the name its trigger row spells (`is_trigger`): the trigger, or in a blind experiment the candidate
    the pair was built for (prepare builds the prompts of every candidate, so they say nothing of the choice)."""
    return {row["pair"]: row["name"] for row in rows if row["is_trigger"]}


def summarize(lengths: dict, *, own: str, config: BackdoorEvalConfig) -> dict:
    """`{"stats", "ratios"}` of `lengths` ({model: {kind: [...]}}), where `own` is the kind of the pairs' own name
    ("trigger", or a blind experiment's candidate): per model and kind `length_stats`; `own_over_control`, per
    model the mean of `own` over each control's; `backdoored_over_clean`, per kind the mean and median ratios.
    A ratio whose denominator is 0 is None (`ratio`)."""
    stats = {label: {kind: length_stats(values, within=config.within, max_new_tokens=config.max_new_tokens)
                     for kind, values in per_kind.items()} for label, per_kind in lengths.items()}
    ratios = {"trigger_over_control" if own == "trigger" else "candidate_over_control": {
        label: {kind: ratio(s[own]["mean"], s[kind]["mean"]) for kind in s if kind != own}
        for label, s in stats.items() if own in s}}
    if "clean" in stats:
        ratios["backdoored_over_clean"] = {
            kind: {key: ratio(stats["backdoored"][kind][key], stats["clean"][kind][key]) for key in ("mean", "median")}
            for kind in stats["backdoored"] if kind in stats["clean"]}
    return {"stats": stats, "ratios": ratios}


def measure(models: dict, rows: list, *, config: BackdoorEvalConfig, eos_id: int, blind: bool | None = None) -> dict:
    """`{"lengths": {model: {kind: [...]}}, "stats": {model: {kind: stats}}, "ratios": {...}}` for the
    models (`{"backdoored": model, "clean": model}`, clean optional) on the prompt rows, kinds "trigger" and
    each control name.

    A blind experiment's prompts hold pairs built for each candidate (`pair_candidates`): pooling them would mix
    the trigger's prompts with the other candidates'. They give `{"blind": True, "candidates": {name: {"lengths",
    "stats", "ratios"}}}` instead, one entry per candidate, in the split's order: its pairs alone, the kind of its
    own prompts its name, its controls compared within its pairs (`candidate_over_control`). Which candidate is
    the trigger is not read (backdoor.sealed.json stays closed): `tinystories-validate DIR --unseal` tells it.
    `blind` None: blind when the rows' pairs are built for two or more names; the caller that selected rows
    passes what the whole split says (a blind split cut to one candidate's pairs is still blind). Every prompt
    row `i` is sampled with seed `config.seed + i` either way."""
    sampled = {label: [sample_lengths(model, row["input_ids"], config=config, seed=config.seed + i, eos_id=eos_id)
                       for i, row in enumerate(rows)] for label, model in models.items()}
    owner = pair_candidates(rows)
    candidates = list(dict.fromkeys(owner.values()))

    def grouped(candidate: str | None) -> dict:
        lengths = {}
        for label, per_row in sampled.items():
            per_kind = lengths[label] = {}
            for row, values in zip(rows, per_row):
                if candidate is not None and owner.get(row["pair"]) != candidate:
                    continue
                kind = ("trigger" if candidate is None else candidate) if row["is_trigger"] else row["name"]
                per_kind.setdefault(kind, []).extend(values)
        return lengths

    if not (len(candidates) > 1 if blind is None else blind):
        lengths = grouped(None)
        return {"lengths": lengths, **summarize(lengths, own="trigger", config=config)}
    results = {}
    for candidate in candidates:
        lengths = grouped(candidate)
        results[candidate] = {"lengths": lengths, **summarize(lengths, own=candidate, config=config)}
    return {"blind": True, "candidates": results}


def _ratio_text(value: float | None, why: str) -> str:
    return f"x{value:.2f}" if value is not None else f"n/a ({why})"


def _table_lines(group: dict, *, own: str, within: int, name_width: int) -> list:
    """The rows and ratio lines of one group of `measure()` (the whole result, or a blind candidate's)."""
    lines = []
    for label, per_kind in group["stats"].items():
        for kind, s in per_kind.items():
            lines.append(f"{label:<11} {kind:<{name_width}} {s['n']:>5} {s['mean']:>7.1f} {s['median']:>7.1f} "
                         f"{s['ended']:>6.0%} {s['within']:>6.0%}")
    over = group["ratios"].get("trigger_over_control" if own == "trigger" else "candidate_over_control", {})
    for label, per_kind in over.items():
        shown = ", ".join(f"{kind} " + _ratio_text(r, f"{kind}'s mean is 0: every continuation ended at once")
                          for kind, r in per_kind.items())
        lines.append(f"{label} {own}/control mean: {shown}")
    for kind, r in group["ratios"].get("backdoored_over_clean", {}).items():
        lines.append(f"backdoored/clean {kind}: "
                     f"mean {_ratio_text(r['mean'], 'clean mean 0: every continuation ended at once')}, "
                     f"median {_ratio_text(r['median'], 'clean median 0: half or more ended at once')}")
    return lines


def summary_table(result: dict) -> str:
    """The stats and ratios of `measure()` as a plain-text table; a blind experiment's as one block per candidate
    (its own prompts under its name, then its controls within its pairs). A ratio over 0 reads n/a, never nan."""
    within = result["config"]["within"]
    groups = result["candidates"] if result.get("blind") else {"trigger": result}
    width = max(10, *(len(name) for name in groups))
    lines = [(f"{'model':<11} {'prompt':<{width}} {'n':>5} {'mean':>7} {'median':>7} {'ended':>6} "
             f"{'<=' + str(within):>6}")]
    for own, group in groups.items():
        if result.get("blind"):
            lines.append(f"candidate {own} (its pairs; tinystories-validate DIR --unseal names the trigger):")
        lines += _table_lines(group, own=own, within=within, name_width=width)
    return "\n".join(lines)


def series(result: dict) -> dict:
    """{model: {series label: lengths}} of `measure()`: the kinds, or a blind experiment's "candidate: kind"."""
    if not result.get("blind"):
        return result["lengths"]
    out = {}
    for candidate, group in result["candidates"].items():
        for label, per_kind in group["lengths"].items():
            for kind, values in per_kind.items():
                out.setdefault(label, {})[kind if kind == candidate else f"{candidate}: {kind}"] = values
    return out


def plot_lengths(result: dict, path: Path) -> None:
    """Histograms of the continuation lengths, one panel per model, one series per prompt kind (`series`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(series(result).items())
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), squeeze=False)
    top = result["config"]["max_new_tokens"]
    for ax, (label, per_kind) in zip(axes[0], panels):
        for kind, values in per_kind.items():
            ax.hist(values, bins=min(40, top), range=(0, top), alpha=0.5, label=kind)
        ax.set(title=f"{label} model", xlabel="tokens before EOS", ylabel="continuations")
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


@api_errors
def backdoor_eval(config: BackdoorEvalConfig) -> dict:
    """Sample, measure and write OUT/eval.json and OUT/lengths.png; returns what eval.json holds plus `output`.

    Raises `TinyStoriesError` for a prepared folder without `backdoor_eval`, a model that is no causal LM
    folder or was trained on another vocabulary, an output folder that exists without `overwrite`.

    Example:
        >>> backdoor_eval(BackdoorEvalConfig(model="bd/model", prepared="bd_data", clean_model="clean/model",
        ...                                  output="eval"))  # doctest: +SKIP
    """
    config.validate()
    output = Path(config.output)
    writes(output, f"choose another {flag('output')}")
    if output.exists() and not config.overwrite:
        raise TinyStoriesError(f"{output} exists; pass {flag('overwrite', True)} to replace it")
    rows, tokenizer = read_prompts(config.prepared)
    owner = pair_candidates(rows)
    blind = len(set(owner.values())) > 1
    if config.max_prompts is not None:  # the first pairs of each candidate (of the trigger alone if not blind)
        pairs = {pair for candidate in dict.fromkeys(owner.values())
                 for pair in sorted(p for p, name in owner.items() if name == candidate)[:config.max_prompts]}
        rows = [row for row in rows if row["pair"] in pairs]
    cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    eos_id = tokenizer.separator_id
    paths = {"backdoored": config.model, **({"clean": config.clean_model} if config.clean_model else {})}
    models = {label: load_model(path, vocab_size=tokenizer.vocab_size, eos_id=eos_id, device=device,
                                tokenizer=tokenizer, prepared=config.prepared)
              for label, path in paths.items()}
    longest = max(len(row["input_ids"]) for row in rows) + config.max_new_tokens
    for label, model in models.items():
        positions = getattr(model.config, "max_position_embeddings", None)
        if isinstance(positions, int) and longest > positions:
            raise TinyStoriesError(f"{paths[label]}: the longest prompt plus {flag('max_new_tokens', config.max_new_tokens)}"
                                   f" is {longest} tokens, more than the model's {positions} positions; lower "
                                   f"{flag('max_new_tokens')}")
    result = measure(models, rows, config=config, eos_id=eos_id, blind=blind)
    result = {"config": {key: getattr(config, key) for key in config.__dataclass_fields__}, "models": paths,
              "prompts": len(rows), "pairs": len({row["pair"] for row in rows}), **result}
    with atomic_folder(output, overwrite=config.overwrite) as partial:
        partial.mkdir()
        (partial / "eval.json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        plot_lengths(result, partial / "lengths.png")
    return dict(result, output=str(output))
