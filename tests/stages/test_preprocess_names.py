"""Name normalisation and canonical ids: the de-duplication rules on tricky names."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stages.preprocess import names


def _key(fn, value: str) -> str:
    return pl.select(fn(pl.lit(value, pl.String))).item()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nova Kites", "nova kites"),
        ("The Nova Kites", "nova kites"),
        ("  Nova   Kites ", "nova kites"),
        ("NOVA KITES", "nova kites"),
        ("Nova Kites feat. Zoë Waves", "nova kites"),
        ("Nova Kites ft. Someone", "nova kites"),
        ("Nova Kites (featuring Someone)", "nova kites"),
        ("Nova Kites (feat.Someone)", "nova kites"),
        ("Nova Kites (ft.Someone)", "nova kites"),
        ("Nova Kites feat Someone", "nova kites"),
        ("Nova Kites ft Someone", "nova kites"),
        ("Nova Kites (feat Someone) & Friends", "nova kites and friends"),
        ("Nova Kites [ft Someone] & Friends", "nova kites and friends"),
        ("Björk", "bjork"),
        ("Motörhead", "motorhead"),
        ("Beatles, The", "beatles"),
        ("The The", "the"),
        ("The Mamas & The Papas", "mamas and the papas"),
        ("The Mamas and the Papas", "mamas and the papas"),
        ("AC/DC", "ac dc"),
        ("!!!", "!!!"),
        ("\u0000Kanye West\ufeff", "kanye west"),
        ("Ｆｕｌｌ Ｗｉｄｔｈ", "full width"),
        ("Straße", "strasse"),
        ("坂本龍一", "坂本龍一"),
    ],
)
def test_artist_key(raw: str, expected: str) -> None:
    assert _key(names.artist_key, raw) == expected


@pytest.mark.parametrize(
    ("raw", "title", "song"),
    [
        ("Love Night", "love night", "love night"),
        ("love night", "love night", "love night"),
        ("\u201cLove Night\u201d", "love night", "love night"),
        ("Love Night (feat. Nova Kites)", "love night", "love night"),
        ("Love Night [ft. X] - Radio Edit", "love night radio edit", "love night"),
        ("Love Night - Remastered 2011", "love night remastered 2011", "love night"),
        ("Love Night - 2009 Remaster", "love night 2009 remaster", "love night"),
        ("Love Night (Live)", "love night live", "love night"),
        ("Love Night (Live at Wembley)", "love night live at wembley", "love night"),
        ("Love Night (Remix)", "love night remix", "love night"),
        ("Love Night - Mono Version", "love night mono version", "love night"),
        ("Love Night (Acoustic)", "love night acoustic", "love night"),
        ("Love Night (Demo)", "love night demo", "love night"),
        ("Love Night - Demo", "love night demo", "love night"),
        ("Love Night (feat Nova Kites) - Radio Edit", "love night radio edit", "love night"),
        ("Love Night [ft X] (Live)", "love night live", "love night"),
        ("Love Night \u2013 Remastered 2011", "love night remastered 2011", "love night"),
        ("Love Night \u2014 Live", "love night live", "love night"),
        ("Intro \u2013 Part 2 \u2013 Live", "intro part 2 live", "intro part 2"),
        ("Intro \u2014 Part 2 \u2014 Live", "intro part 2 live", "intro part 2"),
        ("Hibari (Live_2009_4_15)", "hibari live 2009 4 15", "hibari"),
        ("California Dreamin'", "california dreamin", "california dreamin"),
        ("California Dreamin\u2019 (single version)", "california dreamin single version",
         "california dreamin"),
        ("Dandelions - slowed + reverb", "dandelions slowed reverb", "dandelions"),
        ("(Live)", "live", "live"),
        ("Live Forever", "live forever", "live forever"),
        ("\u0000Fade", "fade", "fade"),
    ],
)  # fmt: skip
def test_title_and_song_keys(raw: str, title: str, song: str) -> None:
    assert _key(names.title_key, raw) == title
    assert _key(names.song_key, raw) == song


@pytest.mark.parametrize(
    "tag",
    ["Remaster", "Remastered", "Re-master", "Live", "Remix", "Remixed", "Mix", "Edit", "Version",
     "Mono", "Stereo", "Acoustic", "Demo", "Unplugged", "Instrumental", "Deluxe", "Single",
     "Radio", "Extended", "Slowed", "Reverb", "Sped Up", "1999", "2011"],
)  # fmt: skip
def test_every_version_tag_leaves_the_song(tag: str) -> None:
    for title in (f"Love Night ({tag})", f"Love Night [{tag}]", f"Love Night - {tag}"):
        assert _key(names.song_key, title) == "love night", title
        assert _key(names.title_key, title) != "love night", title


def test_first_mbid_takes_the_first_of_nul_joined_ids() -> None:
    raw = "E1564E98-978b-4947-8698-f6fd6f8b0181\u0000\ufeff9ad10546-b081-4cc8-a487-3d2eece82d9e"
    assert _key(names.first_mbid, raw) == "e1564e98-978b-4947-8698-f6fd6f8b0181"
    assert _key(names.first_mbid, "not an id") is None


def _spellings(rows: list[tuple[str, str, str | None, int]]) -> pl.LazyFrame:
    return pl.LazyFrame(
        rows,
        schema={
            "artist_name": pl.String,
            "track_name": pl.String,
            "artist_mbid": pl.String,
            "n_plays": pl.Int64,
        },
        orient="row",
    ).with_columns(pl.lit(None, pl.String).alias("track_uri"))


MBID = "a96d82a0-cdca-40bf-b4c8-3d7ec178d85b"


def test_canonicalise_collapses_spellings_and_groups_versions() -> None:
    spellings = _spellings(
        [
            ("The Stranglers", "Golden Brown", MBID, 5),
            ("Stranglers", "golden brown", None, 2),
            ("The Stranglers feat. X", "Golden Brown (Live)", None, 1),
            ("Nova Kites", "Love Night", None, 3),
            ("NOVA KITES", "Love Night - Remastered 2011", None, 1),
        ]
    )
    out = names.canonicalise(spellings).sort("n_plays", "track_name").collect()
    assert out["artist_id"].to_list() == [
        MBID, "nova kites", MBID, "nova kites", MBID,
    ]  # fmt: skip
    assert out["track_id"].n_unique() == 4
    assert out["track_group_id"].n_unique() == 2
    tracks = names.canonical_tracks(out.lazy()).collect()
    golden = tracks.filter(pl.col("track_id") == f"{MBID} - golden brown")
    assert golden.select("artist_name", "track_name", "raw_plays", "n_spellings").row(0) == (
        "The Stranglers",
        "Golden Brown",
        7,
        2,
    )


def test_canonical_ids_do_not_depend_on_row_order() -> None:
    rows = [
        ("Björk", "Jóga", None, 4),
        ("Bjork", "Joga", None, 4),
        ("björk", "Jóga (Live)", None, 1),
    ]
    one = names.canonical_tracks(names.canonicalise(_spellings(rows))).collect()
    two = names.canonical_tracks(names.canonicalise(_spellings(rows[::-1]))).collect()
    assert one.equals(two)
    # a tie of plays picks the smallest display form
    assert one["artist_name"].to_list() == ["Bjork", "björk"]


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40
) | st.sampled_from(["The The", "feat. X", "A (feat.b)", "İstanbul", "ǅ", "ﬁre", "the the the"])


@settings(max_examples=60, deadline=None)
@given(st.lists(_TEXT, min_size=1, max_size=20))
def test_keys_never_crash_and_are_idempotent(values: list[str]) -> None:
    frame = pl.DataFrame({"v": values}, schema={"v": pl.String})
    for fn in (names.artist_key, names.title_key, names.song_key):
        once = frame.select(fn(pl.col("v")).alias("v"))
        twice = once.select(fn(pl.col("v")).alias("v"))
        assert once["v"].to_list() == twice["v"].to_list(), fn.__name__


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(_TEXT, _TEXT, st.integers(1, 5)), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
)
def test_canonical_ids_stable_under_row_order(rows: list, rnd) -> None:
    spelled = list({(a, t): (a, t, None, n) for a, t, n in rows}.values())
    shuffled = spelled[:]
    rnd.shuffle(shuffled)
    one = names.canonicalise(_spellings(spelled)).sort("artist_name", "track_name").collect()
    two = names.canonicalise(_spellings(shuffled)).sort("artist_name", "track_name").collect()
    assert one.equals(two)
    t1 = names.canonical_tracks(one.lazy()).collect()
    t2 = names.canonical_tracks(two.lazy()).collect()
    assert t1.equals(t2)


def test_track_group_follows_the_most_played_spelling_of_a_track() -> None:
    rows = [("A", "Love Night (Live)", None, 1), ("A", "Love Night Live", None, 3)]
    tracks = names.canonical_tracks(names.canonicalise(_spellings(rows))).collect()
    assert tracks.select("track_id", "track_group_id", "track_name").rows() == [
        ("a - love night live", "a - love night live", "Love Night Live")
    ]


_ASCII_OR_NOT = st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30) | _TEXT


@settings(max_examples=60, deadline=None)
@given(st.lists(_ASCII_OR_NOT, min_size=1, max_size=20, unique=True))
def test_batch_keys_of_ascii_and_other_names_equal_the_key_functions(values: list[str]) -> None:
    """artist_keys/title_keys key ASCII names without the Unicode passes: the same keys."""
    artists = names.artist_keys(pl.LazyFrame({"artist_name": values})).collect()
    expected = pl.DataFrame({"artist_name": values}).with_columns(
        names.artist_key(pl.col("artist_name")).alias("artist_key")
    )
    assert dict(artists.select("artist_name", "artist_key").rows()) == dict(expected.rows())
    titles = names.title_keys(pl.LazyFrame({"track_name": values})).collect()
    expected = pl.DataFrame({"track_name": values}).with_columns(
        names.title_key(pl.col("track_name")).alias("title_key"),
        names.song_key(pl.col("track_name")).alias("_song"),
    )
    got = titles.select("track_name", "title_key", "_song").rows()
    assert sorted(got) == sorted(expected.rows())


def test_ascii_and_accented_spellings_share_keys() -> None:
    """Hand-made: the ASCII path and the Unicode one meet ("Bjork" = "Björk" = "ＢＪＯＲＫ")."""
    artists = names.artist_keys(
        pl.LazyFrame({"artist_name": ["Bjork", "Björk", "ＢＪＯＲＫ", "The\x00 Beatles"]})
    ).collect()
    assert dict(artists.select("artist_name", "artist_key").rows()) == {
        "Bjork": "bjork", "Björk": "bjork", "ＢＪＯＲＫ": "bjork", "The\x00 Beatles": "beatles",
    }  # fmt: skip
    titles = names.title_keys(pl.LazyFrame({"track_name": ["Café (Live)", "Cafe - Live"]}))
    assert sorted(titles.collect().select("track_name", "title_key", "_song").rows()) == [
        ("Cafe - Live", "cafe live", "cafe"), ("Café (Live)", "cafe live", "cafe")
    ]  # fmt: skip


def _initials_by_words(key: pl.Expr) -> pl.Expr:
    """`names._join_initials` as it was: every key through its list of words."""
    letter = pl.element().str.contains(r"^\p{L}$")
    glue = pl.when(letter & letter.shift(1)).then(pl.lit("")).otherwise(pl.lit(" "))
    words = key.str.split(" ").list.eval(pl.concat_str(glue, pl.element()))
    return words.list.join("").str.strip_chars()


_WORDS = st.lists(
    st.sampled_from(["a", "é", "e\u0301", "ab", "1", "v", "", "the", "ß"]), max_size=8
).flatmap(lambda words: st.sampled_from([" ", "  ", "\t", "\u00a0"]).map(lambda s: s.join(words)))


@settings(max_examples=200, deadline=None)
@given(st.lists(_WORDS | _TEXT, min_size=1, max_size=20))
def test_join_initials_only_on_keys_with_initials_gives_the_word_lists_keys(
    values: list[str],
) -> None:
    """Keys without two one-letter words in a row skip the word lists: the same keys."""
    frame = pl.DataFrame({"v": [*values, None, "v v brown", " r e m ", "xy a b", "a bc"]})
    got = frame.select(names._join_initials(pl.col("v")))["v"].to_list()
    assert got == frame.select(_initials_by_words(pl.col("v")))["v"].to_list()
    assert got[-4:] == ["vv brown", "rem", "xy ab", "a bc"]
