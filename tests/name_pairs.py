"""Precision and recall of the name rules on the labelled pairs in tests/data/name_pairs.csv.

Each row is two spellings and whether they are the same artist (`kind = artist`), the same
recording (`track`) or the same song in any version (`song`). A pair is run through
`canonicalise` on its own, as the only two spellings of a log (with the ids the row gives:
an artist MBID for artists, a track URI or recording MBID for tracks), and the rules "merge"
it when both spellings get the same artist_id, track_id or track_group_id.

`python -m tests.name_pairs` prints the table that docs/preprocess.md quotes.
"""

from __future__ import annotations

import csv
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from stages.preprocess import names

PAIRS = Path(__file__).parent / "data" / "name_pairs.csv"
ID_COLUMN = {"artist": names.ARTIST_ID, "track": names.TRACK_ID, "song": names.TRACK_GROUP_ID}


@dataclass(frozen=True, slots=True, kw_only=True)
class Score:
    """Merge decisions against the labels, for one kind of pair."""

    kind: str
    true_merges: int
    false_merges: int
    missed_merges: int
    kept_apart: int

    @property
    def precision(self) -> float:
        merged = self.true_merges + self.false_merges
        return self.true_merges / merged if merged else 1.0

    @property
    def recall(self) -> float:
        same = self.true_merges + self.missed_merges
        return self.true_merges / same if same else 1.0


def load_pairs() -> list[dict[str, str]]:
    """The labelled pairs, one dict per CSV row."""
    with PAIRS.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _spellings(row: dict[str, str]) -> pl.DataFrame:
    def side(s: str) -> dict[str, str | None]:
        ident = row[f"id_{s}"] or None
        artist_id = ident if row["kind"] == "artist" else None
        uri = ident if ident and ident.startswith("spotify:") else None
        mbid = ident if ident and row["kind"] != "artist" and uri is None else None
        return {
            "artist_name": row[f"artist_{s}"],
            "track_name": row[f"title_{s}"] or "Intro",
            "artist_mbid": artist_id,
            "track_uri": uri,
            "track_mbid": mbid,
        }

    schema = dict.fromkeys(("artist_name", "track_name", "artist_mbid", "track_uri", "track_mbid"),
                           pl.String)  # fmt: skip
    frame = pl.DataFrame([side("a"), side("b")], schema=schema)
    return frame.with_columns(pl.lit(1, pl.Int64).alias("n_plays"))


def merged(row: dict[str, str]) -> bool:
    """Whether the rules give both spellings of `row` one id of the row's kind."""
    ids = names.canonicalise(_spellings(row).lazy()).collect()[ID_COLUMN[row["kind"]]]
    return ids[0] == ids[1]


def score(rows: list[dict[str, str]]) -> list[Score]:
    """One Score per kind (artist, track, song) and one over all pairs ("all")."""
    counts: dict[str, list[int]] = {}
    # one small Polars query per pair (~25 ms, mostly planning): two threads use both cores
    with ThreadPoolExecutor(2) as pool:
        decisions = list(pool.map(merged, rows))
    for row, got in zip(rows, decisions, strict=True):
        same = row["same"] == "1"
        index = (not got) * 2 + (same != got)  # TP=0, FP=1, FN=3, TN=2
        for kind in (row["kind"], "all"):
            counts.setdefault(kind, [0, 0, 0, 0])[index] += 1
    return [
        Score(kind=k, true_merges=c[0], false_merges=c[1], kept_apart=c[2], missed_merges=c[3])
        for k, c in counts.items()
    ]


def main() -> None:
    """Print the precision/recall table and the misclassified pairs."""
    rows = load_pairs()
    print("| pairs | n | merged right | merged wrongly | missed | precision | recall |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for s in score(rows):
        n = s.true_merges + s.false_merges + s.missed_merges + s.kept_apart
        print(f"| {s.kind} | {n} | {s.true_merges} | {s.false_merges} | {s.missed_merges} | "
              f"{s.precision:.3f} | {s.recall:.3f} |")  # fmt: skip
    if "-v" in sys.argv:
        for row in rows:
            if merged(row) != (row["same"] == "1"):
                print(row["kind"], row["same"], row["artist_a"], row["title_a"], "|",
                      row["artist_b"], row["title_b"], "|", row["note"])  # fmt: skip


if __name__ == "__main__":
    main()
