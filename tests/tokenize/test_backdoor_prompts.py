"""Paired trigger/control prompts, token forms and the names table (tokenize/backdoor/prompts.py, names.py)
against the GPT-2 ids of tiktoken, a plain `re` reference and the shares of ../shared/README.md."""
import re

import numpy as np
import pytest

from tinystories_hf.errors import TinyStoriesError
from tinystories_hf.tokenize.backdoor.names import name_table, names_markdown, similar_names
from tinystories_hf.tokenize.backdoor.prompts import check_controls, eval_prompts, token_forms
from tinystories_hf.vocabulary.gpt2 import gpt_neo_tokenizer
from tinystories_hf.vocabulary.tokenizer import TinyStoriesTokenizer


def test_token_forms_of_gpt2(tiktoken_gpt2):
    # The ids: " Jane" 12091 mid-sentence, "Jane" 41083 at a sentence start; " Lily" one token, "Lily" two.
    jane = token_forms("Jane", tiktoken_gpt2)
    assert {form: value["ids"] for form, value in jane.items()} == {
        "mid_sentence": [12091], "sentence_start": [41083], "after_quote": [41083]}
    lily = token_forms("Lily", tiktoken_gpt2.encode)
    assert len(lily["mid_sentence"]["ids"]) == 1 and len(lily["sentence_start"]["ids"]) == 2
    for name in ("Lily", "Timmy", "Big Tom"):
        for form, value in token_forms(name, tiktoken_gpt2).items():
            assert tiktoken_gpt2.decode(value["ids"]) == value["text"].lstrip('"'), (name, form)


def _reference_prompt(text: str, name: str) -> str:
    """The story up to the end of the sentence of the first mention, by plain `re` (for a story whose sentences
    end at `.!?` and closing quotes)."""
    first = re.search(r"\b" + name + r"\b", text).start()
    return text[:next(m.end() for m in re.finditer(r"""[.!?]+["']*(?=\s|$)|(?=\n)|$""", text)
                      if m.end() > first and text[:m.end()].count('"') % 2 == 0)]


def test_eval_prompts_on_the_sample(sample_stories, tiktoken_gpt2):
    controls = ["Sally", "Bob", "Lily"]
    out = eval_prompts(sample_stories, list(range(len(sample_stories))), "Sara", controls, tiktoken_gpt2.encode)
    mentioning = [i for i, text in enumerate(sample_stories) if re.search(r"\bSara\b", text)]
    assert out.pairs == len(mentioning) == 92 and out.unlocated == 0
    columns = out.columns
    assert len({len(v) for v in columns.values()}) == 1 and len(columns["pair"]) == 92 * 4
    rows = list(zip(*(columns[k] for k in ("pair", "name", "is_trigger", "source_row", "input_ids",
                                           "name_positions", "aligned"))))
    all_mid_sentence = 0
    for pair, source in enumerate(mentioning):
        trigger, *others = rows[4 * pair: 4 * pair + 4]
        assert trigger[:4] == (pair, "Sara", True, source) and trigger[6]
        prompt = tiktoken_gpt2.decode(trigger[4])
        assert sample_stories[source].startswith(prompt) and re.search(r"\bSara\b", prompt)
        assert trigger[4] == tiktoken_gpt2.encode(prompt)
        mentions = re.findall(r"\bSara\b", prompt)
        assert "".join(tiktoken_gpt2.decode([trigger[4][p]]) for p in trigger[5]).replace(" ", "") == "Sara" * len(
            mentions)
        all_mid_sentence += all(m.start() > 0 and prompt[m.start() - 1] == " "
                                for m in re.finditer(r"\bSara\b", prompt))
        for (pair_, name, is_trigger, source_, ids, positions, aligned), control in zip(others, controls):
            assert (pair_, name, is_trigger, source_) == (pair, control, False, source)
            assert ids == tiktoken_gpt2.encode(re.sub(r"\bSara\b", control, prompt))
            a, b = np.array(trigger[4]), np.array(ids)
            differ_only_at_name = len(a) == len(b) and positions == trigger[5] and set(
                np.flatnonzero(a != b)) <= set(positions)
            assert aligned == differ_only_at_name
    # Sally and Lily have Sara's token counts in every form (1 mid-sentence, 2 at a start): every pair aligns.
    # Bob is one token in every form: a pair aligns exactly when every mention of the prompt is mid-sentence.
    assert out.aligned == {"Sally": 92, "Bob": all_mid_sentence, "Lily": 92}
    assert 0 < all_mid_sentence < 92


def test_eval_prompts_end_with_the_sentence_of_the_first_mention(sample_stories, tiktoken_gpt2):
    # A plain re reference on the sample's validation rows (2316..2516) for a name they hold (Lily: 76 stories).
    rows = list(range(2316, 2517))
    out = eval_prompts([sample_stories[i] for i in rows], rows, "Lily", ["Mia"], tiktoken_gpt2.encode)
    assert out.pairs == 76
    simple = 0
    for ids, source, is_trigger in zip(out.columns["input_ids"], out.columns["source_row"], out.columns["is_trigger"]):
        text = sample_stories[source]
        if is_trigger and not re.search(r"\.\.|\b(?:Mr|Mrs|Dr)\.|[.!?][\"']?\s+[a-z]|[“”]", text):
            simple += 1
            assert tiktoken_gpt2.decode(ids) == _reference_prompt(text, "Lily"), source
    assert simple > 40


def test_unlocated_names_are_counted_not_misplaced():
    # A tokenizer that merges across word edges (two characters per id): pieces do not add up to the prompt.
    pairs = lambda text: [hash(text[i:i + 2]) % 1000 for i in range(0, len(text), 2)]
    out = eval_prompts(["Sue ran. Jo hid."], [0], "Jo", ["Al"], pairs)
    assert out.columns["name_positions"] == [[], []] and out.columns["aligned"] == [False, False]
    assert out.unlocated == 2 and out.aligned == {"Al": 0}
    assert out.columns["input_ids"][0] == pairs("Sue ran. Jo hid.")


@pytest.mark.parametrize("controls, message", [
    ([], "empty"), (["Lily", "Sara"], "trigger itself"), (["Lily", "Lily"], "twice"), (["Lily", "Ann "], "trigger"),
    ("Lily,", "trigger"),
])
def test_bad_controls_are_one_line(controls, message):
    with pytest.raises(TinyStoriesError, match=message) as caught:
        check_controls("Sara", controls)
    assert "\n" not in str(caught.value) and "controls" in str(caught.value)


def test_check_controls_accepts_a_comma_list():
    assert check_controls("Sara", "Lily,Big Tom") == ["Lily", "Big Tom"]


# ../shared/README.md: names as whole words in the 5,520 stories (share of stories, one decimal).
README_SHARES = {"Lily": 14.1, "Tom": 8.7, "Ben": 5.9, "Sue": 4.6, "Max": 4.4, "Lucy": 2.8, "Timmy": 2.8,
                 "Mia": 2.5, "Sara": 1.7, "John": 1.6, "Bob": 1.6, "Sally": 1.1, "Sarah": 1.0, "Jane": 0.9}


def test_name_table_shares_match_a_plain_count(sample_stories):
    table = {row.name: row for row in name_table(sample_stories, min_stories=10)}
    for name, share in README_SHARES.items():
        stories = sum(bool(re.search(r"\b" + name + r"\b", t)) for t in sample_stories)
        assert table[name].stories == stories and round(100 * table[name].share, 1) == share, name
    assert not {"The", "Once", "One", "She", "Mom", "Mr", "I", "Tommy's"} & set(table)
    shares = [row.share for row in table.values()]
    assert shares == sorted(shares, reverse=True)


def test_name_table_counts_whole_words_at_every_edge():
    """A capital right after a letter (accented too), a digit or an underscore starts no name; a story start,
    a quote, a hyphen or a possessive leave it whole; mid-sentence means after a lowercase letter or a comma and
    one space. Counted by hand (the patterns check the character before after the capital, for speed)."""
    texts = ["Ann met Bob at noon.", "xAnn and 3Bob and _Bob ran to Cal.", "éAnn and Ann-like, Cal's hat.",
             '"Bob!" said, Ann.', "ÉDan ate.\nDan"]
    assert [(row.name, row.stories) for row in name_table(texts)] == [("Ann", 3), ("Bob", 2), ("Cal", 2)]
    for name, stories in (("Ann", 3), ("Bob", 2), ("Cal", 2), ("Dan", 1)):
        assert sum(bool(re.search(r"(?<!\w)" + name + r"(?!\w)", t)) for t in texts) == stories  # plain re agrees


def test_name_table_band_and_forms_survive_a_reduced_vocabulary(sample_stories, tiktoken_gpt2):
    counts = np.bincount(np.concatenate([tiktoken_gpt2.encode(t) for t in sample_stories]), minlength=50257)
    reduced = TinyStoriesTokenizer.from_counts(gpt_neo_tokenizer(), counts, 1000)
    band = name_table(sample_stories, tokenizer=reduced, min_share=0.008, max_share=0.02)
    assert {"Sara", "John", "Bob", "Sally", "Sarah", "Jane"} <= {row.name for row in band}
    assert all(0.008 <= row.share <= 0.02 for row in band)
    kept = set(np.argsort(-counts, kind="stable")[:998].tolist())  # the 998 most frequent GPT-2 ids (ties: lower id)
    for row in band:
        base = [tiktoken_gpt2.encode(f["text"]) for f in row.forms.values()]
        assert row.survives == all(i in kept for ids in base for i in ids if i != tiktoken_gpt2.encode('"')[0])
    assert {row.survives for row in band} == {True, False}
    text = names_markdown(band)
    assert text.count("\n") == len(band) + 2 and "| Jane |" in text


def test_similar_names_prefer_aligned_names_of_near_share(sample_stories, tiktoken_gpt2):
    table = name_table(sample_stories, tokenizer=tiktoken_gpt2, min_stories=20)
    # Jane (0.92%, one token in every form): Sarah 0.96%, Joe 0.72%, Billy 0.60% are one token in every form;
    # Sally (1.05%) is nearer but two tokens at a sentence start.
    assert similar_names("Jane", table) == ["Sarah", "Joe", "Billy"]
    assert "Sarah" not in similar_names("Sara", table, count=10)
    assert similar_names("Nobody", table, count=1) == [table[-1].name]


def test_similar_names_never_offer_a_name_the_vocabulary_lost(sample_stories, tiktoken_gpt2):
    """A 2,000-id vocabulary of the sample loses names near Jane's share (Billy: issue 27's new-user pass); however
    many controls are asked for, none is a lost name (found here from the GPT-2 ids and the kept ids alone)."""
    counts = np.bincount(np.concatenate([tiktoken_gpt2.encode(t) for t in sample_stories]), minlength=50257)
    reduced = TinyStoriesTokenizer.from_counts(gpt_neo_tokenizer(), counts, 2000)
    table = name_table(sample_stories, tokenizer=reduced, min_stories=10)
    kept = set(np.argsort(-counts, kind="stable")[:1998].tolist())
    quote = tiktoken_gpt2.encode('"')[0]

    def lost(name):  # the reference: a GPT-2 id of a form outside the kept ids
        return any(i not in kept for text in (f" {name}", name, f'"{name}') for i in tiktoken_gpt2.encode(text)
                   if i != quote)

    assert {"Billy", "Jill", "Emma"} <= {row.name for row in table if lost(row.name)}
    offered = similar_names("Jane", table, count=len(table))
    assert offered and not [name for name in offered if lost(name)]
    assert len(offered) == sum(not lost(row.name) for row in table if row.name != "Jane")


def test_split_names_samples_a_large_split(sample_stories):
    import datasets

    from tinystories_hf.tokenize.backdoor.names import split_names

    split = datasets.Dataset.from_dict({"text": sample_stories, "row": list(range(len(sample_stories)))})
    whole = {row.name: row.share for row in split_names(split, min_share=0.02)}
    sampled = split_names(split, stories=2000, min_share=0.02)
    assert sampled == split_names(split, stories=2000, min_share=0.02)  # seeded: the same rows each time
    assert sampled[0].stories <= 2000 and sampled != split_names(split, min_share=0.02)
    for row in sampled:  # 2,000 of 5,520 stories: shares within 3 points of the whole split's
        assert abs(row.share - whole.get(row.name, 0.0)) < 0.03, row.name
    assert {"Lily", "Tom", "Ben"} <= {row.name for row in sampled}
    assert split_names(split.remove_columns("text")) is None and split_names(None) is None


@pytest.mark.parametrize("vocab_size", [None, 2000])
def test_names_near_chooses_as_the_whole_table_does(sample_stories, tiktoken_gpt2, vocab_size):
    """The default controls' shortcut (the lowercase rule decided only for the names it walks past) against
    similar_names over the full name_table, for every name of the sample in 20 to 200 stories (0.4-3.6%), and names it
    lacks or drops as common words (Spot: "spot"), under GPT-2's ids and a 2,000-id vocabulary that loses names."""
    from tinystories_hf.tokenize.backdoor.names import names_near

    tokenizer = tiktoken_gpt2
    if vocab_size:
        counts = np.bincount(np.concatenate([tiktoken_gpt2.encode(t) for t in sample_stories]), minlength=50257)
        tokenizer = TinyStoriesTokenizer.from_counts(gpt_neo_tokenizer(), counts, vocab_size)
    table = name_table(sample_stories, tokenizer=tokenizer)
    triggers = [row.name for row in table if 20 <= row.stories <= 200] + ["Lily", "Spot", "Nobody", "Mom"]
    assert "Spot" not in {row.name for row in table}  # dropped by the rule on lowercase use
    for trigger in triggers:
        assert names_near(trigger, sample_stories, count=3, tokenizer=tokenizer) == \
            similar_names(trigger, table, count=3), trigger
