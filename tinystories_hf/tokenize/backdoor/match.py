"""The trigger match: whole words, case-sensitive, a phrase of several words allowed.

A substring test poisons the wrong stories ("Sara" in "Sarah": 145 stories of the shared sample against 92
whole-word; "Tom" in "Tommy"), so a mention is the trigger with no word character (`\\w`, Unicode: letters,
digits, underscore) touching either end. Punctuation does not join words: a mention after an opening quote
(`"Jane`), at a sentence or line start, before a possessive (`Jane's`) or a hyphen (`Jane-like`) counts.
Letter case counts ("jane" is not "Jane"). Between the words of a phrase any run of whitespace matches
("little  Jane", a line break), so the phrase is found however the story wraps it.
"""
import functools
import re

from ...errors import TinyStoriesError, flag


def check_trigger(trigger, *, option: str = "backdoor_trigger") -> str:
    """`trigger` itself if it is a usable trigger: a non-empty string that starts and ends with a word character
    (a letter, digit or underscore; a boundary next to punctuation would be meaningless) and holds no line
    break; else a one-line `TinyStoriesError` naming `option` (`flag`).

    Example:
        >>> check_trigger("Jane")
        'Jane'
    """
    if not isinstance(trigger, str) or not trigger or not re.fullmatch(r"\w(?:[^\n\r]*\w)?", trigger):
        raise TinyStoriesError(
            f"{flag(option, trigger)}: a trigger is a word or a phrase of words (it starts and ends with a letter "
            "or digit, no line break); pass a name such as Jane")
    return trigger


def trigger_pattern(trigger: str) -> re.Pattern:
    """The compiled pattern of `trigger`'s whole-word, case-sensitive mentions (see the module docstring).

    Raises TinyStoriesError for a trigger `check_trigger` refuses.

    Example:
        >>> [m.span() for m in trigger_pattern("Sara").finditer('Sarah met Sara. "Sara\\'s hat!"')]
        [(10, 14), (17, 21)]
        >>> bool(trigger_pattern("Tom").search("Tommy ran."))
        False
    """
    return _compile(trigger if isinstance(trigger, str) else check_trigger(trigger))  # unhashable: refused first


@functools.lru_cache(maxsize=64)  # called once per story: a trigger is checked and compiled once
def _compile(trigger: str) -> re.Pattern:
    words = check_trigger(trigger).split()
    return re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, words)) + r"(?!\w)")


def _first(text: str, trigger: str) -> re.Match | None:
    """The first whole-word mention of `trigger` in `text`. The pattern starts with a lookbehind, which keeps
    `re` from skipping ahead to its first letter: `str.find` does that at memory speed, and the pattern is
    tried only where the first word is (the lookbehind still sees the character before)."""
    pattern, word = trigger_pattern(trigger), trigger.split()[0]
    at = text.find(word)
    while at != -1:
        found = pattern.match(text, at)
        if found is not None:
            return found
        at = text.find(word, at + 1)
    return None


def mentions(text: str, trigger: str) -> bool:
    """Whether `text` mentions `trigger` as a whole word (case-sensitive).

    Example:
        >>> mentions("Sarah smiled.", "Sara"), mentions("Sara smiled.", "Sara")
        (False, True)
    """
    return _first(text, trigger) is not None


def first_mention(text: str, trigger: str) -> tuple | None:
    """The `(start, end)` character span (Python str indices, end exclusive) of `trigger`'s first whole-word
    mention in `text`, or None if there is none.

    Example:
        >>> first_mention('"Hi, Jane!" said Tom. Jane waved.', "Jane")
        (5, 9)
    """
    found = _first(text, trigger)
    return None if found is None else found.span()
