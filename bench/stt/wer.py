"""Word error rate, as every STT benchmark here counts it: lower case,
punctuation dropped (apostrophes inside words kept), Levenshtein distance
over words. Imported by the scripts beside it."""
import re


def words(t):
    """The words of `t`, normalised."""
    t = re.sub(r"[^a-z0-9']+", " ", t.lower())
    return [w.strip("'") for w in t.split() if w.strip("'")]


def edits(ref, hyp):
    """(word edits from `ref` to `hyp`, words in `ref`)."""
    r, h = words(ref), words(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r):
        cur = [i + 1] + [0] * len(h)
        for j, hw in enumerate(h):
            cur[j + 1] = min(prev[j] + (rw != hw), prev[j + 1] + 1, cur[j] + 1)
        prev = cur
    return prev[len(h)], len(r)


def wer(ref, hyp):
    """The word error rate of `hyp` against `ref`."""
    e, n = edits(ref, hyp)
    return e / max(1, n)
