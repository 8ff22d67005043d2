"""Getting an entry's files: the package's own, the user's --local-file, a hub repo or a URL
(mirrors tried in order), each verified before use; URL downloads resume with HTTP Range requests.
"""

from __future__ import annotations

import http.client
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vsrup.errors import UsageError, WeightsError
from vsrup.weights import cache
from vsrup.weights.net import cannot_connect, connect_failure
from vsrup.weights.registry import Entry, Location, join_inside, safe_relpath
from vsrup.weights.verify import check, discard, log, own_copies_hint, verify_file

# progress(file name, bytes done, total bytes or None), called as bytes arrive.
Progress = Callable[[str, int, "int | None"], None]


class _SourceFailed(Exception):
    """One location could not deliver good files; the next one is tried."""


class _Unreachable(_SourceFailed):
    """No connection could be made at all (no network, unknown host, refused): nothing was interrupted."""


def fetch_files(
    entry: Entry,
    revision: str | None = None,
    local_file: str | Path | None = None,
    cache_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> dict[str, Path]:
    """Return entry's files (name → verified local path), fetching what is not cached yet."""
    if entry.source == "embedded":
        if local_file or revision:
            raise UsageError(f"{entry.name!r} ships inside vsrup; there is nothing to download")
        return embedded_files(entry)
    if local_file is not None:
        return import_local(entry, Path(local_file).expanduser())
    locations = entry.locations
    if revision is not None:
        if entry.source != "hub":
            raise UsageError(
                f"--revision applies to hub models only; {entry.name!r} is a {entry.source} model"
            )
        locations = (Location(repo=locations[0].repo, revision=revision), *locations[1:])
    imported = imported_files(entry)
    if imported is not None:
        return imported
    failures: dict[str, list[str]] = {}  # reason → the locations that failed for it, in order
    unreachable = True
    for location in locations:
        try:
            return _fetch_from(entry, location, cache_dir, progress)
        except _SourceFailed as e:
            failures.setdefault(str(e), []).append(str(location))
            unreachable &= isinstance(e, _Unreachable)
    if cache.offline():
        hint = (
            f"HF_HUB_OFFLINE is set and they are not cached; run `vsrup download-weights {entry.name}` online"
        )
    elif unreachable:
        hint = f"check the network connection, or use your own copies: {own_copies_hint(entry)}"
    else:
        hint = "or download the file yourself and pass --local-file"
    reasons = "; ".join(f"{', '.join(where)}: {why}" for why, where in failures.items())
    raise WeightsError(f"could not get weights for {entry.name!r} ({reasons}); {hint}")


def embedded_files(entry: Entry) -> dict[str, Path]:
    files = {f.name: join_inside(cache.assets_dir(), f.name) for f in entry.files}
    for f in entry.files:
        if not files[f.name].is_file():
            raise WeightsError(f"vsrup's package is missing {f.name}; reinstall vsrup")
        if f.pinned:  # a few MB: cheap enough to check on every load
            verify_file(files[f.name], f.sha256, f.size)
    return files


def imported_files(entry: Entry) -> dict[str, Path] | None:
    """Files already downloaded from a URL or imported with --local-file, if all are there and good."""
    folder = cache.downloads_dir(entry.name)
    files = {f.name: join_inside(folder, f.name) for f in entry.files}
    if not all(p.is_file() for p in files.values()):
        return None
    for f in entry.files:
        try:
            check(files[f.name], f)
        except WeightsError as e:
            log.warning("%s; deleting it and downloading again", e)
            discard(files[f.name])
            return None
    return files


def import_local(entry: Entry, src: Path) -> dict[str, Path]:
    """Verify the user's own copy (a file, or a folder in the repo's layout) and link it into the cache."""
    if src.is_dir():
        pairs = [(f, join_inside(src, f.name)) for f in entry.files]
    elif len(entry.files) == 1:
        pairs = [(entry.files[0], src)]
    else:
        names = ", ".join(f.name for f in entry.files)
        raise UsageError(f"{entry.name!r} has several files; give --local-file a folder holding {names}")
    for f, path in pairs:
        if not path.is_file():
            raise WeightsError(f"--local-file: {path} does not exist")
        check(path, f)  # a bad file of the user's is reported, never deleted
    files = {}
    for f, path in pairs:
        dest = join_inside(cache.downloads_dir(entry.name), f.name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)  # free when on the same disk
        except OSError:
            shutil.copyfile(path, tmp)
        tmp.replace(dest)
        files[f.name] = dest
    return files


def _fetch_from(
    entry: Entry, location: Location, cache_dir: str | Path | None, progress: Progress | None
) -> dict[str, Path]:
    files = {}
    for f in entry.files:
        if location.repo:
            path = _hub_file(location, f.name, cache_dir, progress)
        else:
            path = _url_file(
                location.url, join_inside(cache.downloads_dir(entry.name), f.name), f.size, progress
            )
        try:
            check(path, f)
        except WeightsError as e:
            discard(path)
            raise _SourceFailed(f"{e} (deleted it)") from None
        files[f.name] = path
    return files


def _hub_file(location: Location, name: str, cache_dir: str | Path | None, progress: Progress | None) -> Path:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache  # late: `vsrup --help` skips it

    root = cache.hub_cache(cache_dir)
    endpoint = (os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    # huggingface_hub retries a refused connection for half a minute, and never says so plainly:
    # look first whether the hub can be reached at all; if not, only a cached file will do.
    why = None if cache.offline() else cannot_connect(endpoint or "https://huggingface.co")
    if why:
        cached = try_to_load_from_cache(location.repo, name, cache_dir=root, revision=location.revision)
        if not isinstance(cached, str):
            host = urllib.parse.urlsplit(endpoint or "https://huggingface.co").netloc
            raise _Unreachable(f"cannot reach the hub at {host}: {why}")
        return Path(cached)
    try:
        path = hf_hub_download(
            location.repo,
            safe_relpath(name),
            revision=location.revision,
            cache_dir=root,
            # huggingface_hub read HF_ENDPOINT and HF_HUB_OFFLINE when it was imported; pass today's.
            endpoint=endpoint,
            local_files_only=cache.offline(),
            tqdm_class=progress_bar(progress, name) if progress else None,
        )
    except Exception as e:  # any failure of this location (HTTP, network, cache) → try the next one
        raise _hub_failure(e) from e
    if not Path(path).resolve().is_relative_to(root.resolve()):
        raise WeightsError(f"the hub cache returned {path}, outside {root}")
    return Path(path)


def _hub_failure(e: Exception) -> _SourceFailed:
    why = connect_failure(e)
    if why:
        host = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").netloc
        return _Unreachable(f"cannot reach the hub at {host}: {why}")
    return _SourceFailed(_hub_reason(e))


def _hub_reason(e: Exception) -> str:
    kind = type(e).__name__
    reasons = {
        "RepositoryNotFoundError": "repository not found (or private: set HF_TOKEN)",
        "GatedRepoError": "gated repository: accept its terms on the hub and set HF_TOKEN",
        "RevisionNotFoundError": "revision not found",
        "RemoteEntryNotFoundError": "file not found",
        "LocalEntryNotFoundError": "not in the cache and the hub is unreachable or offline mode is on",
    }
    return reasons.get(kind) or f"{kind}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"


def progress_bar(progress: Progress, name: str) -> type:
    """A stand-in for tqdm that huggingface_hub accepts as tqdm_class: forwards bytes written to disk."""

    class Bar:
        def __init__(self, total: int | None = None, initial: int = 0, **_: object) -> None:
            self.total, self.n = total, initial

        def update(self, n: int = 1) -> None:
            self.n += n
            progress(name, self.n, self.total)

        def update_transfer(self, n: int = 1) -> None:
            pass  # network bytes of a Xet download; having this makes huggingface_hub use one bar

        def set_postfix_str(self, *args: object, **kwargs: object) -> None:
            pass

        set_transfer_postfix_str = refresh = close = set_postfix_str

        def __enter__(self) -> Bar:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

    return Bar


def _url_file(url: str, dest: Path, size: int | None, progress: Progress | None, attempts: int = 3) -> Path:
    """Download url to dest through dest.part, resuming with an HTTP Range request where it stopped."""
    if cache.offline():
        raise _SourceFailed("not downloaded yet, and HF_HUB_OFFLINE is set")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, attempts + 1):
        try:
            _get(url, part, dest.name, size, progress)
            break
        except urllib.error.HTTPError as e:
            raise _SourceFailed(f"HTTP {e.code} {e.reason}") from e
        except urllib.error.URLError as e:  # raised only while connecting and sending the request
            kept = "; the partial download is kept: run again to resume" if part.exists() else ""
            host = urllib.parse.urlsplit(url).netloc
            raise _Unreachable(f"cannot reach {host}: {connect_failure(e) or e.reason}{kept}") from e
        except (OSError, http.client.HTTPException) as e:  # dropped connection, timeout: resume
            if attempt == attempts:
                raise _SourceFailed(f"download kept failing ({e}); run again to resume") from e
            log.warning("download of %s interrupted (%s); resuming", dest.name, e)
    part.replace(dest)
    return dest


def _get(url: str, part: Path, name: str, size: int | None, progress: Progress | None) -> None:
    done = part.stat().st_size if part.exists() else 0
    if size is not None and done >= size:
        if done == size:
            return
        part.unlink()
        done = 0
    headers = {"User-Agent": "vsrup", **({"Range": f"bytes={done}-"} if done else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not done:
            raise
        part.unlink()  # the partial file does not fit the server's file: start over
        raise OSError("range not satisfiable; restarting") from e
    with response:
        if "text/html" in response.headers.get("Content-Type", ""):
            raise _SourceFailed(
                "the server sent a web page, not the file (Google Drive does this for large files);"
                " download it in a browser and pass --local-file"
            )
        if done and response.status != 206:
            done = 0  # the server ignored the Range header and sends the whole file
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else size
        with part.open("r+b" if done else "wb") as out:
            out.seek(done)
            out.truncate()
            while chunk := response.read(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(name, done, total)
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes")
