"""stages.serve: name lookup, liked-track fold-in, ranking without versions, hybrid shares."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from stages import lookup, serve
from stages.models import top_contributions
from stages.models.als import fit_als
from stages.models.content import fit_content
from stages.models.hybrid import build_hybrid
from stages.models.popularity import fit_popularity
from stages.models.rp3beta import fit_rp3beta
from tests.stages.test_models import HALF, LIKED, N_ITEMS, WEIGHTS, _audio, _clusters

ITEMS = pl.DataFrame(
    {
        "track_idx": pl.Series([0, 1, 2], dtype=pl.UInt32),
        "track_id": ["daft punk - one more time", "björk - jóga", "daft punk - aerodynamic"],
    }
)
USERS = pl.DataFrame({"user_idx": pl.Series([0, 1], dtype=pl.UInt32), "user_id": ["ann", "bob"]})


def test_find_tracks_matches_ids_and_any_spelling_preprocess_merges():
    queries = [
        "björk - jóga",
        "  Daft   Punk - ONE MORE TIME ",
        "\u201cDaft Punk\u201d - Aerodynamic",
    ]
    assert lookup.find_tracks(queries, ITEMS) == [1, 0, 2]


def test_find_tracks_names_the_unknown_query_and_the_closest_tracks():
    with pytest.raises(
        lookup.LookupFailedError, match="unknown track 'Daft Pnk - One More Time'"
    ) as e:
        lookup.find_tracks(["björk - jóga", "Daft Pnk - One More Time"], ITEMS)
    assert "Closest: 'daft punk - one more time'" in str(e.value)


def test_find_user_gives_index_or_a_clear_error():
    assert lookup.find_user("bob", USERS) == 1
    with pytest.raises(lookup.LookupFailedError, match="unknown user 'bobb'.*Closest: 'bob'"):
        lookup.find_user("bobb", USERS)


def test_rank_tracks_leaves_out_excluded_tracks_and_their_versions():
    scores = np.array([5.0, 4.0, 3.0, 2.0, 1.0, -np.inf], dtype=np.float32)
    idx, best = serve.rank_tracks(scores, exclude=np.array([0]), n=10)
    assert idx.tolist() == [1, 2, 3, 4]
    assert best.tolist() == [4.0, 3.0, 2.0, 1.0]
    groups = np.array([0, 0, 1, 1, 2, 3])
    idx, best = serve.rank_tracks(scores, exclude=np.array([0]), n=10, groups=groups)
    assert idx.tolist() == [2, 4]  # 1 is a version of the seed; 3 a worse version of 2
    idx, _ = serve.rank_tracks(scores, exclude=np.array([0]), n=1, groups=groups)
    assert idx.tolist() == [2]


def test_group_codes_follow_track_group_id_or_are_absent():
    assert serve.group_codes(ITEMS) is None
    items = ITEMS.with_columns(pl.Series("track_group_id", ["g1", "g2", "g1"]))
    codes = serve.group_codes(items)
    assert codes[0] == codes[2] != codes[1]


def test_liked_cluster_a_tracks_give_cluster_a_recommendations():
    user_items = _clusters()
    als = fit_als(user_items, factors=2, iterations=15, regularization=0.05, alpha=10.0, seed=1)
    content = fit_content(_audio())
    hybrid = build_hybrid(
        als=als,
        content=content,
        popularity=fit_popularity(user_items),
        rp3beta=fit_rp3beta(user_items, alpha=1.0, beta=0.5, neighbours=10),
        weights=WEIGHTS,
        min_tracks=5,
        liked=LIKED,
    )
    row = serve.liked_row([0, 1, 1, 2], n_items=N_ITEMS)
    assert row.indices.tolist() == [0, 1, 2]
    assert row.data.tolist() == [1.0, 1.0, 1.0]
    for model in (als, content, hybrid):
        scores = serve.liked_scores(model, row, name="a model")
        idx, _ = serve.rank_tracks(scores, exclude=row.indices, n=5)
        assert (idx < HALF).all(), type(model).__name__
    with pytest.raises(lookup.LookupFailedError, match="model 'x' cannot score new listeners"):
        serve.liked_scores(object(), row, name="x")  # type: ignore[arg-type]


def test_top_contributions_only_lists_heard_tracks_with_positive_values():
    row = sp.csr_matrix(np.array([[1.0, 0, 2.0, 1.0]], np.float32))
    values = np.array([0.5, 9.0, 0.7, -0.2], dtype=np.float32)
    assert top_contributions(values, row, n=5) == [
        (2, pytest.approx(0.7)),
        (0, pytest.approx(0.5)),
    ]


def test_closest_names_survive_the_shortlist_of_large_vocabularies(monkeypatch):
    monkeypatch.setattr(lookup, "_SHORTLIST", 2)
    with pytest.raises(lookup.LookupFailedError, match="Closest: 'daft punk - aerodynamic'"):
        lookup.find_tracks(["daft punk - aerodinamic"], ITEMS)
    users = pl.DataFrame({"user_idx": [0, 1, 2], "user_id": ["u_0120", "u_0121", "v_9"]})
    with pytest.raises(lookup.LookupFailedError, match=r"Closest: 'u_0121'\.$"):
        lookup.find_user("u_0121x", users)
