import shutil

import pytest

from sync.district.store import SqliteStore

from .broker import Broker
from .pki import Pki
from .support import IngestProc

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed (tests/run.sh installs it)")


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path, pki):
    b = Broker(tmp_path / "broker", pki).start()
    yield b
    b.stop()


@pytest.fixture
def district(tmp_path):
    """The district database (SQLite) as (url, store)."""
    path = tmp_path / "district.sqlite3"
    store = SqliteStore(path)
    yield f"sqlite:///{path}", store
    store.close()


@pytest.fixture
def ingest(broker, pki, district):
    procs = []

    def start(instance="1", env=None):
        p = IngestProc(broker, pki, district[0], instance, env).start()
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.stop()
