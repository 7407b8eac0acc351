"""Errors: failed system calls raise OSError with Linux's errno, as Python's os module does."""
import errno as _errno
import os


def raise_errno(err, what):
    """Raise ``OSError(err, "<strerror>: <what>")`` the way a failed system call does."""
    raise OSError(err, f"{os.strerror(err)}: {what}")


class OutOfMemory(OSError):
    """The faulting process was OOM-killed (ENOMEM); it no longer exists afterwards."""

    def __init__(self, pid, what):
        super().__init__(_errno.ENOMEM, f"{os.strerror(_errno.ENOMEM)}: {what}")
        self.pid = pid


class SegmentationFault(OSError):
    """An access outside every mapping of the process, or one its mapping's protection
    forbids (``access``: "read" or "wrote to"; EFAULT, the SIGSEGV of the simulator)."""

    def __init__(self, pid, index, addr, access=None):
        what = (f"accessed unmapped address {addr:#x}" if access is None else
                f"{access} address {addr:#x}, which its mapping's protection forbids")
        super().__init__(_errno.EFAULT,
                         f"{os.strerror(_errno.EFAULT)}: segmentation fault: process {pid} "
                         f"{what} (element {index} of the batch)")
        self.pid, self.index, self.addr = pid, index, addr


class TraceError(ValueError):
    """Bad trace input, naming the file, column, row and value."""

    def __init__(self, message, *, path=None, column=None, row=None, value=None):
        # one line, whatever a library's message held (pyarrow's can span several)
        message = "; ".join(line.strip() for line in str(message).splitlines() if line.strip())
        where = ", ".join(f"{k} {v!r}" if k != "row" else f"row {v}"
                          for k, v in (("file", path), ("column", column), ("row", row),
                                       ("value", value)) if v is not None)
        super().__init__(f"{message} ({where})" if where else message)
        self.path, self.column, self.row, self.value = path, column, row, value


class _BadAddress:
    """``fastnuma.BAD_ADDRESS``: a user pointer Linux cannot read or write (EFAULT), for
    tools that test error paths; accepted where Linux takes a node mask (mbind,
    set_mempolicy, migrate_pages), for move_pages' pages, nodes and status arrays and
    for get_mempolicy's mode and nodemask outputs. docs/api.md."""
    __slots__ = ()

    def __repr__(self):
        return "fastnuma.BAD_ADDRESS"

    def __reduce__(self):                       # a singleton across pickling
        return "BAD_ADDRESS"


BAD_ADDRESS = _BadAddress()


def bad_output(value, name):
    """An output pointer argument: None (the call returns the value) or BAD_ADDRESS
    (unwritable: True). Anything else is a TypeError naming ``name``."""
    if value is None:
        return False
    if value is BAD_ADDRESS:
        return True
    raise TypeError(f"{name} must be None or fastnuma.BAD_ADDRESS, not {value!r}")
