/*
 * smpvm.h - the one definition of the shared-memory machine.
 *
 * Every struct, flag and constant that both C and Python see is declared here
 * once.  csrc/smpvm_build.py hands this file to cffi's cdef() (minus the
 * C-only blocks between the @c-only markers), so Python reads the layout and
 * the constants from lib/ffi and never keeps a second copy.
 *
 * cdef rules this file keeps: integer #defines are plain literals, arrays are
 * sized by literals or #defined names, no attributes, no inline functions.
 * Cache-line padding is therefore spelled out as pad fields and checked by
 * _Static_assert in smpvm.c.
 *
 * Everything in the segment is addressed by index (thread id, lock id,
 * region offset), never by pointer: each process maps the segment at its own
 * address.
 */
/* @c-only-begin */
#ifndef SMPVM_H
#define SMPVM_H
#include <stdint.h>
#include <stddef.h>
/* @c-only-end */

/* ---- segment identity ------------------------------------------------- */
#define SMPVM_MAGIC             0x314d56504d53     /* "SMPVM1" little end. */
#define SMPVM_LAYOUT_VERSION    12
#define SMPVM_CACHELINE         64

/* ---- fixed limits ------------------------------------------------------ */
#define SMPVM_MAXTHREADS        64      /* sleep-queue masks are 64-bit      */
#define SMPVM_MAXCPUS           32
#define LWKT_MAXTOKENS          32      /* sys/sys/thread.h                  */
#define SMPVM_MAXSPINS_HELD     8       /* nesting depth of spinlocks        */
#define SMPVM_MAXCLASSES        64
#define SMPVM_NREGIONS          11

/* ---- kernel constants (the seed's headers) ------------------------------ */
#define LWKT_NUM_POOL_TOKENS    4001    /* prime; index = address mod 4001   */
#define SPINLOCK_NUM_POOL       8192    /* ((a>>5) ^ (a>>12)) & 8191         */
#define LWKT_TOKEN_SPIN         5       /* lwkt.token_spin default           */
#define HZ_DEFAULT              100

/* defaults of smpvm's own debug.* sysctls (kern_spinlock.c's marks) */
#define SPIN_YIELD_SPINS_DEFAULT   100     /* yield the host CPU every N spins */
#define SPIN_WARN_MS_DEFAULT       1000    /* "indefinite wait" every second   */
#define SPIN_BACKTRACE_MS_DEFAULT  11000   /* backtraces of waiter and holder  */
#define SPIN_PANIC_MS_DEFAULT      60000   /* then panic                       */

/* the machine clock (hdr.clock_mode) */
#define CLOCK_WALL              0       /* hz ticks of CLOCK_MONOTONIC (x speedup) */
#define CLOCK_VIRTUAL           1       /* ticks advance only by smpvm_clock_advance */

/* well-known sleep idents (emulated addresses below any object's) */
#define IDENT_SHUTDOWN          1       /* woken when the machine shuts down */

/* tsleep flags (sys/sys/param.h) and results */
#define PCATCH                  0x100
#define PINTERLOCKED            0x400
#define PWAKEUP_ONE             0x8000
#define SMPVM_EWOULDBLOCK       35      /* BSD EWOULDBLOCK, as tsleep returns */

/* ---- global tokens: ids 0..SMPVM_NGLOBAL_TOKENS-1; pool tokens follow --- */
#define TOK_MP                  0       /* mp_token    */
#define TOK_VM                  1       /* vm_token    */
#define TOK_VMOBJ               2       /* vmobj_token */
#define TOK_VNODE               3       /* vnode_token */
#define TOK_DEV                 4       /* dev_token   */
#define SMPVM_NGLOBAL_TOKENS    5

/*
 * ---- spinlock ids: pool spinlocks are 0..spin_pool-1; named ones follow ----
 * Named spinlock k has id spin_pool + k.  The first PQ_COUNT are the page
 * queue spinlocks (vm_page_queues[q].spin, k = q).
 */
#define SPIN_NAMED_QUEUE0       0       /* + queue index                     */
#define SPIN_NAMED_SWAPZONE     1281    /* (PQ_COUNT) swblock zone free list */
#define SMPVM_NNAMED_SPINLOCKS  1282

/* ---- machine state (hdr.state) ------------------------------------------ */
#define MS_BOOTING              0
#define MS_RUNNING              1
#define MS_SHUTDOWN             2
#define MS_PANIC                3
#define MS_DESTROYED            4

/* ---- thread kinds and states ------------------------------------------- */
#define TDK_CPU                 1       /* a CPU process running workload   */
#define TDK_KTHREAD             2       /* kproc_start'ed kernel thread      */
#define TDK_HOST                3       /* the creating/test process itself  */
#define TDK_TOOL                4       /* a tool attached from another shell*/

#define TDS_FREE                0
#define TDS_RUNNING             1
#define TDS_SPINWAIT            2       /* contending for a spinlock         */
#define TDS_TOKWAIT             3       /* switched out waiting for tokens   */
#define TDS_SLEEPING            4       /* in tsleep                         */
#define TDS_EXITED              5

/* ---- lock kinds --------------------------------------------------------- */
#define LK_SPIN                 1
#define LK_TOKEN                2
#define LK_BUSY                 3       /* page busy waits (sleep lock)     */
#define LK_SLEEP                4       /* tsleep channels, by wmesg site   */

/* ---- preemption-point hook operations ------------------------------------ */
#define HOOK_SPIN_LOCK          1
#define HOOK_SPIN_UNLOCK        2
#define HOOK_TOKEN_GET          3
#define HOOK_TOKEN_REL          4
#define HOOK_TSLEEP             5
#define HOOK_WAKEUP             6
#define HOOK_YIELD              7
#define HOOK_ATOMIC             8
#define HOOK_ACCESS             9       /* a checked field access (id: field) */
#define HOOK_PUBLISH            10      /* after an atomic published a value:
                                         * a noise point only, never a step */

/* noise levels of free runs (smpvm_config.noise): 0 off */
#define NOISE_MAX               3

/* ---- workload counters (hdr.stress[], atomic adds by CPU processes) ---- */
#define ST_OPS                  0
#define ST_READS                1       /* reads verified against the truth */
#define ST_READ_PAGES           2
#define ST_DIVERTED             3       /* pages of those served by the SSD */
#define ST_FAILURES             4       /* wrong bytes (and zero fills)     */
#define ST_WRITES               5
#define ST_MMAP                 6
#define ST_TRUNCATES            7
#define ST_UNLINKS              8
#define ST_CHFLAGS              9
#define ST_SYSCTLS              10
#define ST_META                 11
#define ST_XREADS               12      /* reads of other CPUs' files       */
#define ST_ZERO_FILLS           13
#define ST_NCOUNTERS            16

/* ---- regions of the segment (hdr.region_off[]) -------------------------- */
#define REG_THREADS             0
#define REG_SPINLOCKS           1
#define REG_TOKENS              2
#define REG_SLEEPQ              3
#define REG_VM                  4       /* struct vm_globals                 */
#define REG_PAGES               5       /* struct vm_page[npages + markers]  */
#define REG_PHYS                6       /* page contents, npages * PAGE_SIZE */
#define REG_OBJECTS             7       /* objects, vnodes, swblocks, blist  */
#define REG_PROF                8       /* lock profiling: sites, records, histograms */
#define REG_RACE                9       /* race checkers: shadow state, witness, reports, trace rings */
#define REG_SCHED               10      /* deterministic scheduler */

/*
 * Sizes of one machine.  Filled by Python from its config, completed and
 * checked by smpvm_layout().  npages..nswap size the VM regions that the VM
 * layer lays out; the header records them so every attacher agrees.
 */
struct smpvm_config {
	uint32_t ncpus;
	uint32_t maxthreads;
	uint32_t npages;        /* physical pages                     */
	uint32_t nobjects;      /* vm_object slots                    */
	uint32_t nvnodes;       /* vnode slots                        */
	uint32_t nswap;         /* swap device size in pages (blocks) */
	uint32_t spin_pool;     /* pool spinlocks                     */
	uint32_t token_pool;    /* pool tokens                        */
	uint32_t nsleepq;       /* sleep-queue hash buckets (pow2)    */
	uint32_t hz;
	uint32_t nmeta;         /* VCHR meta-data device, in pages    */
	uint32_t nspinlocks;    /* derived: spin_pool + named         */
	uint32_t ntokens;       /* derived: globals + token_pool      */
	uint32_t check;         /* RACE_* checkers on (0: REG_RACE is empty) */
	uint32_t check_sample;  /* happens-before: check 1 access in N (1 = all) */
	uint32_t sched;         /* 1: REG_SCHED exists (deterministic mode) */
	uint32_t sched_trace;   /* full-trace events kept, 0: ring only */
	uint32_t noise;         /* free runs: delays at preemption points, 0 off */
	uint64_t noise_seed;    /* which points and delays (the run's seed) */
};

/*
 * struct spinlock (sys/sys/spinlock.h): counta is the lock word, countb the
 * contention counter.  The seed stores 1 in counta; smpvm stores the holder's
 * tid + 1 so that any process can name the holder (same TTAS behaviour).
 * The statistics are smpvm's (the seed has none); they are written only by
 * the holder, so they need no atomics.  Hold times are lock profiling's:
 * an acquisition made while hdr.prof_enabled is set is timed (acq_tsc != 0)
 * and its release adds st_hold_* and one hold histogram entry (so the
 * histogram's sum is the number of timed holds); acquisitions are always
 * counted.  The first line is all an uncontended lock/unlock touches.
 */
struct spinlock {
	/* line 1: what every acquisition and release touches (the holder
	 * owns this line from its CAS on: no second line moves) */
	uint32_t counta;        /* 0 free, else holder tid + 1 */
	uint32_t countb;        /* contention counter (seed)   */
	int32_t  owner_pid;
	int32_t  last_tid;      /* previous holder (bounces)   */
	int32_t  owner_key;     /* what the holder locked it for (a page) */
	uint32_t want_site;     /* a waiter asks the holder for its site  */
	uint64_t acq_tsc;       /* when the holder acquired it; 0: untimed */
	uint64_t st_acquisitions;
	uint64_t st_hold_ns;
	uint64_t st_hold_max_ns;
	uint64_t st_hold_min_ns;
	/* line 2: the contended path's */
	uint32_t rel_site;      /* the holder's site at its release       */
	uint32_t pad1;
	uint64_t st_wait_min_ns;
	uint64_t st_contended;
	uint64_t st_spins;
	uint64_t st_wait_ns;
	uint64_t st_wait_max_ns;
	uint64_t st_bounces;
	uint64_t pad0[1];
};

/*
 * struct lwkt_token (sys/sys/thread.h).  t_ref holds the owner tid + 1
 * (the seed points it at the owner's tokref; a thread's tokrefs live in its
 * own stack, so "owner thread" is the same information).  t_waiters counts
 * threads switched out waiting on it, so a release knows to FUTEX_WAKE.
 */
struct lwkt_token {
	/* line 1: what every acquisition and release touches */
	uint32_t t_ref;
	uint32_t t_waiters;
	int32_t  owner_pid;
	int32_t  last_tid;
	int32_t  owner_key;     /* what the holder took it for (an object) */
	uint32_t want_site;
	uint64_t acq_tsc;       /* when the holder acquired it; 0: untimed */
	uint64_t st_acquisitions;
	uint64_t st_hold_ns;
	uint64_t st_hold_max_ns;
	uint64_t st_hold_min_ns;
	/* line 2: the contended path's */
	uint32_t rel_site;
	uint32_t pad1;
	uint64_t t_collisions;
	uint64_t st_wait_min_ns;
	uint64_t st_contended;
	uint64_t st_spins;
	uint64_t st_wait_ns;
	uint64_t st_wait_max_ns;
	uint64_t st_bounces;
};

/*
 * Per-thread state, in shared memory so any process can show who holds and
 * waits on what.  td_toks[] is the tokref stack (token ids), td_toks_stop
 * its depth.  spins_held[] is the stack of spinlock ids.  woken is the
 * futex word tsleep waits on.
 */
struct smpvm_thread {
	int32_t  tid;
	int32_t  pid;
	int32_t  cpu;
	int32_t  kind;
	uint32_t state;
	uint32_t woken;         /* futex word: set by wakeup()            */
	char     name[24];
	int32_t  td_critcount;
	int32_t  gd_spinlocks_wr;
	int32_t  nspins;
	int32_t  td_toks_stop;
	int32_t  spins_held[SMPVM_MAXSPINS_HELD];
	int32_t  td_toks[LWKT_MAXTOKENS];
	uint64_t wchan;         /* tsleep ident, 0 when not sleeping      */
	char     wmesg[16];
	int32_t  wait_kind;     /* LK_SPIN / LK_TOKEN while waiting       */
	int32_t  wait_id;       /* the lock waited for                    */
	uint64_t wait_start_ns;
	uint64_t n_sleeps;
	uint64_t n_wakeups;     /* times this thread was woken            */
	uint64_t n_switches;    /* token-loss points actually taken       */
	uint64_t n_hooks;       /* preemption points seen (count hook)    */
	uint64_t wake_tick;     /* virtual clock: tsleep timeout tick, 0 none */
	int32_t  prof_key;      /* the page/object a lock is being taken for */
	uint32_t timo;          /* tsleep timeout in ticks, 0 = none (forensics) */
	uint64_t n_noise;       /* delays the noise hook injected            */
};

/* one sleep-queue hash bucket: which threads sleep on idents hashing here */
struct smpvm_sleepq {
	uint64_t mask;
	uint64_t pad0[7];
};

/* a lock class: a contiguous range of lock ids of one kind */
struct smpvm_lockclass {
	char     name[32];
	uint32_t kind;
	uint32_t first;
	uint32_t count;
	uint32_t pad0;
};

/*
 * kern.*, lwkt.* and debug.* sysctls.  smpvm/kern/sysctl.py names each
 * field and says whether it is writable; the value lives only here.
 */
struct smpvm_kern_sysctl {
	int64_t lwkt_token_spin;        /* lwkt.token_spin                  */
	int64_t lwkt_yield_switch;      /* debug.lwkt_yield_switch (0/1)    */
	int64_t spin_yield_spins;       /* debug.spin_yield_spins           */
	int64_t spin_warn_ms;           /* debug.spin_warn_ms               */
	int64_t spin_backtrace_ms;      /* debug.spin_backtrace_ms          */
	int64_t spin_panic_ms;          /* debug.spin_panic_ms              */
	int64_t pad0[10];
};

struct smpvm_header {
	uint64_t magic;
	uint32_t layout_version;
	uint32_t header_size;
	uint64_t segment_size;
	uint32_t owner_uid;
	int32_t  creator_pid;
	uint64_t created_ns;            /* CLOCK_REALTIME at creation       */
	uint64_t boot_mono_ns;          /* CLOCK_MONOTONIC at creation      */
	uint64_t tsc_ns_q32;            /* ns per TSC tick, Q32 fixed point */
	uint32_t state;                 /* MS_*; also a futex word          */
	uint32_t panicking;             /* first panic wins (cmpset 0->1)   */
	int32_t  panic_tid;
	int32_t  panic_pid;
	char     panicstr[512];
	char     name[64];
	char     datadir[256];
	struct smpvm_config cfg;
	uint64_t region_off[SMPVM_NREGIONS];
	uint64_t region_len[SMPVM_NREGIONS];
	uint32_t nclasses;
	uint32_t pad0;
	struct smpvm_lockclass classes[SMPVM_MAXCLASSES];
	struct smpvm_kern_sysctl kern;
	uint32_t shutdown;              /* futex word, 1 once shutdown      */
	uint32_t clock_mode;            /* CLOCK_WALL or CLOCK_VIRTUAL      */
	uint64_t ticks;                 /* the virtual clock                */
	uint64_t clock_speedup;         /* wall clock: ticks run N x faster */
	uint32_t prof_enabled;          /* lock profiling on (sites, records) */
	uint32_t host_error;            /* 1: the panic is the host's (a full
	                                   disk: panic_host), not the kernel's */
	uint64_t prof_calls;            /* site lookups made (observer effect) */
	uint64_t prof_ns;               /* ns spent in them                 */
	uint32_t park_request;          /* stop the world at safe points    */
	uint32_t parked;                /* threads parked right now         */
	uint64_t stress[16];            /* ST_* counters of the workloads   */
	uint64_t scratch[6];            /* free words for tests and tools   */
};


/* ======================================================================== */
/*                       the emulated VM (sys/vm, vfs)                      */
/* ======================================================================== */

#define PAGE_SIZE               4096
#define PAGE_SHIFT              12
#define DEV_BSIZE               512
#define VM_PAGE_BITS_ALL        0xff

/* page flags (sys/vm/vm_page.h @seed) */
#define PG_BUSY                 0x00000001
#define PG_WANTED               0x00000002
#define PG_WINATCFLS            0x00000004
#define PG_FICTITIOUS           0x00000008
#define PG_WRITEABLE            0x00000010
#define PG_MAPPED               0x00000020
#define PG_ZERO                 0x00000040
#define PG_REFERENCED           0x00000080
#define PG_CLEANCHK             0x00000100
#define PG_SWAPINPROG           0x00000200
#define PG_NOSYNC               0x00000400
#define PG_UNMANAGED            0x00000800
#define PG_MARKER               0x00001000
#define PG_RAM                  0x00002000
#define PG_SWAPPED              0x00004000
#define PG_NOTMETA              0x00008000
#define PG_ACTIONLIST           0x00010000
#define PG_SBUSY                0x00020000

/*
 * Queues.  The numbering is 027193eb61's (1 + k*PQ_MAXL2_SIZE, which
 * 51c99c6153 writes 1 + k*PQ_L2_SIZE once PQ_L2_SIZE is fixed at 256): every
 * kernel version boots from this one layout.  FREE and CACHE are coloured
 * in all of them (base + m->pc).  @seed INACTIVE, ACTIVE and HOLD are single
 * queues: the seed uses index base + 0 only.  From 027193eb61 they fan out
 * to base + m->pc, each with its own spinlock.  The colours in use are
 * PQ_L2_SIZE (vm_globals.pq_l2_size): 64 until 51c99c6153 (PQ_CACHESIZE 256),
 * 256 after it -- so until then only 64 of the 256 sub-queues carry pages.
 */
#define PQ_MAXL2_SIZE           256
#define PQ_L2_SIZE_SEED         64      /* PQ_CACHESIZE 256 @seed            */
#define PQ_L2_SIZE_51C99C6153   256     /* fixed by 51c99c6153               */
#define PQ_NONE                 0
#define PQ_FREE                 1       /* 1 + 0*PQ_MAXL2_SIZE               */
#define PQ_INACTIVE             257     /* 1 + 1*PQ_MAXL2_SIZE               */
#define PQ_ACTIVE               513     /* 1 + 2*PQ_MAXL2_SIZE               */
#define PQ_CACHE                769     /* 1 + 3*PQ_MAXL2_SIZE               */
#define PQ_HOLD                 1025    /* 1 + 4*PQ_MAXL2_SIZE               */
#define PQ_COUNT                1281    /* 1 + 5*PQ_MAXL2_SIZE               */

/*
 * Kernel versions (vm_globals.version): the seed and the swapcache commits
 * after it, in upstream order.  Version k is the seed plus commits 1..k.
 * smpvm/vm/versions.py names them (date, title); code gates a change on
 * "version >= KV_<commit>".
 */
#define KV_SEED                 0       /* d2d8515bfb3e                      */
#define KV_027193EB61           1       /* 256 INACTIVE/ACTIVE queues        */
#define KV_51C99C6153           2       /* pageout per-queue counts, PQ_L2 256 */
#define KV_08FB7A9DA0           3       /* condfree charge, vmobj_token      */
#define KV_27B6EE0313           4       /* the token swap                    */
#define KV_739BE60BF6           5       /* hold before the yield             */
#define KV_F5F6D24720           6       /* cleaning rewritten                */
#define KV_7A175765DE           7       /* the marker wraps at the end       */
#define KV_0BF8126181           8       /* vm.swapcache.maxscan              */
#define KV_0301C40799           9       /* the swap space leak               */
#define KV_64949BAAD7           10      /* per-queue budgets, reached_end    */
#define KV_NEWEST               10

#define ACT_DECLINE             1
#define ACT_ADVANCE             3
#define ACT_INIT                5
#define ACT_MAX                 64

/* object types and flags (sys/vm/vm_object.h @seed) */
#define OBJT_DEFAULT            0
#define OBJT_SWAP               1
#define OBJT_VNODE              2
#define OBJT_DEVICE             3
#define OBJT_PHYS               4
#define OBJT_DEAD               5
#define OBJT_MARKER             6
#define OBJ_DEAD                0x0008
#define OBJ_WRITEABLE           0x0080
#define OBJ_MIGHTBEDIRTY        0x0100
#define REFCNTF_WAITING         0x40000000

/* vnodes (sys/sys/vnode.h, sys/sys/stat.h) */
#define VNON                    0
#define VREG                    1
#define VCHR                    4
#define VSWAPCACHE              0x01000000
#define UF_CACHE                0x00000080
#define SF_NOCACHE              0x00800000

/* pager results (sys/vm/vm_pager.h), protections (sys/vm/vm.h) */
#define VM_PAGER_OK             0
#define VM_PAGER_BAD            1
#define VM_PAGER_FAIL           2
#define VM_PAGER_PEND           3
#define VM_PAGER_ERROR          4
#define VM_PAGER_AGAIN          5
#define VM_PROT_NONE            0
#define VM_PROT_READ            1
#define VM_PROT_WRITE           2

/* vm_page_alloc requests */
#define VM_ALLOC_NORMAL         0x01
#define VM_ALLOC_SYSTEM         0x02
#define VM_ALLOC_NULL_OK        0x40

/* swap (sys/sys/blist.h, swap_pager.c @seed) */
#define SWAPBLK_NONE            -2147483648
#define SWAP_META_PAGES         32      /* inside swap_pager.c              */
#define SWAP_META_MASK          31
#define SWAPCACHE_META_PAGES    16      /* SWAP_META_PAGES as vm_swapcache.c sees it */
#define SWAPCACHE_META_MASK     15
#define SWB_DMMAX               32      /* swap stripe; first dmmax blocks reserved */
#define NSW_CLUSTER_MAX         16
#define SWM_FREE                0x02
#define SWM_POP                 0x04

/*
 * The kernel variant's defects, as bits of vm_globals.bugs (seed = all).  One
 * bit per behaviour of the seed that an upstream commit (or smpvm, for the
 * hazards) changed; smpvm/vm/bugs.py names each and its fixing commit.
 */
#define BUG_SWBLOCK_LEAK        0x0001  /* (g) meta_free leaks an emptied swblock's
                                         * last block (0301c40799) */
#define BUG_CONDFREE_UNCHARGED  0x0002  /* (e) condfree returns the pages freed, so
                                         * swblocks visited cost cleaning nothing;
                                         * cleaning ends at SWAPMAX(-5) (08fb7a9da0) */
#define BUG_WRITE_IGNORES_SWAPINPROG 0x0004  /* H1: a buffer write does not wait
                                              * for an in-flight swap write */
#define BUG_YIELD_BEFORE_HOLD   0x0008  /* (a) cleaning: lwkt_yield before the hold
                                         * (739be60bf6) */
#define BUG_CLEAN_MARKERS       0x0010  /* (b)-(d) cleaning: holds other markers,
                                         * re-inserts before an object reached after
                                         * blocking, steps from an unlinked object
                                         * (f5f6d24720) */
#define BUG_CONDFREE_VMOBJ_HELD 0x0020  /* (f) cleaning keeps vmobj_token across
                                         * condfree (08fb7a9da0, 27b6ee0313) */
#define BUG_RANGE_FREE_INTERLEAVED 0x0040 /* H2: a range free clears entries one by
                                         * one, blocking between them */
#define BUG_META_BUILD_FREE_FIRST 0x0080 /* meta_build frees the old block (may
                                         * block) while it is still recorded
                                         * (0301c40799) */
#define BUGS_SEED               0x00ff  /* every defect above: the seed kernel */
/* broken on purpose (never in seed or fixed): the classic mistakes of this
 * code, for proving the checkers (smpvm/vm/bugs.py names them) */
#define BUG_SKIP_UNSWAP_ON_WRITE 0x0100 /* a buffer write keeps the stale swap copy */
#define BUG_NO_OBJECT_RECHECK   0x0200  /* writing pass: m->object read before busy, no recheck */
#define BUG_NO_OBJECT_HOLD      0x0400  /* writing pass: the object is never held */
#define BUG_NO_PIP              0x0800  /* flush: no vm_object_pip_add */
#define BUG_FLUSH_UNBUSIED      0x1000  /* flush: page unbusied before its I/O setup */
#define BUG_INVERTED_LOCKS      0x2000  /* writing pass: page spin under the queue spin */
#define BUG_LOST_IO_WAKEUP      0x4000  /* swap iodone: busy cleared, sleepers not woken */
#define BUG_MARKER_UNLOCKED     0x8000  /* writing pass: marker moved without the queue lock */
#define IDENT_SWAPCACHE         4       /* &vm_swapcache_sleep              */
#define IDENT_PARK              5       /* threads parked for a stop-the-world check */

/* per-thread markers: page indices npages + tid * VM_MARKERS_PER_THREAD + k */
#define VM_MARKERS_PER_THREAD   2
/*
 * static markers, after the per-thread ones: swapcached's page_marker[q]
 * (static struct vm_page page_marker[PQ_L2_SIZE] since 027193eb61; the
 * seed's single stack marker is page_marker[0])
 */
#define VM_STATIC_MARKERS       256
/* object slots: nobjects + tid for each thread's object marker */

/* emulated kernel addresses (pool hashes and sleep idents derive from them) */
#define KVA_PAGES               0xffffffe000000000
#define KVA_PAGE_STRIDE         128     /* the kernel's sizeof(struct vm_page) */
#define KVA_OBJECTS             0xffffffd000000000
#define KVA_OBJECT_STRIDE       256     /* the kernel's sizeof(struct vm_object) */
#define IDENT_VM_FREE           2       /* &vmstats.v_free_count (vm_wait)  */
#define IDENT_PAGEDAEMON        3       /* &vm_pages_needed                 */

#define OBJ_PGHASH              64      /* per-object resident-page hash    */
#define OBJ_SWBHASH             16      /* per-object swblock hash          */

/*
 * struct vm_page, addressed by index.  Protection (vm_page.h @seed): pq links
 * by the queue spinlock of `queue`; `queue` by the page spinlock and the
 * queue spinlock; object/pindex/hnext by the object token + page spinlock +
 * PG_BUSY; flags atomic; busy only by the PG_BUSY holder; wire_count atomic
 * (0<->1 under PG_BUSY); hold_count atomic under the page spinlock;
 * valid/dirty under PG_BUSY; md_modified (the emulated pte modified bit)
 * under the page spinlock.
 */
struct vm_page {
	uint32_t flags;         /* @atomic                              */
	uint16_t queue;         /* @W(page_spin,queue_spin) (unlocked reads are heuristics, as in the seed) */
	uint16_t pc;            /* @immutable (page colour)             */
	int32_t  object;        /* @W(obj_token,page_spin,busy) @R(obj_token|page_spin|busy) object index, -1 none */
	int32_t  hnext;         /* @W(obj_token) @R(obj_token) next page in the object's hash chain */
	uint64_t pindex;        /* @W(obj_token,page_spin,busy) @R(obj_token|page_spin|busy) */
	int32_t  pq_next;       /* @W(queue_spin) @R(queue_spin) queue links (page indices, -1 end) */
	int32_t  pq_prev;       /* @W(queue_spin) @R(queue_spin)        */
	int32_t  hold_count;    /* @W(page_spin) atomic add under the page spinlock */
	uint32_t wire_count;    /* @atomic (0<->1 under PG_BUSY)        */
	uint8_t  busy;          /* @W(busy) soft-busy count, PG_BUSY holder only */
	uint8_t  act_count;     /* @racy heuristic                      */
	uint8_t  valid;         /* @W(busy|obj_token) @R(busy|obj_token|page_spin) */
	uint8_t  dirty;         /* @W(busy|obj_token) @R(busy|obj_token|page_spin) */
	uint8_t  md_modified;   /* @W(page_spin) pmap: some pte has the modified bit */
	uint8_t  md_referenced; /* @racy pmap: some pte has the accessed bit */
	uint8_t  pad0[2];
	uint64_t swap_writes;   /* @racy smpvm statistic: times written to the swapcache */
	uint32_t gen;           /* @racy smpvm: bumped at every (re)allocation */
	uint32_t pad1;
};

/* struct vpgqueues: one per queue index; its lock is named spinlock q */
struct vpgqueues {
	int32_t  head;          /* @W(queue_spin) @R(queue_spin)        */
	int32_t  tail;          /* @W(queue_spin) @R(queue_spin)        */
	int32_t  lcnt;          /* @W(queue_spin) @R(queue_spin)        */
	uint32_t flipflop;      /* @racy                                */
	uint64_t pad0[6];
};

struct vm_object {
	uint32_t state;         /* @atomic 0 free slot, 1 allocated     */
	uint32_t type;          /* @W(obj_token) (the seed's cleaning reads it unlocked) */
	uint32_t flags;         /* @atomic                              */
	int32_t  ref_count;     /* @W(obj_token) @R(obj_token)          */
	int32_t  hold_count;    /* @atomic                              */
	uint32_t paging_in_progress;    /* @atomic, REFCNTF_WAITING     */
	uint64_t size;          /* @W(obj_token) @R(obj_token) pages    */
	int32_t  handle;        /* @W(obj_token) @R(obj_token) vnode index, -1 for none */
	int32_t  list_next;     /* @W(vmobj_token) @R(vmobj_token) vm_object_list */
	int32_t  list_prev;     /* @W(vmobj_token) @R(vmobj_token)      */
	int32_t  backing_object;        /* @W(vmobj_token) @R(vmobj_token) the cleaning marker's cursor owner */
	uint64_t generation;    /* @W(obj_token) @R(obj_token)          */
	uint32_t resident_page_count;   /* @W(obj_token) @R(obj_token)  */
	uint32_t swblock_count; /* @W(obj_token) @R(obj_token)          */
	uint32_t alloc_gen;     /* @racy smpvm: bumped at every allocation of the slot */
	uint32_t on_list;       /* @W(vmobj_token) @R(vmobj_token) smpvm: linked on vm_object_list
	                         * (list_next/prev keep their stale values after a
	                         * TAILQ_REMOVE, as the kernel's do; this does not) */
	int32_t  pghash[64];    /* @W(obj_token) @R(obj_token) OBJ_PGHASH chain heads */
	int32_t  swbhash[16];   /* @W(obj_token) @R(obj_token) OBJ_SWBHASH chain heads */
	uint64_t backing_object_offset; /* @W(vmobj_token) @R(vmobj_token) the cleaning marker's progress in its object (f5f6d24720) */
	uint64_t pad1[3];
};

struct swblock {
	int32_t  swb_next;      /* @W(obj_token|swapzone) @R(obj_token|swapzone) hash chain, or zone free list */
	int32_t  swb_object;    /* @W(obj_token|swapzone) @R(obj_token|swapzone) */
	uint64_t swb_index;     /* @W(obj_token) @R(obj_token)          */
	int32_t  swb_count;     /* @W(obj_token) @R(obj_token)          */
	int32_t  swb_pages[32]; /* @W(obj_token) @R(obj_token) SWAP_META_PAGES */
	int32_t  pad0;
};

struct vnode {
	uint32_t state;         /* @atomic 0 free slot, 1 allocated     */
	uint32_t v_type;        /* @immutable while allocated           */
	uint32_t v_flag;        /* @atomic (VSWAPCACHE)                 */
	int32_t  v_object;      /* @W(vnode_token) set once at open     */
	uint32_t file_flags;    /* @racy UF_CACHE / SF_NOCACHE (chflags; swapcached reads it unlocked) */
	int32_t  usecount;      /* @W(vnode_token) @R(vnode_token)      */
	uint64_t size;          /* @atomic file size in bytes (CAS: appends race) */
	uint32_t generation;    /* @W(vnode_token) bumped when the slot is reused */
	uint32_t unlinked;      /* @W(vnode_token)                      */
	char     name[48];      /* @W(vnode_token) @R(vnode_token) set last at creation (publishes) */
	uint64_t pad0[1];
};

/* vmstats (atomic counters, unlocked reads) and pageout targets */
struct vmstats {        /* @all(atomic) */
	uint32_t v_page_count;
	uint32_t v_free_count;
	uint32_t v_cache_count;
	uint32_t v_inactive_count;
	uint32_t v_active_count;
	uint32_t v_wire_count;
	uint32_t v_free_min;
	uint32_t v_free_target;
	uint32_t v_free_reserved;
	uint32_t v_cache_min;
	uint32_t v_inactive_target;
	uint32_t v_pdwakeups;
	uint32_t v_free_severe;
	uint32_t pad1;
	uint64_t v_reactivated;
	uint64_t pad0[4];
};

/* counters smpvm keeps for tests and reports (atomic) */
struct vm_counters {    /* @all(racy) smpvm statistics */
	uint64_t swap_write_pages;      /* pages written to the SSD       */
	uint64_t swap_write_clusters;
	uint64_t swap_write_errors;
	uint64_t swap_alloc_fail;
	uint64_t unswapped;             /* swap_pager_unswapped releases  */
	uint64_t range_freed;           /* blocks freed by range frees    */
	uint64_t diverted_reads;        /* buffers served from the SSD    */
	uint64_t diverted_pages;
	uint64_t zero_fills;            /* diverted page with no block (!)*/
	uint64_t vnode_reads;           /* buffers read from their file   */
	uint64_t vnode_writes;          /* pages written to their file    */
	uint64_t page_allocs;
	uint64_t page_frees;
	uint64_t page_caches;
	uint64_t pageout_scans;
	uint64_t swapcache_loops;       /* swapcached main-loop iterations */
	uint64_t writing_passes;
	uint64_t cleaning_passes;
	uint64_t pages_scanned;         /* pages the writing pass visited  */
	uint64_t skip_free;             /* PG_SWAPPED or marker: free skip */
	uint64_t skip_busy;             /* vm_page_busy_try failed         */
	uint64_t skip_object;           /* no object / object changed / no vnode */
	uint64_t skip_test;             /* vm_swapcache_test refused       */
	uint64_t skip_notmeta;          /* PG_NOTMETA                      */
	uint64_t skip_disabled;         /* data/meta_enable, chflags, type */
	uint64_t skip_maxfilesize;
	uint64_t heuristic_waits;       /* passes refused by the heuristic */
	uint64_t swap_read_errors;      /* diverted reads that failed      */
	/*
	 * The cleaning meter (what a cleaning pass cost, smpvm/vm/vm_meter.py
	 * turns it into findings).  pass_*: the pass in progress (budget and
	 * objects set by vm_swapcache_cleaning, swblocks, freed, condfrees and
	 * overran by swap_pager_condfree); last_*: the last finished pass; the
	 * rest are totals and extremes, kept by swapcached around each pass.
	 */
	uint64_t clean_pass_budget;     /* maxlaunder at the pass's start   */
	uint64_t clean_pass_objects;    /* objects the walk reached         */
	uint64_t clean_pass_swblocks;   /* swblocks condfree visited        */
	uint64_t clean_pass_freed;      /* swap pages condfree freed        */
	uint64_t clean_pass_charge;     /* what the fixed pass charges its
	                                 * count: 08fb7a9da0's condfree charge,
	                                 * max(freed, visited, 1) per call, and
	                                 * the objects the pass charges to it */
	uint64_t clean_pass_overran;    /* condfree entered with the charge
	                                 * past the budget: a pass the fix
	                                 * would have ended                */
	uint64_t clean_pass_condfrees;  /* swap_pager_condfree calls: the
	                                 * objects with swap the walk reached
	                                 * (a call visits no swblock when the
	                                 * marker's iterator is past the
	                                 * object's last one)               */
	uint64_t clean_pass_use;        /* vm_swap_cache_use at its start   */
	uint64_t clean_pass_mark;       /* the writing mark then            */
	uint64_t clean_last_objects;
	uint64_t clean_last_swblocks;
	uint64_t clean_last_budget;
	uint64_t clean_last_freed;
	uint64_t clean_last_cpu_ns;     /* swapcached CPU time of the pass  */
	uint64_t clean_max_cpu_ns;
	uint64_t clean_cpu_ns;          /* all cleaning passes              */
	uint64_t clean_swblocks;        /* all cleaning passes              */
	uint64_t clean_overruns;        /* passes that overran their budget */
	uint64_t clean_worst_swblocks; /* the overrun with the most swblocks */
	uint64_t clean_worst_objects;   /* ... its objects                  */
	uint64_t clean_worst_budget;    /* ... and its budget               */
	uint64_t clean_idle_streak;     /* passes in a row that started at or
	                                 * over the writing mark and reached
	                                 * no object with swap (no condfree
	                                 * call, so nothing freed)         */
	uint64_t clean_idle_max;
	uint64_t clean_idle_start_use;  /* pass_use and pass_mark of the     */
	uint64_t clean_idle_start_mark; /* current streak's first pass      */
	uint64_t clean_idle_use;        /* ... and of the longest streak's  */
	uint64_t clean_idle_mark;
	/*
	 * The writing meter: what a writing pass (one turn of swapcached's
	 * loop that writes, over every queue it scans) cost.  pass_*: the pass
	 * in progress; max_*: the pass that flushed the most pages, and the
	 * maxlaunder it ran with.
	 */
	uint64_t writing_pass_pages;    /* pages flushed                    */
	uint64_t writing_pass_scanned;  /* pages visited                    */
	uint64_t writing_max_pages;
	uint64_t writing_max_budget;
	uint64_t writing_max_scanned;   /* the most pages one pass visited  */
	uint64_t writing_cpu_ns;        /* swapcached CPU time of all passes */
	uint64_t writing_max_cpu_ns;
	uint64_t writing_scanning_passes; /* passes that visited a page     */
	uint64_t writing_max_held;      /* the most pages one writing scan
	                                 * visited under one hold of its
	                                 * queue spinlock                   */
	/* the pageout meter: one pass of the pagedaemon's scans */
	uint64_t pageout_pdpages;       /* v_pdpages: pages the scans visited */
	uint64_t pageout_pass_pdpages;
	uint64_t pageout_max_pdpages;
	uint64_t pageout_ns;            /* wall time of the passes          */
	uint64_t pageout_max_ns;
	uint64_t pageout_deactivated;   /* ACTIVE pages moved to INACTIVE   */
	uint64_t pageout_cached;        /* pages freed or cached            */
	uint64_t vm_waits;              /* vm_wait sleeps: an allocation
	                                 * stalled for want of memory       */
	uint64_t vm_wait_ns;            /* wall time of those sleeps        */
};

/*
 * vm.swapcache.* (sys/vm/vm_swapcache.c @seed): read and written racily, as
 * in the kernel; curburst and write_count are written only by swapcached
 * (and sysctl).  The SYSCTL_INT ones are C ints, the SYSCTL_QUAD ones
 * int64_t, as in the seed.  The state words are smpvm's, for `smpvm stat`.
 */
struct vm_swapcache_sysctl {    /* @all(racy) read racily each pass */
	int32_t  read_enable;
	int32_t  data_enable;
	int32_t  meta_enable;
	int32_t  maxlaunder;
	int32_t  maxswappct;
	int32_t  hysteresis;
	int32_t  use_chflags;
	int32_t  maxscan;       /* since 0bf8126181                      */
	int32_t  min_hysteresis; /* since 64949baad7                     */
	int32_t  pad1;
	int64_t  minburst;
	int64_t  curburst;
	int64_t  maxburst;
	int64_t  accrate;
	int64_t  write_count;
	int64_t  maxfilesize;
	int64_t  cleanperobj;   /* since f5f6d24720                      */
	int64_t  state;         /* 0 WRITING, 1 CLEANING (smpvm export)  */
	int64_t  burst;         /* 0 BURSTING, 1 RECOVERING              */
	int64_t  pad0[3];
};

/* SSD fault injection (the stress harness); rates in parts per million */
struct vm_faults {      /* @all(racy) */
	uint64_t seed;
	uint32_t eio_ppm;       /* a swap write or read fails with EIO    */
	uint32_t short_ppm;     /* a swap write is short                  */
	uint32_t enospc_ppm;    /* a swap write fails with ENOSPC         */
	uint32_t delay_ppm;     /* an I/O is delayed by delay_us          */
	uint32_t delay_us;
	uint32_t pad0;
	uint64_t injected;      /* faults injected so far                 */
};

struct vm_globals {
	struct vmstats vmstats;
	struct vm_faults faults;
	struct vm_swapcache_sysctl swapcache;
	struct vm_counters cnt;
	/* swap accounting: vm_token; swapcached reads max and cache_use unlocked */
	int64_t  vm_swap_max;           /* @W(vm_token)                   */
	int64_t  vm_swap_size;          /* @W(vm_token) @R(vm_token)      */
	int64_t  vm_swap_cache_use;     /* @W(vm_token)                   */
	int64_t  vm_swap_anon_use;      /* @W(vm_token) @R(vm_token)      */
	int64_t  sw_nused;              /* @W(vm_token) @R(vm_token)      */
	int32_t  swap_pager_full;       /* @W(vm_token)                   */
	int32_t  swap_pager_almost_full; /* @W(vm_token)                  */
	int32_t  swb_free_head;         /* @W(swapzone) @R(swapzone) swblock zone free list */
	uint32_t nswblocks;             /* @immutable                     */
	uint32_t nmarkers;              /* @immutable                     */
	uint32_t bugs;                  /* @immutable BUG_* of the kernel variant */
	uint32_t version;               /* @immutable KV_* of the kernel variant */
	uint32_t pq_l2_size;            /* @immutable colours: PQ_L2_SIZE    */
	int32_t  vm_object_list_head;   /* @W(vmobj_token) @R(vmobj_token) */
	int32_t  vm_object_list_tail;   /* @W(vmobj_token) @R(vmobj_token) */
	uint32_t vm_object_count;       /* @W(vmobj_token)                */
	int32_t  vm_swapcache_inactive_heuristic;  /* @racy by design (H5) */
	uint32_t vm_pages_needed;       /* @racy                          */
	uint64_t off_vnodes;            /* @immutable offsets inside REG_OBJECTS */
	uint64_t off_swblocks;          /* @immutable                     */
	uint64_t off_blist;             /* @immutable                     */
	uint32_t nobjslots;             /* @immutable nobjects + one marker per thread */
	int32_t  pagethread;            /* @racy the pagedaemon's tid, -1 before it runs */
	uint64_t pad0[2];
	struct vpgqueues vm_page_queues[PQ_COUNT];
};


/* ---- lock profiling (REG_PROF): smpvm's, the seed has none ------------- */
#define PROF_NSITES             2048    /* call sites, open addressing      */
#define PROF_NRECS              8192    /* contention records               */
#define PROF_NBUCKETS           32      /* log2 ns histogram buckets        */
#define PROF_SITE_TEXT          120

/* a call site: "file:line:function" (+ " > C function"); slot 0 is unknown */
struct prof_site {
	uint32_t hash;
	uint32_t state;         /* 0 free, 1 being written, 2 ready        */
	char     text[120];
};

/*
 * One kind of contention: lock (kind, id) wanted at waiter site wsite while
 * the holder was at hsite (its site when it released the lock to us).
 * wkey/hkey: the page or object each side took the lock for -- different
 * keys on one pool lock are pool aliasing.
 */
struct prof_rec {
	uint32_t state;         /* 0 free, 1 claimed, 2 ready              */
	uint32_t kind;
	int32_t  lock;
	uint32_t wsite;
	uint32_t hsite;
	uint32_t aliased;
	int32_t  wkey;
	int32_t  hkey;
	uint64_t count;
	uint64_t wait_ns;
	uint64_t wait_max_ns;
	uint64_t pad0;
};

/* log2 histograms of one lock's wait and hold times (bucket b: < 2^b ns) */
struct prof_hist {
	uint32_t wait[32];
	uint32_t hold[32];
};

/* ======================================================================== */
/*                   race checkers (REG_RACE): smpvm's own                  */
/* ======================================================================== */
/*
 * The table of protection is the @-annotations on the fields of the VM
 * structs above; csrc/smpvm_build.py turns them into smpvm_fields[] (and
 * nothing else keeps a copy).  An annotation is one of
 *   @atomic      changed only by atomic operations; plain reads are fine
 *   @immutable   set before the machine runs (or while the slot is private)
 *   @racy        unprotected by design (heuristics, statistics)
 *   @W(a,b)      a write needs every protector listed;  @W(a|b) any of them
 *   @R(a|b)      a read needs one of them (no @R: reads are unlocked)
 * and a struct's @all(x) applies x to each of its fields.  Protectors are
 * the PROT_* names in lower case without the prefix.
 */
#define RACE_FIELDS             0x1     /* field discipline                 */
#define RACE_WITNESS            0x2     /* lock order                       */
#define RACE_HB                 0x4     /* happens-before                   */
#define RACE_PROTOCOL           0x8     /* flags published by the rules     */
#define RACE_ALL                0xf

#define PROT_IMMUTABLE          0x0001
#define PROT_ATOMIC             0x0002
#define PROT_RACY               0x0004
#define PROT_PAGE_SPIN          0x0010  /* the page's pool spinlock          */
#define PROT_QUEUE_SPIN         0x0020  /* the spinlock of the page's queue  */
#define PROT_OBJ_TOKEN          0x0040  /* the (pool) token of the object    */
#define PROT_BUSY               0x0080  /* PG_BUSY set on the page           */
#define PROT_VM_TOKEN           0x0100
#define PROT_VMOBJ_TOKEN        0x0200
#define PROT_VNODE_TOKEN        0x0400
#define PROT_SWAPZONE           0x0800  /* the swblock zone spinlock         */

/* the structure a checked field belongs to (index space of its entity) */
#define SK_PAGE                 1
#define SK_PQ                   2
#define SK_OBJECT               3
#define SK_SWBLOCK              4
#define SK_VNODE                5
#define SK_VMG                  6

#define SMPVM_FIELD_NAME        32      /* "member" or "nested.member", NUL included */
#define SMPVM_FIELD_SNAME       20      /* the struct's name, NUL included */
struct smpvm_field {
	char     name[SMPVM_FIELD_NAME];
	char     sname[SMPVM_FIELD_SNAME];  /* struct name               */
	uint16_t skind;         /* SK_*                                 */
	uint16_t off;           /* offsetof(struct, field)              */
	uint16_t size;
	int16_t  slot;          /* shadow slot (happens-before), -1 none */
	uint32_t kind;          /* PROT_IMMUTABLE / ATOMIC / RACY or 0   */
	uint32_t wr_all;        /* a write needs all of these            */
	uint32_t wr_any;        /* ... and one of these (0: none needed) */
	uint32_t rd_any;        /* a read needs one of these (0: none)   */
};

/* report types */
#define RR_UNPROTECTED          1       /* access without the field's protector */
#define RR_PLAIN_STORE          2       /* plain store to an atomic/immutable field */
#define RR_ORDER                3       /* lock order reversal (declared or a cycle) */
#define RR_SLEEP_SPIN           4       /* blocking or a token with a spinlock held */
#define RR_RACE                 5       /* unordered conflicting accesses */
#define RR_INFLIGHT             6       /* page contents written under its own I/O */
#define RR_USE_AFTER_FREE       7       /* a freed object slot read or written */
/* protocol checks (reference 3, 4.4-4.5, 5.2, 5.6, 7.1-7.3): a flag published
 * against the rules of the primitives, at the moment it is published */
#define RR_SWAPIO_UNBUSY        8       /* PG_SWAPINPROG set on a page not soft-busy */
#define RR_SWAPIO_WRITABLE      9       /* swap write in flight, writable mapping */
#define RR_SWAPPED_NOSWAP       10      /* PG_SWAPPED set with no swap block behind it */
#define RR_LOST_WAKEUP          11      /* PG_WANTED cleared, no wakeup before blocking */

#define RACE_NLOCKS             6
#define RACE_NREPORTS           256
#define RACE_MAXCYCLE           8
#define RACE_TRACE_LEN          64
#define RACE_NWAKE              1024    /* wakeup channel clocks (hashed)  */
#define RACE_MAXBUSY            8       /* busied pages a thread remembers */
#define LK_WAKE                 5       /* a wakeup channel (happens-before) */
/* coverage (KRACE's alias coverage): distinct pairs of conflicting accesses
 * by two threads to one field instance, keyed (field, kind, site, site) */
#define RACE_NALIAS             8192
#define ALIAS_WR                1       /* a write, then another thread's read */
#define ALIAS_WW                2       /* a write, then another thread's write */
#define ALIAS_RW                3       /* a read, then another thread's write */
#define RACE_NPOINTS            2048    /* checked accesses per site (PROF_NSITES) */

/* one side of a report: who, where, holding what */
struct race_side {
	int32_t  tid;
	int32_t  cpu;
	uint32_t site;          /* prof site id (Python line > C function) */
	uint32_t write;
	uint64_t value;
	uint32_t clock;         /* the thread's own clock at the access  */
	int32_t  nlocks;
	int32_t  locks[6];      /* RACE_NLOCKS: kind << 24 | id          */
};

struct race_report {
	uint32_t state;         /* 0 free, 1 being written, 2 ready      */
	uint32_t type;          /* RR_*                                  */
	uint32_t hash;          /* dedupe key                            */
	uint32_t count;         /* times seen                            */
	int32_t  field;         /* smpvm_fields index, -1                */
	int32_t  index;         /* page / object / ... index             */
	uint32_t required;      /* PROT_* the access needed              */
	uint32_t seq;
	struct race_side a;     /* the access or acquisition that found it */
	struct race_side b;     /* the other access / the earlier edge   */
	int32_t  ncycle;        /* lock classes of the cycle, in order   */
	int32_t  cycle_class[8];
	uint32_t cycle_site[8]; /* site that first made edge i -> i+1    */
	int32_t  cycle_tid[8];
	char     msg[160];
};

struct race_trace_ev {
	uint64_t ns;
	uint16_t op;            /* HOOK_* */
	uint16_t pad;
	int32_t  id;
};

struct race_thread {
	uint64_t checks;        /* field accesses this thread had checked */
	uint64_t hb_checks;     /* of those, happens-before checked      */
	uint32_t trace_pos;
	uint32_t sample;        /* happens-before sampling counter       */
	int32_t  nbusy;
	int32_t  busy[8];       /* RACE_MAXBUSY pages this thread busied */
	int32_t  owed_wakeup;   /* page whose PG_WANTED it cleared and has not
	                           woken yet (RR_LOST_WAKEUP), -1 none   */
	uint32_t owed_site;     /* where it cleared PG_WANTED            */
	uint32_t pad0;
	struct race_trace_ev ring[64];  /* RACE_TRACE_LEN                */
};

/* one alias pair (coverage): state 0 free, 1 being written, 2 ready */
struct race_alias {
	uint32_t state;
	uint32_t key;           /* hash of the rest, never 0             */
	int32_t  field;
	uint32_t kind;          /* ALIAS_*                               */
	uint32_t site_a;        /* the earlier access                    */
	uint32_t site_b;        /* the later one, by another thread      */
	uint64_t count;
};

/*
 * The head of REG_RACE; the vector clocks and shadow cells follow at the
 * offsets below (their sizes depend on the machine's config).
 */
struct race_globals {
	uint32_t flags;         /* RACE_* */
	uint32_t sample;
	uint32_t nfields;
	uint32_t graph_lock;    /* a raw flag, not an emulated spinlock  */
	uint32_t nreports;      /* distinct reports                      */
	uint32_t seq;
	uint32_t maxtid;        /* clocks are joined over tids < maxtid   */
	uint32_t pad2;
	uint64_t dropped;       /* reports lost to a full table          */
	uint64_t edges;         /* lock-order edges learned              */
	uint32_t nclock;        /* vector clock width (maxthreads)       */
	uint32_t nslots;        /* shadow slots per entity kind total    */
	uint64_t off_vc;        /* uint32_t [maxthreads][nclock]         */
	uint64_t off_spinvc;    /* uint32_t [nspinlocks][nclock]         */
	uint64_t off_tokvc;     /* uint32_t [ntokens][nclock]            */
	uint64_t off_busyvc;    /* uint32_t [npages_all][nclock]         */
	uint64_t off_wakevc;    /* uint32_t [RACE_NWAKE][nclock]         */
	uint32_t wake_lock[1024];       /* RACE_NWAKE raw flags          */
	uint64_t off_shadow;    /* struct race_shadow [nshadow]          */
	uint64_t nshadow;
	uint64_t shadow_base[8];        /* per SK_*: first cell of slot 0 */
	uint32_t shadow_nent[8];        /* per SK_*: entities             */
	uint64_t off_busytid;   /* int32_t [npages_all]: last thread to busy */
	uint64_t off_classof;   /* uint8_t [nspinlocks + ntokens]: lock class */
	int32_t  busy_class;    /* lock class of page busy (a sleep lock) */
	int32_t  pad1;
	uint8_t  edge[64][64];  /* SMPVM_MAXCLASSES: 1 learned, 2 declared */
	uint32_t edge_site[64][64];
	int32_t  edge_tid[64][64];
	struct race_report reports[256];        /* RACE_NREPORTS */
	struct race_thread thr[64];             /* SMPVM_MAXTHREADS */
	uint32_t nalias;        /* distinct alias pairs recorded         */
	uint32_t pad3;
	uint64_t alias_dropped; /* pairs lost to a full table            */
	struct race_alias alias[8192];          /* RACE_NALIAS */
	uint64_t points[2048];  /* RACE_NPOINTS: checked accesses by site */
};

/* a shadow cell: the last write and the last read of one field instance */
struct race_shadow {
	uint64_t wepoch;        /* clock << 8 | tid, 0 never             */
	uint64_t repoch;
	uint32_t wsite;
	uint32_t rsite;
	uint64_t wval;
	int32_t  wlocks[2];
	int32_t  rlocks[2];
};


/* ======================================================================== */
/*                 deterministic scheduler (REG_SCHED)                      */
/* ======================================================================== */
/*
 * In deterministic mode exactly one scheduled thread (TDK_CPU, TDK_KTHREAD)
 * runs between preemption points; the host and tools are not scheduled.
 * The thread holding the turn (sched_state.running) is the only one that
 * touches kernel state, so it alone updates this struct (registration, under
 * reg_lock, is the exception).  At every point the scheduler counts a step,
 * logs an event, picks the next thread by the strategy from a seeded PRNG
 * and hands the turn over on per-thread futex words (wake[]).
 *
 * A "choice" is a pick that differs from the default policy (keep the
 * current thread if runnable; after a yield the next runnable tid after it;
 * else the lowest runnable tid).  The list of choices replays a run exactly
 * under SCHED_FORCED; that list is what a shrinker removes entries from.
 */
#define SCHED_OFF               0
#define SCHED_RANDOM            1       /* uniform among runnable, every point */
#define SCHED_PCT               2       /* PCT, depth d, k estimated steps     */
#define SCHED_BOUNDED           3       /* at most b preemptions               */
#define SCHED_FORCED            4       /* choices from forced[], else default */

#define SCHED_RING              1024    /* last events kept in the ring        */
#define SCHED_MAXCHOICES        65536   /* recorded / forced choices           */
#define SCHED_MAXPLAN           64      /* pct change points, bounded steps    */
#define SCHED_EXIT_STEPS        100000  /* phased: still running this long after
                                         * the shutdown (or max_steps, if more): a hang */

/* trace event ops beyond the HOOK_* preemption points */
#define SCHED_EV_START          16      /* the first pick (tid -1)             */
#define SCHED_EV_BLOCK          17      /* id: TDS_* the thread waits in       */
#define SCHED_EV_SWITCH         18      /* lwkt_switch with tokens released    */
#define SCHED_EV_EXIT           19
#define SCHED_EV_CLOCK          20      /* id: the virtual tick advanced to    */
#define SCHED_EV_DEADLOCK       21
#define SCHED_EV_SHUTDOWN       22      /* max_steps reached: shutdown asked   */
#define SCHED_EV_JOIN           23      /* a thread registered after the start */
#define SCHED_EV_HANG           24      /* max_steps after the shutdown: no exit */
#define SCHED_EV_WORKLOAD       25      /* a first CPU finished its set-up (phased) */
#define SCHED_EV_FOUND          26      /* a finding: shutdown asked (SCHED_F_STOP) */
#define SCHED_EV_TOKLOSS        27      /* id: the token whose acquisition was made
                                         * to block (an injected token loss) */

/* sched_configure flags */
#define SCHED_F_PHASED          1       /* max_steps and the plans count from the
                                         * first CPU's end of set-up (sched_setup_done) */
#define SCHED_F_STOP            2       /* ask for shutdown at the first finding
                                         * (a race report or a wrong byte) */

/* kinds of recorded choice */
#define SCHED_CH_PREEMPT        1       /* the current thread was runnable     */
#define SCHED_CH_SWITCH         2       /* at a block, yield, exit or start    */
#define SCHED_CH_TOKLOSS        3       /* tid (= at) lost its tokens at the token
                                         * acquisition of this decision; it may
                                         * share its anchor with a pick before it */
#define SCHED_TOKLOSS_SCALE     1000    /* sched_token_loss_rate: per mille */

/* one step of the trace: thread tid at point op(id); next got the turn */
struct sched_event {
	uint64_t step;
	int32_t  tid;
	int32_t  op;
	int32_t  id;
	int32_t  next;
};

/*
 * A pick that differs from the default policy.  Its anchor, where a forced
 * schedule applies it: the thread at the decision (at, -1 at the start) and
 * how many decisions that thread had been at so far, this one included
 * (tstep) -- a per-thread count, so that a shrinker dropping one choice
 * does not move every later one, as a global step would.  A forced choice
 * with at == SCHED_AT_STEP is anchored at the global step instead (the
 * schedule files of format 1; a forced list is all of one kind).
 */
#define SCHED_AT_STEP           -2
struct sched_choice {
	uint64_t step;          /* the global step (recorded; SCHED_AT_STEP anchor) */
	int32_t  tid;
	int32_t  kind;          /* SCHED_CH_* */
	int32_t  at;            /* the thread at the decision, -1 the start */
	uint32_t tstep;         /* its decisions so far, this one included */
};

struct sched_state {
	uint32_t strategy;      /* SCHED_*, set once by sched_configure */
	uint32_t started;
	uint32_t done;          /* every scheduled thread exited        */
	uint32_t deadlock;      /* nobody runnable and no timeout       */
	int32_t  running;       /* tid holding the turn, -1 none        */
	uint32_t reg_lock;      /* registration and start               */
	uint32_t expected;      /* threads kproc_start'ed to schedule   */
	uint32_t registered;
	uint32_t gate;          /* sched_go: the host let it start      */
	uint32_t depth;         /* pct d                                */
	uint64_t members;       /* registered and not exited, by tid    */
	uint64_t expect_mask;   /* kproc_start'ed slots to schedule     */
	uint64_t seed;
	uint64_t prng;          /* splitmix64 state                     */
	uint64_t k;             /* estimated steps (pct, bounded)       */
	uint32_t bound;         /* bounded b                            */
	uint32_t pending;       /* bounded: planned preemptions due     */
	uint64_t max_steps;     /* at this step ask for shutdown, 0 no  */
	uint64_t tick_steps;    /* a virtual tick every N steps, 0: only when idle */
	uint64_t step;
	uint64_t trace_hash;    /* FNV-1a over every event              */
	uint64_t nevents;
	uint64_t trace_cap;     /* full trace: events after this struct */
	uint64_t preemptions;
	uint64_t switches;      /* hand-offs of the turn                */
	uint64_t stop_step;     /* of the deadlock or the hang          */
	uint64_t diverged;      /* forced picks that were not runnable  */
	uint32_t nplan;
	uint32_t iplan;
	uint64_t plan[SCHED_MAXPLAN];   /* sorted steps: pct change points, bounded preemptions */
	int32_t  prio[SMPVM_MAXTHREADS];        /* pct priorities       */
	uint32_t wake[SMPVM_MAXTHREADS];        /* futex words, per tid */
	uint32_t hang;          /* running max_steps after the shutdown: no exit */
	uint32_t flags;         /* SCHED_F_*                            */
	uint32_t setup_done;    /* phased: a CPU finished its set-up     */
	uint32_t found;         /* SCHED_F_STOP: shut down at a finding  */
	uint64_t setup_mask;    /* phased: CPU threads still setting up */
	uint64_t base;          /* phased: the step the workload began at */
	uint64_t shutdown_step; /* when shutdown was asked, 0 not yet   */
	uint32_t nchoices;
	uint32_t choices_lost;
	uint32_t nforced;
	uint32_t iforced;       /* SCHED_AT_STEP anchors: the next one      */
	uint32_t forced_mode;   /* 0 none yet, 1 per-thread, 2 global steps */
	uint32_t tsteps[SMPVM_MAXTHREADS + 1];  /* decisions per thread (+1: at -1) */
	uint32_t fnext[SMPVM_MAXTHREADS + 1];   /* per-thread anchors: the next one */
	uint32_t fend[SMPVM_MAXTHREADS + 1];    /* ... and the end of its run */
	struct sched_choice choices[SCHED_MAXCHOICES];  /* recorded         */
	struct sched_choice forced[SCHED_MAXCHOICES];   /* SCHED_FORCED input */
	struct sched_event ring[SCHED_RING];
	char     report[1024];  /* the deadlock or hang, every thread named */
	uint32_t tokloss;       /* per mille of eligible token acquisitions
	                         * made to block (sched_token_loss_rate)  */
	uint32_t steer;         /* after an injected loss, run a thread that
	                         * waited for a token it released         */
	uint64_t toklosses;     /* injected token losses                 */
	uint64_t steered;       /* ... after which a waiter got the turn */
	uint64_t lost_mask;     /* the tokens of the pending injected loss's
	                         * thread, by id mod 64 (0: none pending) */
};

/* ---- the C entry points (one per kernel operation) ---------------------- */

typedef void (*smpvm_hook_fn)(int op, int id);
typedef uint32_t (*smpvm_site_fn)(const char *cfunc);

/* layout and binding */
int      smpvm_layout(struct smpvm_config *cfg, struct smpvm_header *hdr);
int      smpvm_init(void *base);
int      smpvm_bind(void *base, int tid);
void     smpvm_unbind(void *base);
int      smpvm_thread_alloc(void *base, int kind, int cpu, const char *name);
int      smpvm_thread_attach(int tid);
int      smpvm_thread_exit(void);
int      smpvm_thread_exit_shutdown(void);
int      smpvm_curtid(void);
void     smpvm_set_hook(smpvm_hook_fn fn);
void     smpvm_noise_attach(void);
void     smpvm_set_count_hook(int on);
void     smpvm_set_site_fn(smpvm_site_fn fn);
int      prof_site_intern(const char *text);
int      smpvm_locks_owned_by(void *base, int tid, int *kinds, int *ids, int max);
void     smpvm_stats_reset(void *base);
uint64_t smpvm_nanotime(void);
uint64_t smpvm_ticks(void);
void     smpvm_clock_advance(uint64_t n);
uint64_t smpvm_tsc_calibrate(int ms);
int      smpvm_set_pdeathsig(int sig);
int      smpvm_panic_pending(void);
void     panic(const char *msg);
void     panic_host(const char *msg);
int      smpvm_noop(void);

/* atomics (sys/cpu/x86_64/include/atomic.h names) */
int      atomic_cmpset_int(volatile uint32_t *p, uint32_t cmpval, uint32_t newval);
uint32_t atomic_fetchadd_int(volatile uint32_t *p, uint32_t v);
void     atomic_set_int(volatile uint32_t *p, uint32_t bits);
void     atomic_clear_int(volatile uint32_t *p, uint32_t bits);
int      atomic_cmpset_long(volatile uint64_t *p, uint64_t cmpval, uint64_t newval);
uint64_t atomic_fetchadd_long(volatile uint64_t *p, uint64_t v);

/* critical sections and spinlocks (sys/sys/spinlock2.h) */
void     crit_enter(void);
void     crit_exit(void);
int      spin_pool_index(uint64_t addr);
void     spin_lock(int id);
int      spin_trylock(int id);
void     spin_unlock(int id);
int      spin_held(int id);

/* LWKT tokens (sys/kern/lwkt_token.c) */
int      lwkt_token_pool_index(uint64_t addr);
void     lwkt_gettoken(int id);
int      lwkt_trytoken(int id);
void     lwkt_reltoken(int id);
int      lwkt_token_held(int id);
void     lwkt_token_swap(void);
void     lwkt_yield(void);

/* tsleep / wakeup (sys/kern/kern_synch.c) */
void     tsleep_interlock(uint64_t ident);
int      tsleep(uint64_t ident, int flags, const char *wmesg, int timo);
void     wakeup(uint64_t ident);
void     wakeup_one(uint64_t ident);

/* vm pages (sys/vm/vm_page.c) */
int      vm_page_spin_index(int m);
uint64_t vm_page_kva(int m);
uint64_t vm_object_kva(int o);
uint64_t vm_page_phys(int m);
void     vm_page_spin_lock(int m);
void     vm_page_spin_unlock(int m);
void     vm_page_queues_spin_lock(int q);
void     vm_page_queues_spin_unlock(int q);
int      vm_page_busy_try(int m, int also_m_busy);
void     vm_page_busy_wait(int m, int also_m_busy, const char *wmesg);
int      vm_page_sleep_busy(int m, int also_m_busy, const char *wmesg);
void     vm_page_wakeup(int m);
void     vm_page_flash(int m);
void     vm_page_io_start(int m);
void     vm_page_io_finish(int m);
void     vm_page_hold(int m);
void     vm_page_unhold(int m);
void     vm_page_wire(int m);
void     vm_page_unwire(int m, int activate);
void     vm_page_deactivate(int m);
void     vm_page_deactivate_head(int m);
void     vm_page_activate(int m);
int      vm_page_requeue(int m, int base);
void     vm_page_unqueue_nowakeup(int m);
void     vm_page_unqueue(int m);
void     vm_page_dirty(int m);
void     vm_page_undirty(int m);
void     vm_page_protect(int m, int prot);
void     vm_page_test_dirty(int m);
void     pmap_clear_modify(int m);
void     pmap_enter(int m, int writable);
int      pmap_store(int m, int o, uint64_t pindex, uint32_t off, const char *src, uint32_t len);
int      pmap_load(int m, int o, uint64_t pindex, uint32_t off, char *dst, uint32_t len);
void     vm_page_copyin(int m, uint32_t off, const char *src, uint32_t len);
int      vm_page_lookup(int o, uint64_t pindex);
int      vm_page_lookup_busy_try(int o, uint64_t pindex, int also_m_busy, int *error);
int      vm_page_lookup_busy_wait(int o, uint64_t pindex, int also_m_busy, const char *wmesg);
int      vm_page_insert(int m, int o, uint64_t pindex);
void     vm_page_remove(int m);
void     vm_page_free(int m);
void     vm_page_cache(int m);
int      vm_page_alloc(int o, uint64_t pindex, int req);
int      vm_page_count_severe(void);
int      vm_page_count_target(void);
int      vm_page_count_min(int donotcount);
int      vm_paging_needed(void);
void     pagedaemon_wakeup(void);
int      vm_page_marker(int k);
int      vm_page_static_marker(int q);
int      vm_set_version(int version);
int      vm_page_queue_first(int q);
int      vm_page_queue_next(int q, int m);
void     vm_page_marker_insert_head(int q, int marker);
void     vm_page_marker_insert_tail(int q, int marker);
void     vm_page_marker_move_after(int q, int marker, int after);
void     vm_page_marker_remove(int q, int marker);

/* vm objects (sys/vm/vm_object.c) */
int      vm_object_token(int o);
void     vm_object_hold(int o);
int      vm_object_hold_try(int o);
void     vm_object_drop(int o);
int      vm_object_allocate(int type, uint64_t size);
int      vm_object_marker(void);
int      vm_object_list_first(void);
int      vm_object_list_next(int o);
void     vm_object_list_remove(int o);
void     vm_object_list_insert_head(int o);
void     vm_object_list_insert_after(int after, int o);
void     vm_object_list_insert_before(int before, int o);
void     vm_object_pip_add(int o, int n);
void     vm_object_pip_wakeup(int o);
void     vm_object_pip_wakeup_n(int o, int n);
void     vm_object_pip_wait(int o, const char *wmesg);
int      vm_object_pages(int o, uint64_t start, uint64_t end, int *out, int max);

/* swap pager (sys/vm/swap_pager.c) */
int      swp_pager_getswapspace(int o, int n);
void     swp_pager_freeswapspace(int o, int blk, int n);
void     swp_pager_meta_build(int o, uint64_t pindex, int blk);
int      swp_pager_meta_ctl(int o, uint64_t pindex, int flags);
void     swp_pager_meta_free(int o, uint64_t start, uint64_t count);
void     swp_pager_meta_free_all(int o);
void     swap_pager_freespace(int o, uint64_t start, uint64_t n);
void     swap_pager_freespace_all(int o);
int      swap_pager_meta_lookup(int o, uint64_t pindex);
void     swap_pager_unswapped(int m);
int      swap_pager_condfree(int o, uint64_t *basei, int count);

/* race checkers (csrc/race.c) */
int      smpvm_nfields(void);
const struct smpvm_field *smpvm_field(int i);
void     race_access(int field, int idx, int write, uint64_t value, uint32_t site);

/* benchmarks: the same loops entirely in C */
uint64_t smpvm_bench_spin_loop(int id, uint64_t n);
uint64_t smpvm_bench_token_loop(int id, uint64_t n);

/* deterministic scheduler (csrc/sched.c); base: this process's machine */
int      sched_configure(void *base, int strategy, uint64_t seed, int depth,
	    uint64_t k, int bound, uint64_t max_steps, uint64_t tick_steps,
	    uint32_t flags);
void     sched_setup_done(void);
int      sched_token_loss_rate(void *base, uint32_t per_mille, int steer);
int      sched_force(void *base, uint64_t step, int tid, int kind, int at,
             uint32_t tstep);
void     sched_expect(void *base, int tid);
void     sched_go(void *base);
int      sched_hook_installed(void);
/* ======================================================================== */
/* The code under the port (csrc/bio.c, csrc/stamp.c): the buffer path, the  */
/* vnode and swap pagers' I/O, page copies, and the stress workload's stamps */
/* ======================================================================== */
#define BUF_PAGES               4       /* a buffer: 16 KiB, 4 aligned pages */
#define BIO_MAXPAGES            32      /* pages of one buffer or swap run   */
#define VM_CYCLE_POINT          40      /* vfs.vm_cycle_point @seed          */
#define BIO_READ                0       /* the fault hook's op               */
#define BIO_WRITE               1
#define STAMP_UNIT              64      /* bytes of one stamp                */

/* A buffer (process-local, never in the segment): its pages, busied and
 * wired while it holds them, and b_act_count. */
struct buf {
	int      b_npages;
	int      b_act_count;
	int      b_pages[BIO_MAXPAGES];
};

/* What the reads of a read(2) or a write did, for the stress verifier: the
 * pindexes served from the SSD, those the swap pager zero-filled (a
 * coherence failure), a failed diverted read's errno; and where a vfs_read
 * stands between its calls (process-local). */
struct bio_stats {
	int      ndiverted;
	int      nzero;
	int      error;
	int      held;          /* vfs_read: the object is held          */
	uint64_t lblk;          /* vfs_read: the next buffer              */
	uint64_t diverted[BIO_MAXPAGES];
	uint64_t zero[BIO_MAXPAGES];
};

/* The SSD's fault injection (Python): 0, an errno, or -1 and *nbytes for a
 * short write. */
typedef int (*bio_fault_fn)(int op, int blk, int npages, int *nbytes);
void     bio_set_fault_fn(bio_fault_fn fn);
void     bio_fault_hook(int on);
int      bio_take_host_errno(void);

/* the buffer path (sys/kern/vfs_bio.c) */
int      bio_busy_pages(int o, uint64_t start, int n, int also_m_busy, int *pages);
int      getblk(int o, uint64_t start, int n, int also_m_busy, struct buf *bp);
void     brelse(struct buf *bp);
void     vfs_vmio_release(struct buf *bp);
void     fault_release(const int *pages, int n);
void     vn_strategy_read(int o, const int *pages, int n, int fd, int swapfd,
	    struct bio_stats *st);
int      bread_copy(int o, uint64_t lblk, int n, int fd, int swapfd,
	    uint64_t offset, uint64_t length, char *dst, struct bio_stats *st);
int      vfs_read(int vp, int o, uint64_t offset, uint64_t length,
	    uint64_t npages_file, int fd, int swapfd, char *dst,
	    struct bio_stats *st);
void     vnode_pager_putpage(int vp, int m, int fd);
int      bwrite_page(int vp, int o, uint64_t pindex, uint32_t off,
	    const char *src, uint32_t len, int fd, int swapfd,
	    struct bio_stats *st);
void     vm_page_copyout(int m, uint32_t off, char *dst, uint32_t n);
void     vm_page_flag_set(int m, uint32_t bits);
void     vm_page_flag_clear(int m, uint32_t bits);
int      vn_lookup_locked(const char *name);

/* the pageout daemon's scans (sys/vm/vm_pageout.c; csrc/pageout.c).  The
 * descriptor of a vnode's backing file is this process's (Python's cache):
 * -1 when it could not be had (the callback keeps its exception). */
typedef int (*pageout_fd_fn)(int vp);
void     vm_pageout_set_fd_fn(pageout_fd_fn fn);
int      vm_pageout_take_error(void);
int      vm_paging_target(void);
void     vm_pageout_thread_init(void);
int      vm_pageout_scan_inactive(int pass, int q, int avail_shortage);
int      vm_pageout_scan_active(int pass, int q, int avail_shortage,
	    int inactive_shortage, int *recycle_count);
int      vm_pageout_scan(int pass);
int      vm_pageout_scan_queues(int pass);

/* the swap pager's I/O (sys/vm/swap_pager.c) */
int      swap_pager_strategy_read(int o, const int *pages, int n, int swapfd,
	    struct bio_stats *st);
void     swap_pager_putpages(int o, const int *marray, int count, int swapfd,
	    int *rtvals);

/* the stress workload's stamps (smpvm/stress/stamps.py) */
void     stamp_fill(char *dst, uint64_t len, uint32_t file_id,
	    uint64_t first_unit, uint32_t inc, uint32_t cpu, uint64_t op);
int64_t  stamp_check_foreign(const char *buf, uint64_t len,
	    uint64_t first_unit, uint32_t file_id, int zeros_ok);
void     stress_count_read(uint64_t *stress, uint64_t pages,
	    uint64_t diverted, uint64_t zero_filled);
int      stress_check_read(const char *got, uint64_t ngot, const char *want,
	    uint64_t nwant, uint64_t *stress, uint64_t diverted,
	    uint64_t zero_filled);

/* @c-only-begin */
#endif
/* @c-only-end */
