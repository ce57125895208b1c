"""``polytask data download``: fetch a dataset from a pinned location and verify every file.

Each file is written to a temporary file next to its destination, its SHA-256 is checked against
the value recorded here, and only then is it renamed into place, so an interrupted or corrupted
download never leaves a file that looks valid. Files already present with the right hash are
skipped. ``base_url`` may name a mirror holding the same file names: an ``http(s)://`` URL, a
``file://`` URL or a local directory.
"""
from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .readers import DataError

logger = logging.getLogger(__name__)

TIMEOUT_S = 60.0
_CHUNK = 1 << 16


class DownloadError(DataError):
    """A dataset could not be fetched or did not match its checksums."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.path, self.line = "", None


@dataclass
class Dataset:
    """A downloadable dataset: where it comes from and what its files must hash to.

    Attributes:
        name: The name given on the command line.
        subdir: Folder under the data directory the files are saved in.
        base_url: Pinned location; a file's URL is ``base_url + "/" + file name``.
        sha256: Expected SHA-256 (hex) per file name.
        source: Human-readable origin, for messages.
        size: Its size, for messages ("41 MB").
    """

    name: str
    subdir: str
    base_url: str
    sha256: dict[str, str]
    source: str
    size: str = ""


FDU_MTL_COMMIT = "cf5bf60779ef1d41dba6b0b5d5e0cf27c17b69a1"

# From shared/data/SHA256SUMS (the fdu-mtl/ lines); see shared/data/PROVENANCE.md.
FDU_MTL_SHA256 = {
    "MR.task.test": "82ec2a6d570978d173240dfd655c25e151761d7d0ace365725745a361e6fabea",
    "MR.task.train": "a6f222085a50061dd560c3beafc968679abae74683e3d18a66b619c5e2d178dc",
    "MR.task.unlabel": "fa9dee0e94afe5a6d58f1670ac7db53c450e0f806f158dea78fb766f1ee053bb",
    "apparel.task.test": "8e591ec14fa0e3d26837b9a40c99d3a93b49f47e7a3fbe4d0afe1b4e1dd45439",
    "apparel.task.train": "589702d71eded8ca23907acf6e434f203c8c6feb09737106f77f03707641ffc3",
    "apparel.task.unlabel": "7dc0cf126e07552b41d2574627a3a6d0d9c3f958a368fe5e41d8cd353b0f4a3f",
    "baby.task.test": "8763bb4b8bbf83b93b6aab03706719fc742fb7d89830a6bd95ea1c2490ea58f7",
    "baby.task.train": "0d884186f3aef0e12dafac0a875887fe631de0df992b15158ab177763882bf57",
    "baby.task.unlabel": "f4f2be61dddc8165ba40d9fc90d51a21c0c9d1f4b6eaa20c93fd3f9d9a8c95e2",
    "books.task.test": "b451ac03e48b599bf35dd1a450158389e1ac9018950e95c631053ac14a5b10ad",
    "books.task.train": "40c4c5971165b9e0a509a60472c3bf06c8e1430d4944833141eb3c34d986b65e",
    "books.task.unlabel": "5121a335a736523b5bd0dc47e05da2b085bf6f42aec2ca20ba7142d620241563",
    "camera_photo.task.test": "3fdea0837d6c41f04720dce8d2e690bbdeb5019ecac749f8f38472ac1dcfa439",
    "camera_photo.task.train": "425bf93c303b2f38d2f53649508ea9e55d0114679ecb00fda5c2c15ebbe9e708",
    "camera_photo.task.unlabel": "d94c682441e8b8a57ff992e244ef0137e07528cd9f3631874f89e2d40aefca04",
    "dvd.task.test": "762e6e030892375eda4f211be58624a3bb6a07c966901c79b803837d21fca4b5",
    "dvd.task.train": "47334240d9cef76ac5f15a10f9082c3d2c6e7f9a9bb0478a3800ede2a0300771",
    "dvd.task.unlabel": "5673c05efcefbf5d38a1ca7e1110cbf58a95e1b02a7a0c729c46f2ba21f223bf",
    "electronics.task.test": "a4d2e7d2a5b8b501a6611e45e1b241aa0d601388b79265cfc94c203cb52f8b8c",
    "electronics.task.train": "bb2f28c4a20e3d075dd71ff049970bd445f4d47bcc8404a68eb03850413a8da7",
    "electronics.task.unlabel": "da24efbec0053b8b8383e530dab3e4a358e75ae2e65d09624c6843bad30f69a8",
    "health_personal_care.task.test": "07f289177da7ebe71f1ac2ee3d5a25f190913e2a11116f0fb55862e01b60a331",
    "health_personal_care.task.train": "384f1ec3d76a2f755844cac4bd7725b86bc79910dae60fc33f133e380f827b4a",
    "health_personal_care.task.unlabel": "70bd1a5b004f2d0edc6bcf0ec6ff5c464f232a351bdcf4b88d4a655d97110355",
    "imdb.task.test": "dc708b7338157a6be56a1ded26abd97f82284d0e736876a6b833ad59e8a2cd53",
    "imdb.task.train": "16dd91ee7aebde130cfeb4d1c58bfe221ad87f1862fdb8ae694693eec3432caa",
    "imdb.task.unlabel": "ea4e02252cf95661af402ef7b7b6b9addc0a0666a03d8d7b81eefb08af0b413d",
    "kitchen_housewares.task.test": "86bcc015f7cfa773880951830ac6161dc2b8717e8a69773ca11a5bd6529b2020",
    "kitchen_housewares.task.train": "df5c9e8473b084a6b252dfbb5e074adcaacb9638a882fee3f20d62d747f45d6f",
    "kitchen_housewares.task.unlabel": "6255b3597385952d45920ce4451291a246ecd997ef75d964ff56fff9e31ad9e7",
    "magazines.task.test": "620ecd0ccd7b7f73483b8cdcef5ca07dff92e2d57c9cf4b6e9f7d669a681f6c3",
    "magazines.task.train": "d4805a9f094c1c7befa64bc42ea846261b1290a2fd120c46f45c9e89faf782ae",
    "magazines.task.unlabel": "87de41f73d65b525d2918833a944427196cd4a0346d9d083086b4814333fd9bd",
    "music.task.test": "54a157c56930b9e587b6b955fe4b2e3258d2f70d0d58ccbbf40a4bfd846ee204",
    "music.task.train": "f0b41243475c16391a02e91d87710ed87d68927d4d77f526a3d2369a98ac572e",
    "music.task.unlabel": "3f2ee8a5becb232368d2bc599ab131778558e05009f8f6957ce2a10106a6ea9a",
    "software.task.test": "3b92617a5b3ad618b7aaab98546d49c2a69f46dedbceb4ec14dee1cbb4ff02d3",
    "software.task.train": "a050cb3ea22b94b21ce70acff3a23eabd1f39307bd862d6c0cc23170eb4830f4",
    "software.task.unlabel": "a34c6f844ba0ac1a8d3325b396451c6b6f8928f219f22408192c417357497b80",
    "sports_outdoors.task.test": "77394d7c91fbc69cc16bfaf79f1f945999fe2d8e0fc536f1f79d17089e611f49",
    "sports_outdoors.task.train": "062ac0e2fb04a81c1f06f15b219634810a323a2ee187750e2f479030ebad0326",
    "sports_outdoors.task.unlabel": "7742f40a8b02cd5701a647d6ccaf3746bb863af28cdd6fa0404b507b131b9ca4",
    "toys_games.task.test": "6ee304a53f25697ee96bcb60fe07cc36d282ef343c3e0f8ae09df669ec39b116",
    "toys_games.task.train": "bb8404d3b48ab02bca2a75bb1e245297aac36b8143a81549f6485b4c2d24dd10",
    "toys_games.task.unlabel": "8808944481c5478a94f231f2fb9541036c5f882de225e2cb8357ab42fd59696d",
    "video.task.test": "8de7a49ee3001409c9049b1f52949d78c7875cb92e031b43f5cef681dfd341e4",
    "video.task.train": "2867b3e5fffc44132aa61ff49dd608eeacc503b2c9c2133680f0cb4a7a258f3e",
    "video.task.unlabel": "0178424fe97c0203c0f3cabcb31e1370bf656895b76a189ecf1ecfd151abe3f2",
}

DATASETS = {
    "fdu-mtl": Dataset(
        name="fdu-mtl", subdir="fdu-mtl",
        base_url=f"https://raw.githubusercontent.com/ShiinaHiiragi/multi-task-dataset/{FDU_MTL_COMMIT}",
        sha256=FDU_MTL_SHA256,
        source=f"github.com/ShiinaHiiragi/multi-task-dataset @ {FDU_MTL_COMMIT}", size="41 MB"),
}


def dataset_of(path: str) -> Optional[Dataset]:
    """The downloadable dataset a data path (relative to the data directory, as a config gives it:
    ``fdu-mtl/books.task.train``) is a file of, or None."""
    parts = Path(path).parts
    for ds in DATASETS.values():
        if len(parts) == 2 and parts[0] == ds.subdir and parts[1] in ds.sha256:
            return ds
    return None


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _log(message: str) -> None:
    logger.info("%s", message)


def _local_root(base: str) -> Optional[Path]:
    """The directory a ``file://`` URL or plain path names; None for http(s) URLs."""
    parsed = urllib.parse.urlparse(base)
    if parsed.scheme in ("http", "https"):
        return None
    if parsed.scheme == "file":
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter: a Windows drive, not a scheme
        raise DownloadError(f"--base-url {base!r}: expected an http(s):// or file:// URL or a directory")
    return Path(base).expanduser()


def _where(base: str, root: Optional[Path], name: str) -> str:
    return str(root / name) if root is not None else f"{base.rstrip('/')}/{urllib.parse.quote(name)}"


def _no_network_help(ds: Dataset, dest: Path) -> str:
    return (f"No network? Copy the {len(ds.sha256)} {ds.name} files ({ds.source}) into "
            f"<DIR>/{ds.subdir}/ on this machine and point --data-dir (or $POLYTASK_DATA) at <DIR> "
            f"(here: {dest.parent}), or pass --base-url with a local directory or mirror holding them.")


def _fetch(ds: Dataset, name: str, base: str, root: Optional[Path], out) -> str:
    """Copy one file from the mirror into the open binary file ``out``; return where it came from."""
    if root is not None:
        for candidate in (root / name, root / ds.subdir / name):
            if candidate.is_file():
                with candidate.open("rb") as src:
                    shutil.copyfileobj(src, out, _CHUNK)
                return str(candidate)
        raise DownloadError(f"{ds.name}: {name} not found in {root} (nor in {root / ds.subdir})")
    url = _where(base, None, name)
    request = urllib.request.Request(url, headers={"User-Agent": "polytask"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        shutil.copyfileobj(response, out, _CHUNK)
    return url


def download(dataset: str, data_dir: Path, base_url: Optional[str] = None,
             force: bool = False) -> list[Path]:
    """Download ``dataset`` into ``data_dir/<subdir>/`` and verify each file's SHA-256.

    Args:
        dataset: A name from :data:`DATASETS`, e.g. ``"fdu-mtl"``.
        data_dir: The data directory; files go to ``data_dir/<subdir>/`` (``fdu-mtl/``).
        base_url: A mirror with the same file names instead of the pinned location: an
            ``http(s)://`` URL, a ``file://`` URL or a local directory (which may also hold the
            files in a ``<subdir>/`` folder, like a data directory).
        force: Fetch files even when they are present with the right hash.

    Returns:
        The paths of all the dataset's files, in name order.

    Raises:
        DownloadError: Unknown dataset, a network or HTTP failure, a file missing on a local mirror,
            or a checksum mismatch (the bad download is removed, a file already there is kept).
    """
    if dataset not in DATASETS:
        raise DownloadError(f"unknown dataset {dataset!r} (known: {', '.join(sorted(DATASETS))})")
    ds = DATASETS[dataset]
    dest = Path(data_dir).expanduser() / ds.subdir
    base = base_url or ds.base_url
    root = _local_root(base)
    if root is not None and not root.is_dir():
        raise DownloadError(f"{ds.name}: mirror directory {root} not found")
    paths, names = [], sorted(ds.sha256)
    for i, name in enumerate(names, start=1):
        target, expected = dest / name, ds.sha256[name].lower()
        paths.append(target)
        where = f"{ds.subdir}/{name} ({i}/{len(names)})"
        if target.is_file() and not force:
            if sha256_of(target) == expected:
                _log(f"{where}: present, checksum ok")
                continue
            _log(f"{where}: present but its checksum differs; downloading again")
        tmp = dest / f".{name}.{os.getpid()}.part"  # opened normally, so the umask applies
        try:
            dest.mkdir(parents=True, exist_ok=True)
            out = tmp.open("wb")
        except OSError as exc:
            raise DownloadError(f"{ds.name}: cannot write to {dest}: {exc.strerror or exc}") from None
        try:
            with out:
                try:
                    source = _fetch(ds, name, base, root, out)
                except urllib.error.HTTPError as exc:
                    raise DownloadError(f"{ds.name}: download of {name} from {exc.url} failed: "
                                        f"HTTP {exc.code} {exc.reason}") from None
                except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                    reason = getattr(exc, "reason", None) or exc
                    raise DownloadError(f"{ds.name}: download of {name} from "
                                        f"{_where(base, root, name)} failed ({reason}). "
                                        + _no_network_help(ds, dest)) from None
            actual = sha256_of(tmp)
            if actual != expected:
                raise DownloadError(f"{ds.name}: checksum mismatch for {name} (from {source}): "
                                    f"expected sha256 {expected}, got {actual}; the file was not kept")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        size = target.stat().st_size
        shown = f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
        _log(f"{where}: downloaded {shown}, checksum ok")
    _log(f"{ds.name}: {len(paths)} files verified in {dest}")
    return paths
