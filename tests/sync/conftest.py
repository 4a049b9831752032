import os
import resource
import shutil

import pytest

from sync.district.store import SqliteStore

from .broker import Broker
from .pki import Pki
from .support import IngestProc, hold_descriptors_up_to

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto is not installed (tests/run.sh installs it)")


@pytest.fixture(scope="session", autouse=True)
def high_descriptors():
    """Every sync test runs with the process's descriptors numbered above 1024.

    ``select()`` cannot watch those; a process of the full suite (browsers, hubs,
    databases) holds that many by the time the sync tests run, and so may a busy
    district service. Holding them from the start makes every test here prove the
    MQTT code works there, whatever order the tests run in."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 4096:
        pytest.fail(f"RLIMIT_NOFILE hard limit {hard} < 4096: cannot hold descriptors above 1024")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 4096), hard))
    held = hold_descriptors_up_to(1100)
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


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
