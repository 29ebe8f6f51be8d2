"""Objects (sys/vm/vm_object.c).  The kernel names below are the C entries
of csrc/vm.c, plus the object-wide operations written in Python over them.

vm_object_hold(o)        hold_count++ then the object's pool token (may
                         block: tokens lost).  Recursive.
vm_object_drop(o)        LIFO with the hold; the last drop of a DEAD object
                         with ref_count 0 frees its slot.
vm_object_allocate(t, s) a new object (ref 1) put on vm_object_list.
vm_object_pip_add/_wakeup/_wakeup_n/_wait   paging in progress.
vm_object_list_*         walking and marker moves, vmobj_token held.
"""
from smpvm.kern.kern_synch import tsleep
from smpvm.layout import ffi, lib
from smpvm.vm.vmview import addressof, vmview
from smpvm.vm.vm_page import (vm_page_busy_wait, vm_page_free,
                              vm_page_protect)

vm_object_hold = lib.vm_object_hold
vm_object_drop = lib.vm_object_drop
vm_object_allocate = lib.vm_object_allocate
vm_object_marker = lib.vm_object_marker
vm_object_token = lib.vm_object_token
vm_object_pip_add = lib.vm_object_pip_add
vm_object_pip_wakeup = lib.vm_object_pip_wakeup
vm_object_pip_wakeup_n = lib.vm_object_pip_wakeup_n
vm_object_list_first = lib.vm_object_list_first
vm_object_list_next = lib.vm_object_list_next
vm_object_list_remove = lib.vm_object_list_remove
vm_object_list_insert_head = lib.vm_object_list_insert_head
vm_object_list_insert_after = lib.vm_object_list_insert_after
vm_object_list_insert_before = lib.vm_object_list_insert_before
swap_pager_freespace = lib.swap_pager_freespace
swap_pager_freespace_all = lib.swap_pager_freespace_all

def vm_object_pip_wait(o, wmesg):
    """Sleep until o's paging_in_progress is 0 (tokens lost while asleep)."""
    lib.vm_object_pip_wait(o, wmesg.encode())


def resident_pages(o, start=0, end=1 << 62):
    """Resident page indices of o with pindex in [start, end).  o held."""
    size = vmview().objects[o].resident_page_count + 64
    buf = ffi.new("int[]", size)
    n = lib.vm_object_pages(o, start, end, buf, size)
    return [buf[i] for i in range(n)]


def vm_object_page_remove(o, start, end, clean_only=False):
    """Free o's resident pages in [start, end) and then its swap over the
    range -- always, resident pages or not (b815802035).  Caller holds o.

    Each page is busied with also_m_busy (waiting for in-flight I/O),
    unmapped and freed.  Sleeping loses o's token, so the page set is
    looked up again after every page.
    """
    while True:
        batch = resident_pages(o, start, end)
        if not batch:
            break
        progressed = False
        for m in batch:
            vm_page_busy_wait(m, True, "objprm")
            pg = vmview().pages[m]
            if pg.object != o or not start <= pg.pindex < end:
                lib.vm_page_wakeup(m)       # moved while we slept
                continue
            vm_page_protect(m, lib.VM_PROT_NONE)
            if pg.wire_count:
                lib.vm_page_unwire(m, 0)
            vm_page_free(m)
            progressed = True
        if not progressed:
            tsleep(lib.IDENT_VM_FREE, 0, "objprm", 1)
    if end > start:
        swap_pager_freespace(o, start, end - start)


def vm_object_terminate(o):
    """Kill a vnode object whose last reference went (reference 4.8):
    OBJ_DEAD, wait pip, free every page, dealloc the pager (handle gone,
    type DEAD, all swap freed), unlink from vm_object_list.  The slot is
    reused only after the last vm_object_drop.  Caller holds o.
    """
    obj = vmview().objects[o]
    lib.atomic_set_int(addressof(obj, "flags"), lib.OBJ_DEAD)
    vm_object_pip_wait(o, "objtrm")
    vm_object_page_remove(o, 0, 1 << 62)
    vm_object_pip_wait(o, "objtrm")
    # vnode_pager_dealloc
    obj.handle = -1
    obj.type = lib.OBJT_DEAD
    swap_pager_freespace_all(o)
    lib.lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_remove(o)
    lib.lwkt_reltoken(lib.TOK_VMOBJ)
    obj.ref_count = 0
