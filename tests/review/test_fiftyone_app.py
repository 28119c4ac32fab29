"""The FiftyOne App serves a dataset on localhost only, answers HTTP, and frees its port when closed."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
import uuid

import fiftyone as fo
import pytest

from lightning_dlc.project.errors import ProjectError
from lightning_dlc.review.fiftyone_session import launch_app, new_dataset

pytestmark = pytest.mark.slow  # starts FiftyOne's App


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def answers(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return None


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def outside_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None when it only has loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def poll(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.5)
    return False


def test_app_answers_on_localhost_and_shuts_down(tmp_path, capsys):
    name = f"test-app-{uuid.uuid4().hex[:8]}"
    dataset = new_dataset(name, persistent=False)
    dataset.add_sample(fo.Sample(filepath=str(tmp_path / "missing.png")))
    port = free_port()
    session = launch_app(dataset, port=port)
    try:
        url = f"http://localhost:{port}"
        assert f"{url}/" in capsys.readouterr().out or url in session.url
        assert poll(lambda: answers(url) == 200, 60), f"the App did not answer on {url} within 60 s"
        other = outside_address()
        if other is not None:
            assert not listening(other, port), "the App must listen on localhost only by default"
    finally:
        session.close()
        fo.delete_dataset(name)
    assert poll(lambda: not listening("localhost", port), 30), f"port {port} still taken after closing the App"


def test_a_taken_name_needs_overwrite():
    name = f"test-taken-{uuid.uuid4().hex[:8]}"
    new_dataset(name, persistent=False)
    try:
        with pytest.raises(ProjectError, match="overwrite=true"):
            new_dataset(name)
        assert len(new_dataset(name, overwrite=True, persistent=False)) == 0
    finally:
        fo.delete_dataset(name)
