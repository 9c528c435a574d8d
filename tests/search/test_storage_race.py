"""Two processes opening one new SQLite study database at the same instant (two searches started
together, or several local workers) both create its tables; the loser must use the winner's."""
import multiprocessing
import time

from autoc.search.storage import open_storage


def _open_at(url: str, start: float) -> str:
    while time.time() < start:  # both processes leave this loop together
        pass
    open_storage(url)
    return "opened"


def test_simultaneous_first_opens_of_one_database_both_succeed(tmp_path):
    # without the retry, about one pair in four failed here with "UNIQUE constraint failed: alembic_version"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for i in range(8):
            url = f"sqlite:///{tmp_path / f'race{i}.db'}"
            start = time.time() + 0.5
            assert pool.starmap(_open_at, [(url, start), (url, start)]) == ["opened", "opened"]
