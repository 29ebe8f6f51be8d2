"""LWKT tokens (sys/kern/lwkt_token.c).  The kernel names are the C entries:

lwkt_gettoken(id)    push a tokref and acquire token id (recursive for the
                     holder).  Spins lwkt.token_spin times, then switches:
                     the thread loses *all* its tokens and returns only when
                     it owns every one again.  Never call with a spinlock
                     held if the token may be contended (panic).
lwkt_trytoken(id)    1 if acquired (ref pushed), 0 without blocking.
lwkt_reltoken(id)    id must be the top of the thread's token stack (LIFO is
                     asserted); the token is released when no outer ref
                     remains.
lwkt_token_held(id)  1 if this thread owns id.
lwkt_token_swap()    exchange the top two refs (vm_object_lock_swap).
lwkt_yield()         a token-loss point (see debug.lwkt_yield_switch).

Token ids: the global tokens are TOK_MP, TOK_VM, TOK_VMOBJ, ... (smpvm.h);
pool tokens follow them, chosen by lwkt_token_pool_lookup(addr).
"""
from smpvm.layout import lib

lwkt_gettoken = lib.lwkt_gettoken
lwkt_trytoken = lib.lwkt_trytoken
lwkt_reltoken = lib.lwkt_reltoken
lwkt_token_held = lib.lwkt_token_held
lwkt_token_swap = lib.lwkt_token_swap
lwkt_yield = lib.lwkt_yield
lwkt_token_pool_lookup = lib.lwkt_token_pool_index

mp_token = lib.TOK_MP
vm_token = lib.TOK_VM
vmobj_token = lib.TOK_VMOBJ
vnode_token = lib.TOK_VNODE
dev_token = lib.TOK_DEV


def lwkt_getpooltoken(addr):
    """Acquire the pool token of emulated address addr; returns its id
    (the caller releases it with lwkt_reltoken(id))."""
    tok = lib.lwkt_token_pool_index(addr)
    lib.lwkt_gettoken(tok)
    return tok

