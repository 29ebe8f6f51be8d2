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
from smpvm.kern.lwkt_token import lwkt_gettoken, lwkt_reltoken, lwkt_yield
from smpvm.layout import ffi, lib
from smpvm.vm.vmview import addressof, vmview
from smpvm.vm.vm_page import (vm_page_busy_try, vm_page_busy_wait,
                              vm_page_free, vm_page_protect, vm_page_remove,
                              vm_page_sleep_busy, vm_page_test_dirty,
                              vm_page_wakeup)

vm_object_hold = lib.vm_object_hold
vm_object_drop = lib.vm_object_drop
vm_object_allocate = lib.vm_object_allocate
vm_object_marker = lib.vm_object_marker
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
swap_pager_unswapped = lib.swap_pager_unswapped

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
    """Remove o's resident pages in [start, end) (end 0: to the end of the
    object), then its swap (vm_object.c @seed).  No requirements: holds o
    itself, and holds a paging-in-progress reference meanwhile.

    A page that cannot be busied now is waited for (soft busy too) and the
    scan starts over, as the seed's RB_SCAN does when its callback sets
    info.error.  A wired page (in a buffer) cannot be freed: it is unmapped
    and invalidated (unless clean_only), and -- the B_NOCACHE release that
    the filesystem's nvtruncbuf gives the buffer holding it, which smpvm
    folds in here since it has no buffer cache -- its swap copy released
    (swap_pager_unswapped).  Then the swap over the range is freed, whether
    pages were resident or not (b815802035): all of it through
    swap_pager_freespace_all when the range covers the whole object, else
    by range (the seed's leaky swp_pager_meta_free).
    """
    vm_object_hold(o)
    try:
        obj = vmview().objects[o]
        if obj.resident_page_count == 0 and obj.swblock_count == 0:
            return
        vm_object_pip_add(o, 1)
        end_pindex = (end - 1) % (1 << 64)          # vm_pindex_t
        size_1 = (obj.size - 1) % (1 << 64)
        all_ = start == 0 and end_pindex >= size_1
        while True:
            error = False
            for m in resident_pages(o, start, end_pindex + 1):
                if _page_remove_callback(o, m, start, end_pindex,
                                         clean_only):
                    error = True
            if not error:
                break
        if obj.type != lib.OBJT_SWAP or not clean_only:
            if all_:
                swap_pager_freespace_all(o)
            else:
                swap_pager_freespace(o, start, end_pindex - start + 1)
        vm_object_pip_wakeup(o)
    finally:
        vm_object_drop(o)


def _page_remove_callback(o, m, first, last, clean_only):
    """vm_object_page_remove_callback for page m of [first, last]: o held.
    True when the scan must start over (the page was busy: slept on it)."""
    if vm_page_busy_try(m, True):
        vm_page_sleep_busy(m, True, "vmopar")
        return True
    pg = vmview().pages[m]
    if pg.object != o or not first <= pg.pindex <= last:
        # the scan's list went stale while an earlier page slept (the
        # kernel's RB_SCAN looks the next page up in the tree instead)
        vm_page_wakeup(m)
        return False
    if pg.wire_count != 0:
        vm_page_protect(m, lib.VM_PROT_NONE)
        if not clean_only:
            pg.valid = 0
            swap_pager_unswapped(m)     # smpvm: nvtruncbuf's brelse
        vm_page_wakeup(m)
        return False
    if clean_only and pg.valid:
        vm_page_test_dirty(m)
        if pg.valid & pg.dirty:
            vm_page_wakeup(m)
            return False
    vm_page_protect(m, lib.VM_PROT_NONE)
    vm_page_free(m)
    return False


def vm_object_terminate(o):
    """Destroy vnode object o whose last reference went (vm_object.c
    @seed).  The caller holds o and drops it afterwards: the slot is freed
    at the last vm_object_drop.

    OBJ_DEAD; wait for paging in progress; free every resident page
    (vm_object_terminate_callback: hard busy only, a wired page only leaves
    the object, lwkt_yield after each page); the pager forgets the object
    (vnode_pager_dealloc: handle gone, type DEAD, swap_pager_freespace_all:
    every block freed, no range free); then off vm_object_list.
    """
    v = vmview()
    obj = v.objects[o]
    lib.atomic_set_int(addressof(obj, "flags"), lib.OBJ_DEAD)
    vm_object_pip_wait(o, "objtrm1")
    vm_object_pip_wait(o, "objtrm2")
    for m in resident_pages(o):
        _terminate_callback(o, m)
    vnode_pager_dealloc(o)
    while obj.resident_page_count:      # "still has pages": scan again
        for m in resident_pages(o):
            _terminate_callback(o, m)
    lwkt_gettoken(lib.TOK_VMOBJ)
    vm_object_list_remove(o)
    lwkt_reltoken(lib.TOK_VMOBJ)
    obj.ref_count = 0


def _terminate_callback(o, m):
    """vm_object_terminate_callback: o held.  smpvm's pmap has no process
    maps whose teardown would have unmapped the page before its object's
    last reference went: the page is unmapped here."""
    vm_page_busy_wait(m, False, "vmpgtrm")
    pg = vmview().pages[m]
    if pg.object != o:
        vm_page_wakeup(m)
    elif pg.wire_count == 0:
        vm_page_protect(m, lib.VM_PROT_NONE)
        vm_page_free(m)
    else:
        vm_page_remove(m)
        vm_page_wakeup(m)
    lwkt_yield()


def vnode_pager_dealloc(o):
    """The pager forgets dead object o (vnode_pager.c @seed): o held."""
    obj = vmview().objects[o]
    vm_object_pip_wait(o, "vnpdea")
    obj.handle = -1
    obj.type = lib.OBJT_DEAD
    swap_pager_freespace_all(o)
