"""Run the preprocess stage: raw log -> 01_preprocess."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from musicrec_cli import artifacts as art
from musicrec_cli.config import Config, table_dict
from musicrec_cli.runner import Measure
from musicrec_cli.sources import find_files, scan_table
from stages import preprocess
from stages.interactions import aggregate_pairs, build_matrix
from stages.schema import (
    AUDIO_FEATURES,
    GENRE,
    INTERACTIONS,
    PLAY_COUNT,
    PLAYED_AT,
    PLAYS,
    RAW_LISTENS,
    TRACK_ID,
    TRACK_IDX,
    USER_ID,
    USER_IDX,
    SchemaError,
    check_schema,
)


def _scan_catalog(spec: str) -> pl.LazyFrame | None:
    if not spec:
        return None
    catalog = scan_table(find_files(spec, what="track catalog"))
    check_schema(
        catalog.collect_schema(),
        {k: RAW_LISTENS[k] for k in ("artist_name", "track_name")},
        source=spec,
    )
    extra = [c for c in (*AUDIO_FEATURES, GENRE) if c in catalog.collect_schema()]
    return (
        catalog.with_columns(
            preprocess.normalise_name(pl.col("artist_name")).alias(preprocess.ARTIST_KEY),
            preprocess.normalise_name(pl.col("track_name")).alias(preprocess.TITLE_KEY),
        )
        .select(preprocess.ARTIST_KEY, preprocess.TITLE_KEY, *extra)
        .unique(subset=[preprocess.ARTIST_KEY, preprocess.TITLE_KEY], keep="first")
    )


def run_preprocess(cfg: Config) -> str:
    """Clean the raw log, build canonical tracks, aggregate, encode, write 01_preprocess."""
    measure, p, root = Measure(), cfg.preprocess, Path(cfg.paths.artifacts)
    files = find_files(cfg.paths.raw, what="raw listening log")
    raw = scan_table(files)
    check_schema(raw.collect_schema(), RAW_LISTENS, source=cfg.paths.raw)
    plays = preprocess.clean_plays(
        raw, min_ms_played=p.min_ms_played, ts_min=p.ts_min, ts_max=p.ts_max
    )
    tracks = preprocess.build_tracks(plays).collect()
    keyed = plays.join(
        tracks.lazy().select(preprocess.ARTIST_KEY, preprocess.TITLE_KEY, TRACK_ID),
        on=(preprocess.ARTIST_KEY, preprocess.TITLE_KEY),
    )
    pairs = aggregate_pairs(keyed, keys=(USER_ID, TRACK_ID)).collect(engine="streaming")
    kept = preprocess.filter_min_counts(
        pairs,
        min_user_tracks=p.min_user_tracks,
        min_track_users=p.min_track_users,
        max_rounds=p.kcore_rounds,
    )
    if kept.height == 0:
        msg = (
            f"{cfg.paths.raw}: no user-track pairs left after filtering ({pairs.height:,} before); "
            f"lower [preprocess].min_user_tracks ({p.min_user_tracks}) or min_track_users "
            f"({p.min_track_users})."
        )
        raise SchemaError(msg)
    users = preprocess.encode(kept.lazy(), key=USER_ID, index=USER_IDX).collect()
    items = preprocess.encode(kept.lazy(), key=TRACK_ID, index=TRACK_IDX).join(
        tracks.lazy(), on=TRACK_ID
    )
    catalog = _scan_catalog(cfg.paths.catalog)
    if catalog is not None:
        items = items.join(catalog, on=(preprocess.ARTIST_KEY, preprocess.TITLE_KEY), how="left")
    items_df = items.sort(TRACK_IDX).collect()
    events = (
        kept.join(users, on=USER_ID)
        .join(items_df.select(TRACK_ID, TRACK_IDX), on=TRACK_ID)
        .select(list(INTERACTIONS))
        .sort(USER_IDX, TRACK_IDX)
    )
    encoded_plays = (
        keyed.join(users.lazy(), on=USER_ID)
        .join(items_df.lazy().select(TRACK_ID, TRACK_IDX), on=TRACK_ID)
        .select(list(PLAYS))
    )
    report = {
        "rows_in": raw.select(pl.len()).collect().item(),
        "rows_valid": plays.select(pl.len()).collect().item(),
        "raw_artist_spellings": raw.select(pl.col("artist_name").n_unique()).collect().item(),
        "canonical_artists": items_df[preprocess.ARTIST_KEY].n_unique(),
        "canonical_tracks_before_filter": tracks.height,
        "pairs_before_filter": pairs.height,
        "pairs": events.height,
        "users": users.height,
        "tracks": items_df.height,
        "tracks_with_audio_features": items_df.select(
            pl.col(AUDIO_FEATURES[0]).is_not_null().sum()
            if AUDIO_FEATURES[0] in items_df.columns
            else pl.lit(0)
        ).item(),
    }
    with art.open_stage(root, "preprocess") as out:
        n_plays = out.sink_parquet(encoded_plays.sort(USER_IDX, PLAYED_AT), art.PLAYS)
        out.write_parquet(events, art.EVENTS)
        out.write_parquet(items_df, art.ITEMS)
        out.write_parquet(users, art.USERS)
        out.write_matrix(
            build_matrix(events, value=PLAY_COUNT, n_users=users.height, n_tracks=items_df.height),
            art.INTERACTION_MATRIX,
        )
        out.write_json(report | {"plays_kept": n_plays}, art.QUALITY_REPORT)
        folder = art.commit_stage(
            out,
            {
                "config": table_dict(p),
                "paths": table_dict(cfg.paths),
                "inputs": art.fingerprint_inputs(
                    files + ([Path(f) for f in [cfg.paths.catalog] if f and Path(f).is_file()])
                ),
                "summary": {
                    "n_users": users.height,
                    "n_tracks": items_df.height,
                    "n_pairs": events.height,
                    "n_plays": n_plays,
                },
                **measure.record(),
            },
        )
    return (
        f"{report['rows_in']:,} rows -> {n_plays:,} plays, {events.height:,} pairs, "
        f"{users.height:,} users x {items_df.height:,} tracks -> {folder}"
    )
