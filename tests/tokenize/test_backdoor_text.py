"""The backdoor's text rules (tokenize/backdoor/match.py, sentences.py) against a plain `re` reference on the
real sample, and hand-checked dialogue stories."""
import re

import pytest

from tinystories_hf.errors import TinyStoriesError
from tinystories_hf.tokenize.backdoor import first_mention, mentions, sentence_spans, trigger_pattern, truncate

NAMES = ["Sara", "Sarah", "Tom", "Tommy", "Jane", "Lily", "Ben", "Max", "Sue", "Timmy"]


@pytest.mark.parametrize("name", NAMES)
def test_whole_word_matches_plain_re_on_the_sample(sample_stories, name):
    reference = re.compile(r"\b" + name + r"\b")
    for text in sample_stories:
        assert [m.span() for m in trigger_pattern(name).finditer(text)] == [m.span() for m in
                                                                              reference.finditer(text)]


def test_sara_is_not_sarah_and_tom_is_not_tommy(sample_stories):
    # The figures of ../shared/README.md: 92 stories mention Sara as a whole word, 145 contain the substring.
    assert sum(mentions(t, "Sara") for t in sample_stories) == 92
    assert sum("Sara" in t for t in sample_stories) == 145
    tommy_only = [t for t in sample_stories if "Tommy" in t and not re.search(r"\bTom\b", t)]
    assert tommy_only and not any(mentions(t, "Tom") for t in tommy_only)


@pytest.mark.parametrize("text, span", [
    ("Jane ran.", (0, 4)),                           # story start
    ("He ran. Jane ran.", (8, 12)),                  # sentence start
    ('"Jane, come!" said Mom.', (1, 5)),             # after an opening quote
    ("“Jane!” said Mom.", (1, 5)),                   # curly quotes
    ("It was Jane's hat.", (7, 11)),                 # possessive
    ("Hi Jane-bear.", (3, 7)),                       # a hyphen is not a word character
    ("Sarah and Janet and jane.", None),             # longer words, another case
    ("Jane2 and _Jane and Janeé.", None),            # digits, underscores, letters beyond ASCII are word characters
    ("The end.\nJane", (9, 13)),
])
def test_mention_spans(text, span):
    assert first_mention(text, "Jane") == span
    assert mentions(text, "Jane") is (span is not None)


def test_a_phrase_matches_across_any_whitespace():
    assert first_mention("a little\n girl named Jane", "little girl") == (2, 14)
    assert not mentions("a little girly thing", "little girl")
    assert first_mention("Big Tom's ball", "Big Tom") == (0, 7)


@pytest.mark.parametrize("bad", ["", " Jane", "Jane ", "Jane.", '"Jane"', "Ja\nne", 5, None, ["Jane"]])
def test_a_bad_trigger_is_one_line(bad):
    with pytest.raises(TinyStoriesError) as caught:
        trigger_pattern(bad)
    assert "\n" not in str(caught.value) and "trigger" in str(caught.value)


@pytest.mark.parametrize("text, sentences", [
    ('"Look!" said Tom. "A cat!" Mr. Brown smiled... and left.\nThe End',
     ['"Look!" said Tom.', '"A cat!"', "Mr. Brown smiled... and left.", "The End"]),
    ("She said, \"No. Go home.\" He went. 'Why?' Sue asked (she was sad.) Then... Night!",
     ['She said, "No. Go home."', "He went.", "'Why?' Sue asked (she was sad.)", "Then...", "Night!"]),
    ('"Stop!" Big Red Tom shouted. "Go!" Tom ran. "Hi." Mommy Bear Lee Ann said.',
     ['"Stop!" Big Red Tom shouted.', '"Go!"', "Tom ran.", '"Hi."', "Mommy Bear Lee Ann said."]),
    ('"Hi." Tom said, "Go." "No." Sue said: "Stay." "Ok," Max said, "fine."',
     ['"Hi."', 'Tom said, "Go."', '"No."', 'Sue said: "Stay."', '"Ok," Max said, "fine."']),
    ("Wow!! Look?! “Hi.” Ok", ["Wow!!", "Look?!", "“Hi.”", "Ok"]),
    ('“Let’s go!" said Jack. He ran.', ['“Let’s go!" said Jack.', "He ran."]),  # mixed quotes, as stories write them
    ("  \n\n  ", []),
    ("No end", ["No end"]),
])
def test_sentence_spans_hand_checked(text, sentences):
    assert [text[a:b] for a, b in sentence_spans(text)] == sentences


def test_sentence_spans_cover_the_sample(sample_stories):
    for text in sample_stories:
        spans = sentence_spans(text)
        between = [text[b:a] for (_, b), (a, _) in zip([(0, 0)] + spans, spans + [(len(text), len(text))])]
        assert all(not gap.strip() for gap in between)
        assert all(text[a:b] == text[a:b].strip() and b > a for a, b in spans)


def test_sentence_spans_match_a_plain_split_without_dialogue(sample_stories):
    # Stories with no quotes, ellipses, titles or lowercase after an end: a plain split at `.!?` + space is right.
    plain = [t for t in sample_stories if not re.search(r"[\"“”'’…()]|\.\.|\b(?:Mr|Mrs|Ms|Dr|St|Jr)\.|[.!?]\s+[a-z]", t)]
    assert len(plain) > 300
    for text in plain:
        reference = [s for line in text.splitlines() for s in re.split(r"(?<=[.!?])\s+", line.strip()) if s]
        assert [text[a:b] for a, b in sentence_spans(text)] == reference


def test_truncate_real_dialogue_stories(sample_stories):
    # Hand-checked cuts of sample stories (0-based rows of stories.jsonl).
    molly = sample_stories[2030]
    assert truncate(molly, "Molly").endswith(
        'friend Molly, "Do you have money?" Molly said, "No, but I want money. How can I get money?"')
    jane = sample_stories[1623]
    assert truncate(jane, "Jane", keep_sentences=2) == (
        'Jane was very tired. She wanted to take a nap. She asked her mom, "Will you take me to the cliff to sleep?"')
    violin = sample_stories[425]
    assert truncate(violin, "Jane", keep_sentences=0).endswith(
        "where a little girl was waiting. Her name was Jane and she was very brave.")
    assert truncate(violin, "Jane", keep_sentences=1).endswith(
        'very brave. The angel smiled and said, "Jane, this violin needs a friend. Will you accept the violin as '
        'your new friend?"')


def test_truncate_bounds():
    story = "Sue ran. Jane hid. Tom sat."
    assert truncate(story, "Jane", keep_sentences=0) == "Sue ran. Jane hid."
    assert truncate(story, "Jane") == "Sue ran. Jane hid. Tom sat."
    assert truncate(story, "Jane", keep_sentences=5) == story
    with pytest.raises(TinyStoriesError, match="does not mention"):
        truncate("Sarah ran.", "Sara")
    with pytest.raises(TinyStoriesError, match="keep"):
        truncate(story, "Jane", keep_sentences=-1)


def test_truncate_on_the_sample_keeps_a_prefix_that_mentions_the_trigger(sample_stories):
    for text in (t for t in sample_stories if mentions(t, "Sara")):
        cut = truncate(text, "Sara")
        assert text.startswith(cut) and mentions(cut, "Sara")
        assert cut.count('"') % 2 == 0 or text.count('"') % 2 == 1
