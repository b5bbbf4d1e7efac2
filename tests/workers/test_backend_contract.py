"""Every backend runs through ``BackendContract``: inline, and Ray on a local instance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import local_ray
from tests.workers.backend_contract import BackendContract
from workers.backend import Backend, InlineBackend


class TestInlineBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return InlineBackend()


@pytest.fixture(scope="module")
def ray_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield from local_ray(tmp_path_factory, num_cpus=2)


class TestRayBackend(BackendContract):
    @pytest.fixture
    def backend(self, ray_instance: None) -> Backend:
        from workers.ray_backend import RayBackend

        return RayBackend(poll_s=0.05)
