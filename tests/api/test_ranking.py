"""The job's ranking of distinct architectures (``api.ranking``), read from the database."""

from __future__ import annotations

from api.db import make_engine, make_session_factory, session_scope, upgrade
from api.models import JobModel, JobState, TrialModel, stored_arch_key
from api.ranking import configuration_ranks, rank_architecture
from api.repositories import JobRepository, TrialRepository
from nas.architecture import Architecture
from nas.trial import TrialRecord, TrialResult, TrialState
from tests.api.conftest import nb201_spec


def test_architectures_apart_only_past_the_stored_keys_length_rank_apart(
    database_url: str,
) -> None:
    """enas-macro at 24 layers has keys of some 600 characters: cut at the column's 500,
    two architectures apart only in their last skip connections were one architecture (one
    rank: the other could be neither exported nor retrained)."""
    engine = make_engine(database_url)
    upgrade(engine)
    write = make_session_factory(engine, write=True)
    choices = [0] * 24 + [1] * 276
    first = Architecture("enas-macro", tuple(choices))
    second = Architecture("enas-macro", (*choices[:-1], 0))
    assert len(first.key) > 500 and first.key[:500] == second.key[:500]
    try:
        with session_scope(write) as session:
            job = JobRepository(session).add(
                JobModel(name="deep", spec=nb201_spec(), state=JobState.SUCCEEDED.value)
            )
            records = [
                TrialRecord(n, n, arch, {}, TrialResult(TrialState.COMPLETE, objective=acc), 0, 1)
                for n, (arch, acc) in enumerate([(first, 90.0), (second, 80.0)])
            ]
            TrialRepository(session).add_records(job.id, records)
            job_id = job.id
        with session_scope(write) as session:
            job = JobRepository(session).get(job_id)
            assert job is not None
            ranked = [rank_architecture(session, job, rank) for rank in (1, 2)]
            assert [r.count for r in ranked] == [2, 2]
            assert [r.architecture for r in ranked] == [first, second]
            assert [r.score for r in ranked] == [90.0, 80.0]
            keys = [row.arch_key for row in session.query(TrialModel).order_by(TrialModel.number)]
            assert all(len(key) == 500 for key in keys) and keys[0] != keys[1]
            assert keys == [stored_arch_key(first.key), stored_arch_key(second.key)]
            assert sorted(rank for rank, _ in configuration_ranks(session, job).values()) == [1, 2]
    finally:
        engine.dispose()
