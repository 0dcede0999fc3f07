"""Reading a data tree either from a folder or straight from a `.tar` / `.tar.gz` archive, with limits."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from multiseq.tasks._common import DataError

MAX_MEMBER_BYTES = 64 << 20  # a single review or image larger than this is refused
MAX_TOTAL_BYTES = 4 << 30  # stop reading an archive that expands past this (a decompression bomb)


def is_archive(path: Path) -> bool:
    return path.is_file() and (path.name.endswith((".tar.gz", ".tgz", ".tar")))


def iter_files(
    source: Path, want: Callable[[str], bool], max_member: int = MAX_MEMBER_BYTES, max_total: int = MAX_TOTAL_BYTES
) -> Iterator[tuple[str, bytes]]:
    """Yield `(relative path with '/', content)` of every regular file under `source` for which `want(path)`.

    `source` is a folder or a tar archive (gzip or not). Paths are relative to the folder / archive root.

    Raises:
        DataError: missing source, unreadable or truncated archive, a member above `max_member` bytes, or more
            than `max_total` bytes in all (refused as a possible decompression bomb).
    """
    total = 0

    def account(name: str, size: int) -> None:
        nonlocal total
        if size > max_member:
            raise DataError(f"{source}: {name} has {size} bytes, more than the {max_member} allowed per file")
        total += size
        if total > max_total:
            raise DataError(f"{source}: more than {max_total} bytes of data (refused as a possible decompression bomb)")

    if not source.exists():
        raise DataError(f"data not found: {source}")
    if source.is_dir():
        for dirpath, dirnames, filenames in os.walk(source):
            dirnames.sort()
            for fn in sorted(filenames):
                full = Path(dirpath) / fn
                rel = full.relative_to(source).as_posix()
                if want(rel):
                    account(rel, full.stat().st_size)
                    yield rel, full.read_bytes()
        return
    if not is_archive(source):
        raise DataError(f"{source}: expected a folder or a .tar / .tar.gz archive")
    try:
        with tarfile.open(source, mode="r:*") as tar:
            for member in tar:
                if not member.isfile() or not want(member.name):
                    continue
                account(member.name, member.size)
                fh = tar.extractfile(member)
                if fh is None:
                    continue
                data = fh.read()
                if len(data) != member.size:
                    raise DataError(f"{source}: {member.name} is truncated ({len(data)} of {member.size} bytes)")
                yield member.name, data
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{source}: cannot read archive ({type(e).__name__}: {e}); is it truncated or corrupt?") from None
