"""Report directories written as a set: whole and new, or left as they were.

A report is several files (one Parquet table each and summary.json). Renaming them into
place one by one would leave, after an interrupted or failed write (SIGINT, SIGTERM,
ENOSPC on the fourth file), a directory mixing old and new tables that looks complete.
So :func:`write_set` writes every file into a staging directory next to the target and
swaps it in with one rename: ``renameat2(RENAME_EXCHANGE)`` where the kernel has it (the
target is never missing), else two renames (the target is missing between them, never
mixed). The staging directory is removed on every exit path; files get the modes the
user's umask allows (0666 & ~umask), as any other program's output.

:func:`check_out_dir` validates a target before the work that produces the report starts:
a target that would fail (a file, an unwritable parent, the trace's own directory, a
directory holding files that are not a report's) fails in a second, not after the replay.
"""
import ctypes
import ctypes.util
import os
import shutil
import tempfile

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_file(path, write, *, text=False):
    """Write one file whole or not at all: ``write(f)`` into a temporary file next to
    ``path``, renamed into place, with the mode the user's umask gives a new file (mkstemp
    alone would make it 0600). The temporary file is removed on every exit path."""
    path = os.path.abspath(os.fspath(path))
    directory, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def check_out_dir(directory, names, trace=None):
    """Raise ValueError (one line naming ``directory``) if a report with files ``names``
    cannot be written there as a set; ``trace`` (a path) must not be inside it."""
    directory = os.path.abspath(os.fspath(directory))
    what = f"--out {directory!r}"
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError(f"{what} exists and is not a directory")
    parent = os.path.dirname(directory)
    if not os.path.isdir(parent):
        raise ValueError(f"{what}: its parent directory does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{what}: its parent directory is not writable (the report is "
                         f"staged next to it and swapped in)")
    if trace is not None:
        t = os.path.realpath(os.fspath(trace))
        real = os.path.realpath(directory)
        if t == real or t.startswith(real + os.sep) or os.path.dirname(t) == real:
            raise ValueError(f"{what} is the trace's own directory: the report replaces "
                             f"the directory whole")
    if os.path.isdir(directory):
        others = sorted(set(os.listdir(directory)) - set(names))
        if others:
            raise ValueError(f"{what} holds files that are not a report's ({others[0]!r}"
                             f"{', ...' if len(others) > 1 else ''}): the report replaces "
                             f"the directory whole; give an empty or new directory")
    return directory


def _exchange(a, b):
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):                         # EINVAL, ENOSYS, EOPNOTSUPP: fall back
        return False
    raise OSError(err, os.strerror(err), b)


def write_set(directory, writers):
    """Write ``{name: write(binary file)}`` as the directory ``directory``, whole or not at
    all (see the module docstring). An existing directory must hold only those names."""
    directory = check_out_dir(directory, writers)
    parent, base = os.path.split(directory)
    staging = tempfile.mkdtemp(prefix=f".{base}.staging-", dir=parent)
    moved_out = None
    try:
        os.chmod(staging, 0o777 & ~_umask())
        for name, write in writers.items():
            with open(os.path.join(staging, name), "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
        if not os.path.isdir(directory):
            os.rename(staging, directory)            # fails if it appeared meanwhile
            staging = None
        elif _exchange(staging, directory):
            pass                                     # staging now holds the old report
        else:
            moved_out = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.rename(directory, os.path.join(moved_out, base))
            os.rename(staging, directory)
            staging = None
            shutil.rmtree(moved_out, ignore_errors=True)
            moved_out = None
    except BaseException:
        if moved_out is not None and not os.path.exists(directory):
            os.rename(os.path.join(moved_out, base), directory)     # put the old one back
            shutil.rmtree(moved_out, ignore_errors=True)
        raise
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
