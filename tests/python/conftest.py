"""Starts the emulator binary on a free loopback port for the SDK tests."""

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ACCESS_KEY_ID = "sdk-test-key-id"
ACCESS_KEY_SECRET = "sdk-test-key-secret"
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.base = f"http://{endpoint}"

    def admin(self, path: str, method: str = "GET", body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/_emulator/{path}", data=data, method=method)
        req.add_header("content-type", "application/json")
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())


@pytest.fixture(scope="session")
def emulator():
    binary = os.environ.get("MCE_EMULATOR_BIN", str(REPO / "target" / "debug" / "multicloud-ecs-emulator"))
    port = _free_port()
    env = dict(os.environ, MCE_EMULATOR_ACCESS_KEY_ID=ACCESS_KEY_ID, MCE_EMULATOR_ACCESS_KEY_SECRET=ACCESS_KEY_SECRET)
    proc = subprocess.Popen(
        [binary, "--listen", f"127.0.0.1:{port}", "--boot-delay-ms", "500"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    emu = Emulator(f"127.0.0.1:{port}")
    deadline = time.monotonic() + 20
    while True:
        try:
            emu.admin("resources")
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise RuntimeError(f"emulator did not start: {out}")
            time.sleep(0.05)
    try:
        yield emu
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
