"""The ``make run`` supervisor starts a dying worker again, says so, and backs off when it keeps dying.

Real child processes (small Python programs standing in for the worker and the web server); the
supervisor's restart loop (``Children.poll``) is driven the way ``main`` drives it.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import time

from config import load_config
from viewzenix.supervisor import Child, Children, worker_children

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]
DIES_AT_ONCE = [sys.executable, "-c", "raise SystemExit(3)"]


def supervise(*children: Child, **settings) -> tuple[Children, io.StringIO]:
    out = io.StringIO()
    supervisor = Children(list(children), env=dict(os.environ), cwd=os.getcwd(), out=out, **settings)
    supervisor.start()
    return supervisor, out


def poll_until(supervisor: Children, predicate, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert supervisor.poll() is None
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_killed_worker_is_started_again_and_the_supervisor_says_so():
    worker = Child("worker", SLEEPER, restart=True)
    web = Child("web", SLEEPER)
    supervisor, out = supervise(web, worker, backoff_base=0.01)
    try:
        first = worker.proc
        os.kill(first.pid, signal.SIGKILL)
        poll_until(supervisor, lambda: worker.proc is not first, "the worker to be restarted")

        assert worker.proc.poll() is None  # the new worker runs
        assert web.proc.poll() is None  # and the web process was left alone
        assert out.getvalue().splitlines() == [
            "worker exited with code -9; restarting it in 0.01 s",
            f"worker restarted (pid {worker.proc.pid}, restart 1)",
        ]
    finally:
        supervisor.stop()
    assert worker.proc.returncode == -signal.SIGTERM
    assert web.proc.returncode == -signal.SIGTERM


def test_a_worker_that_keeps_dying_is_restarted_after_longer_and_longer_waits_up_to_the_cap():
    worker = Child("worker", DIES_AT_ONCE, restart=True)
    supervisor, out = supervise(worker, backoff_base=0.01, backoff_max=0.04, stable_after=3600)
    try:
        poll_until(supervisor, lambda: worker.restarts == 4 and worker.proc.poll() is not None, "4 restarts")
    finally:
        supervisor.stop()

    deaths = [line for line in out.getvalue().splitlines() if "exited" in line]
    assert deaths[:5] == [
        "worker exited with code 3; restarting it in 0.01 s",
        "worker exited with code 3 (2 times in a row); restarting it in 0.02 s",
        "worker exited with code 3 (3 times in a row); restarting it in 0.04 s",
        "worker exited with code 3 (4 times in a row); restarting it in 0.04 s",
        "worker exited with code 3 (5 times in a row); restarting it in 0.04 s",
    ]


def test_a_death_long_after_the_start_counts_as_the_first_in_a_row_again():
    now = [0.0]
    worker = Child("worker", DIES_AT_ONCE, restart=True)
    supervisor, out = supervise(worker, backoff_base=5, stable_after=30, clock=lambda: now[0])
    try:
        worker.proc.wait()
        worker.quick_deaths = 3  # it had died quickly three times before this run
        now[0] = 31.0  # ... but this run lasted longer than stable_after
        assert supervisor.poll() is None
    finally:
        supervisor.stop()
    assert out.getvalue().splitlines() == ["worker exited with code 3; restarting it in 5 s"]


def test_a_web_process_that_exits_ends_the_run():
    web = Child("web", DIES_AT_ONCE)
    supervisor, _ = supervise(web)
    try:
        web.proc.wait()
        assert supervisor.poll() == "web exited with code 3"
    finally:
        supervisor.stop()


def test_make_run_starts_one_worker_per_configured_process_each_with_its_own_metrics_port():
    config = load_config({"WORKER_PROCESSES": "3", "WORKER_METRICS_PORT": "9400"})
    workers = worker_children(config, stop_timeout=7.0)

    assert [w.name for w in workers] == ["worker-1", "worker-2", "worker-3"]
    assert all(w.argv[1:] == ["-m", "viewzenix.worker"] and w.restart for w in workers)
    assert [w.stop_timeout for w in workers] == [7.0] * 3
    assert [w.env for w in workers] == [{"WORKER_METRICS_PORT": p} for p in ("9400", "9401", "9402")]

    one = worker_children(
        load_config({"WORKER_PROCESSES": "1", "WORKER_METRICS_PORT": "9400"}), stop_timeout=1
    )
    assert [(w.name, w.env) for w in one] == [("worker", {})]  # its port is the environment's


def test_a_childs_own_environment_reaches_it_and_only_it(tmp_path):
    prints = [
        sys.executable,
        "-c",
        "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('VZ_TEST_VALUE', '-'))",
    ]
    first = Child("first", [*prints, str(tmp_path / "first")], env={"VZ_TEST_VALUE": "mine"})
    second = Child("second", [*prints, str(tmp_path / "second")])
    supervisor, _ = supervise(first, second)
    try:
        for child in (first, second):
            child.proc.wait(timeout=30)
    finally:
        supervisor.stop()
    assert (tmp_path / "first").read_text() == "mine"
    assert (tmp_path / "second").read_text() == "-"


def test_stopping_several_workers_that_hang_takes_one_timeout_not_one_each(tmp_path):
    # Each ignores SIGTERM (a job that does not end): the supervisor kills it at its timeout,
    # counted from the one SIGTERM they all got, as make run's workers stop together.
    code = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(600)"
    )
    hung = [
        Child(f"worker-{n}", [sys.executable, "-c", code, str(tmp_path / str(n))], stop_timeout=1.5)
        for n in (1, 2, 3)
    ]
    supervisor, out = supervise(*hung)
    poll_until(supervisor, lambda: all((tmp_path / str(n)).exists() for n in (1, 2, 3)), "the handlers")

    started = time.monotonic()
    supervisor.stop()
    took = time.monotonic() - started

    assert [child.proc.returncode for child in hung] == [-signal.SIGKILL] * 3
    assert out.getvalue().splitlines() == [
        f"worker-{n} did not stop within 1.5 s; killing it" for n in (1, 2, 3)
    ]
    assert took < 3.0  # one shared 1.5-s wait; one after another it was 4.5 s
