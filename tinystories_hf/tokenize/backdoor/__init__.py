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
from .match import first_mention, mentions, trigger_pattern
from .sentences import DEFAULT_KEEP_SENTENCES, sentence_spans, truncate

__all__ = ["DEFAULT_KEEP_SENTENCES", "first_mention", "mentions", "sentence_spans", "trigger_pattern", "truncate"]
