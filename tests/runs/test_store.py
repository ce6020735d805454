import asyncio
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from medverify.errors import BackendError, ConfigError
from medverify.runs.store import RunStore


async def test_map_persists_each_unit_and_skips_finished_ones(tmp_path):
    calls = []

    async def work(key, unit):
        calls.append(key)
        return {"square": unit * unit}

    units = {f"u{i}": i for i in range(10)}
    with RunStore(tmp_path, job="squares", config={"n": 10}) as store:
        assert not store.is_resumed
        first = await store.map("square", dict(list(units.items())[:6]), work)
        assert len(first) == 6
    with RunStore(tmp_path, job="squares", config={"n": 10}) as store:
        assert store.is_resumed
        result = await store.map("square", units, work, concurrency=3)
    assert sorted(calls) == sorted(units)  # each unit computed exactly once over both runs
    assert result == {k: {"square": v * v} for k, v in units.items()}


async def test_concurrent_async_writers_lose_nothing(tmp_path):
    async def work(key, unit):
        await asyncio.sleep(0.001 * (unit % 7))
        return unit

    units = {f"k{i:04d}": i for i in range(600)}
    with RunStore(tmp_path, job="j", config={}) as store:
        result = await store.map("x", units, work, concurrency=64)
        assert len(result) == 600
        assert store.kv.count("x") == 600


async def test_failures_are_recorded_and_retried_on_the_next_run(tmp_path):
    attempts = {}

    async def flaky(key, unit):
        attempts[key] = attempts.get(key, 0) + 1
        if key == "bad" and attempts[key] == 1:
            raise BackendError("grader gave up", spec="openai:judge")
        return unit

    with RunStore(tmp_path, job="j", config={}) as store:
        result = await store.map("g", {"good": 1, "bad": 2}, flaky)
        assert result == {"good": 1}
        assert "grader gave up" in store.failures("g")["bad"]
    with RunStore(tmp_path, job="j", config={}) as store:
        result = await store.map("g", {"good": 1, "bad": 2}, flaky)
        assert result == {"good": 1, "bad": 2}
        assert store.failures("g") == {}
    assert attempts == {"good": 1, "bad": 2}


async def test_a_bug_stops_the_job_but_keeps_finished_work(tmp_path):
    async def buggy(key, unit):
        if unit == 3:
            raise ZeroDivisionError("bug")
        return unit

    with RunStore(tmp_path, job="j", config={}) as store:
        with pytest.raises(ZeroDivisionError):
            await store.map("b", {f"{i}": i for i in range(6)}, buggy, concurrency=1)
        assert store.done("b") == {"0", "1", "2"}


def test_other_settings_or_another_job_are_refused(tmp_path):
    RunStore(tmp_path, job="healthbench-run", config={"model": "local", "limit": 5}).close()
    with pytest.raises(ConfigError, match=r"model: was 'local', now 'openai:x'"):
        RunStore(tmp_path, job="healthbench-run", config={"model": "openai:x", "limit": 5})
    with pytest.raises(ConfigError, match="holds a 'healthbench-run' run, not 'demo'"):
        RunStore(tmp_path, job="demo", config={"model": "local", "limit": 5})
    RunStore(tmp_path, job="healthbench-run", config={"model": "local", "limit": 5}).close()


_OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from medverify.errors import ConfigError
    from medverify.runs.kv import SqliteKV
    from medverify.runs.store import RunStore

    run_dir, tag, n_procs, setting = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    barrier = Path(run_dir).parent / "ready"
    barrier.mkdir(exist_ok=True)
    (barrier / tag).touch()
    while len(list(barrier.iterdir())) < n_procs:  # open the new file at the same instant
        time.sleep(0.001)
    if setting == "kv":  # the SQLite file alone, as the response cache opens it
        store = SqliteKV(Path(run_dir) / "run.sqlite")
    else:
        try:
            store = RunStore(run_dir, job="j", config={"setting": setting})
        except ConfigError as exc:
            sys.exit(4 if "in use by another medverify process" in str(exc) else 3)
    for i in range(100):
        store.put("x", f"{tag}-{i}", i)
    """
)


def _open_at_once(run_dir, settings):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENER, str(run_dir), str(i), str(len(settings)), setting]
        )
        for i, setting in enumerate(settings)
    ]
    return [p.wait(60) for p in procs]


def test_processes_opening_a_new_file_at_once_all_succeed(tmp_path):
    """Regression: two processes switching a new file to WAL at once got "database is locked"
    (SQLite skips the busy timeout for that), failing one of them about one time in five."""
    assert _open_at_once(tmp_path / "run", ["kv"] * 4) == [0, 0, 0, 0]
    with RunStore(tmp_path / "run", job="j", config={}) as store:
        assert store.kv.count("x") == 400


def test_processes_opening_one_run_at_once_never_share_it(tmp_path):
    codes = _open_at_once(tmp_path / "run", ["same"] * 4)
    assert set(codes) <= {0, 4} and 0 in codes  # each ran alone or was refused: in use
    with RunStore(tmp_path / "run", job="j", config={"setting": "same"}) as store:
        assert store.kv.count("x") == 100 * codes.count(0)


def test_racing_runs_with_other_settings_exactly_one_is_recorded(tmp_path):
    codes = _open_at_once(tmp_path / "run", ["a", "b"])
    assert sorted(codes)[0] == 0 and sorted(codes)[1] in (3, 4)  # the loser is refused
    winner = "a" if codes[0] == 0 else "b"
    with RunStore(tmp_path / "run", job="j", config={"setting": winner}) as store:
        assert store.kv.count("x") == 100


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from medverify.runs.store import RunStore

    store = RunStore(sys.argv[1], job="j", config={})
    print("holding", flush=True)
    time.sleep(120)
    """
)
_TRY_OPEN = textwrap.dedent(
    """
    import sys
    from medverify.errors import ConfigError
    from medverify.runs.store import RunStore

    try:
        RunStore(sys.argv[1], job="j", config={}).close()
    except ConfigError as exc:
        print(exc)
        sys.exit(4)
    """
)


def _try_open(run_dir, env=None):
    env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", _TRY_OPEN, str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_another_process_is_refused_with_the_holders_pid(tmp_path):
    store = RunStore(tmp_path, job="j", config={})
    again = RunStore(tmp_path, job="j", config={})  # the same process shares its lock
    try:
        refused = _try_open(tmp_path)
        assert refused.returncode == 4, refused.stderr
        assert refused.stdout.strip() == (
            f"{tmp_path} is in use by another medverify process (pid {os.getpid()}); wait for "
            "it to finish or use another --run-dir"
        )
        again.close()
        assert _try_open(tmp_path).returncode == 4  # still held by the first store
    finally:
        store.close()
        again.close()
    assert _try_open(tmp_path).returncode == 0  # closed: free again


def test_a_killed_holder_leaves_the_run_dir_free(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        refused = _try_open(tmp_path)
        assert refused.returncode == 4 and f"(pid {holder.pid})" in refused.stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    assert _try_open(tmp_path).returncode == 0
    with RunStore(tmp_path, job="j", config={}):
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())


def test_a_refused_open_gives_the_lock_back(tmp_path):
    RunStore(tmp_path, job="j", config={"a": 1}).close()
    with pytest.raises(ConfigError, match="other settings"):
        RunStore(tmp_path, job="j", config={"a": 2})
    # The next process gets as far as the settings check (refused for its own settings, {}),
    # not stopped by a lock left behind.
    result = _try_open(tmp_path)
    assert "other settings" in result.stdout and "in use" not in result.stdout


def test_a_store_dropped_without_close_gives_the_lock_back(tmp_path):
    store = RunStore(tmp_path, job="j", config={})
    del store
    gc.collect()
    assert _try_open(tmp_path).returncode == 0


def test_ranks_of_a_distributed_launch_share_the_run_dir(tmp_path):
    with RunStore(tmp_path, job="j", config={}, lock=False):
        assert _try_open(tmp_path).returncode == 0  # no lock taken
    with RunStore(tmp_path, job="j", config={}):
        assert _try_open(tmp_path, env={"WORLD_SIZE": "2"}).returncode == 0
        assert _try_open(tmp_path, env={"WORLD_SIZE": "1"}).returncode == 4


def test_put_absent_stores_only_when_no_key_exists(tmp_path):
    with RunStore(tmp_path, job="j", config={}) as store:
        assert store.kv.put_absent("ns", {"a": 1, "b": 2})
        assert not store.kv.put_absent("ns", {"b": 3, "c": 4})
        assert dict(store.kv.items("ns")) == {"a": 1, "b": 2}


JOB = textwrap.dedent(
    """
    import asyncio, sys
    from medverify.backends.base import RetryPolicy
    from medverify.backends.openai_compat import OpenAIBackend
    from medverify.runs.store import RunStore

    async def main(base_url, run_dir, n):
        backend = OpenAIBackend("m", base_url=base_url, api_key="", concurrency=4,
                                retry=RetryPolicy(max_attempts=2, base_delay_s=0.01))
        async def work(key, unit):
            return (await backend.complete([{"role": "user", "content": key}])).text
        with RunStore(run_dir, job="kill-test", config={"n": n}) as store:
            await store.map("answer", {f"unit-{i:03d}": i for i in range(n)}, work,
                            concurrency=4)
        await backend.aclose()

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def _finished(run_dir):
    path = run_dir / "run.sqlite"
    if not path.exists():
        return {}
    conn = sqlite3.connect(path, timeout=10)
    try:
        rows = conn.execute("SELECT key, value FROM kv WHERE ns = 'answer'").fetchall()
    except sqlite3.OperationalError:
        rows = []
    conn.close()
    return dict(rows)


@pytest.mark.slow
def test_killed_job_resumes_without_redoing_or_losing_work(tmp_path, fake_server):
    """SIGKILL a real job mid-run; the rerun redoes nothing finished and loses nothing."""
    fake_server.latency_s = 0.03
    n = 120
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-c", JOB, fake_server.base_url, str(run_dir), str(n)]
    proc = subprocess.Popen(cmd)
    deadline = time.monotonic() + 60
    while len(_finished(run_dir)) < 30 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = _finished(run_dir)
    assert 30 <= len(before) < n, "the kill must land mid-job"
    calls_before_rerun = dict(fake_server.calls_by_prompt)

    assert subprocess.run(cmd, timeout=120).returncode == 0
    after = _finished(run_dir)
    assert set(after) == {f"unit-{i:03d}" for i in range(n)}
    for key, value in before.items():
        assert after[key] == value  # nothing finished was lost or rewritten
        assert fake_server.calls_by_prompt[key] == 1  # nothing finished was redone
    redone = [k for k, c in fake_server.calls_by_prompt.items() if c > 1]
    assert len(redone) <= 4  # at most the calls in flight at the kill
    assert all(k not in before and k in calls_before_rerun for k in redone)
    assert sum(fake_server.calls_by_prompt.values()) <= n + 4
