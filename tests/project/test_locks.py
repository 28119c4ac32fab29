"""Output locks: held by one process at a time, naming the holder, free at once when the holder is killed."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lightning_dlc.project import locks
from lightning_dlc.project.errors import ProjectError
from lightning_dlc.project.locks import OutputLocked, lock_holder, lock_path, output_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the holder subprocess uses POSIX signals")

# A process that takes the lock, says so, and holds it until killed or until the "release" file appears.
HOLDER = """
import sys, time
from pathlib import Path
from lightning_dlc.project.locks import output_lock
path, release = Path(sys.argv[1]), Path(sys.argv[2])
with output_lock(path):
    print("held", flush=True)
    deadline = time.time() + 60
    while not release.exists() and time.time() < deadline:
        time.sleep(0.02)
"""


@pytest.fixture
def holder(tmp_path):
    """``start(lock)``: a subprocess holding ``lock`` (returns it and its release file); killed at the end."""
    started = []

    def start(lock: Path):
        release = tmp_path / f"release-{len(started)}"
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), str(release)], stdout=subprocess.PIPE,
                                text=True)
        started.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc, release

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_a_held_lock_names_its_holders_pid_and_host(tmp_path, holder):
    lock = lock_path(tmp_path / "videoDLC_scorer")
    assert lock == tmp_path / "videoDLC_scorer.lock"
    proc, _ = holder(lock)
    with pytest.raises(OutputLocked) as caught:
        with output_lock(lock):
            pass
    message = str(caught.value)
    assert message.startswith(str(lock)) and f"pid {proc.pid} on host {socket.gethostname()}" in message
    assert isinstance(caught.value, ProjectError) and caught.value.holder.pid == proc.pid
    assert "-c" in (lock_holder(lock).command or "")


def test_a_killed_holders_lock_is_free_at_once(tmp_path, holder):
    lock = tmp_path / "out" / "videoDLC_scorer.lock"
    proc, _ = holder(lock)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    t0 = time.monotonic()
    with output_lock(lock) as held:  # no wait, no stale lock to clean up
        assert held.holder.pid == os.getpid()
        assert lock_holder(lock).pid == os.getpid()  # the dead holder's note is replaced
    assert time.monotonic() - t0 < 1.0


def test_wait_blocks_until_the_holder_is_done_and_logs_once(tmp_path, holder, caplog):
    lock = tmp_path / "videoDLC_scorer.lock"
    proc, release = holder(lock)
    caplog.set_level(logging.INFO, logger=locks.__name__)
    threading.Timer(0.8, release.touch).start()
    t0 = time.monotonic()
    with output_lock(lock, wait=True):
        waited = time.monotonic() - t0
    assert waited >= 0.5 and proc.wait(10) == 0
    waits = [r for r in caplog.records if "waiting" in r.getMessage()]
    assert len(waits) == 1 and f"pid {proc.pid}" in waits[0].getMessage()


def test_wait_with_a_timeout_gives_up(tmp_path, holder):
    lock = tmp_path / "videoDLC_scorer.lock"
    holder(lock)
    with pytest.raises(OutputLocked, match="locked by pid"):
        with output_lock(lock, wait=True, timeout=0.3):
            pass


def test_reentrant_in_one_process_and_the_file_goes_with_the_last_release(tmp_path):
    lock = tmp_path / "videoDLC_scorer.lock"
    with output_lock(lock) as outer:
        with output_lock(lock) as inner:  # tracking right after analysis, in the same process
            assert inner is outer
        assert lock.exists()
    assert not lock.exists()
    with output_lock(lock):  # and it can be taken again
        pass


def test_a_removed_lock_file_never_gives_two_holders(tmp_path, holder):
    """Whoever locked a file that was removed meanwhile (its holder let go) must not think it holds the lock."""
    lock = tmp_path / "videoDLC_scorer.lock"
    proc, release = holder(lock)
    stale_fd = os.open(lock, os.O_RDWR)  # opened while held: the inode the holder removes on release
    release.touch()
    proc.wait(10)
    assert not lock.exists()
    assert locks._try_lock(stale_fd) and not locks._same_file(stale_fd, lock)  # what _acquire checks, and retries
    os.close(stale_fd)
    with output_lock(lock) as held:
        assert locks._same_file(held._fd, lock)
