import pytest

from domains.models import Job
from tests.access.conftest import World, build_world


@pytest.fixture
def world(db) -> World:
    """The access tests' world (tests/access/conftest.py) with its job on da ended: nothing pending on da."""
    world = build_world()
    Job.objects.filter(pk=world.job.pk).update(state=Job.State.SUCCEEDED)
    return world
