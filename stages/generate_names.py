"""The names of the synthetic world (stages.generate) and the messy ways plays spell them.

Word lists from which artist names and titles are built, the version suffixes of a song
("- Remastered 2011", "(Live)"), and the spellings a play may show: case and spacing noise,
accents dropped, "The " added, "feat." credits, curly quotes; each with its share of plays.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import polars as pl

from stages.schema import ARTIST_NAME, TRACK_NAME

FIRST = [
    "Nova",
    "Black",
    "Silver",
    "Velvet",
    "Electric",
    "Lunar",
    "Golden",
    "Neon",
    "Crimson",
    "Hollow",
    "Wild",
    "Static",
    "Paper",
    "Glass",
    "Iron",
    "Echo",
    "Midnight",
    "Royal",
    "Björk",
    "Señor",
    "Café",
    "Zoë",
    "Motörhead",
    "Ámbar",
    "Blue",
    "Little",
    "Young",
    "Dead",
    "Lost",
    "Broken",
    "Cosmic",
    "Sonic",
]
SECOND = [
    "Kites",
    "Tigers",
    "Rivers",
    "Machines",
    "Hearts",
    "Wolves",
    "Ghosts",
    "Lights",
    "Sparrows",
    "Engines",
    "Dreams",
    "Shadows",
    "Saints",
    "Pilots",
    "Waves",
    "Roses",
    "Foxes",
    "Mirrors",
    "Bandits",
    "Canyons",
    "Orchids",
    "Comets",
    "Daughters",
    "Kings",
]
WORDS = [
    "Love",
    "Night",
    "Fire",
    "Rain",
    "Summer",
    "Heart",
    "Dance",
    "City",
    "Gold",
    "Road",
    "Dream",
    "Light",
    "Time",
    "Home",
    "River",
    "Sky",
    "Stone",
    "Ocean",
    "Shadow",
    "Song",
    "Morning",
    "Storm",
    "Paradise",
    "Echoes",
    "Velvet",
    "Runaway",
    "Sugar",
    "Thunder",
    "Wonder",
    "Midnight",
    "Mercy",
    "Silence",
    "Diamonds",
    "Fever",
    "Gravity",
    "Halo",
]
VERSIONS = [
    " - Remastered 2011",
    " (Live)",
    " - Radio Edit",
    " (Remix)",
    " - Mono Version",
    " - 2009 Remaster",
    " (Acoustic)",
    " (Live at Wembley)",
]
_ACCENTS = {"ö": "o", "é": "e", "ë": "e", "ñ": "n", "Á": "A", "á": "a"}


def names(words_a: list[str], words_b: list[str], idx: npt.NDArray[np.int64]) -> pl.Series:
    """Unique names built from the digits of `idx` in base len(words)."""
    na, nb = len(words_a), len(words_b)
    a = pl.Series(words_a).gather(idx % na)
    b = pl.Series(words_b).gather((idx // na) % nb)
    suffix = pl.Series(np.where(idx >= na * nb, idx // (na * nb), 0)).cast(pl.String)
    out = pl.DataFrame({"a": a, "b": b, "s": suffix}).select(
        pl.when(pl.col("s") == "0")
        .then(pl.concat_str("a", pl.lit(" "), "b"))
        .otherwise(pl.concat_str("a", pl.lit(" "), "b", pl.lit(" "), "s"))
    )
    return out.to_series()


# percent of plays showing each spelling, in the order of artist_spellings/title_spellings
ARTIST_NOISE = (80, 5, 3, 3, 4, 2, 3)
TITLE_NOISE = (88, 5, 3, 4)


def artist_spellings() -> list[pl.Expr]:
    """Spellings of the artist: as is, lower, upper, spaced, accents dropped, "The ", feat."""
    name = pl.col(ARTIST_NAME)
    return [
        name,
        name.str.to_lowercase(),
        name.str.to_uppercase(),
        pl.concat_str(pl.lit(" "), name.str.replace(" ", "  "), pl.lit(" ")),
        name.str.replace_many(list(_ACCENTS), list(_ACCENTS.values())),
        pl.concat_str(pl.lit("The "), name),
        pl.concat_str(name, pl.lit(" feat. "), pl.col("featured")),
    ]


def title_spellings() -> list[pl.Expr]:
    """Spellings of the title: as is, lower, with a (feat. ...) credit, in curly quotes."""
    title = pl.col(TRACK_NAME)
    return [
        title,
        title.str.to_lowercase(),
        pl.concat_str(title, pl.lit(" (feat. "), pl.col("featured"), pl.lit(")")),
        pl.concat_str(pl.lit("\u201c"), title, pl.lit("\u201d")),
    ]
