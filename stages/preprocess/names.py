"""Matching keys for free-text artist and track names, as Polars expressions.

Display names are kept as they were written; these keys only decide which spellings are the
same artist, the same track (one recording) or the same song (all its versions). Every key is
idempotent: `key(key(x)) == key(x)`.

Rules, in order:
1. Control and format characters (NUL, BOM, zero-width) removed; Unicode NFKC (full-width
   letters, ligatures); case folded (lowercase, "ß" -> "ss").
2. "feat." / "ft." / "featuring" credits removed from artist and title (bracketed anywhere, or
   unbracketed up to the end), so "A feat. B" is artist "A".
3. Accents folded (NFKD, combining marks dropped): "Björk" and "Bjork" match.
4. Quotes and apostrophes deleted, "&" read as "and", any other run of punctuation or spaces
   becomes one space. A name made only of punctuation ("!!!") keeps its folded form.
5. Artists only: a leading "the " or trailing ", the" is dropped ("The Beatles" = "Beatles").
6. Song (group) keys only: version tags are removed from the title: bracketed or dash-separated
   parts naming a remaster, live, remix, edit, mono/stereo, acoustic, demo, version or a year.

`canonicalise` builds the ids from these keys; which of those name-built tracks a recording MBID
or a track URI joins or parts is stages/preprocess/recordings.py. Over 300 lines: the rules
and the keying of a log's distinct names (ASCII names apart, `_by_ascii`) share their pieces.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from stages.preprocess import recordings
from stages.schema import (
    ARTIST_ID,
    ARTIST_NAME,
    TRACK_GROUP_ID,
    TRACK_ID,
    TRACK_NAME,
)

_CONTROL = r"[\p{Cc}\p{Cf}]"
_CREDIT_WORD = r"(?:feat\.?|ft\.?|featuring)"
_CREDIT_BRACKETED = rf"\s*[\(\[]\s*{_CREDIT_WORD}\s[^\)\]]*[\)\]]?"
_CREDIT_TAIL = rf"\s+{_CREDIT_WORD}\s.*$"
_CREDIT_TAIL_BARE = r"\s+(?:feat|ft|featuring)\s.*$"
_QUOTES = r"[\"'`´\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u2032\u2033]"
_VERSION_WORD = (
    r"(?:re-?master(?:ed)?|live|remix(?:ed)?|mix|edit(?:ed)?|version|mono|stereo|acoustic|demo|"
    r"unplugged|instrumental|inst\.|ver\.|deluxe|single|radio|extended|slowed|reverb|"
    r"sp(?:ee|e)d up|explicit|reprise|(?:19|20)\d\d|"
    # soundtrack credits, one export's commonest tag: (From "Film"), - From "Film"
    r"from [\"\u201c\u201d'])"
)
# a whole version word, or the abbreviations K-pop releases use: "(Japanese Ver.)", "(Inst.)"
_VERSION_TAG = rf"(?:{_VERSION_WORD}(?:\b|_)|(?:ver|inst)\.)"
# "(Live)", "[2011 Remaster]", "(Live at Wembley)", "(Live_2009_4_15)"
_VERSION_BRACKETED = rf"\s*[\(\[][^\)\]]*(?:\b|_){_VERSION_TAG}[^\)\]]*[\)\]]"
# " - Remastered 2011", " - Radio Edit", " - slowed + reverb"
_VERSION_DASH = rf"\s+[-\u2013\u2014]\s+[^-\u2013\u2014]*\b{_VERSION_TAG}.*$"


def _by_ascii(frame: pl.LazyFrame, column: str, build: Callable[..., pl.LazyFrame]) -> pl.LazyFrame:
    """`build(rows, ascii_only=...)` of the rows whose `column` is ASCII, then of the others.

    An ASCII name is its own NFKC and NFKD form and holds no combining mark, so its keys skip
    those passes (`clean_display`): the same keys, ~13% less CPU for the names of 100M events.
    """
    name = pl.col(column)
    ascii_only = (name.str.len_bytes() == name.str.len_chars()).fill_null(value=False)
    return pl.concat(
        [
            build(frame.filter(ascii_only), ascii_only=True),
            build(frame.filter(~ascii_only), ascii_only=False),
        ]
    )


def clean_display(name: pl.Expr, *, ascii_only: bool = False) -> pl.Expr:
    """Display form: control characters removed, NFKC, spaces collapsed and trimmed.

    `ascii_only`: every name is ASCII, NFKC skipped (`_by_ascii`).
    """
    cleaned = name.str.replace_all(_CONTROL, "")
    return (
        (cleaned if ascii_only else cleaned.str.normalize("NFKC"))
        .str.replace_all(r"\s+", " ")
        .str.strip_chars()
    )


def _fold(name: pl.Expr) -> pl.Expr:
    """Lowercase NFKC form with credits removed (rules 1-2)."""
    return _fold_display(clean_display(name))


def _fold_display(display: pl.Expr) -> pl.Expr:
    """`_fold` of a name already in its `clean_display` form."""
    return (
        display.str.to_lowercase()
        .str.replace_all("ß", "ss", literal=True)
        .str.replace_all(_CREDIT_BRACKETED, "")
        .str.replace_all(_CREDIT_TAIL, "")
    )


def _squash(folded: pl.Expr, *, ascii_only: bool = False) -> pl.Expr:
    """Accents, quotes and punctuation folded away (rules 3-4); `ascii_only` as clean_display."""
    unaccented = (
        folded
        if ascii_only
        else folded.str.normalize("NFKD").str.replace_all(r"\p{Mn}", "").str.normalize("NFKC")
    )
    squashed = (
        unaccented.str.to_lowercase()
        .str.replace_all(_QUOTES, "")
        .str.replace_all("&", " and ", literal=True)
        .str.replace_all(r"[^\p{L}\p{N}]+", " ")
        .str.strip_chars()
        # "a (feat.b)" only reads as a credit once the punctuation is gone
        .str.replace(_CREDIT_TAIL_BARE, "")
    )
    fallback = folded.str.replace_all(r"\s+", " ").str.strip_chars()
    return squashed.replace("", None).fill_null(fallback)


def title_key(name: pl.Expr) -> pl.Expr:
    """Matching key of a track title (one recording: versions stay apart)."""
    return _squash(_fold(name))


def artist_key(name: pl.Expr) -> pl.Expr:
    """Matching key of an artist name; a leading "the" or trailing ", the" is dropped."""
    return _artist_from(_fold(name))


def _artist_from(folded: pl.Expr, *, ascii_only: bool = False) -> pl.Expr:
    return _join_initials(_artist_spaced(folded, ascii_only=ascii_only))


def _artist_spaced(folded: pl.Expr, *, ascii_only: bool = False) -> pl.Expr:
    """`_artist_from` before its one-letter words are joined (`_join_initials`)."""
    # stylised letters first: "Ke$ha", "A$AP" ($ as s), "P!nk" (! inside a word as i)
    styled = folded.str.replace_all(r"(\p{L})\$(\p{L})", "${1}s${2}").str.replace_all(
        r"(^|\s)\$(\p{L})", "${1}s${2}"
    )
    styled = styled.str.replace_all(r"(\p{L})!(\p{L})", "${1}i${2}")
    key = _squash(styled.str.replace_all("+", " and ", literal=True), ascii_only=ascii_only)
    bare = key.str.replace(r"^(?:the )+", "").str.replace(r"(?: the)+$", "")
    return bare.replace("", None).fill_null(key)


def _join_initials(key: pl.Expr) -> pl.Expr:
    """Runs of one-letter words joined: "v v brown" = "vv brown", "r e m" = "rem".

    Initialisms are written with dots, spaces or neither (V.V. Brown, VV Brown; A.F.I., AFI).
    Only keys with two one-letter words in a row go through the word lists (a null list costs
    nothing in `list.eval`); any other key is its words glued by spaces, i.e. itself stripped:
    the same keys, ~2.6 s less on one thread for the 1M artist names of 100M events.
    """
    letter = pl.element().str.contains(r"^\p{L}$")
    glue = pl.when(letter & letter.shift(1)).then(pl.lit("")).otherwise(pl.lit(" "))
    initials = key.str.contains(r"(?:^|\s)\p{L}\s\p{L}(?:\s|$)")
    words = pl.when(initials).then(key).str.split(" ").list.eval(pl.concat_str(glue, pl.element()))
    return words.list.join("").str.strip_chars().fill_null(key.str.strip_chars())


def _strip_versions(folded: pl.Expr) -> pl.Expr:
    return folded.str.replace_all(_VERSION_BRACKETED, "").str.replace(_VERSION_DASH, "")


def song_key(name: pl.Expr) -> pl.Expr:
    """Matching key of the song behind a title: version tags removed, then as title_key."""
    folded = _fold(name)
    return _song_from(folded, _squash(folded))


def _song_from(folded: pl.Expr, title: pl.Expr, *, ascii_only: bool = False) -> pl.Expr:
    """song_key from the folded title and its title_key (a bare version tag keeps the title)."""
    stripped = _squash(_strip_versions(folded), ascii_only=ascii_only)
    return stripped.replace("", None).fill_null(title)


def query_track_key(query: pl.Expr) -> pl.Expr:
    """The track key of an "Artist - Title" query, as canonical track ids built from names read.

    The query is split at its first " - "; a query without one is keyed as a title alone (and
    so matches no track id built from names).
    """
    parts = query.str.splitn(" - ", 2)
    artist, title = parts.struct.field("field_0"), parts.struct.field("field_1")
    return (
        pl.when(title.is_not_null())
        .then(pl.concat_str(artist_key(artist), pl.lit(" - "), title_key(title)))
        .otherwise(title_key(query))
    )


def first_mbid(value: pl.Expr) -> pl.Expr:
    """The first MusicBrainz id (a lowercase UUID) in a string, else null."""
    uuid = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    return value.str.extract(f"({uuid})", 1).str.to_lowercase()


ARTIST_KEY = "artist_key"
TITLE_KEY = "title_key"


def canonicalise(spellings: pl.LazyFrame) -> pl.LazyFrame:
    """Canonical artist, track and group ids for each distinct spelling.

    Args:
        spellings: One row per distinct (artist_name, track_name, artist_mbid, track_uri) with
            n_plays (Int64); artist_mbid and track_uri may be null.

    Returns:
        The input plus artist_key, title_key, artist_id, track_id, track_group_id (String).
        artist_id is the spelling's MusicBrainz id, else the id most played under the same
        artist_key, else the artist_key; track_id is "artist_id - title_key" and
        track_group_id "artist_id - song_key" (all versions of one song).
    """
    # keys are computed once per distinct name, not once per spelling; collected, as the id
    # rules read them six times and Polars does not share a lazy subplan between them (left
    # lazy, planning took ~0.2 s even for 2 rows, and at 10M events the artist keys were
    # computed about five times: 18.5 CPU s against 4.5)
    artists = artist_keys(spellings.select(ARTIST_NAME).unique()).collect(engine="in-memory")
    titles = title_keys(spellings.select(TRACK_NAME).unique())
    return keyed_spellings(spellings, artists.lazy(), titles)


def artist_keys(artists: pl.LazyFrame) -> pl.LazyFrame:
    """Distinct artist names with _artist_display and artist_key (row-local: any batch).

    Rows come back ASCII names first (`_by_ascii`).
    """

    def keyed(names: pl.LazyFrame, *, ascii_only: bool) -> pl.LazyFrame:
        display = clean_display(pl.col(ARTIST_NAME), ascii_only=ascii_only)
        spaced = _artist_spaced(_fold_display(pl.col("_artist_display")), ascii_only=ascii_only)
        return (
            names.with_columns(display.alias("_artist_display"))
            .with_columns(spaced.alias(ARTIST_KEY))  # a column: _join_initials reads it 3 times
            .with_columns(_join_initials(pl.col(ARTIST_KEY)).alias(ARTIST_KEY))
        )

    return _by_ascii(artists, ARTIST_NAME, keyed)


def title_keys(titles: pl.LazyFrame) -> pl.LazyFrame:
    """Distinct titles with _track_display, title_key and _song (the song key); row-local.

    Most titles carry no version tag, and their song key is their title key: only the others
    are squashed a second time (the squash is the costly part of a key). Collected here, as
    both halves read it.
    """

    def keyed(names: pl.LazyFrame, *, ascii_only: bool) -> pl.LazyFrame:
        return (
            names.with_columns(
                clean_display(pl.col(TRACK_NAME), ascii_only=ascii_only).alias("_track_display")
            )
            .with_columns(_fold_display(pl.col("_track_display")).alias("_folded"))
            .with_columns(
                _squash(pl.col("_folded"), ascii_only=ascii_only).alias(TITLE_KEY),
                _strip_versions(pl.col("_folded")).alias("_stripped"),
            )
        )

    def songs(names: pl.LazyFrame, *, ascii_only: bool) -> pl.LazyFrame:
        song = _song_from(pl.col("_folded"), pl.col(TITLE_KEY), ascii_only=ascii_only)
        return names.with_columns(song.alias("_song"))

    all_keyed = _by_ascii(titles, TRACK_NAME, keyed).collect(engine="in-memory").lazy()
    versioned = pl.col("_stripped") != pl.col("_folded")
    return pl.concat(
        [
            all_keyed.filter(~versioned).with_columns(pl.col(TITLE_KEY).alias("_song")),
            _by_ascii(all_keyed.filter(versioned), TRACK_NAME, songs),
        ]
    ).drop("_folded", "_stripped")


def keyed_spellings(
    spellings: pl.LazyFrame, artists: pl.LazyFrame, titles: pl.LazyFrame
) -> pl.LazyFrame:
    """Spellings with their name keys and the artist, track and group ids built from them.

    `artists` and `titles` are `artist_keys` and `title_keys` of (at least) the spellings'
    distinct names, computed anywhere: the Spark engine computes them on its executors.
    """
    keyed = spellings.join(artists, on=ARTIST_NAME).join(titles, on=TRACK_NAME)
    mbid_of_key = (
        keyed.filter(pl.col("artist_mbid").is_not_null())
        .group_by(ARTIST_KEY, "artist_mbid")
        .agg(pl.col("n_plays").sum())
        .group_by(ARTIST_KEY)
        .agg(
            pl.col("artist_mbid")
            .sort_by(["n_plays", "artist_mbid"], descending=[True, False])
            .first()
            .alias("_key_mbid")
        )
    )
    artist_id = pl.coalesce("artist_mbid", "_key_mbid", ARTIST_KEY)
    named = (
        keyed.join(mbid_of_key, on=ARTIST_KEY, how="left")
        .with_columns(artist_id.alias(ARTIST_ID))
        .with_columns(
            pl.concat_str(ARTIST_ID, pl.lit(" - "), TITLE_KEY).alias(TRACK_ID),
            pl.concat_str(ARTIST_ID, pl.lit(" - "), "_song").alias(TRACK_GROUP_ID),
        )
        .drop("_key_mbid", "_song")
    )
    # collected once: `tracks_by_id` reads it from six places (2.3 CPU s against 4.6 lazy)
    return recordings.tracks_by_id(named.collect(engine="in-memory").lazy())


def _display(column: str) -> pl.Expr:
    """The most played display form of `column` (cleaned), ties to the smallest."""
    display = f"_{column.removesuffix('_name')}_display"
    return (
        pl.col(display)
        .sort_by(["n_plays", display], descending=[True, False])
        .first()
        .alias(column)
    )


def canonical_tracks(id_map: pl.LazyFrame) -> pl.LazyFrame:
    """One row per track_id: artist_id, track_group_id, display names, raw plays, spellings.

    Display names are the most played spelling of the track; rows sorted by track_id.
    """
    return (
        id_map.group_by(TRACK_ID)
        .agg(
            pl.col(ARTIST_ID).first(),  # the prefix of track_id: one per track
            # spellings of one title can differ in version tags the title key keeps as words
            # ("(Live)" vs "Live"): the most played spelling decides the group
            pl.col(TRACK_GROUP_ID)
            .sort_by(["n_plays", TRACK_GROUP_ID], descending=[True, False])
            .first(),
            _display(ARTIST_NAME),
            _display(TRACK_NAME),
            pl.col("n_plays").sum().alias("raw_plays"),
            pl.len().alias("n_spellings"),
        )
        .sort(TRACK_ID)
    )


def canonical_artists(id_map: pl.LazyFrame) -> pl.LazyFrame:
    """Raw artist spellings (name, mbid) -> artist_id, with plays; sorted."""
    return (
        id_map.group_by(ARTIST_NAME, "artist_mbid", ARTIST_ID)
        .agg(pl.col("n_plays").sum())
        .sort(ARTIST_NAME, "artist_mbid", ARTIST_ID, nulls_last=True)
    )
