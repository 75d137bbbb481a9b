"""How the backdoor's sentence splitter (tokenize/backdoor/sentences.py) does on the real sample's dialogue-heavy
stories: the README's "Backdoor experiments" figures, and examples of each kind of miss to read by hand.

    python scripts/measure_sentences.py                  # the real sample in ../shared/data
    python scripts/measure_sentences.py --min-quotes 8 --examples 5

A story is dialogue-heavy with at least `--min-quotes` double quotes. Without hand labels for every sentence,
the script counts the splitter's output against patterns a reader recognises as wrong, each an upper bound
on that kind of miss (a pattern can also match a right answer):
- attribution split: a sentence with no quote that starts with up to three capitalised words and a speech
  verb, right after a sentence on the same line that is a quote alone (`"Stop!"` / `Tom sighed.`): it
  belongs to the quote;
- unclosed quote: a sentence holding an odd number of double quotes, straight or curly (a quote spanning
  paragraphs, or a typo): the quote rule then keeps the rest of the line in one sentence;
- abbreviation split: a sentence ending in a one- or two-letter word and `.` (`Mt.`, `p.m.`);
- no end: a sentence that ends without `.!?…` or a closing quote/bracket after one (a line with no end);
and, for comparison, how many sentences a plain split at `[.!?]` followed by whitespace gives.
"""
import argparse
import itertools
import json
import re
import sys
from pathlib import Path

from tinystories_hf.tokenize.backdoor import sentence_spans

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinystories-sample" / "stories.jsonl"
# Wider than the splitter's SPEECH_VERBS, so the count also finds the speech verbs it does not know (not actions
# such as "smiled" or "nodded": `"Hi." Tom smiled.` is two sentences).
SPEECH = (r"(?:said|says|asked|asks|shouted|shouts|yelled|yells|cried|cries|replied|replies|answered|answers|"
          r"whispered|whispers|called|calls|exclaimed|exclaims|laughed|laughs|added|adds|explained|explains|agreed|"
          r"agrees|giggled|giggles|screamed|screams|sang|sings|told|tells|begged|begs|sobbed|sighed|sighs|cheered|"
          r"cheers|warned|warns|suggested|suggests|responded|responds|continued|continues|insisted|insists|"
          r"declared|announced|announces|squeaked|barked|chirped|muttered|mumbled|gasped|gasps|pleaded|wondered)")
CHECKS = {
    "attribution split": lambda prev, cur: bool(re.fullmatch(r"[\"“'].*[\"”']", prev))
    and bool(re.match(r"(?:[A-Z]\w*\s){1,3}" + SPEECH + r"\b[^\"“]*$", cur)),
    "unclosed quote": lambda prev, cur: (cur.count('"') + cur.count("“") + cur.count("”")) % 2 == 1,
    "abbreviation split": lambda prev, cur: bool(re.search(r"(?<![\w'’])[A-Za-z][a-z]?\.$", cur)) and not re.search(
        r"(?<!\w)(?:I|no|so|go|me|up|on|in|it|us|do|to|be|he|we|my|at|an|by|of|is|ok|Ok|OK|hi|Hi)\.$", cur),
    "no end": lambda prev, cur: not re.search(r"[.!?…][\"'”’)\]}»]*$", cur),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=str(SAMPLE), help="a stories.jsonl (default: the real sample)")
    parser.add_argument("--min-quotes", type=int, default=6, help="double quotes that make a story dialogue-heavy")
    parser.add_argument("--examples", type=int, default=3, help="examples printed for each kind of miss")
    args = parser.parse_args(argv)
    with Path(args.source).open(encoding="utf-8") as lines:
        texts = [json.loads(line)["text"] for line in lines]
    heavy = [t for t in texts if t.count('"') + t.count("“") + t.count("”") >= args.min_quotes]
    found = {name: [] for name in CHECKS}
    sentences = plain = 0
    for text in heavy:
        spans = sentence_spans(text)
        pieces = [text[a:b] for a, b in spans]
        # A sentence after a line break starts a paragraph: a right split whatever it looks like.
        new_paragraph = [True] + ["\n" in text[b:a] for (_, b), (a, _) in itertools.pairwise(spans)]
        sentences += len(pieces)
        plain += sum(len([s for s in re.split(r"(?<=[.!?])\s+", line.strip()) if s]) for line in text.splitlines())
        for prev, cur, paragraph in zip([""] + pieces, pieces, new_paragraph):
            for name, check in CHECKS.items():
                if check(prev, cur) and not (paragraph and name == "attribution split"):
                    found[name].append((prev, cur))
    print(f"{len(heavy)} dialogue-heavy stories (>= {args.min_quotes} double quotes) of {len(texts)}; "
          f"{sentences} sentences ({plain} by a plain split at [.!?] + whitespace)")
    for name, hits in found.items():
        print(f"{name}: {len(hits)} ({100 * len(hits) / max(sentences, 1):.2f}% of sentences)")
        for prev, cur in hits[:args.examples]:
            print(f"    {prev[-60:]!r} | {cur[:100]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
