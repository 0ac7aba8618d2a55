"""Property tests of name normalisation and id encoding (hypothesis, kept small)."""

from __future__ import annotations

from itertools import pairwise

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.preprocess import encode, normalise_name

NAMES = st.lists(st.text(max_size=40), min_size=1, max_size=20)
FAST = settings(max_examples=150, deadline=None)
# Unicode White_Space (what Polars' strip_chars and regex \s use; Python's str.strip also
# strips the separators \x1c-\x1f, which are not White_Space)
WHITE_SPACE = set("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}


def _normalise(names: list[str | None]) -> list[str | None]:
    frame = pl.DataFrame({"name": names}, schema={"name": pl.String})
    return frame.select(normalise_name(pl.col("name")))["name"].to_list()


@FAST
@given(st.lists(st.one_of(st.none(), st.text()), min_size=1, max_size=20))
def test_any_unicode_name_normalises_without_error(names: list[str | None]) -> None:
    out = _normalise(names)
    assert len(out) == len(names)
    assert [o is None for o in out] == [n is None for n in names]
    for key in out:
        if key:
            assert key[0] not in WHITE_SPACE
            assert key[-1] not in WHITE_SPACE
            assert not any(a in WHITE_SPACE and b in WHITE_SPACE for a, b in pairwise(key))


@FAST
@given(NAMES)
def test_normalisation_is_idempotent(names: list[str]) -> None:
    once = _normalise(names)
    assert _normalise(once) == once


@FAST
@given(NAMES, st.randoms(use_true_random=False))
def test_canonical_ids_are_stable_under_row_order(names: list[str], rnd: object) -> None:
    shuffled = names.copy()
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]

    def ids(values: list[str]) -> dict[str, int]:
        frame = pl.LazyFrame({"key": _normalise(values)})  # type: ignore[arg-type]
        out = encode(frame, key="key", index="idx").collect()
        return dict(zip(out["key"].to_list(), out["idx"].to_list(), strict=True))

    assert ids(names) == ids(shuffled)
