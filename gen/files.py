"""Writing a command's outputs so that a failure never leaves a half-written result."""

import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["write_files"]

_TMP = ".bfly-tmp-"         # the prefix of this module's temporary names (never shown to a user)


def write_files(outdir, files):
    """Write ``files`` (``{name: str or bytes}``) into the directory ``outdir``; other files
    already there are left alone. The caller makes all content before calling.

    Everything is written into a temporary directory first. A new ``outdir`` is that directory
    renamed into place. An existing one is swapped whole: a copy of it (hard links) with the new
    files goes beside it, the old one is renamed away, the new one in, and the old one deleted.
    Where that cannot be done (one file, a mount point, the working directory, a directory with
    subdirectories, a parent that is not writable, another file system) the temporary directory
    is made inside ``outdir`` and each file renamed into place, every one atomic: a failure part
    way leaves each file whole, old or new. Error messages name ``outdir``, never a temporary
    path.
    """
    outdir = Path(outdir)
    try:
        if outdir.is_dir():
            real = outdir.resolve()
            if not (len(files) > 1 and _can_swap(real) and _swap_in(real, files)):
                _write_inside(real, files)
            return
        if outdir.exists() or outdir.is_symlink():
            raise NotADirectoryError(errno.ENOTDIR, "exists and is not a directory", str(outdir))
        outdir.parent.mkdir(parents=True, exist_ok=True)
        tmp = _fill(_tempdir(outdir.parent, outdir.name), files)
        try:
            os.replace(tmp, outdir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    except OSError as e:
        if _TMP in str(e.filename) or _TMP in str(e.filename2):
            raise type(e)(e.errno, e.strerror, str(outdir)) from None
        raise


def _tempdir(parent, name):
    return Path(tempfile.mkdtemp(prefix=f".{name}{_TMP}" if name else _TMP, dir=parent))


def _fill(tmp, files, mode_of=None):
    """Write ``files`` into the new directory ``tmp``, give it the permissions of ``mode_of``
    (else what the umask gives a new directory) and return it; on failure remove it."""
    try:
        for name, content in files.items():
            with open(tmp / name, "wb" if isinstance(content, bytes) else "w") as f:
                f.write(content)
        if mode_of is not None:
            shutil.copymode(mode_of, tmp)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o777 & ~umask)
        return tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _can_swap(real):
    cwd = Path.cwd().resolve()
    if os.path.ismount(real) or cwd == real or real in cwd.parents:
        return False
    try:
        return not any(p.is_dir() and not p.is_symlink() for p in real.iterdir())
    except OSError:
        return False


def _swap_in(real, files):
    """Replace the directory ``real`` by a copy with ``files`` written in; False (and nothing
    changed) where the file system does not allow it."""
    try:
        tmp = _tempdir(real.parent, real.name)
    except OSError:
        return False
    try:
        for entry in real.iterdir():
            if entry.name not in files:
                _link_or_copy(entry, tmp / entry.name)
        _fill(tmp, files, mode_of=real)
        old = tmp.with_name(tmp.name + "-old")
        try:
            os.rename(real, old)
        except OSError as e:
            if e.errno in (errno.EBUSY, errno.EXDEV, errno.EPERM, errno.EACCES, errno.EINVAL):
                shutil.rmtree(tmp, ignore_errors=True)
                return False
            raise
        try:
            os.rename(tmp, real)
        except BaseException:
            os.rename(old, real)
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True


def _link_or_copy(src, dst):
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _write_inside(real, files):
    """The fallback: a temporary directory inside ``real``, then one atomic rename per file.
    A name that is a directory there is refused before anything is renamed."""
    for name in files:
        target = real / name
        if target.is_dir() and not target.is_symlink():
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", str(target))
    tmp = _fill(_tempdir(real, ""), files)
    try:
        for name in files:
            os.replace(tmp / name, real / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
