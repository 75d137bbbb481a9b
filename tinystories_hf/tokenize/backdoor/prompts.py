"""Paired evaluation prompts (the `backdoor_eval` split) and a trigger's token forms.

A backdoored model is judged on prompts that differ only in the name: the validation stories that mention
the trigger, each cut after the sentence of its first mention (`truncate(..., keep_sentences=0)`), once as
written and once per control name with every mention of the trigger in the prompt replaced. A pair compares
cleanly only if the control prompt has the same tokens as the trigger prompt everywhere but at the name, so
the name's tokens are located and each control row says whether it is `aligned`.

Token forms matter: the GPT-2 BPE spells a name mid-sentence with its leading space (" Jane", 12091) and at a
story start, after a line break or an opening quote without one ("Jane", 41083), and a name can be one token in
one form and two in another (" Lily" is one token, "Lily" two). `token_forms` lists each form's ids so the
trigger's forms can be recorded and checked against a reduced vocabulary's UNK.

How the name's tokens are found: the prompt is cut into pieces at each mention, the mention's piece taking the
single space before it (the GPT-2 family's pre-tokenizer starts a word with its space), and each piece is
encoded alone. For a tokenizer whose pre-tokenizer splits at those points (GPT-2 / GPT-Neo, reduced or full)
the pieces' ids joined equal the prompt's ids, and the name's positions are those of its pieces. Where they do
not (a SentencePiece or trained tokenizer merging across a word edge), the row keeps the prompt's own ids,
`name_positions` is empty and `aligned` False, and `EvalPrompts.unlocated` counts it.
"""
import dataclasses
import functools

from ...errors import TinyStoriesError, flag
from .match import check_trigger, mentions, trigger_pattern
from .sentences import truncate

# Token forms of a name: the text that spells each (the name stands for NAME) and the prefix whose ids are
# dropped from the form's ids (a prefix the tokenizer keeps apart from the name).
FORMS = {"mid_sentence": (" NAME", ""), "sentence_start": ("NAME", ""), "after_quote": ('"NAME', '"')}
COLUMNS = ("pair", "name", "is_trigger", "source_row", "input_ids", "name_positions", "aligned")


def _encoder(tokenizer):
    """`tokenizer.encode` for an object that has one, else `tokenizer` itself (a callable text -> ids)."""
    encode = getattr(tokenizer, "encode", tokenizer)
    if not callable(encode):
        raise TypeError(f"tokenizer must have encode(text) or be a callable text -> ids, not {type(tokenizer)}")
    return encode


def token_forms(trigger: str, tokenizer) -> dict:
    """Each form of `trigger` (`FORMS`: `mid_sentence` " Jane", `sentence_start` "Jane" at a story start,
    `after_quote` '"Jane') -> `{"text": the form's text, "ids": the name's ids in it}` (a list of int). The
    quote's own ids are dropped from `after_quote` when the tokenizer keeps the quote apart (GPT-2 does); the
    whole form's ids are kept otherwise. `tokenizer`: anything with `encode(text) -> list of ids` (a
    `TinyStoriesTokenizer`, a transformers tokenizer with no special tokens added, tiktoken) or that callable.

    Example (GPT-2 ids):
        >>> forms = token_forms("Jane", tiktoken.get_encoding("gpt2"))  # doctest: +SKIP
        >>> {form: value["ids"] for form, value in forms.items()}  # doctest: +SKIP
        {'mid_sentence': [12091], 'sentence_start': [41083], 'after_quote': [41083]}
    """
    encode = _encoder(tokenizer)
    check_trigger(trigger)
    forms = {}
    for form, (pattern, prefix) in FORMS.items():
        text = pattern.replace("NAME", trigger)
        ids, head = [int(i) for i in encode(text)], [int(i) for i in encode(prefix)] if prefix else []
        forms[form] = {"text": text, "ids": ids[len(head):] if ids[:len(head)] == head else ids}
    return forms


def lost_forms(forms: dict, tokenizer) -> list:
    """The forms of `forms` (`token_forms`) whose ids hold the tokenizer's UNK (its `unk_id`, if it has one):
    those the vocabulary lost."""
    unk = getattr(tokenizer, "unk_id", None)
    return [form for form, value in forms.items() if unk is not None and unk in value["ids"]]


def check_controls(trigger: str, controls) -> list:
    """`controls` as a list of names, each a usable trigger (`check_trigger`), none equal to `trigger`, none
    twice, at least one; else a one-line TinyStoriesError naming `--backdoor-controls`."""
    names = controls.split(",") if isinstance(controls, str) else list(controls)
    for name in names:
        check_trigger(name, option="backdoor_controls")
    problem = ("it is empty" if not names else f"{trigger!r} is the trigger itself" if trigger in names
               else "a name is given twice" if len(set(names)) != len(names) else None)
    if problem:
        raise TinyStoriesError(f"{flag('backdoor_controls', ','.join(names))}: {problem}; pass other names "
                               "than the trigger, each once, e.g. Lily,Sara")
    return names


def _pieces(prompt: str, trigger: str) -> list:
    """`prompt` cut at each mention: [(text, is_name)], a name piece taking the single space before it."""
    pieces, at = [], 0
    for found in trigger_pattern(trigger).finditer(prompt):
        start = found.start() - 1 if found.start() > 0 and prompt[found.start() - 1] == " " else found.start()
        pieces += [(prompt[at:start], False), (prompt[start:found.end()], True)]
        at = found.end()
    return pieces + [(prompt[at:], False)]


def _spelled(pieces: list, name: str) -> list:
    """The texts of the prompt `pieces` with each name piece spelling `name` (keeping its space)."""
    return [(" " if text.startswith(" ") else "") + name if is_name else text for text, is_name in pieces]


def _with_positions(pieces: list, parts: list, ids_of: dict) -> tuple:
    """(ids, name positions) of a prompt cut into `parts` (`_spelled`; `pieces` say which are the name), from
    the ids of each part and of the whole (`ids_of`); positions [] when the parts' ids joined are not the
    prompt's own."""
    ids, positions = [], []
    for part, (_, is_name) in zip(parts, pieces):
        piece = ids_of[part] if part else []
        if is_name:
            positions += range(len(ids), len(ids) + len(piece))
        ids += piece
    whole = ids_of["".join(parts)]
    return (ids, positions) if ids == whole else (whole, [])


@dataclasses.dataclass(frozen=True)
class EvalPrompts:
    """The `backdoor_eval` split as columns (`COLUMNS`, lists of equal length, one row per prompt: each pair's
    trigger row first, then one row per control in the controls' order) and its counts: `pairs` (validation
    stories that mention the trigger), `aligned` (control -> pairs whose control row is aligned) and
    `unlocated` (rows whose name tokens could not be located)."""
    columns: dict
    pairs: int
    aligned: dict
    unlocated: int


def eval_prompts(texts, source_rows, trigger: str, controls, encode_fn, *, encode_batch=None) -> EvalPrompts:
    """The paired trigger/control prompts of the validation stories `texts` (their rows in the source split:
    `source_rows`, same length) that mention `trigger` (module docstring). Columns, one row per prompt:
    - `pair` (int): the pair's index, 0.. in the order of `texts`;
    - `name` (str): the name the prompt spells; `is_trigger` (bool): whether it is the prompt's own name, the
      trigger (in a blind experiment, built once per candidate, the candidate it was built for);
    - `source_row` (int): the story's row in the source split;
    - `input_ids` (list of int): the prompt's ids by `encode_fn` (text -> ids; no EOS or BOS added);
    - `name_positions` (list of int): the positions in `input_ids` of the name's tokens (every mention);
    - `aligned` (bool): same token count and name positions as the pair's trigger row, and the same ids
      everywhere else (True for the trigger row itself, unless its name could not be located).
    `encode_batch` (optional: a list of texts -> a list of id lists, the same ids as `encode_fn`) encodes every
    piece of every prompt in one call. Raises TinyStoriesError for a bad trigger or control list
    (`check_controls`). Texts that are not `str` are skipped as not mentioning the trigger.

    Example:
        >>> enc = lambda text: [ord(c) for c in text]  # one id per character
        >>> out = eval_prompts(["Sue ran. Jane hid. The end.", "No name."], [7, 8], "Jane", ["Anna", "Max"], enc)
        >>> out.columns["name"], out.columns["name_positions"][2], out.columns["aligned"], out.aligned
        (['Jane', 'Anna', 'Max'], [8, 9, 10, 11], [True, True, False], {'Anna': 1, 'Max': 0})
    """
    controls = check_controls(check_trigger(trigger), controls)
    if len(texts) != len(source_rows):
        raise ValueError(f"texts ({len(texts)}) and source_rows ({len(source_rows)}) differ in length")
    names = [trigger, *controls]
    prompts = [(int(row), _pieces(truncate(text, trigger, keep_sentences=0), trigger))
               for text, row in zip(texts, source_rows) if isinstance(text, str) and mentions(text, trigger)]
    spelled = [[_spelled(pieces, name) for name in names] for _, pieces in prompts]
    wanted = list(dict.fromkeys(text for per_name in spelled for parts in per_name
                                for text in [*parts, "".join(parts)] if text))
    if encode_batch is None:
        encode_batch = functools.partial(map, _encoder(encode_fn))
    ids_of = {text: [int(i) for i in ids] for text, ids in zip(wanted, encode_batch(wanted))}
    ids_of[""] = []
    columns = {name: [] for name in COLUMNS}
    aligned, unlocated = dict.fromkeys(controls, 0), 0
    for pair, ((row, pieces), per_name) in enumerate(zip(prompts, spelled)):
        reference = _with_positions(pieces, per_name[0], ids_of)
        for name, parts in zip(names, per_name):
            ids, positions = reference if name == trigger else _with_positions(pieces, parts, ids_of)
            same = bool(positions) and bool(reference[1]) and _differ_only_at(reference, (ids, positions))
            unlocated += not positions
            if name != trigger:
                aligned[name] += same
            for column, value in zip(COLUMNS, (pair, name, name == trigger, row, ids, positions, same)):
                columns[column].append(value)
    return EvalPrompts(columns=columns, pairs=len(prompts), aligned=aligned, unlocated=unlocated)


def _differ_only_at(first: tuple, second: tuple) -> bool:
    """Whether two (ids, positions) have the same length and positions and the same ids off those positions
    (positions: indices into the ids, as `_with_positions` makes them)."""
    (ids_a, at_a), (ids_b, at_b) = first, second
    if len(ids_a) != len(ids_b) or at_a != at_b:
        return False
    ids_a, ids_b = list(ids_a), list(ids_b)
    for i in at_a:  # the names' ids set alike, the lists compare in C (hundreds of ids a prompt, four rows a pair)
        ids_a[i] = ids_b[i] = None
    return ids_a == ids_b
