"""The track catalogue (audio features, genre) joined onto the canonical tracks, ids first.

A catalogue row matches a track by the first key both carry, in this order:
1. `track_mbid`: a MusicBrainz recording id (AcousticBrainz-style catalogues);
2. `track_uri`: a Spotify track URI, or a bare Spotify `id` (made a URI here);
3. `names`: the artist and title keys of `stages.preprocess.names` (artist_name, track_name).
A track matched by an id is never matched again by its names, so a name shared by two
recordings cannot put one's features on the other. `catalog_key` says which key matched.
"""

from __future__ import annotations

import polars as pl

from stages.preprocess.columns import TRACK_MBID
from stages.preprocess.names import ARTIST_KEY, TITLE_KEY, artist_key, title_key
from stages.schema import ARTIST_NAME, AUDIO_FEATURES, GENRE, TRACK_ID, TRACK_NAME, TRACK_URI

CATALOG_KEY = "catalog_key"
KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (TRACK_MBID, (TRACK_MBID,)),
    (TRACK_URI, (TRACK_URI,)),
    ("names", (ARTIST_KEY, TITLE_KEY)),
)


def _numbered(catalog: pl.LazyFrame) -> pl.LazyFrame:
    """The catalogue with a row number and a track_uri made from a bare Spotify `id`."""
    schema = catalog.collect_schema()
    catalog = catalog.with_row_index("_row")
    if TRACK_URI not in schema and "id" in schema:
        uri = pl.concat_str(pl.lit("spotify:track:"), pl.col("id").cast(pl.String))
        catalog = catalog.with_columns(uri.alias(TRACK_URI))
    return catalog


def _name_keyed(catalog: pl.LazyFrame) -> pl.LazyFrame:
    """The catalogue with artist and title keys (it has artist_name and track_name)."""
    # catalogues repeat artists (ten rows each in the generated one): key each name once
    artists = catalog.select(ARTIST_NAME).unique()
    return catalog.join(
        artists.with_columns(artist_key(pl.col(ARTIST_NAME)).alias(ARTIST_KEY)),
        on=ARTIST_NAME,
        how="left",
        nulls_equal=True,
        maintain_order="left",
    ).with_columns(title_key(pl.col(TRACK_NAME)).alias(TITLE_KEY))


def attach_catalog(
    items: pl.LazyFrame, catalog: pl.LazyFrame, *, id_map: pl.LazyFrame
) -> pl.LazyFrame:
    """Left-join catalogue columns (audio features, genre) onto canonical tracks.

    The ids' matches are collected first: where they cover every track the catalogue's names
    are not keyed at all, as a name match could only lose to them (100M events, 1M catalogue
    rows, every track found by its URI: 5.0 -> 1.1 s).

    Args:
        items: One row per track_id.
        catalog: Any of track_mbid, track_uri (or a Spotify `id`), artist_name + track_name,
            plus feature columns.
        id_map: Output of names.canonicalise (spellings -> track_id, with their ids and keys).

    Returns:
        `items` with the catalogue's AUDIO_FEATURES and genre columns and catalog_key (the key
        that matched: track_mbid, track_uri or names; null where unmatched). Of several rows
        matching one track, the first key in KEYS wins, then the first row in catalogue order.
    """
    have = items.collect_schema()
    numbered = _numbered(catalog)
    schema, spellings = numbered.collect_schema(), id_map.collect_schema()
    extra = [c for c in (*AUDIO_FEATURES, GENRE) if c in schema and c not in have]

    def matches(rows: pl.LazyFrame, rank: int, name: str, keys: tuple[str, ...]) -> pl.LazyFrame:
        return (
            rows.select("_row", *keys, *extra)
            .join(id_map.select(*keys, TRACK_ID).unique().drop_nulls(), on=list(keys))
            .select(TRACK_ID, "_row", *extra)
            .with_columns(pl.lit(rank, pl.UInt32).alias("_rank"), pl.lit(name).alias(CATALOG_KEY))
        )

    found = [
        matches(numbered, rank, name, keys).collect(engine="in-memory").lazy()
        for rank, (name, keys) in enumerate(KEYS)
        if name != "names" and all(k in schema and k in spellings for k in keys)
    ]
    names_rank = len(KEYS) - 1
    if (
        {ARTIST_NAME, TRACK_NAME} <= set(schema)
        and all(k in spellings for k in KEYS[names_rank][1])
        and _some_unmatched(items, found)
    ):
        found.append(matches(_name_keyed(numbered), names_rank, *KEYS[names_rank]))
    if not found:
        return items.with_columns(
            *(pl.lit(None, schema[c]).alias(c) for c in extra),
            pl.lit(None, pl.String).alias(CATALOG_KEY),
        )
    features = (
        pl.concat(found)
        .sort("_rank", "_row")
        .unique(TRACK_ID, keep="first", maintain_order=True)
        .drop("_rank", "_row")
    )
    return items.join(features, on=TRACK_ID, how="left", maintain_order="left")


def _some_unmatched(items: pl.LazyFrame, found: list[pl.LazyFrame]) -> bool:
    """Whether a track of `items` has no match among `found`."""
    if not found:
        return True
    matched = pl.concat([f.select(TRACK_ID) for f in found])
    unmatched = items.select(TRACK_ID).join(matched, on=TRACK_ID, how="anti")
    return bool(unmatched.select(pl.len()).collect(engine="in-memory").item())


def matched_by(items: pl.DataFrame) -> dict[str, int]:
    """Tracks matched by each key (KEYS order) and unmatched, from `attach_catalog` output."""
    counts = dict(items[CATALOG_KEY].value_counts().iter_rows()) if items.height else {}
    return {name: counts.get(name, 0) for name, _ in KEYS} | {"unmatched": counts.get(None, 0)}
