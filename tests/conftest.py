import os
from pathlib import Path

import pytest

from tests.fixtures import make_all

REPO = Path(__file__).resolve().parents[1]
REAL_DATA = Path(os.environ.get("DA_BENCH_REAL_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory):
    """A data root with every data set in its real format (tiny), its md5s trusted for the session."""
    root = tmp_path_factory.mktemp("data")
    checksums = make_all(root)
    os.environ["DA_BENCH_EXTRA_CHECKSUMS"] = str(checksums)
    os.environ["DA_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return root


@pytest.fixture
def real_data():
    if not (REAL_DATA / "MNIST" / "raw").is_dir():
        pytest.skip(f"real data not found at {REAL_DATA}")
    return REAL_DATA
