"""`survey site serve`: the lab survey's site over HTTP on 127.0.0.1, and one-line errors for
a folder with no site and a port in use."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

# The first test that asks for lab_survey builds it: fourteen lab days and the warehouse, about
# five minutes on two busy cores, more than the default per-test timeout.
pytestmark = pytest.mark.timeout(900)


def _serve(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "survey_assets.cli", "site", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)  # fmt: skip


def test_serve_the_site_on_loopback(lab_survey):
    env = {**os.environ, "SURVEY_DATA_DIR": str(lab_survey)}
    child = _serve("--port", "0", env=env)  # the site folder from the data folder
    try:
        line = child.stdout.readline()
        assert line.startswith(f"serving {lab_survey / 'site'} on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split(" ", 1)[0]
        page = urllib.request.urlopen(url + "index.html", timeout=10).read().decode()
        assert page == (lab_survey / "site" / "index.html").read_text()
        script = urllib.request.urlopen(url + "explore/manifest.js", timeout=10)
        assert "javascript" in script.headers["Content-Type"]
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(url + "no-such-page.html", timeout=10)
        assert missing.value.code == 404
    finally:
        child.send_signal(signal.SIGTERM)
        assert child.wait(10) == 0


def test_no_site_and_a_busy_port_are_one_line_errors(lab_survey, tmp_path):
    child = _serve("--dir", str(tmp_path))
    _, err = child.communicate(timeout=30)
    assert child.returncode == 2
    assert (
        err.strip()
        == f"survey site serve: {tmp_path}: no site here (no index.html): run `make demo` or materialize the site asset"
    )
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        child = _serve("--dir", str(lab_survey / "site"), "--port", str(busy.getsockname()[1]))
        _, err = child.communicate(timeout=30)
    assert child.returncode == 2 and err.startswith(
        "survey site serve: cannot listen on 127.0.0.1:"
    )
    assert len(err.strip().splitlines()) == 1
