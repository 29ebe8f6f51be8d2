"""Exceptions smpvm raises.  Each carries one line a user can act on."""


class SmpvmError(Exception):
    """Base: a clear, one-line error (the CLI prints it and exits 2)."""


class ConfigError(SmpvmError):
    """A machine size or option is out of range."""


class AttachError(SmpvmError):
    """A machine cannot be attached: missing, foreign layout, other owner."""


class SysctlError(SmpvmError):
    """Unknown sysctl, read-only sysctl, or a value the kernel would refuse."""


class Panic(Exception):
    """The emulated kernel panicked (the machine is dead).

    Raised in the thread whose C call panicked, right after that call
    returns; the message is the machine's panicstr.
    """


class Shutdown(BaseException):
    """An operation that can no longer finish because the machine shuts
    down (it waits for memory the stopped pagedaemon would have freed).
    The thread ends; a BaseException so that no kernel `except` eats it."""
