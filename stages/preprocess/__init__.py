"""The preprocess recipe: raw listening log -> encoded, de-duplicated, aggregated plays.

Pure functions over LazyFrames; `musicrec_cli.runner.preprocess` collects, decides the
bucketing and writes the files. The order of the work, which keeps memory bounded at 800M rows
(see docs/preprocess.md):

1. `formats.to_raw` maps one export's columns to the raw columns.
2. `parse.parse_raw` types every row and names the first reason to drop it.
3. The kept rows' distinct spellings go through `names.canonicalise` (small); users through
   `parse.user_activity` and `encode.assign_buckets` (small); `tables.number_tracks` and
   `tables.number_spellings` give every canonical track a provisional track_idx.
4. `encode.encode_plays` joins both back onto the plays: (bucket, user_idx, track_idx,
   played_at, ...), where the indexes are provisional (sorted by user_id / track_id).
5. Per bucket (a contiguous range of users), in memory: `encode.dedupe_bucket` (one sort; Spark
   runs `encode.dedupe_plays`, the same rows) and `encode.aggregate_sorted_plays` (one pass
   over the sorted runs).
6. `encode.kcore` on the pairs until stable; `encode.reindex` maps the provisional indexes to
   the final contiguous ones. Both maps are monotonic, so sorted buckets concatenate to sorted
   files.
7. `tables` builds items, users and the id maps; `quality` the survey checks and
   quality_report.json.
"""
