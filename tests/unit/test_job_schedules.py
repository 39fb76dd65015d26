"""The periodic schedules fire as often as documented (procrastinate reads seconds as the 6th field)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import croniter
import pytest

from config import load_config
from viewzenix.services.approvals import APPROVAL_EXPIRY_CRON


def gaps(cron: str, start: datetime, n: int = 8) -> set[float]:
    it = croniter.croniter(cron, start)
    ticks = [it.get_next(float) for _ in range(n)]
    return {b - a for a, b in itertools.pairwise(ticks)}


@pytest.mark.parametrize(
    "start", [datetime(2026, 11, 27, 16, 28, 3, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
)
def test_the_stalled_job_sweep_runs_every_15_seconds_and_the_order_sync_every_30(start):
    config = load_config({})

    assert gaps(config.STALLED_JOBS_CRON, start) == {15.0}
    assert gaps(config.ORDER_SYNC_CRON, start) == {30.0}


@pytest.mark.parametrize(
    "start", [datetime(2026, 11, 27, 16, 28, 3, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)]
)
def test_the_approval_expiry_sweep_runs_every_15_seconds(start):
    # "*/15 * * * * *" reads as every second of minutes 0, 15, 30 and 45: a 14-minute gap.
    assert gaps(APPROVAL_EXPIRY_CRON, start) == {15.0}
