"""sysctl: named integer knobs whose values live in the machine's segment.

Each node says where its value lives (a field of struct smpvm_kern_sysctl,
a config field, a lock counter), whether it may be written, and which values
the kernel would accept.  Later layers add their own nodes (vm.swapcache.*)
with register().  Values are read and written racily, as the kernel's
sysctl variables are.
"""
import dataclasses
from typing import Callable, Optional

from smpvm.errors import SysctlError
from smpvm.layout import GLOBAL_TOKENS, lib, tokens


@dataclasses.dataclass
class SysctlNode:
    name: str
    desc: str
    get: Callable            # machine -> int
    set: Optional[Callable] = None   # (machine, int) -> None; None: read-only
    lo: int = -(1 << 63)
    hi: int = (1 << 63) - 1
    # the kernel's default, when it has one (or machine -> it, when it
    # depends on the kernel version)
    default: Optional[object] = None

    @property
    def writable(self):
        return self.set is not None


_nodes = {}


def register(node):
    """Add a node (later layers call this at import)."""
    _nodes[node.name] = node
    return node


def _kern_field(name, field, desc, lo, hi, default):
    register(SysctlNode(
        name, desc,
        get=lambda m, f=field: getattr(m.hdr.kern, f),
        set=lambda m, v, f=field: setattr(m.hdr.kern, f, v),
        lo=lo, hi=hi, default=default))


def _config_field(name, field, desc):
    register(SysctlNode(name, desc,
                        get=lambda m, f=field: getattr(m.hdr.cfg, f)))


_config_field("hw.ncpu", "ncpus", "number of CPU processes")
_config_field("kern.hz", "hz", "clock ticks per second")
_config_field("kern.maxthreads", "maxthreads", "thread slots")
_kern_field("lwkt.token_spin", "lwkt_token_spin",
            "spins on a contended token before switching", 0, 1 << 20,
            lib.LWKT_TOKEN_SPIN)
_kern_field("debug.lwkt_yield_switch", "lwkt_yield_switch",
            "lwkt_yield always switches (loses tokens): 1, or never: 0",
            0, 1, None)
_kern_field("debug.spin_yield_spins", "spin_yield_spins",
            "spinlock loops between host sched_yield calls", 1, 1 << 30,
            None)
_kern_field("debug.spin_warn_ms", "spin_warn_ms",
            "spinlock 'indefinite wait' message period (0: off)", 0,
            1 << 40, None)
_kern_field("debug.spin_backtrace_ms", "spin_backtrace_ms",
            "spinlock wait after which waiter and holder stacks are dumped "
            "(0: off)", 0, 1 << 40, None)
_kern_field("debug.spin_panic_ms", "spin_panic_ms",
            "spinlock wait after which the machine panics (0: never)", 0,
            1 << 40, None)
for _tid, _tname in sorted(GLOBAL_TOKENS.items()):
    register(SysctlNode(
        f"lwkt.{_tname}_collisions", f"collisions on {_tname}",
        get=lambda m, t=_tid: tokens(m.base)[t].t_collisions))


def nodes():
    """Every node, sorted by name."""
    return [_nodes[k] for k in sorted(_nodes)]


def lookup(name):
    try:
        return _nodes[name]
    except KeyError:
        raise SysctlError(f"sysctl: unknown oid '{name}'") from None


def sysctl_get(machine, name):
    return int(lookup(name).get(machine))


def parse_value(node, text):
    """The integer the kernel would accept for node, or SysctlError."""
    try:
        v = int(text, 0)
    except (TypeError, ValueError):
        raise SysctlError(f"sysctl: {node.name}: '{text}' is not an integer"
                          ) from None
    if not node.lo <= v <= node.hi:
        raise SysctlError(f"sysctl: {node.name}: {v} out of range "
                          f"[{node.lo}, {node.hi}]")
    return v


def sysctl_set(machine, name, text):
    """Write name=text; returns (old, new).  SysctlError if refused."""
    node = lookup(name)
    if not node.writable:
        raise SysctlError(f"sysctl: oid '{name}' is read only")
    v = parse_value(node, text)
    old = int(node.get(machine))
    node.set(machine, v)
    return old, v
