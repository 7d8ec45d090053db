"""Writing a command's outputs so that a failure never leaves a half-written result."""

import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["write_files"]


def write_files(outdir, files):
    """Write ``files`` (``{name: str or bytes}``) into ``outdir``.

    Everything goes into a temporary directory beside ``outdir`` first; it is then renamed into
    place, or, where ``outdir`` exists, its files are moved in one by one (other files there are
    left alone). The caller makes all content before calling, so a failure leaves nothing behind.
    """
    outdir = Path(outdir)
    outdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{outdir.name}.", dir=outdir.parent))
    try:
        for name, content in files.items():
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(tmp / name, mode) as f:
                f.write(content)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if outdir.is_dir():
            for name in files:
                os.replace(tmp / name, outdir / name)
            tmp.rmdir()
        else:
            os.replace(tmp, outdir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
