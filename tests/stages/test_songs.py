"""One version per song, on catalogues where most songs have several versions."""

import numpy as np
import pytest
import scipy.sparse as sp

from stages import songs
from stages.predict import top_n
from stages.songs import first_per_song, heard_groups, plain_lists, similar_lists


def test_first_per_song_keeps_the_best_version_and_compacts():
    group = np.array([0, 0, 1, 1, 2, 3])
    idx = np.array([[1, 0, 2, -1, 4, 3], [5, 4, 3, 2, 1, 0]])
    scores = np.array([[9, 8, 7, -np.inf, 5, 4], [6, 5, 4, 3, 2, 1]], dtype=np.float32)
    got_idx, got_scores = first_per_song(idx, scores, group, n=3)
    assert got_idx.tolist() == [[1, 2, 4], [5, 4, 3]]
    assert got_scores.tolist() == [[9, 7, 5], [6, 5, 4]]
    short_idx, short_scores = first_per_song(idx[:1, :3], scores[:1, :3], group, n=3)
    assert short_idx.tolist() == [[1, 2, -1]]
    assert short_scores[0, 2] == -np.inf


def _reference(scores, user_items, group, n, *, allow_heard):
    """Sort every track, drop heard tracks (and heard songs), keep first of each group."""
    out = []
    for u in range(scores.shape[0]):
        heard_tracks = set(user_items[u].indices.tolist())
        heard_songs = {group[t] for t in heard_tracks}
        seen, row = set(), []
        for t in np.lexsort((np.arange(scores.shape[1]), -scores[u])):
            if t in heard_tracks or group[t] in seen:
                continue
            if not allow_heard and group[t] in heard_songs:
                continue
            seen.add(group[t])
            row.append(int(t))
        out.append((row[:n] + [-1] * n)[:n])
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("allow_heard", [False, True])
def test_plain_lists_equals_deduplicating_the_full_ranking(seed, allow_heard):
    rng = np.random.default_rng(seed)
    n_items, n_users, n = 60, 12, 8
    group = rng.integers(0, 12, size=n_items)  # ~5 versions per song
    group[:15] = 0  # one song with 15 versions, all scoring high
    scores = (rng.random((n_users, n_items)) + (group == 0)).astype(np.float32)
    dense = (rng.random((n_users, n_items)) < 0.1).astype(np.float32)
    dense[0] = 0  # a user with no history
    dense[1] = np.arange(n_items) % 2  # heard half the catalogue
    user_items = sp.csr_matrix(dense)
    calls = []

    def fetch(rows, k):
        calls.append((rows.size, k))
        return top_n(scores[rows].copy(), user_items[rows], n=k)

    heard = None if allow_heard else heard_groups(user_items, group)
    idx, best = plain_lists(fetch, n_users, group, n=n, heard=heard)
    assert idx.tolist() == _reference(scores, user_items, group, n, allow_heard=allow_heard)
    valid = idx >= 0
    np.testing.assert_array_equal(best[valid], scores[np.nonzero(valid)[0], idx[valid]])
    assert calls[0] == (n_users, 2 * n)
    assert len(calls) > 1  # some rows needed a deeper fetch


def test_heard_groups_marks_every_group_of_a_heard_track():
    group = np.array([0, 1, 1, 2])
    user_items = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 1]], dtype=np.float32))
    assert heard_groups(user_items, group).toarray().tolist() == [
        [False, True, False],
        [True, False, True],
    ]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("one_per_group", [True, False])
def test_similar_lists_never_hold_the_query_song_and_one_version_of_each(seed, one_per_group):
    rng = np.random.default_rng(seed)
    n_items, n = 80, 6
    group = rng.integers(0, 10, size=n_items)  # ~8 versions per song
    group[:20] = 0  # song 0: 20 versions, all most similar to each other
    sims = rng.random((n_items, n_items)).astype(np.float32)
    sims[:20, :20] += 1.0
    queries = np.array([0, 5, 19, 40, 79])

    def fetch(rows, k):
        self_rows = sp.csr_matrix(
            (np.ones(rows.size), queries[rows], np.arange(rows.size + 1)),
            shape=(rows.size, n_items),
        )
        return top_n(sims[queries[rows]].copy(), self_rows, n=k)

    idx, best = similar_lists(fetch, queries, group, n=n, depth=n, one_per_group=one_per_group)
    for row, q in enumerate(queries):
        want, seen = [], set()
        for t in np.lexsort((np.arange(n_items), -sims[q])):
            if t == q or group[t] == group[q] or (one_per_group and group[t] in seen):
                continue
            seen.add(group[t])
            want.append(int(t))
        assert idx[row].tolist() == want[:n]
        np.testing.assert_array_equal(best[row], sims[q, idx[row]])
        assert group[q] not in group[idx[row]].tolist()
        if one_per_group:
            assert len(set(group[idx[row]].tolist())) == n


@pytest.mark.parametrize("dense_cells", [0, 1 << 24])
def test_drop_heard_songs_by_table_and_by_sorted_keys(monkeypatch, dense_cells):
    """Both lookups (a dense table for small blocks, sorted keys above DENSE_HEARD) drop
    exactly the candidates of a heard song, padding untouched."""
    monkeypatch.setattr(songs, "DENSE_HEARD", dense_cells)
    rng = np.random.default_rng(3)
    n_items, b, k = 200, 30, 25
    group = rng.integers(1, 40, size=n_items)
    user_items = sp.csr_matrix((rng.random((b, n_items)) < 0.05).astype(np.float32))
    idx = rng.integers(-1, n_items, size=(b, k))
    scores = rng.random((b, k)).astype(np.float32)
    got_idx, got_scores = songs.drop_heard_songs(
        idx, scores, group, heard_groups(user_items, group)
    )
    for u in range(b):
        heard = {group[t] for t in user_items[u].indices}
        want = [-1 if t < 0 or group[t] in heard else t for t in idx[u]]
        assert got_idx[u].tolist() == want
        kept = np.array(want) >= 0
        np.testing.assert_array_equal(got_scores[u][kept], scores[u][kept])
        assert np.isneginf(got_scores[u][~kept & (idx[u] >= 0)]).all()


def test_plain_lists_on_reused_candidates_equal_fetching_them():
    """predict hands the re-ranker's candidates to plain_lists as its first fetch
    (songs.reuse_first): the lists are the same, and only deeper fetches call the scorer."""
    rng = np.random.default_rng(5)
    n_items, n_users, n = 60, 12, 8
    group = rng.integers(0, 12, size=n_items)
    scores = rng.random((n_users, n_items)).astype(np.float32)
    user_items = sp.csr_matrix((rng.random((n_users, n_items)) < 0.1).astype(np.float32))
    calls = []

    def fetch(rows, k):
        calls.append((rows.size, k))
        return top_n(scores[rows].copy(), user_items[rows], n=k)

    heard = heard_groups(user_items, group)
    want = plain_lists(fetch, n_users, group, n=n, heard=heard, depth=2 * n)
    first = fetch(np.arange(n_users), 2 * n)
    calls.clear()
    reused = songs.reuse_first(fetch, 2 * n, first)
    got = plain_lists(reused, n_users, group, n=n, heard=heard, depth=2 * n)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert calls  # some rows needed a deeper fetch
    assert all(size < n_users or k > 2 * n for size, k in calls)


@pytest.mark.parametrize("depth", [8, 11, 24])
def test_needed_is_where_each_list_was_filled_whatever_the_first_depth(depth):
    rng = np.random.default_rng(3)
    n_items, n_users, n = 80, 16, 8
    group = rng.integers(0, 20, size=n_items)
    scores = rng.random((n_users, n_items)).astype(np.float32)
    user_items = sp.csr_matrix((rng.random((n_users, n_items)) < 0.15).astype(np.float32))
    heard = heard_groups(user_items, group)

    def fetch(rows, k):
        return top_n(scores[rows].copy(), user_items[rows], n=k)

    needed = np.zeros(n_users, dtype=np.int64)
    idx, _ = plain_lists(fetch, n_users, group, n=n, heard=heard, depth=depth, needed=needed)
    assert idx.tolist() == _reference(scores, user_items, group, n, allow_heard=False)
    # by hand: walk each row's full ranking of unheard tracks to its n-th kept track
    ranking, _ = top_n(scores.copy(), user_items, n=n_items)
    for u in range(n_users):
        kept, seen, heard_songs = 0, set(), {group[t] for t in user_items[u].indices}
        for position, t in enumerate(ranking[u]):
            if t < 0 or group[t] in heard_songs or group[t] in seen:
                continue
            seen.add(group[t])
            kept += 1
            if kept == n:
                assert needed[u] == position + 1
                break


def test_next_depth_covers_99_percent_of_rows_within_n_and_the_cap():
    needed = np.r_[np.full(990, 103), np.full(10, 290)]
    assert songs.next_depth(needed, n=100, cap=300) == 103
    assert songs.next_depth(np.arange(100, 300), n=100, cap=300) == 297  # the 198th of 200
    assert songs.next_depth(np.arange(100, 300), n=100, cap=250) == 250
    assert songs.next_depth(np.full(5, 40), n=100, cap=300) == 100
