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
#define SMPVM_LAYOUT_VERSION    1
#define SMPVM_CACHELINE         64

/* ---- fixed limits ------------------------------------------------------ */
#define SMPVM_MAXTHREADS        64      /* sleep-queue masks are 64-bit      */
#define SMPVM_MAXCPUS           32
#define LWKT_MAXTOKENS          32      /* sys/sys/thread.h                  */
#define SMPVM_MAXSPINS_HELD     8       /* nesting depth of spinlocks        */
#define SMPVM_MAXCLASSES        64
#define SMPVM_NREGIONS          8

/* ---- kernel constants (reference 0.1) ---------------------------------- */
#define LWKT_NUM_POOL_TOKENS    4001    /* prime; index = address mod 4001   */
#define SPINLOCK_NUM_POOL       8192    /* ((a>>5) ^ (a>>12)) & 8191         */
#define LWKT_TOKEN_SPIN         5       /* lwkt.token_spin default           */
#define HZ_DEFAULT              100

/* defaults of smpvm's own debug.* sysctls (reference 4.14 marks) */
#define SPIN_YIELD_SPINS_DEFAULT   100     /* yield the host CPU every N spins */
#define SPIN_WARN_MS_DEFAULT       1000    /* "indefinite wait" every second   */
#define SPIN_BACKTRACE_MS_DEFAULT  11000   /* backtraces of waiter and holder  */
#define SPIN_PANIC_MS_DEFAULT      60000   /* then panic                       */

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

/* ---- spinlock ids: pool spinlocks are 0..spin_pool-1; named ones follow -- */
#define SMPVM_NNAMED_SPINLOCKS  0

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

/* ---- preemption-point hook operations ------------------------------------ */
#define HOOK_SPIN_LOCK          1
#define HOOK_SPIN_UNLOCK        2
#define HOOK_TOKEN_GET          3
#define HOOK_TOKEN_REL          4
#define HOOK_TSLEEP             5
#define HOOK_WAKEUP             6
#define HOOK_YIELD              7
#define HOOK_ATOMIC             8

/* ---- regions of the segment (hdr.region_off[]) -------------------------- */
#define REG_THREADS             0
#define REG_SPINLOCKS           1
#define REG_TOKENS              2
#define REG_SLEEPQ              3

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
	uint32_t nspinlocks;    /* derived: spin_pool + named         */
	uint32_t ntokens;       /* derived: globals + token_pool      */
};

/*
 * struct spinlock (sys/sys/spinlock.h): counta is the lock word, countb the
 * contention counter.  The seed stores 1 in counta; smpvm stores the holder's
 * tid + 1 so that any process can name the holder (same TTAS behaviour).
 * The second cache line holds smpvm's statistics, which the seed lacks.
 * Statistics are written only by the holder, so they need no atomics.
 */
struct spinlock {
	uint32_t counta;        /* 0 free, else holder tid + 1 */
	uint32_t countb;        /* contention counter (seed)   */
	int32_t  owner_pid;
	int32_t  last_tid;      /* previous holder (bounces)   */
	uint64_t acq_tsc;       /* when the holder acquired it */
	uint64_t pad0[5];
	uint64_t st_acquisitions;
	uint64_t st_contended;
	uint64_t st_spins;
	uint64_t st_wait_ns;
	uint64_t st_wait_max_ns;
	uint64_t st_hold_ns;
	uint64_t st_hold_max_ns;
	uint64_t st_bounces;
};

/*
 * struct lwkt_token (sys/sys/thread.h).  t_ref holds the owner tid + 1
 * (the seed points it at the owner's tokref; a thread's tokrefs live in its
 * own stack, so "owner thread" is the same information).  t_waiters counts
 * threads switched out waiting on it, so a release knows to FUTEX_WAKE.
 */
struct lwkt_token {
	uint32_t t_ref;
	uint32_t t_waiters;
	int32_t  owner_pid;
	int32_t  last_tid;
	uint64_t acq_tsc;
	uint64_t t_collisions;
	uint64_t pad0[4];
	uint64_t st_acquisitions;
	uint64_t st_contended;
	uint64_t st_spins;
	uint64_t st_wait_ns;
	uint64_t st_wait_max_ns;
	uint64_t st_hold_ns;
	uint64_t st_hold_max_ns;
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
	uint64_t pad0[3];
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
	uint32_t pad1;
	uint64_t scratch[6];            /* free words for tests and tools   */
};

/* ---- the C entry points (one per kernel operation) ---------------------- */

typedef void (*smpvm_hook_fn)(int op, int id);

/* layout and binding */
int      smpvm_layout(struct smpvm_config *cfg, struct smpvm_header *hdr);
int      smpvm_init(void *base);
int      smpvm_bind(void *base, int tid);
void     smpvm_unbind(void *base);
int      smpvm_thread_alloc(void *base, int kind, int cpu, const char *name);
int      smpvm_thread_attach(int tid);
int      smpvm_thread_exit(void);
int      smpvm_curtid(void);
void     smpvm_set_hook(smpvm_hook_fn fn);
void     smpvm_set_count_hook(int on);
int      smpvm_locks_owned_by(void *base, int tid, int *kinds, int *ids, int max);
void     smpvm_stats_reset(void *base);
uint64_t smpvm_nanotime(void);
uint64_t smpvm_tsc_calibrate(int ms);
int      smpvm_set_pdeathsig(int sig);
int      smpvm_panic_pending(void);
void     panic(const char *msg);
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

/* benchmarks: the same loops entirely in C */
uint64_t smpvm_bench_spin_loop(int id, uint64_t n);
uint64_t smpvm_bench_token_loop(int id, uint64_t n);
/* @c-only-begin */
#endif
/* @c-only-end */
