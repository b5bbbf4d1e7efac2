"""Every backend runs through ``BackendContract``: inline, and Ray on a local instance."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.workers.backend_contract import BackendContract
from workers.backend import Backend, InlineBackend


class TestInlineBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> Backend:
        return InlineBackend()


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    import ray

    from workers.ray_backend import ensure_ray

    started = ensure_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


class TestRayBackend(BackendContract):
    @pytest.fixture
    def backend(self, ray_instance: None) -> Backend:
        from workers.ray_backend import RayBackend

        return RayBackend(poll_s=0.05)
