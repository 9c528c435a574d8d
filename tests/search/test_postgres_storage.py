"""A real PostgreSQL server as the storage of a two-worker search (local Ray instance)."""
from optuna.trial import TrialState

from autoc.search.driver import run_search
from autoc.search.worker import SURPLUS_ATTR, WORKER_ATTR
from conftest import load, tiny_options


def test_two_workers_share_a_postgresql_study(postgres_url, tiny_space, runs_dir):
    options = tiny_options(tiny_space, runs_dir, "pg", trials=4, workers=2, url=postgres_url)
    result = run_search(options)
    study = load(postgres_url, "pg")
    states = [t.state for t in study.trials]
    assert result.trials_total == 4 and states.count(TrialState.COMPLETE) == 4
    # a worker that raced past the target ends its trial at once, marked surplus, before training
    assert all(t.state == TrialState.FAIL and t.user_attrs.get(SURPLUS_ATTR) for t in study.trials
               if t.state != TrialState.COMPLETE)
    assert len({t.user_attrs[WORKER_ATTR] for t in study.trials}) == 2  # both workers ran trials
    assert not (runs_dir / "pg" / "study.db").exists()  # nothing went to the default SQLite file
    assert result.policy_path.is_file()
