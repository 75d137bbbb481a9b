"""Backdoor building blocks (part of stage 3, tokenize): pure functions on story texts, no I/O but `sealed.py`.

Takes story texts, a trigger (a name or phrase), control names and an encode function (text -> list of ids);
gives:
- `match`: the whole-word, case-sensitive trigger match (`trigger_pattern`, `mentions`, `first_mention`);
- `sentences`: a dialogue-aware sentence splitter (`sentence_spans`) and the built-in `truncate` rewrite;
- `prompts`: the paired trigger/control evaluation prompts of the `backdoor_eval` split (`eval_prompts`) and a
  trigger's token forms (`token_forms`);
- `names`: the corpus's names by share of stories mentioning them (`name_table`), the table a user reads to
  pick a trigger, and controls of similar share (`similar_names`);
- `sealed`: blind experiments: a secret choice among candidates, written to a sealed file (`seal`, `unseal`).
The pipeline (`pipeline.py`) applies them to the train split with `datasets.map`.
"""
from .match import check_trigger, first_mention, mentions, trigger_pattern
from .names import NameRow, name_table, names_markdown, similar_names
from .prompts import EvalPrompts, check_controls, eval_prompts, token_forms
from .sealed import SEALED_FILE, is_blind, parse_candidates, seal, unseal
from .sentences import DEFAULT_KEEP_SENTENCES, sentence_spans, truncate

__all__ = ["DEFAULT_KEEP_SENTENCES", "SEALED_FILE", "EvalPrompts", "NameRow", "check_controls", "check_trigger",
           "eval_prompts", "first_mention", "is_blind", "mentions", "name_table", "names_markdown",
           "parse_candidates", "seal", "sentence_spans", "similar_names", "token_forms", "trigger_pattern",
           "truncate", "unseal"]
