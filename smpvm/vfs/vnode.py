"""Vnodes (sys/kern/vfs_*.c): a flat namespace of VREG files, each backed by
a real file in the machine's data directory, plus the VCHR meta-data device.

A vnode slot is allocated by CAS on its state word; the namespace (names,
unlink, reclaim) is protected by vnode_token.  Each vnode has a VNODE
object (vnode_pager_alloc) whose handle is the vnode.  VSWAPCACHE is
recomputed at every open from the file's own flags: set when UF_CACHE is
present and SF_NOCACHE is not (NOCACHE beats CACHE).  smpvm has no
directories, so nothing is inherited from a parent (the seed's namecache
propagates the flags down a directory tree: vfs_vnops.c vn_open).
"""
import os

from smpvm.errors import SmpvmError
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken
from smpvm.layout import cstr, lib
from smpvm.vm.vm_object import (vm_object_allocate, vm_object_drop,
                                vm_object_hold, vm_object_terminate)
from smpvm.vm.vmview import addressof, vmview

META_NAME = "/dev/meta"
META_IMAGE = "meta.img"
FILES_DIR = "files"
NAME_MAX = 47


class VfsError(SmpvmError):
    """ENOENT, EEXIST, ENOSPC... of the emulated file system."""

    def __init__(self, err, what):
        super().__init__(f"{what}: {os.strerror(err)}")
        self.errno = err


def backing_path(machine, vp):
    """The real file behind vnode vp (unique per incarnation of the slot)."""
    vn = vmview(machine).vnodes[vp]
    if vn.v_type == lib.VCHR:
        return os.path.join(machine.datadir, META_IMAGE)
    return os.path.join(machine.datadir, FILES_DIR, f"{vp}.{vn.generation}")


_fds = {}


def backing_fd(machine, vp):
    """This process's descriptor of vp's backing file (cached per
    incarnation)."""
    gen = vmview(machine).vnodes[vp].generation
    key = (id(machine), vp, gen)
    fd = _fds.get(key)
    if fd is None:
        for old in [k for k in _fds if k[:2] == (id(machine), vp)]:
            os.close(_fds.pop(old))         # an earlier incarnation's file
        fd = os.open(backing_path(machine, vp), os.O_RDWR | os.O_CLOEXEC)
        if not any(k[0] == id(machine) for k in _fds):
            machine.on_close(lambda: _forget_machine(machine))
        _fds[key] = fd
    return fd


def _forget_machine(machine):
    for key in [k for k in _fds if k[0] == id(machine)]:
        os.close(_fds.pop(key))


def _forget_fd(machine, vp, gen):
    fd = _fds.pop((id(machine), vp, gen), None)
    if fd is not None:
        os.close(fd)


def _lookup_locked(v, name):
    for vp in range(v.machine.config.nvnodes):
        vn = v.vnodes[vp]
        if vn.state == 1 and not vn.unlinked and cstr(vn.name) == name:
            return vp
    return -1


def _alloc_locked(v, name, vtype, size):
    """A vnode slot and its object; vnode_token held."""
    for vp in range(v.machine.config.nvnodes):
        vn = v.vnodes[vp]
        if vn.state != 0:
            continue
        if not lib.atomic_cmpset_int(addressof(vn, "state"), 0, 1):
            continue
        # the slot is ours and invisible to lookups until its name is set:
        # its fields are initialised unchecked, as a private object is
        vn = v.raw.vnodes[vp]
        vn.generation += 1
        vn.v_type = vtype
        vn.v_flag = 0
        vn.file_flags = 0
        vn.usecount = 0
        vn.unlinked = 0
        vn.size = size
        vn.name = b""           # invisible to lookups until complete
        obj = vm_object_allocate(lib.OBJT_VNODE,
                                 (size + lib.PAGE_SIZE - 1) // lib.PAGE_SIZE)
        if obj < 0:
            vn.state = 0
            raise VfsError(28, f"{name}: no free vm_object")
        vm_object_hold(obj)     # may block: vnode_token is lost there
        v.objects[obj].handle = vp
        vm_object_drop(obj)
        vn.v_object = obj
        if _lookup_locked(v, name) >= 0:    # created meanwhile: ours goes
            _reclaim_locked(v, vp)
            return _lookup_locked(v, name)
        if vtype == lib.VREG:
            os.close(os.open(backing_path(v.machine, vp),
                             os.O_RDWR | os.O_CREAT | os.O_TRUNC |
                             os.O_CLOEXEC, 0o600))
        vn.name = name.encode()
        return vp
    raise VfsError(23, f"{name}: no free vnode")   # ENFILE


def vfs_boot(machine):
    """Create the machine's files: the SSD, the meta-data device image and
    its VCHR vnode.  Called once, by the creator, as a thread holding no
    lock."""
    from smpvm.vm.swap_pager import swapdev_create
    os.makedirs(os.path.join(machine.datadir, FILES_DIR), mode=0o700)
    swapdev_create(machine)
    size = machine.config.nmeta * lib.PAGE_SIZE
    fd = os.open(os.path.join(machine.datadir, META_IMAGE),
                 os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, size)
    os.close(fd)
    v = vmview(machine)
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        _alloc_locked(v, META_NAME, lib.VCHR, size)
    finally:
        lwkt_reltoken(lib.TOK_VNODE)


def vsetflags(vp, flags):
    """vp->v_flag |= flags, atomically (vsetflags: no lock needed)."""
    lib.atomic_set_int(addressof(vmview().vnodes[vp], "v_flag"), flags)


def vclrflags(vp, flags):
    """vp->v_flag &= ~flags, atomically (vclrflags)."""
    lib.atomic_clear_int(addressof(vmview().vnodes[vp], "v_flag"), flags)


def vn_open(name, create=False):
    """Open name (creating an empty VREG file if asked); returns the vnode.
    usecount++, and VSWAPCACHE is recomputed from the file's flags
    (vfs_vnops.c vn_open @seed).  No locks held on entry: takes
    vnode_token (lost and retaken if the new object's hold blocks).
    VfsError if name is bad, absent (without create) or no slot is free."""
    if not name or len(name.encode()) > NAME_MAX:
        raise VfsError(36, f"bad file name {name!r}")    # ENAMETOOLONG
    v = vmview()
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        vp = _lookup_locked(v, name)
        if vp < 0:
            if not create:
                raise VfsError(2, name)
            vp = _alloc_locked(v, name, lib.VREG, 0)
        vn = v.vnodes[vp]
        vn.usecount += 1
        if (vn.file_flags & lib.UF_CACHE) and not (vn.file_flags
                                                   & lib.SF_NOCACHE):
            vsetflags(vp, lib.VSWAPCACHE)
        else:
            vclrflags(vp, lib.VSWAPCACHE)
        return vp
    finally:
        lwkt_reltoken(lib.TOK_VNODE)


def vn_close(vp):
    """usecount--; the last close of an unlinked file reclaims it (vgone:
    vm_object_terminate, which blocks).  No locks held on entry: takes
    vnode_token."""
    v = vmview()
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        vn = v.vnodes[vp]
        vn.usecount -= 1
        if vn.usecount == 0 and vn.unlinked:
            _reclaim_locked(v, vp)
    finally:
        lwkt_reltoken(lib.TOK_VNODE)


def vn_unlink(name):
    """Remove name; the vnode is reclaimed now if nobody has it open, else
    at its last close.  No locks held on entry: takes vnode_token.  VfsError
    (ENOENT) if name is not a VREG file."""
    v = vmview()
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        vp = _lookup_locked(v, name)
        if vp < 0 or v.vnodes[vp].v_type != lib.VREG:
            raise VfsError(2, name)
        vn = v.vnodes[vp]
        vn.unlinked = 1
        if vn.usecount == 0:
            _reclaim_locked(v, vp)
    finally:
        lwkt_reltoken(lib.TOK_VNODE)


def _reclaim_locked(v, vp):
    """vgone: terminate the object (its pages and all its swap go), free
    the slot, remove the backing file.  vnode_token held."""
    vn = v.vnodes[vp]
    obj = vn.v_object
    gen = vn.generation
    path = backing_path(v.machine, vp)
    vm_object_hold(obj)
    try:
        vm_object_terminate(obj)
    finally:
        vm_object_drop(obj)
    vn.v_object = -1
    vn.name = b""
    _forget_fd(v.machine, vp, gen)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    lib.atomic_cmpset_int(addressof(vn, "state"), 1, 0)


def vn_chflags(name, flags):
    """chflags: set the file's UF_CACHE / SF_NOCACHE.  A vnode keeps the
    VSWAPCACHE of its most recent open (the kernel's behaviour).  No locks
    held on entry: takes vnode_token."""
    v = vmview()
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        vp = _lookup_locked(v, name)
        if vp < 0:
            raise VfsError(2, name)
        v.vnodes[vp].file_flags = flags & (lib.UF_CACHE | lib.SF_NOCACHE)
    finally:
        lwkt_reltoken(lib.TOK_VNODE)


def vn_meta():
    """The VCHR meta-data device's vnode.  No locks held on entry."""
    v = vmview()
    lwkt_gettoken(lib.TOK_VNODE)
    try:
        vp = _lookup_locked(v, META_NAME)
    finally:
        lwkt_reltoken(lib.TOK_VNODE)
    if vp < 0:
        raise VfsError(2, META_NAME)
    return vp
