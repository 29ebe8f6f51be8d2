/*
 * smpvm.c - the machine's C primitives: atomics, spinlocks, LWKT tokens,
 * tsleep/wakeup on shared futexes, per-thread state and lock statistics.
 *
 * One process plays one kernel thread.  The process-local pointers below are
 * set once by smpvm_bind(); every entry point is one cffi call that does its
 * whole locked step, because a cffi call costs ~55 ns and a C lock ~2 ns
 * (reference/measured-costs.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "smpvm_priv.h"

_Static_assert(sizeof(struct spinlock) == 2 * SMPVM_CACHELINE, "spinlock pad");
_Static_assert(sizeof(struct lwkt_token) == 2 * SMPVM_CACHELINE, "token pad");
_Static_assert(sizeof(struct smpvm_sleepq) == SMPVM_CACHELINE, "sleepq pad");
_Static_assert(sizeof(struct smpvm_thread) % SMPVM_CACHELINE == 0, "thread pad");
_Static_assert(SMPVM_MAXTHREADS <= 64, "sleep-queue masks are 64 bits");

/* ---- process-local state (declared in smpvm_priv.h) --------------------- */
HIDDEN struct smpvm_header *H;
HIDDEN struct smpvm_thread *T;          /* thread table                     */
HIDDEN struct spinlock *SL;             /* all spinlocks, pool first        */
HIDDEN struct lwkt_token *TK;           /* all tokens, globals first        */
HIDDEN struct smpvm_sleepq *SQ;
HIDDEN struct smpvm_thread *td;         /* curthread                        */
HIDDEN int curtid = -1;
HIDDEN uint32_t curref;                 /* curtid + 1: the value locks hold */
HIDDEN smpvm_hook_fn hook;
static volatile int panic_pending;
static smpvm_site_fn site_fn;           /* Python: the caller's call site  */
static struct prof_site *PSITE;
static struct prof_rec *PREC;
static struct prof_hist *PHIST;         /* spinlocks first, then tokens    */

static inline struct smpvm_sleepq *sleepq_bucket(uint64_t ident);
static void noise_detach(void);

/* ---- time ----------------------------------------------------------------- */
uint64_t
smpvm_nanotime(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The machine's clock in ticks: virtual, or hz of the monotonic clock
 * since boot (times clock_speedup). */
uint64_t
smpvm_ticks(void)
{
	uint64_t speed;

	if (H == NULL)
		return 0;
	if (H->clock_mode == CLOCK_VIRTUAL)
		return __atomic_load_n(&H->ticks, __ATOMIC_SEQ_CST);
	speed = H->clock_speedup ? H->clock_speedup : 1;
	return (uint64_t)((unsigned __int128)(smpvm_nanotime() -
	    H->boot_mono_ns) * H->cfg.hz * speed / 1000000000ull);
}

/*
 * Advance the virtual clock by n ticks and let every sleeper whose tsleep
 * timeout has come re-check (they return EWOULDBLOCK).
 */
void
smpvm_clock_advance(uint64_t n)
{
	uint32_t i;

	if (H == NULL || H->clock_mode != CLOCK_VIRTUAL)
		return;
	__atomic_fetch_add(&H->ticks, n, __ATOMIC_SEQ_CST);
	for (i = 0; i < H->cfg.maxthreads; i++)
		if (T[i].wake_tick && T[i].wake_tick <= H->ticks)
			futex_wake(&T[i].woken, INT_MAX);
}

static inline uint64_t
rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
	return __rdtsc();
#else
	return smpvm_nanotime();
#endif
}

static inline uint64_t
tsc2ns(uint64_t dt)
{
	return (uint64_t)(((unsigned __int128)dt * H->tsc_ns_q32) >> 32);
}

/* Measure ns per TSC tick (Q32) over ms milliseconds; stored in the header. */
uint64_t
smpvm_tsc_calibrate(int ms)
{
#if defined(__x86_64__) || defined(__i386__)
	uint64_t n0, n1, c0, c1;
	struct timespec req = { 0, (long)ms * 1000000L };

	n0 = smpvm_nanotime(); c0 = rdtsc();
	nanosleep(&req, NULL);
	n1 = smpvm_nanotime(); c1 = rdtsc();
	if (c1 <= c0)
		return 1ull << 32;
	return (uint64_t)((((unsigned __int128)(n1 - n0)) << 32) / (c1 - c0));
#else
	(void)ms;
	return 1ull << 32;
#endif
}

static inline void
cpu_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* ---- futexes on shared memory (not FUTEX_PRIVATE: other processes wait) --- */
HIDDEN int
futex_wait(volatile uint32_t *w, uint32_t val, uint64_t timeout_ns)
{
	struct timespec ts, *tp = NULL;

	if (timeout_ns) {
		ts.tv_sec = (time_t)(timeout_ns / 1000000000ull);
		ts.tv_nsec = (long)(timeout_ns % 1000000000ull);
		tp = &ts;
	}
	return (int)syscall(SYS_futex, w, FUTEX_WAIT, val, tp, NULL, 0);
}

HIDDEN void
futex_wake(volatile uint32_t *w, int n)
{
	syscall(SYS_futex, w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* ---- panic ----------------------------------------------------------------- */
HIDDEN void
panicf(const char *fmt, ...)
{
	char buf[480];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	panic(buf);
}

/*
 * panic(msg): the first panic of the machine records its message, thread and
 * pid in the header and moves the machine to MS_PANIC (waking the supervisor,
 * which tears the machine down).  The calling process is then sent SIGUSR2:
 * smpvm's Python handler raises Panic as soon as this C call returns.
 */
static void
panic_as(const char *what, const char *msg, int host)
{
	uint32_t zero = 0;

	if (H != NULL && __atomic_compare_exchange_n(&H->panicking, &zero, 1,
	    0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
		snprintf(H->panicstr, sizeof(H->panicstr), "%s", msg);
		H->panic_tid = curtid;
		H->panic_pid = getpid();
		H->host_error = host;
		__atomic_store_n(&H->state, MS_PANIC, __ATOMIC_SEQ_CST);
		futex_wake(&H->state, INT_MAX);
		sched_panic();          /* scheduled threads stop waiting */
		fprintf(stderr, "%s: %s [tid %d %s, cpu %d, pid %d]\n", what,
		    msg, curtid, td ? td->name : "-", td ? td->cpu : -1,
		    (int)getpid());
		fflush(stderr);
	}
	/*
	 * A later panic is a thread that ran on after the first one with its
	 * locks abandoned (the kernel stops the other CPUs instead): not
	 * printed, it would only be noise beside the real one.
	 */
	panic_pending = 1;
	raise(SIGUSR2);
}

void
panic(const char *msg)
{
	panic_as("panic", msg, 0);
}

/*
 * panic_host(msg): the host refused what the kernel needed (a write to a
 * full disk).  The machine stops as at a panic, but if this is the first
 * panic the header marks it as the host's (host_error), so that it is
 * reported as a host error and not as a defect of the kernel.
 */
void
panic_host(const char *msg)
{
	panic_as("host error", msg, 1);
}

int
smpvm_panic_pending(void)
{
	int p = panic_pending;

	panic_pending = 0;
	return p;
}

/* ---- layout ---------------------------------------------------------------- */
static uint64_t
roundup(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/*
 * Complete cfg (derived counts) and fill hdr's sizes and region offsets.
 * Returns 0, or -1 if cfg is out of range.  Python validates first and says
 * which field is wrong; this is the last line of defence.
 */
int
smpvm_layout(struct smpvm_config *cfg, struct smpvm_header *hdr)
{
	uint64_t off, len[SMPVM_NREGIONS];
	int i;

	if (cfg->ncpus < 1 || cfg->ncpus > SMPVM_MAXCPUS ||
	    cfg->maxthreads < cfg->ncpus || cfg->maxthreads > SMPVM_MAXTHREADS ||
	    cfg->spin_pool < 1 || (cfg->spin_pool & (cfg->spin_pool - 1)) ||
	    cfg->token_pool < 1 ||
	    cfg->nsleepq < 1 || (cfg->nsleepq & (cfg->nsleepq - 1)) ||
	    cfg->hz < 1 || cfg->hz > 10000)
		return -1;
	cfg->nspinlocks = cfg->spin_pool + SMPVM_NNAMED_SPINLOCKS;
	cfg->ntokens = SMPVM_NGLOBAL_TOKENS + cfg->token_pool;

	memset(len, 0, sizeof(len));
	len[REG_THREADS] = (uint64_t)cfg->maxthreads * sizeof(struct smpvm_thread);
	len[REG_SPINLOCKS] = (uint64_t)cfg->nspinlocks * sizeof(struct spinlock);
	len[REG_TOKENS] = (uint64_t)cfg->ntokens * sizeof(struct lwkt_token);
	len[REG_SLEEPQ] = (uint64_t)cfg->nsleepq * sizeof(struct smpvm_sleepq);
	vm_layout(cfg, len);
	race_layout(cfg, &len[REG_RACE]);
	sched_layout(cfg, len);
	len[REG_PROF] = PROF_NSITES * sizeof(struct prof_site) +
	    PROF_NRECS * sizeof(struct prof_rec) +
	    (uint64_t)(cfg->nspinlocks + cfg->ntokens) * sizeof(struct prof_hist);

	hdr->magic = SMPVM_MAGIC;
	hdr->layout_version = SMPVM_LAYOUT_VERSION;
	hdr->header_size = sizeof(struct smpvm_header);
	hdr->cfg = *cfg;
	off = roundup(sizeof(struct smpvm_header), 4096);
	for (i = 0; i < SMPVM_NREGIONS; i++) {
		hdr->region_off[i] = len[i] ? off : 0;
		hdr->region_len[i] = len[i];
		off = roundup(off + len[i], 4096);
	}
	hdr->segment_size = off;
	return 0;
}

static void
bind_regions(void *base)
{
	H = (struct smpvm_header *)base;
	T = (struct smpvm_thread *)((char *)base + H->region_off[REG_THREADS]);
	SL = (struct spinlock *)((char *)base + H->region_off[REG_SPINLOCKS]);
	TK = (struct lwkt_token *)((char *)base + H->region_off[REG_TOKENS]);
	SQ = (struct smpvm_sleepq *)((char *)base + H->region_off[REG_SLEEPQ]);
	PSITE = (struct prof_site *)((char *)base + H->region_off[REG_PROF]);
	PREC = (struct prof_rec *)(PSITE + PROF_NSITES);
	PHIST = (struct prof_hist *)(PREC + PROF_NRECS);
	vm_bind(base);
	race_bind(base);
	sched_bind(base);
}

/* Initialise the regions of a segment whose header smpvm_layout() filled. */
int
smpvm_init(void *base)
{
	uint32_t i;

	bind_regions(base);
	memset(T, 0, H->region_len[REG_THREADS]);
	memset(SL, 0, H->region_len[REG_SPINLOCKS]);
	memset(TK, 0, H->region_len[REG_TOKENS]);
	memset(SQ, 0, H->region_len[REG_SLEEPQ]);
	memset(PSITE, 0, H->region_len[REG_PROF]);
	snprintf(PSITE[0].text, sizeof(PSITE[0].text), "(unknown)");
	PSITE[0].state = 2;
	for (i = 0; i < H->cfg.maxthreads; i++) {
		T[i].tid = (int32_t)i;
		T[i].state = TDS_FREE;
		T[i].cpu = -1;
	}
	for (i = 0; i < H->cfg.nspinlocks; i++)
		SL[i].last_tid = -1;
	for (i = 0; i < H->cfg.ntokens; i++)
		TK[i].last_tid = -1;
	vm_init();
	race_init();
	sched_init();
	return 0;
}

/*
 * Bind this process to the machine at base, as thread tid (or as no thread
 * when tid < 0: such a process may read the machine but not take locks).
 */
int
smpvm_bind(void *base, int tid)
{
	bind_regions(base);
	td = NULL;
	curtid = -1;
	curref = 0;
	if (tid < 0)
		return 0;
	return smpvm_thread_attach(tid);
}

/* Forget the machine at base if this process is bound to it (before unmap). */
void
smpvm_unbind(void *base)
{
	if ((void *)H != base)
		return;
	noise_detach();
	H = NULL;
	T = NULL;
	SL = NULL;
	TK = NULL;
	SQ = NULL;
	VMG = NULL;
	PG = NULL;
	PHYS = NULL;
	OBJ = NULL;
	VN = NULL;
	SWB = NULL;
	BL = NULL;
	sched_unbind();
	td = NULL;
	curtid = -1;
	curref = 0;
}

int
smpvm_thread_attach(int tid)
{
	if (H == NULL || tid < 0 || (uint32_t)tid >= H->cfg.maxthreads)
		return -1;
	td = &T[tid];
	curtid = tid;
	curref = (uint32_t)tid + 1;
	td->pid = getpid();
	sched_attach();         /* deterministic mode: wait for the turn */
	return 0;
}

/* Reserve a free thread slot; the process that plays it attaches later. */
int
smpvm_thread_alloc(void *base, int kind, int cpu, const char *name)
{
	struct smpvm_header *h = (struct smpvm_header *)base;
	struct smpvm_thread *t = (struct smpvm_thread *)
	    ((char *)base + h->region_off[REG_THREADS]);
	uint32_t i;

	for (i = 0; i < h->cfg.maxthreads; i++) {
		uint32_t free_ = TDS_FREE;

		if (__atomic_compare_exchange_n(&t[i].state, &free_,
		    TDS_RUNNING, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			t[i].kind = kind;
			t[i].cpu = cpu;
			t[i].pid = 0;
			t[i].td_critcount = 0;
			t[i].gd_spinlocks_wr = 0;
			t[i].nspins = 0;
			t[i].td_toks_stop = 0;
			t[i].wchan = 0;
			t[i].woken = 0;
			t[i].wait_kind = 0;
			t[i].wait_id = -1;
			t[i].prof_key = -1;
			t[i].n_sleeps = t[i].n_wakeups = 0;
			t[i].n_switches = t[i].n_hooks = 0;
			memset(t[i].wmesg, 0, sizeof(t[i].wmesg));
			snprintf(t[i].name, sizeof(t[i].name), "%s", name);
			if (race_on && (void *)H == base)
				race_thread_fork((int)i);
			return (int)i;
		}
	}
	return -1;
}

/* The current thread ends.  It must hold no spinlock and no token. */
int
smpvm_thread_exit(void)
{
	if (td == NULL)
		return 0;
	if (td->nspins || td->td_toks_stop) {
		panicf("thread %s exiting with %d spinlocks and %d tokens held",
		    td->name, td->nspins, td->td_toks_stop);
		return -1;
	}
	if (__builtin_expect(race_on != 0, 0))
		race_thread_end();
	if (td->wchan) {        /* an interlock never followed by tsleep */
		__atomic_fetch_and(&sleepq_bucket(td->wchan)->mask,
		    ~(1ull << curtid), __ATOMIC_SEQ_CST);
		td->wchan = 0;
	}
	td->pid = 0;
	noise_detach();
	__atomic_store_n(&td->state, TDS_FREE, __ATOMIC_SEQ_CST);
	sched_exit();           /* deterministic mode: hand the turn on */
	td = NULL;
	curtid = -1;
	curref = 0;
	return 0;
}

static int lwkt_relalltokens(void);

/*
 * The current thread ends in the middle of an operation because the machine
 * shuts down (smpvm.errors.Shutdown): its tokens are released and dropped
 * from its stack first.  It must hold no spinlock.  Busy pages it holds stay
 * busy: nobody will wait for them any more.
 */
int
smpvm_thread_exit_shutdown(void)
{
	if (td == NULL)
		return 0;
	if (!__atomic_load_n(&H->shutdown, __ATOMIC_SEQ_CST)) {
		panicf("thread %s abandons an operation but the machine is not "
		    "shutting down", td->name);
		return -1;
	}
	lwkt_relalltokens();
	td->td_toks_stop = 0;
	return smpvm_thread_exit();
}

int
smpvm_curtid(void)
{
	return curtid;
}

void
smpvm_set_hook(smpvm_hook_fn fn)
{
	hook = fn;
}

/* ---- noise: free runs' delays at preemption points ------------------------------ */
/*
 * rr's chaos mode and KCSAN's delays widen race windows that a free run on
 * a few host cores rarely opens: at a preemption point (a lock operation,
 * an atomic, a wakeup, a yield, a checked access) or right after an atomic
 * published a flag (HOOK_PUBLISH), the thread sometimes yields the host
 * CPU, spins a few microseconds, or sleeps up to 2 ms (a short starvation).
 * The machine's noise seed picks the kinds of point that are armed, a
 * quarter of the locks/pages/fields whose points are (KCSAN's sampled
 * watchpoints), the rate (the level: 1 in 512, 128 or 32 armed points, a
 * little more or less per seed) and a victim thread that is delayed four
 * times as often (rr's low-priority thread).  Each process draws from its
 * own generator, seeded from the noise seed and its tid.
 *
 * Off (level 0, every deterministic run, every process kproc did not
 * start) the hook stays NULL and NOISE_POINT is one predictable branch.
 */
HIDDEN int noise_on;
static uint64_t noise_rng;              /* xorshift64* state, this process */
static uint64_t noise_salt;             /* which ids are armed             */
static uint32_t noise_kinds;            /* armed HOOK_* kinds, by bit      */
static uint32_t noise_shift;            /* delay 1 in 2^shift armed points */

static inline uint64_t
splitmix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t
noise_rand(void)
{
	noise_rng ^= noise_rng >> 12;
	noise_rng ^= noise_rng << 25;
	noise_rng ^= noise_rng >> 27;
	return noise_rng * 0x2545f4914f6cdd1dull;
}

static void
noise_spin(uint64_t ns)
{
	uint64_t end = smpvm_nanotime() + ns;

	while (smpvm_nanotime() < end)
		cpu_pause();
}

HIDDEN void
noise_point(int op, int id)
{
	uint64_t r;
	uint32_t kind;

	if (!(noise_kinds & (1u << op)) || td == NULL)
		return;
	if (id >= 0 && (splitmix(noise_salt ^ ((uint64_t)op << 32) ^
	    (uint32_t)id) & 3) != 0)
		return;                 /* not one of this run's watched ids */
	r = noise_rand();
	if (r & ((1ull << noise_shift) - 1))
		return;
	td->n_noise++;
	kind = (uint32_t)((r >> 32) % 100);
	if (kind < 50) {
		sched_yield();
	} else if (kind < 90 || td->gd_spinlocks_wr) {
		noise_spin(1000 + (r >> 40) % 50000);   /* 1 .. 51 us */
	} else {
		/* log-uniform 50 us .. 2 ms: starve the thread a while */
		struct timespec ts = { 0, (long)(50000ull <<
		    ((r >> 40) % 6)) };
		nanosleep(&ts, NULL);
	}
}

/*
 * A process that kproc_start'ed (a CPU or kernel thread) calls this once
 * attached: in a free run of a machine with noise, its preemption points
 * get delays.  Idempotent; a no-op for scheduled threads.
 */
void
smpvm_noise_attach(void)
{
	uint64_t s;
	uint32_t k, level;

	if (H == NULL || td == NULL || sched_on || hook != NULL ||
	    H->cfg.noise == 0)
		return;
	level = H->cfg.noise > NOISE_MAX ? NOISE_MAX : H->cfg.noise;
	s = splitmix(H->cfg.noise_seed + 0x6e6f697365ull);
	noise_salt = s;
	noise_kinds = 0;
	for (k = HOOK_SPIN_LOCK; k <= HOOK_PUBLISH; k++)
		if (splitmix(s + k) % 10 < 6)
			noise_kinds |= 1u << k;
	if (noise_kinds == 0)
		noise_kinds = 1u << HOOK_YIELD;
	/* level 1, 2, 3: 1 in 2^9, 2^7, 2^5 armed points, +-1 by seed */
	noise_shift = 11 - 2 * level + (uint32_t)(splitmix(s ^ 1) % 3) - 1;
	if (splitmix(s ^ (uint64_t)(curtid + 1) << 8) % 8 == 0)
		noise_shift -= 2;       /* this run's victim */
	noise_rng = splitmix(s ^ (0x9e37ull * (uint64_t)(curtid + 1))) | 1;
	hook = noise_point;
	noise_on = 1;
}

static void
noise_detach(void)
{
	if (!noise_on)
		return;
	noise_on = 0;
	if (hook == noise_point)
		hook = NULL;
}

static void
count_hook(int op, int id)
{
	(void)op; (void)id;
	if (td)
		td->n_hooks++;
}

void
smpvm_set_count_hook(int on)
{
	hook = on ? count_hook : NULL;
}

/* ---- lock profiling ------------------------------------------------------ */
void
smpvm_set_site_fn(smpvm_site_fn fn)
{
	site_fn = fn;
}

/* The caller's call site id (Python frame, + cfunc), or 0 (unknown). */
static uint32_t
site_lookup(const char *cfunc)
{
	uint32_t s;

	if (site_fn == NULL)
		return 0;
	s = site_fn(cfunc);
	return s < PROF_NSITES ? s : 0;
}

/*
 * The same for the lock profiler, which must observe a schedule without
 * changing it: the lookup (Python, counting its own cost with atomics)
 * runs with the preemption hook and the race trace off.  It runs inside
 * tok_release and spin_unlock, where a deterministic schedule that switched
 * away would leave a thread asleep (tsleep: TDS_SLEEPING before its tokens
 * go) still owning a token -- a deadlock only with --lockstat -- and every
 * profiled run would follow another schedule than the same run without.
 * (The race checkers' report sites, prof_site_for, keep their points: the
 * checked schedules and their pinned seeds stay as they are.)
 */
static uint32_t
prof_site(const char *cfunc)
{
	smpvm_hook_fn saved_hook = hook;
	uint32_t saved_race = race_on, s;

	if (site_fn == NULL)
		return 0;
	hook = NULL;
	race_on = 0;
	s = site_lookup(cfunc);
	hook = saved_hook;
	race_on = saved_race;
	return s;
}

/* A site id for reports: the Python caller (+ cfunc) or cfunc alone. */
HIDDEN uint32_t
prof_site_for(const char *cfunc)
{
	uint32_t s = site_lookup(cfunc);

	if (s == 0 && cfunc != NULL)
		s = (uint32_t)prof_site_intern(cfunc);
	return s;
}

/* Intern a site text; returns its id (0 if the table is full). */
int
prof_site_intern(const char *text)
{
	uint32_t h = 2166136261u, i, k;
	const char *p;

	for (p = text; *p; p++)
		h = (h ^ (uint8_t)*p) * 16777619u;
	h |= 1;
	for (k = 0; k < PROF_NSITES; k++) {
		struct prof_site *s;
		uint32_t zero = 0;

		i = (h + k) % PROF_NSITES;
		if (i == 0)
			continue;
		s = &PSITE[i];
		if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == 2) {
			if (s->hash == h && strncmp(s->text, text,
			    sizeof(s->text) - 1) == 0)
				return (int)i;
			continue;
		}
		if (__atomic_compare_exchange_n(&s->state, &zero, 1, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			s->hash = h;
			snprintf(s->text, sizeof(s->text), "%s", text);
			__atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
			return (int)i;
		}
		while (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == 1)
			cpu_pause();
		if (s->hash == h && strncmp(s->text, text,
		    sizeof(s->text) - 1) == 0)
			return (int)i;
	}
	return 0;
}

static inline uint32_t
log2_bucket(uint64_t ns)
{
	uint32_t b = ns ? 64 - (uint32_t)__builtin_clzll(ns) : 0;

	return b < PROF_NBUCKETS ? b : PROF_NBUCKETS - 1;
}

/*
 * Count one contention of lock (kind, id): waited wait_ns at wsite while
 * the holder was at hsite; wkey/hkey are what each side took it for.
 */
static void
prof_rec_add(int kind, int lock, uint32_t wsite, uint32_t hsite,
    uint64_t wait_ns, int wkey, int hkey)
{
	uint32_t aliased = (wkey >= 0 && hkey >= 0 && wkey != hkey);
	uint64_t h = ((uint64_t)kind * 1000003u + (uint32_t)lock) *
	    2654435761u + wsite * 40503u + hsite * 977u + aliased;
	uint32_t i, k;

	for (k = 0; k < 64; k++) {
		struct prof_rec *r;
		uint32_t zero = 0;
		uint64_t mx;

		i = (uint32_t)((h + k) % PROF_NRECS);
		r = &PREC[i];
		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == 0 &&
		    __atomic_compare_exchange_n(&r->state, &zero, 1, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			r->kind = (uint32_t)kind;
			r->lock = lock;
			r->wsite = wsite;
			r->hsite = hsite;
			r->aliased = aliased;
			__atomic_store_n(&r->state, 2, __ATOMIC_RELEASE);
		}
		while (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) == 1)
			cpu_pause();
		if (r->kind != (uint32_t)kind || r->lock != lock ||
		    r->wsite != wsite || r->hsite != hsite ||
		    r->aliased != aliased)
			continue;
		r->wkey = wkey;
		r->hkey = hkey;
		__atomic_fetch_add(&r->count, 1, __ATOMIC_RELAXED);
		__atomic_fetch_add(&r->wait_ns, wait_ns, __ATOMIC_RELAXED);
		mx = __atomic_load_n(&r->wait_max_ns, __ATOMIC_RELAXED);
		while (wait_ns > mx && !__atomic_compare_exchange_n(
		    &r->wait_max_ns, &mx, wait_ns, 0, __ATOMIC_RELAXED,
		    __ATOMIC_RELAXED))
			;
		return;
	}
}

/* Record a sleep of a blocking wait (page busy, tsleep channel). */
HIDDEN void
prof_wait(int kind, int lock, const char *cfunc, uint64_t wait_ns)
{
	if (!H->prof_enabled)
		return;
	prof_rec_add(kind, lock, prof_site(cfunc), 0, wait_ns,
	    td ? td->prof_key : -1, -1);
}

static inline void
min_update(uint64_t *min, uint64_t v)
{
	if (*min == 0 || v < *min)
		*min = v ? v : 1;
}

/* List the spinlocks and tokens whose lock word names tid as holder. */
int
smpvm_locks_owned_by(void *base, int tid, int *kinds, int *ids, int max)
{
	struct smpvm_header *h = (struct smpvm_header *)base;
	struct spinlock *sl = (struct spinlock *)((char *)base +
	    h->region_off[REG_SPINLOCKS]);
	struct lwkt_token *tk = (struct lwkt_token *)((char *)base +
	    h->region_off[REG_TOKENS]);
	uint32_t ref = (uint32_t)tid + 1, i;
	int n = 0;

	for (i = 0; i < h->cfg.nspinlocks && n < max; i++) {
		if (__atomic_load_n(&sl[i].counta, __ATOMIC_RELAXED) == ref) {
			kinds[n] = LK_SPIN;
			ids[n++] = (int)i;
		}
	}
	for (i = 0; i < h->cfg.ntokens && n < max; i++) {
		if (__atomic_load_n(&tk[i].t_ref, __ATOMIC_RELAXED) == ref) {
			kinds[n] = LK_TOKEN;
			ids[n++] = (int)i;
		}
	}
	return n;
}

void
smpvm_stats_reset(void *base)
{
	struct smpvm_header *h = (struct smpvm_header *)base;
	struct spinlock *sl = (struct spinlock *)((char *)base +
	    h->region_off[REG_SPINLOCKS]);
	struct lwkt_token *tk = (struct lwkt_token *)((char *)base +
	    h->region_off[REG_TOKENS]);
	uint32_t i;

	/* field by field: the statistics are spread over both lines */
	for (i = 0; i < h->cfg.nspinlocks; i++) {
		struct spinlock *sp = &sl[i];

		sp->st_acquisitions = sp->st_contended = sp->st_spins = 0;
		sp->st_bounces = 0;
		sp->st_wait_ns = sp->st_wait_max_ns = sp->st_wait_min_ns = 0;
		sp->st_hold_ns = sp->st_hold_max_ns = sp->st_hold_min_ns = 0;
	}
	for (i = 0; i < h->cfg.ntokens; i++) {
		struct lwkt_token *tok = &tk[i];

		tok->st_acquisitions = tok->st_contended = tok->st_spins = 0;
		tok->st_bounces = tok->t_collisions = 0;
		tok->st_wait_ns = tok->st_wait_max_ns = tok->st_wait_min_ns = 0;
		tok->st_hold_ns = tok->st_hold_max_ns = tok->st_hold_min_ns = 0;
	}
	{
		/* contention records and histograms; the sites stay */
		char *pb = (char *)base + h->region_off[REG_PROF];
		size_t sites = PROF_NSITES * sizeof(struct prof_site);

		memset(pb + sites, 0, h->region_len[REG_PROF] - sites);
	}
}

int
smpvm_set_pdeathsig(int sig)
{
	return prctl(PR_SET_PDEATHSIG, sig);
}

int
smpvm_noop(void)
{
	return 0;
}

/* ---- atomics ----------------------------------------------------------------- */
/*
 * Each is a preemption point before it acts.  On a checked machine a change
 * to a page's flags is shown to the protocol checks (race_flags_op); in a
 * noisy free run the thread may be delayed right after publishing.
 */
int
atomic_cmpset_int(volatile uint32_t *p, uint32_t cmpval, uint32_t newval)
{
	int ok;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	ok = __atomic_compare_exchange_n(p, &cmpval, newval, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (__builtin_expect(race_on != 0, 0) && ok)
		race_flags_op(p, cmpval, newval & ~cmpval, cmpval & ~newval,
		    __func__);
	NOISE_POINT(HOOK_PUBLISH, -1);
	return ok;
}

uint32_t
atomic_fetchadd_int(volatile uint32_t *p, uint32_t v)
{
	uint32_t old;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	old = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
	NOISE_POINT(HOOK_PUBLISH, -1);
	return old;
}

void
atomic_set_int(volatile uint32_t *p, uint32_t bits)
{
	uint32_t old;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	old = __atomic_fetch_or(p, bits, __ATOMIC_SEQ_CST);
	if (__builtin_expect(race_on != 0, 0))
		race_flags_op(p, old, bits, 0, __func__);
	NOISE_POINT(HOOK_PUBLISH, -1);
}

void
atomic_clear_int(volatile uint32_t *p, uint32_t bits)
{
	uint32_t old;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	old = __atomic_fetch_and(p, ~bits, __ATOMIC_SEQ_CST);
	if (__builtin_expect(race_on != 0, 0))
		race_flags_op(p, old, 0, bits, __func__);
	NOISE_POINT(HOOK_PUBLISH, -1);
}

int
atomic_cmpset_long(volatile uint64_t *p, uint64_t cmpval, uint64_t newval)
{
	int ok;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	ok = __atomic_compare_exchange_n(p, &cmpval, newval, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	NOISE_POINT(HOOK_PUBLISH, -1);
	return ok;
}

uint64_t
atomic_fetchadd_long(volatile uint64_t *p, uint64_t v)
{
	uint64_t old;

	PREEMPT_POINT(HOOK_ATOMIC, -1);
	old = __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST);
	NOISE_POINT(HOOK_PUBLISH, -1);
	return old;
}

/* ---- critical sections ------------------------------------------------------- */
void
crit_enter(void)
{
	if (td)
		td->td_critcount++;
}

void
crit_exit(void)
{
	if (td == NULL)
		return;
	if (td->td_critcount <= 0) {
		panic("crit_exit: critcount underflow");
		return;
	}
	td->td_critcount--;
}

/* ---- spinlocks --------------------------------------------------------------- */
#define NEED_THREAD(fn) do {                                            \
	if (__builtin_expect(td == NULL, 0)) {                          \
		panic(fn ": called by a process that is not a thread");   \
		return;                                                 \
	}                                                               \
} while (0)

#define NEED_THREAD_RV(fn, rv) do {                                     \
	if (__builtin_expect(td == NULL, 0)) {                          \
		panic(fn ": called by a process that is not a thread");   \
		return (rv);                                            \
	}                                                               \
} while (0)

/* The kernel's pool hash: ((addr >> 5) ^ (addr >> 12)) & (pool - 1). */
int
spin_pool_index(uint64_t addr)
{
	if (H == NULL)
		return -1;
	return (int)(((addr >> 5) ^ (addr >> 12)) & (H->cfg.spin_pool - 1));
}

static inline void
spin_acquired(struct spinlock *sp, int id)
{
	sp->owner_pid = td->pid;
	sp->owner_key = td->prof_key;
	/* hold times are lock profiling's (two TSC reads beside every locked
	 * instruction are the profiler's cost): taken while it is on */
	sp->acq_tsc = H->prof_enabled ? rdtsc() : 0;
	sp->st_acquisitions++;
	if (sp->last_tid != curtid) {
		if (sp->last_tid >= 0)
			sp->st_bounces++;
		sp->last_tid = curtid;
	}
	if (td->nspins < SMPVM_MAXSPINS_HELD)
		td->spins_held[td->nspins] = id;
	td->nspins++;
	if (__builtin_expect(race_on != 0, 0))
		race_acquire(LK_SPIN, id);
}

/* Ask the waiter and the holder for Python backtraces (faulthandler, SIGUSR1). */
static void
spin_backtrace(struct spinlock *sp)
{
	int holder = sp->owner_pid;

	fprintf(stderr, "spin_lock: backtrace of waiter pid %d and holder pid %d\n",
	    (int)getpid(), holder);
	fflush(stderr);
	raise(SIGUSR1);
	if (holder > 0 && holder != getpid())
		kill(holder, SIGUSR1);
}

/*
 * The contested path of the seed's spin_lock: countb++ once, then
 * test-and-test-and-set with no backoff.  Every yield_spins loops the host
 * CPU is yielded (CPU processes may outnumber cores).  Every 128 loops the
 * indefinite-wait check: a message each warn_ms, backtraces at
 * backtrace_ms, a panic at panic_ms.  During a panic the caller carries on
 * without the lock, as the kernel does.  Returns 1 when the lock was taken.
 */
static int
spin_lock_contested(struct spinlock *sp, int id, const char *cfunc)
{
	uint64_t spins = 0, t0 = rdtsc(), t0ns = smpvm_nanotime(), now, el;
	uint64_t next_warn, yield_every;
	int bt_done = 0;
	uint32_t wsite = 0;

	if (H->prof_enabled) {          /* before spinning: no lock is held */
		wsite = prof_site(cfunc);
		__atomic_store_n(&sp->want_site, 1, __ATOMIC_RELAXED);
	}

	td->state = TDS_SPINWAIT;
	td->wait_kind = LK_SPIN;
	td->wait_id = id;
	td->wait_start_ns = t0ns;
	__atomic_fetch_add(&sp->countb, 1, __ATOMIC_RELAXED);
	yield_every = H->kern.spin_yield_spins > 0 ?
	    (uint64_t)H->kern.spin_yield_spins : SPIN_YIELD_SPINS_DEFAULT;
	next_warn = (uint64_t)H->kern.spin_warn_ms * 1000000ull;
	for (;;) {
		uint32_t zero = 0;

		if (__atomic_load_n(&sp->counta, __ATOMIC_RELAXED) == 0 &&
		    __atomic_compare_exchange_n(&sp->counta, &zero, curref, 0,
		    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
		if (sched_on) {         /* deterministic: wait for a free lock */
			if (sched_block() < 0)
				goto abandon;
			continue;
		}
		spins++;
		cpu_pause();
		if (spins % yield_every == 0)
			sched_yield();
		if ((spins & 127) != 0)
			continue;
		__atomic_fetch_add(&sp->countb, 1, __ATOMIC_RELAXED);
		if (__atomic_load_n(&H->panicking, __ATOMIC_RELAXED))
			goto abandon;
		now = smpvm_nanotime();
		el = now - t0ns;
		if (next_warn && el >= next_warn) {
			fprintf(stderr, "spin_lock: %d (holder tid %d pid %d), "
			    "indefinite wait (%d.%03d secs)!\n", id,
			    (int)sp->counta - 1, sp->owner_pid,
			    (int)(el / 1000000000ull),
			    (int)(el / 1000000ull % 1000));
			fflush(stderr);
			next_warn += (uint64_t)H->kern.spin_warn_ms * 1000000ull;
		}
		if (!bt_done && H->kern.spin_backtrace_ms > 0 &&
		    el >= (uint64_t)H->kern.spin_backtrace_ms * 1000000ull) {
			bt_done = 1;
			spin_backtrace(sp);
		}
		if (H->kern.spin_panic_ms > 0 &&
		    el >= (uint64_t)H->kern.spin_panic_ms * 1000000ull) {
			td->state = TDS_RUNNING;
			td->wait_kind = 0;
			panicf("spin_lock: lock %d held by tid %d (pid %d) for "
			    "%llu ms: indefinite wait", id, (int)sp->counta - 1,
			    sp->owner_pid, (unsigned long long)(el / 1000000ull));
			return 0;
		}
	}
	sp->st_contended++;
	sp->st_spins += spins;
	now = tsc2ns(rdtsc() - t0);
	sp->st_wait_ns += now;
	if (now > sp->st_wait_max_ns)
		sp->st_wait_max_ns = now;
	min_update(&sp->st_wait_min_ns, now);
	PHIST[id].wait[log2_bucket(now)]++;
	if (H->prof_enabled)
		prof_rec_add(LK_SPIN, id, wsite, sp->rel_site, now,
		    td->prof_key, sp->owner_key);
	td->state = TDS_RUNNING;
	td->wait_kind = 0;
	td->wait_id = -1;
	return 1;
abandon:
	td->state = TDS_RUNNING;
	td->wait_kind = 0;
	td->wait_id = -1;
	return 0;
}

/*
 * spin_lock(id): enter a critical section and take spinlock id.  The caller
 * must not already hold it (spinlocks do not recurse: a recursion is a
 * panic here, a deadlock in the kernel).  Never blocks; spins.
 * spin_lock_at(id, cfunc): the same, naming the C function that takes it
 * (for the profiler's call sites).
 */
void
spin_lock(int id)
{
	spin_lock_at(id, NULL);
}

HIDDEN void
spin_lock_at(int id, const char *cfunc)
{
	struct spinlock *sp;
	uint32_t zero = 0;

	PREEMPT_POINT(HOOK_SPIN_LOCK, id);
	NEED_THREAD("spin_lock");
	if (__builtin_expect((uint32_t)id >= H->cfg.nspinlocks, 0)) {
		panicf("spin_lock: bad spinlock id %d", id);
		return;
	}
	sp = &SL[id];
	if (__builtin_expect(race_on != 0, 0) && td->nspins)
		race_witness(LK_SPIN, id, cfunc);
	td->td_critcount++;
	td->gd_spinlocks_wr++;
	if (__builtin_expect(!__atomic_compare_exchange_n(&sp->counta, &zero,
	    curref, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED), 0)) {
		if (zero == curref) {
			td->td_critcount--;
			td->gd_spinlocks_wr--;
			panicf("spin_lock: recursion on spinlock %d", id);
			return;
		}
		if (!spin_lock_contested(sp, id, cfunc)) {
			td->td_critcount--;
			td->gd_spinlocks_wr--;
			return;
		}
	}
	spin_acquired(sp, id);
}

/* spin_trylock(id): TRUE (1) if taken, 0 with no side effect otherwise. */
int
spin_trylock(int id)
{
	struct spinlock *sp;
	uint32_t zero = 0;

	PREEMPT_POINT(HOOK_SPIN_LOCK, id);
	NEED_THREAD_RV("spin_trylock", 0);
	if ((uint32_t)id >= H->cfg.nspinlocks) {
		panicf("spin_trylock: bad spinlock id %d", id);
		return 0;
	}
	sp = &SL[id];
	if (!__atomic_compare_exchange_n(&sp->counta, &zero, curref, 0,
	    __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return 0;
	td->td_critcount++;
	td->gd_spinlocks_wr++;
	spin_acquired(sp, id);
	return 1;
}

/*
 * spin_unlock(id): the caller must hold spinlock id.  Records the hold time,
 * releases with a store fence and leaves the critical section.
 */
void
spin_unlock(int id)
{
	spin_unlock_at(id, NULL);
}

HIDDEN void
spin_unlock_at(int id, const char *cfunc)
{
	struct spinlock *sp;
	uint64_t held;
	int i, n;

	PREEMPT_POINT(HOOK_SPIN_UNLOCK, id);
	NEED_THREAD("spin_unlock");
	if (__builtin_expect((uint32_t)id >= H->cfg.nspinlocks, 0)) {
		panicf("spin_unlock: bad spinlock id %d", id);
		return;
	}
	sp = &SL[id];
	if (__builtin_expect(sp->counta != curref, 0)) {
		/* a lock abandoned during a panic is not ours to release */
		if (!__atomic_load_n(&H->panicking, __ATOMIC_RELAXED))
			panicf("spin_unlock: spinlock %d not held (counta %u)",
			    id, sp->counta);
		return;
	}
	if (sp->acq_tsc) {              /* timed: profiling was on */
		held = tsc2ns(rdtsc() - sp->acq_tsc);
		sp->st_hold_ns += held;
		if (held > sp->st_hold_max_ns)
			sp->st_hold_max_ns = held;
		min_update(&sp->st_hold_min_ns, held);
		PHIST[id].hold[log2_bucket(held)]++;
	}
	if (__builtin_expect(sp->want_site, 0)) {
		/* a waiter wants to know who it waited for: the site where
		 * we let go (a Python call made under the spinlock: rare,
		 * contended path only) */
		sp->rel_site = prof_site(cfunc);
		sp->want_site = 0;
	}
	sp->owner_pid = 0;
	n = td->nspins < SMPVM_MAXSPINS_HELD ? td->nspins : SMPVM_MAXSPINS_HELD;
	for (i = n - 1; i >= 0; i--) {
		if (td->spins_held[i] == id) {
			if (i < n - 1)  /* not the last taken (LIFO: rare) */
				memmove(&td->spins_held[i],
				    &td->spins_held[i + 1],
				    (size_t)(n - 1 - i) * sizeof(int32_t));
			break;
		}
	}
	td->nspins--;
	if (__builtin_expect(race_on != 0, 0))
		race_release(LK_SPIN, id);
	__atomic_store_n(&sp->counta, 0, __ATOMIC_RELEASE);
	td->gd_spinlocks_wr--;
	td->td_critcount--;
}

int
spin_held(int id)
{
	if (td == NULL || (uint32_t)id >= H->cfg.nspinlocks)
		return 0;
	return SL[id].counta == curref;
}

/* ---- LWKT tokens --------------------------------------------------------------- */
int
lwkt_token_pool_index(uint64_t addr)
{
	if (H == NULL)
		return -1;
	return SMPVM_NGLOBAL_TOKENS + (int)(addr % H->cfg.token_pool);
}

static inline void
tok_acquired(struct lwkt_token *tok)
{
	tok->owner_pid = td->pid;
	tok->owner_key = td->prof_key;
	if (__builtin_expect(race_on != 0, 0))
		race_acquire(LK_TOKEN, (int)(tok - TK));
	tok->acq_tsc = H->prof_enabled ? rdtsc() : 0;  /* see spin_acquired */
	tok->st_acquisitions++;
	if (tok->last_tid != curtid) {
		if (tok->last_tid >= 0)
			tok->st_bounces++;
		tok->last_tid = curtid;
	}
}

static inline void
tok_release(struct lwkt_token *tok)
{
	if (tok->acq_tsc) {             /* timed: profiling was on */
		uint64_t held = tsc2ns(rdtsc() - tok->acq_tsc);

		tok->st_hold_ns += held;
		if (held > tok->st_hold_max_ns)
			tok->st_hold_max_ns = held;
		min_update(&tok->st_hold_min_ns, held);
		PHIST[H->cfg.nspinlocks + (uint32_t)(tok - TK)]
		    .hold[log2_bucket(held)]++;
	}
	if (__builtin_expect(tok->want_site, 0)) {
		tok->rel_site = prof_site(NULL);
		tok->want_site = 0;
	}
	tok->owner_pid = 0;
	if (__builtin_expect(race_on != 0, 0))
		race_release(LK_TOKEN, (int)(tok - TK));
	__atomic_store_n(&tok->t_ref, 0, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&tok->t_waiters, __ATOMIC_SEQ_CST))
		futex_wake(&tok->t_ref, INT_MAX);
}

static inline int
tok_try(struct lwkt_token *tok)
{
	uint32_t zero = 0;

	return __atomic_compare_exchange_n(&tok->t_ref, &zero, curref, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED);
}

/*
 * Give up every token on the stack (the thread is being switched out).
 * Returns how many of them had a thread switched out waiting for them.
 */
static int
lwkt_relalltokens(void)
{
	int i, waited = 0;

	for (i = 0; i < td->td_toks_stop; i++) {
		struct lwkt_token *tok = &TK[td->td_toks[i]];

		if (tok->t_ref == curref) {
			waited += __atomic_load_n(&tok->t_waiters,
			    __ATOMIC_RELAXED) != 0;
			tok_release(tok);
		}
	}
	return waited;
}

/* Try to own every token on the stack; all or nothing.  0 and *failed. */
static int
lwkt_getalltokens(int *failed)
{
	int i;

	for (i = 0; i < td->td_toks_stop; i++) {
		struct lwkt_token *tok = &TK[td->td_toks[i]];

		if (tok->t_ref == curref)
			continue;
		if (!tok_try(tok)) {
			*failed = td->td_toks[i];
			lwkt_relalltokens();
			return 0;
		}
		tok_acquired(tok);
	}
	return 1;
}

/*
 * How long a thread that lost its tokens watches a busy one before it
 * sleeps on it (free-running): tokens are held for microseconds (a pool
 * token ~4 us on average in stress), and a futex sleep costs the waiter a
 * host context switch each way and the holder a wake-up system call at its
 * release -- more than the hold.  The kernel's CPU does not sleep either:
 * its scheduler retries the tokens as it goes round.
 */
#define TOK_WAIT_SPIN_NS        20000

/* Sleep until token id looks free (or 10 ms pass). */
static void
tok_wait(int id)
{
	struct lwkt_token *tok = &TK[id];
	uint64_t t0;
	uint32_t v;
	int i;

	td->wait_kind = LK_TOKEN;
	td->wait_id = id;
	if (sched_on) {                 /* deterministic: run when it is free */
		sched_block();
		return;
	}
	/* watch it a while first (reads only: the line stays shared) */
	t0 = rdtsc();
	for (i = 0;; i++) {
		v = __atomic_load_n(&tok->t_ref, __ATOMIC_RELAXED);
		if (v == 0 || v == curref)
			return;
		cpu_pause();
		if ((i & 15) == 15 &&
		    tsc2ns(rdtsc() - t0) >= TOK_WAIT_SPIN_NS)
			break;
	}
	__atomic_fetch_add(&tok->t_waiters, 1, __ATOMIC_SEQ_CST);
	v = __atomic_load_n(&tok->t_ref, __ATOMIC_SEQ_CST);
	if (v != 0 && v != curref)
		futex_wait(&tok->t_ref, v, 10000000ull);
	__atomic_fetch_sub(&tok->t_waiters, 1, __ATOMIC_SEQ_CST);
}

/*
 * Come back from a switch: the scheduler resumes the thread only once it owns
 * every token on its stack.  First all-or-nothing attempts, as
 * lwkt_getalltokens does; after repeated failure, take them one by one in
 * ascending id order, waiting for each, which breaks deadlocks between
 * threads that all came back this way (the kernel sorts by address).
 */
static void
lwkt_reacquire(void)
{
	int failed = -1, tries, i, j, ids[LWKT_MAXTOKENS], n = 0;

	td->state = TDS_TOKWAIT;
	td->wait_start_ns = smpvm_nanotime();
	for (tries = 0; tries < 16; tries++) {
		if (lwkt_getalltokens(&failed))
			goto done;
		if (__atomic_load_n(&H->panicking, __ATOMIC_RELAXED))
			goto done;
		tok_wait(failed);
	}
	for (i = 0; i < td->td_toks_stop; i++) {
		int id = td->td_toks[i], dup = 0;

		for (j = 0; j < n; j++)
			dup |= ids[j] == id;
		if (!dup)
			ids[n++] = id;
	}
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && ids[j - 1] > ids[j]; j--) {
			int t = ids[j]; ids[j] = ids[j - 1]; ids[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		struct lwkt_token *tok = &TK[ids[i]];

		if (tok->t_ref == curref)
			continue;
		while (!tok_try(tok)) {
			if (__atomic_load_n(&H->panicking, __ATOMIC_RELAXED))
				goto done;
			tok_wait(ids[i]);
		}
		tok_acquired(tok);
	}
done:
	td->state = TDS_RUNNING;
	td->wait_kind = 0;
	td->wait_id = -1;
}

/* A token-loss point: release everything, let others run, take it all back. */
static void
lwkt_switch(void)
{
	int waited;

	td->n_switches++;
	waited = lwkt_relalltokens();
	if (sched_on)                   /* deterministic: others may take them */
		sched_switch();
	else if (waited)
		/*
		 * Free-running: the host yield lets a waiter take what we
		 * released.  With no waiter nobody can use them in between
		 * (a thread that comes later finds them free or spins), and
		 * on a loaded host a yield costs a time slice: releasing and
		 * taking back the tokens is the semantics.
		 */
		sched_yield();
	lwkt_reacquire();
}

/*
 * lwkt_gettoken(id): push a tokref and acquire token id; recursive for the
 * holding thread.  Spins lwkt.token_spin times, then counts a collision and
 * switches: the thread loses all its tokens and resumes owning all of them.
 * Blocking with a spinlock held is a panic (lwkt_switch's assertion).
 */
void
lwkt_gettoken(int id)
{
	lwkt_gettoken_at(id, NULL);
}

HIDDEN void
lwkt_gettoken_at(int id, const char *cfunc)
{
	struct lwkt_token *tok;
	uint64_t t0, w;
	int64_t i, nspin;
	uint32_t wsite = 0;

	PREEMPT_POINT(HOOK_TOKEN_GET, id);
	NEED_THREAD("lwkt_gettoken");
	if (__builtin_expect((uint32_t)id >= H->cfg.ntokens, 0)) {
		panicf("lwkt_gettoken: bad token id %d", id);
		return;
	}
	if (__builtin_expect(td->td_toks_stop >= LWKT_MAXTOKENS, 0)) {
		panic("lwkt_gettoken: token stack overflow");
		return;
	}
	tok = &TK[id];
	if (__builtin_expect(race_on != 0, 0) && td->gd_spinlocks_wr)
		race_rule(RR_SLEEP_SPIN, LK_TOKEN, id, cfunc, "token %d taken "
		    "while holding %d spinlocks (it may block)", id,
		    td->gd_spinlocks_wr);
	/* deterministic: this acquisition may be made to block (a token
	 * loss drawn from the seed), as if another CPU held id */
	if (__builtin_expect(sched_on, 0) && tok->t_ref != curref &&
	    td->td_toks_stop > 0 && !td->gd_spinlocks_wr &&
	    sched_token_loss(id))
		lwkt_switch();
	td->td_toks[td->td_toks_stop++] = id;
	if (tok->t_ref == curref)
		return;
	if (__builtin_expect(tok_try(tok), 1)) {
		tok_acquired(tok);
		return;
	}
	t0 = rdtsc();
	if (H->prof_enabled) {
		wsite = prof_site(cfunc);
		__atomic_store_n(&tok->want_site, 1, __ATOMIC_RELAXED);
	}
	nspin = H->kern.lwkt_token_spin;
	for (i = 0; i < nspin; i++) {
		cpu_pause();
		if (tok->t_ref == 0 && tok_try(tok)) {
			tok_acquired(tok);
			goto contended;
		}
	}
	__atomic_fetch_add(&tok->t_collisions, 1, __ATOMIC_RELAXED);
	if (td->gd_spinlocks_wr) {
		td->td_toks_stop--;
		panicf("lwkt_switch: token %d contended while holding %d "
		    "spinlocks", id, td->gd_spinlocks_wr);
		return;
	}
	lwkt_switch();
	if (tok->t_ref != curref)           /* only during a panic */
		return;
contended:
	tok->st_contended++;
	tok->st_spins += (uint64_t)(i < nspin ? i + 1 : nspin);
	w = tsc2ns(rdtsc() - t0);
	tok->st_wait_ns += w;
	if (w > tok->st_wait_max_ns)
		tok->st_wait_max_ns = w;
	min_update(&tok->st_wait_min_ns, w);
	PHIST[H->cfg.nspinlocks + (uint32_t)id].wait[log2_bucket(w)]++;
	if (H->prof_enabled)
		prof_rec_add(LK_TOKEN, id, wsite, tok->rel_site, w,
		    td->prof_key, tok->owner_key);
}

/* lwkt_trytoken(id): like gettoken but never blocks; 1 if held, else 0. */
int
lwkt_trytoken(int id)
{
	struct lwkt_token *tok;

	PREEMPT_POINT(HOOK_TOKEN_GET, id);
	NEED_THREAD_RV("lwkt_trytoken", 0);
	if ((uint32_t)id >= H->cfg.ntokens) {
		panicf("lwkt_trytoken: bad token id %d", id);
		return 0;
	}
	if (td->td_toks_stop >= LWKT_MAXTOKENS) {
		panic("lwkt_trytoken: token stack overflow");
		return 0;
	}
	tok = &TK[id];
	if (tok->t_ref != curref) {
		if (!tok_try(tok))
			return 0;
		tok_acquired(tok);
	}
	td->td_toks[td->td_toks_stop++] = id;
	return 1;
}

/*
 * lwkt_reltoken(id): id must be the top of the thread's token stack (LIFO is
 * asserted).  The token is released when no other ref to it remains on the
 * stack: an inner recursive ref does not release the outer hold.
 */
void
lwkt_reltoken(int id)
{
	int i;

	PREEMPT_POINT(HOOK_TOKEN_REL, id);
	NEED_THREAD("lwkt_reltoken");
	if (__builtin_expect(td->td_toks_stop == 0 ||
	    td->td_toks[td->td_toks_stop - 1] != id, 0)) {
		if (td->td_toks_stop == 0)
			panicf("lwkt_reltoken: token %d not held", id);
		else
			panicf("lwkt_reltoken: token %d released out of order "
			    "(top of stack is %d)", id,
			    td->td_toks[td->td_toks_stop - 1]);
		return;
	}
	td->td_toks_stop--;
	for (i = 0; i < td->td_toks_stop; i++)
		if (td->td_toks[i] == id)
			return;
	if (TK[id].t_ref == curref)
		tok_release(&TK[id]);
}

int
lwkt_token_held(int id)
{
	if (td == NULL || (uint32_t)id >= H->cfg.ntokens)
		return 0;
	return TK[id].t_ref == curref;
}

/* Exchange the top two tokrefs so the lower one can be released first. */
void
lwkt_token_swap(void)
{
	int n, t;

	NEED_THREAD("lwkt_token_swap");
	n = td->td_toks_stop;
	if (n < 2) {
		panic("lwkt_token_swap: fewer than two tokens held");
		return;
	}
	t = td->td_toks[n - 1];
	td->td_toks[n - 1] = td->td_toks[n - 2];
	td->td_toks[n - 2] = t;
}

/*
 * lwkt_yield(): a token-loss point.  The kernel switches only when a
 * reschedule is wanted; smpvm cannot see the host's run queue, so with
 * debug.lwkt_yield_switch=1 (default) every yield loses and retakes the
 * thread's tokens, the legal worst case (lwkt_switch yields the host CPU
 * only if a thread waits for one of them).
 */
void
lwkt_yield(void)
{
	PREEMPT_POINT(HOOK_YIELD, -1);
	NEED_THREAD("lwkt_yield");
	if (td->gd_spinlocks_wr) {
		race_rule(RR_SLEEP_SPIN, LK_SLEEP, -1, "lwkt_yield",
		    "lwkt_yield while holding %d spinlocks",
		    td->gd_spinlocks_wr);
		panic("lwkt_yield: called while holding a spinlock");
		return;
	}
	/*
	 * With no tokens there is nothing to lose: the kernel switches only
	 * for a pending reschedule, which the host's scheduler makes by
	 * itself (each thread is a host process), so no host yield here.
	 */
	if (H->kern.lwkt_yield_switch && td->td_toks_stop > 0)
		lwkt_switch();
}

/* ---- tsleep / wakeup ------------------------------------------------------------ */
static inline struct smpvm_sleepq *
sleepq_bucket(uint64_t ident)
{
	uint64_t h = ident * 0x9e3779b97f4a7c15ull;

	return &SQ[(h >> 40) & (H->cfg.nsleepq - 1)];
}

/*
 * tsleep_interlock(ident): queue the thread on ident before the caller
 * publishes its "waiting" bit, so a wakeup in between is not lost.
 */
void
tsleep_interlock(uint64_t ident)
{
	NEED_THREAD("tsleep_interlock");
	__atomic_store_n(&td->woken, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&td->wchan, ident, __ATOMIC_SEQ_CST);
	__atomic_fetch_or(&sleepq_bucket(ident)->mask, 1ull << curtid,
	    __ATOMIC_SEQ_CST);
}

/*
 * tsleep(ident, flags, wmesg, timo): sleep until wakeup(ident), or timo ticks
 * (0 = forever).  All tokens are released while asleep and owned again on
 * return.  Returns 0 when woken, EWOULDBLOCK (SMPVM_EWOULDBLOCK) on timeout.
 * Must not be called with a spinlock held (panic).
 */
int
tsleep(uint64_t ident, int flags, const char *wmesg, int timo)
{
	uint64_t deadline = 0, now;
	int result = 0;

	PREEMPT_POINT(HOOK_TSLEEP, -1);
	NEED_THREAD_RV("tsleep", SMPVM_EWOULDBLOCK);
	if (td->gd_spinlocks_wr) {
		race_rule(RR_SLEEP_SPIN, LK_SLEEP, -1, wmesg,
		    "tsleep(%s) while holding %d spinlocks",
		    wmesg ? wmesg : "", td->gd_spinlocks_wr);
		panicf("tsleep(%s): called while holding %d spinlocks",
		    wmesg ? wmesg : "", td->gd_spinlocks_wr);
		return SMPVM_EWOULDBLOCK;
	}
	if (!(flags & PINTERLOCKED) || td->wchan != ident)
		tsleep_interlock(ident);
	snprintf(td->wmesg, sizeof(td->wmesg), "%s", wmesg ? wmesg : "");
	if (timo > 0 && H->clock_mode == CLOCK_VIRTUAL) {
		td->wake_tick = H->ticks + (uint64_t)timo;
	} else if (timo > 0) {
		uint64_t speed = H->clock_speedup ? H->clock_speedup : 1;

		deadline = smpvm_nanotime() +
		    (uint64_t)timo * 1000000000ull / (H->cfg.hz * speed);
	}
	td->n_sleeps++;
	td->timo = timo > 0 ? (uint32_t)timo : 0;
	td->state = TDS_SLEEPING;
	td->wait_start_ns = smpvm_nanotime();
	if (td->td_toks_stop)
		lwkt_relalltokens();
	for (;;) {
		uint64_t slice = 1000000000ull;

		if (__atomic_load_n(&td->woken, __ATOMIC_SEQ_CST))
			break;
		if (__atomic_load_n(&H->panicking, __ATOMIC_RELAXED)) {
			result = SMPVM_EWOULDBLOCK;
			break;
		}
		if (td->wake_tick) {
			if (__atomic_load_n(&H->ticks, __ATOMIC_SEQ_CST) >=
			    td->wake_tick) {
				result = SMPVM_EWOULDBLOCK;
				break;
			}
			/* clock_advance's wake can fall between the check
			 * and the wait: wait in short slices */
			slice = 1000000ull;
		}
		if (deadline) {
			now = smpvm_nanotime();
			if (now >= deadline) {
				result = SMPVM_EWOULDBLOCK;
				break;
			}
			if (deadline - now < slice)
				slice = deadline - now;
		}
		if (sched_on)           /* deterministic: until woken or timed out */
			sched_block();
		else
			futex_wait(&td->woken, 0, slice);
	}
	__atomic_fetch_and(&sleepq_bucket(ident)->mask, ~(1ull << curtid),
	    __ATOMIC_SEQ_CST);
	/* a woken sleep (not a timed poll), not a page busy wait (LK_BUSY) */
	if (H->prof_enabled && result == 0 && ident < KVA_PAGES)
		prof_wait(LK_SLEEP, -1, td->wmesg,
		    smpvm_nanotime() - td->wait_start_ns);
	if (__builtin_expect(race_on != 0, 0) && result == 0)
		race_woken(ident);
	__atomic_store_n(&td->wchan, 0, __ATOMIC_SEQ_CST);
	td->wake_tick = 0;
	td->timo = 0;
	td->wmesg[0] = 0;
	td->state = TDS_RUNNING;
	if (td->td_toks_stop)
		lwkt_reacquire();
	return result;
}

static void
wakeup_common(uint64_t ident, int one)
{
	struct smpvm_sleepq *sq;
	uint64_t mask;

	if (H == NULL)
		return;
	if (__builtin_expect(race_on != 0, 0)) {
		race_wakeup(ident);
		race_wakeup_ident(ident);
	}
	/*
	 * Callers publish their condition with plain stores (from Python too)
	 * and then wake; the fence orders those stores before the mask read,
	 * pairing with tsleep_interlock's seq_cst mask update.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	sq = sleepq_bucket(ident);
	mask = __atomic_load_n(&sq->mask, __ATOMIC_SEQ_CST);

	while (mask) {
		int i = __builtin_ctzll(mask);
		struct smpvm_thread *t = &T[i];
		uint32_t zero = 0;

		mask &= mask - 1;
		if (__atomic_load_n(&t->wchan, __ATOMIC_SEQ_CST) != ident)
			continue;
		if (__atomic_compare_exchange_n(&t->woken, &zero, 1, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			t->n_wakeups++;
			futex_wake(&t->woken, 1);
			if (one)
				break;
		}
	}
}

/* wakeup(ident): wake every thread sleeping on ident.  Never blocks. */
void
wakeup(uint64_t ident)
{
	PREEMPT_POINT(HOOK_WAKEUP, -1);
	wakeup_common(ident, 0);
}

/* wakeup_one(ident): wake one thread sleeping on ident. */
void
wakeup_one(uint64_t ident)
{
	PREEMPT_POINT(HOOK_WAKEUP, -1);
	wakeup_common(ident, 1);
}

/* ---- benchmark loops: the same operations without crossing cffi ---------------- */
uint64_t
smpvm_bench_spin_loop(int id, uint64_t n)
{
	uint64_t t0 = smpvm_nanotime(), i;

	for (i = 0; i < n; i++) {
		spin_lock(id);
		spin_unlock(id);
	}
	return smpvm_nanotime() - t0;
}

uint64_t
smpvm_bench_token_loop(int id, uint64_t n)
{
	uint64_t t0 = smpvm_nanotime(), i;

	for (i = 0; i < n; i++) {
		lwkt_gettoken(id);
		lwkt_reltoken(id);
	}
	return smpvm_nanotime() - t0;
}
