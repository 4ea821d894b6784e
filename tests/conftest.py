import pytest
from blob_image import blob_image

_repeater = None


def pytest_configure(config):
    """Channel Access on loopback and private ports, with a repeater owned by this session.

    This runs before test collection, hence before the first ``import ophyd`` starts pyepics' libca,
    which reads these variables once and would otherwise spawn a ``caRepeater`` nobody stops.
    """
    global _repeater
    from sim.ioc_process import RepeaterProcess, configure_loopback, free_port

    server_port = free_port()
    configure_loopback(server_port=server_port, repeater_port=free_port(exclude=(server_port,)))
    _repeater = RepeaterProcess().start()


def pytest_unconfigure(config):
    if _repeater is not None:
        _repeater.stop()


@pytest.fixture
def blobs():
    """A 64x64 test image with edges and smooth parts (no data files needed)."""
    return blob_image(64)


def run_to_end(sampler, truth, n=None):
    """Drive a sampler on a known image until it is done (`steering.run`); return the number of batches."""
    from steering import run

    batches = []
    run(sampler, lambda p: truth[p[:, 0], p[:, 1]], n=None if n is None else lambda s: n,
        on_batch=lambda s, points, values: batches.append(len(points)))
    return len(batches)


@pytest.fixture(scope="session")
def catalog(tmp_path_factory):
    """One embedded tiled catalog (its own process) for the whole test session."""
    from plans import Catalog

    cat = Catalog(tmp_path_factory.mktemp("catalog"))
    yield cat
    cat.close()
