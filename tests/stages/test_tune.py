"""The tuning objective and the trials table."""

import numpy as np
import optuna
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score

from stages.tune import SPACES, ndcg_at_k, suggest, trials_frame


def test_ndcg_at_k_hand_computed():
    truth = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1]]))
    idx = np.array([[0, 1, 2], [0, 1, 2], [3, 2, -1]])
    # user 0: hits at ranks 1 and 3 of 2 relevant; user 1 has none (left out); user 2: no hit
    expected = (1 + 1 / np.log2(4)) / (1 + 1 / np.log2(3)) / 2
    assert ndcg_at_k(idx, np.arange(3), truth, k=3) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ndcg_at_k_equals_sklearn_on_full_rankings(seed):
    rng = np.random.default_rng(seed)
    relevant = (rng.random((6, 12)) < 0.25).astype(float)
    relevant[relevant.sum(axis=1) == 0, 0] = 1.0
    scores = rng.random((6, 12))
    idx = np.argsort(-scores, axis=1)
    ours = ndcg_at_k(idx, np.arange(6), sp.csr_matrix(relevant), k=5)
    assert ours == pytest.approx(ndcg_score(relevant, scores, k=5))


def test_trials_frame_tracks_the_best_so_far():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    values = iter([0.2, 0.1, 0.5, 0.3])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), next(values))[1], n_trials=4)
    frame = trials_frame(study)
    assert frame["value"].to_list() == [0.2, 0.1, 0.5, 0.3]
    assert frame["best_so_far"].to_list() == [0.2, 0.2, 0.5, 0.5]
    assert frame["x"].dtype.is_float()


@pytest.mark.parametrize("model", sorted(SPACES))
def test_every_space_names_train_settings(model):
    from musicrec_cli.config import TrainConfig
    from musicrec_cli.config_load import load_config

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    settings = suggest(model, study.ask())
    assert set(settings) <= set(TrainConfig.__dataclass_fields__)
    overrides = [
        f"train.{k}={list(v) if isinstance(v, tuple) else v!r}" for k, v in settings.items()
    ]
    load_config(overrides=[o.replace("'", '"') for o in overrides])  # valid values
