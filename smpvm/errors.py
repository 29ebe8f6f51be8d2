"""Exceptions smpvm raises.  Each carries one line a user can act on."""
import errno


class SmpvmError(Exception):
    """Base: a clear, one-line error (the CLI prints it and exits 2)."""


class ConfigError(SmpvmError):
    """A machine size or option is out of range.  field, value and what
    let a caller name the option the user typed instead of the field."""

    def __init__(self, message, field="", value=None, what=""):
        super().__init__(message)
        self.field, self.value, self.what = field, value, what


class AttachError(SmpvmError):
    """A machine cannot be attached: missing, foreign layout, other owner."""


class SysctlError(SmpvmError):
    """Unknown sysctl, read-only sysctl, or a value the kernel would refuse."""


class HostError(SmpvmError):
    """The host, not the emulated kernel, failed the run: a full disk under
    the data directory, a segment name another user holds, a process the
    host stopped.  Never a kernel panic, never a replay line (the CLI exits
    4)."""


class Panic(Exception):
    """The emulated kernel panicked (the machine is dead).

    Raised in the thread whose C call panicked, right after that call
    returns; the message is the machine's panicstr.
    """


class Shutdown(BaseException):
    """An operation that can no longer finish because the machine shuts
    down (it waits for memory the stopped pagedaemon would have freed).
    The thread ends; a BaseException so that no kernel `except` eats it."""


# errnos of a write that fails because of the host's disk, not the kernel:
# full, over quota, over RLIMIT_FSIZE, read-only, a failing device
HOST_ERRNOS = frozenset((errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                         errno.EROFS, errno.EIO))


def host_error_of(exc):
    """A HostError for an OSError the host caused (HOST_ERRNOS), else None."""
    if isinstance(exc, OSError) and exc.errno in HOST_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        return HostError(f"{exc.strerror}{where}: the host's disk failed "
                         "the run, not the emulated kernel")
    return None
