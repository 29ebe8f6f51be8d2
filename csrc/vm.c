/*
 * vm.c - the emulated VM's primitives: pages (busy, hold, wire, queues,
 * lookup, alloc/insert/remove, the emulated pmap), objects (hold/drop, pip,
 * the object list), and the swap pager's metadata and allocator.
 *
 * Everything here is one cffi call per kernel operation, taking the locks
 * the seed takes in the order the seed takes them:
 *     page pool spinlock  ->  queue spinlock        (never the reverse)
 * never two page spinlocks, no vm_page_wakeup under a queue spinlock, no
 * blocking (token contention, tsleep) under any spinlock.  Violations panic.
 * Python (smpvm/vm/) decides; this file does.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smpvm_priv.h"

HIDDEN struct vm_globals *VMG;
HIDDEN struct vm_page *PG;
HIDDEN char *PHYS;
HIDDEN struct vm_object *OBJ;
HIDDEN struct vnode *VN;
HIDDEN struct swblock *SWB;
HIDDEN uint32_t *BL;

#define NPAGES          (H->cfg.npages)
#define NPAGES_ALL      (H->cfg.npages + VMG->nmarkers)
#define NOBJSLOTS       (VMG->nobjslots)
#define PQS             (VMG->vm_page_queues)
/* the colours in use: 64 @seed, 256 since 51c99c6153 (vm_set_version) */
#define PQ_L2_SIZE      ((int)VMG->pq_l2_size)
/*
 * The colour offset of INACTIVE, ACTIVE and HOLD: 027193eb61 fans them out
 * (PQ_INACTIVE + m->pc, "m->queue - m->pc == PQ_INACTIVE"); the seed's are
 * single queues (index + 0).  FREE and CACHE are coloured in every version.
 */
#define PQ_FAN(m)       (VMG->version >= KV_027193EB61 ? (int)PG[m].pc : 0)

/* ---- layout ---------------------------------------------------------------- */
static uint64_t
r8(uint64_t v)
{
	return (v + 63) & ~63ull;
}

HIDDEN void
vm_layout(struct smpvm_config *cfg, uint64_t *len)
{
	uint64_t nmarkers = (uint64_t)cfg->maxthreads * VM_MARKERS_PER_THREAD +
	    VM_STATIC_MARKERS;
	uint64_t nobjslots = cfg->nobjects + cfg->maxthreads;
	uint64_t nswb = cfg->nswap + 64;

	len[REG_VM] = sizeof(struct vm_globals);
	len[REG_PAGES] = (cfg->npages + nmarkers) * sizeof(struct vm_page);
	len[REG_PHYS] = (uint64_t)cfg->npages * PAGE_SIZE;
	len[REG_OBJECTS] = r8(nobjslots * sizeof(struct vm_object)) +
	    r8((uint64_t)cfg->nvnodes * sizeof(struct vnode)) +
	    r8(nswb * sizeof(struct swblock)) +
	    r8(((uint64_t)cfg->nswap + 31) / 32 * sizeof(uint32_t));
}

HIDDEN void
vm_bind(void *base)
{
	char *ob;

	VMG = (struct vm_globals *)((char *)base + H->region_off[REG_VM]);
	PG = (struct vm_page *)((char *)base + H->region_off[REG_PAGES]);
	PHYS = (char *)base + H->region_off[REG_PHYS];
	ob = (char *)base + H->region_off[REG_OBJECTS];
	OBJ = (struct vm_object *)ob;
	VN = (struct vnode *)(ob + VMG->off_vnodes);
	SWB = (struct swblock *)(ob + VMG->off_swblocks);
	BL = (uint32_t *)(ob + VMG->off_blist);
}

static inline uint32_t *
pq_cnt(int q)
{
	struct vmstats *v = &VMG->vmstats;

	/* vm_page_queue_init: the cnt pointer of each class's queues */
	if (q >= PQ_FREE && q < PQ_FREE + PQ_MAXL2_SIZE)
		return &v->v_free_count;
	if (q >= PQ_CACHE && q < PQ_CACHE + PQ_MAXL2_SIZE)
		return &v->v_cache_count;
	if (q >= PQ_INACTIVE && q < PQ_INACTIVE + PQ_MAXL2_SIZE)
		return &v->v_inactive_count;
	return &v->v_active_count;      /* ACTIVE, and HOLD as the seed */
}

/* Queue primitives: the caller holds the queue's spinlock. */
static void
pq_insert_tail(int q, int m)
{
	struct vpgqueues *pq = &PQS[q];
	struct vm_page *p = &PG[m];

	RACE_CHK(SK_PQ, struct vpgqueues, q, tail, 1);
	RACE_CHK(SK_PAGE, struct vm_page, m, pq_next, 1);
	p->pq_next = -1;
	p->pq_prev = pq->tail;
	if (pq->tail >= 0)
		PG[pq->tail].pq_next = m;
	else
		pq->head = m;
	pq->tail = m;
	if (!(p->flags & PG_MARKER)) {
		pq->lcnt++;
		__atomic_fetch_add(pq_cnt(q), 1, __ATOMIC_RELAXED);
	}
}

static void
pq_insert_head(int q, int m)
{
	struct vpgqueues *pq = &PQS[q];
	struct vm_page *p = &PG[m];

	RACE_CHK(SK_PQ, struct vpgqueues, q, head, 1);
	RACE_CHK(SK_PAGE, struct vm_page, m, pq_prev, 1);
	p->pq_prev = -1;
	p->pq_next = pq->head;
	if (pq->head >= 0)
		PG[pq->head].pq_prev = m;
	else
		pq->tail = m;
	pq->head = m;
	if (!(p->flags & PG_MARKER)) {
		pq->lcnt++;
		__atomic_fetch_add(pq_cnt(q), 1, __ATOMIC_RELAXED);
	}
}

static void
pq_insert_after(int q, int after, int m)
{
	struct vpgqueues *pq = &PQS[q];
	struct vm_page *p = &PG[m], *a = &PG[after];

	RACE_CHK(SK_PAGE, struct vm_page, after, pq_next, 1);
	RACE_CHK(SK_PAGE, struct vm_page, m, pq_prev, 1);
	p->pq_prev = after;
	p->pq_next = a->pq_next;
	if (a->pq_next >= 0)
		PG[a->pq_next].pq_prev = m;
	else
		pq->tail = m;
	a->pq_next = m;
	if (!(p->flags & PG_MARKER)) {
		pq->lcnt++;
		__atomic_fetch_add(pq_cnt(q), 1, __ATOMIC_RELAXED);
	}
}

static void
pq_remove(int q, int m)
{
	struct vpgqueues *pq = &PQS[q];
	struct vm_page *p = &PG[m];

	RACE_CHK(SK_PQ, struct vpgqueues, q, lcnt, 1);
	RACE_CHK(SK_PAGE, struct vm_page, m, pq_next, 1);
	if (p->pq_prev >= 0)
		PG[p->pq_prev].pq_next = p->pq_next;
	else
		pq->head = p->pq_next;
	if (p->pq_next >= 0)
		PG[p->pq_next].pq_prev = p->pq_prev;
	else
		pq->tail = p->pq_prev;
	p->pq_next = p->pq_prev = -1;
	if (!(p->flags & PG_MARKER)) {
		pq->lcnt--;
		__atomic_fetch_sub(pq_cnt(q), 1, __ATOMIC_RELAXED);
	}
}

/* ---- init -------------------------------------------------------------------- */
HIDDEN void
vm_init(void)
{
	struct smpvm_config *cfg = &H->cfg;
	uint64_t off = 0;
	uint32_t i, nswb = cfg->nswap + 64;
	struct vmstats *v;

	memset(VMG, 0, sizeof(*VMG));
	VMG->nmarkers = cfg->maxthreads * VM_MARKERS_PER_THREAD +
	    VM_STATIC_MARKERS;
	VMG->version = KV_SEED;         /* until vm_set_version */
	VMG->pq_l2_size = PQ_L2_SIZE_SEED;
	VMG->nobjslots = cfg->nobjects + cfg->maxthreads;
	off = r8((uint64_t)VMG->nobjslots * sizeof(struct vm_object));
	VMG->off_vnodes = off;
	off += r8((uint64_t)cfg->nvnodes * sizeof(struct vnode));
	VMG->off_swblocks = off;
	off += r8((uint64_t)nswb * sizeof(struct swblock));
	VMG->off_blist = off;
	vm_bind(H);
	VMG->nswblocks = nswb;

	for (i = 0; i < PQ_COUNT; i++) {
		PQS[i].head = PQS[i].tail = -1;
		PQS[i].flipflop = i & 1;
	}
	memset(PG, 0, (uint64_t)NPAGES_ALL * sizeof(struct vm_page));
	for (i = 0; i < NPAGES_ALL; i++) {
		struct vm_page *p = &PG[i];

		p->object = -1;
		p->hnext = -1;
		p->pq_next = p->pq_prev = -1;
		if (i < NPAGES) {
			/* vm_add_new_page: pc = (pa >> PAGE_SHIFT) & PQ_L2_MASK */
			p->pc = (uint16_t)(i & (PQ_L2_SIZE - 1));
			p->queue = (uint16_t)(PQ_FREE + p->pc);
			pq_insert_tail(p->queue, (int)i);
		} else {
			/* a marker, as vm_swapcache.c's page_marker */
			p->flags = PG_BUSY | PG_FICTITIOUS | PG_MARKER;
			p->wire_count = 1;
			p->queue = PQ_NONE;
		}
	}
	for (i = 0; i < NOBJSLOTS; i++) {
		struct vm_object *o = &OBJ[i];
		int k;

		memset(o, 0, sizeof(*o));
		o->handle = -1;
		o->list_next = o->list_prev = -1;
		o->backing_object = -1;
		for (k = 0; k < OBJ_PGHASH; k++)
			o->pghash[k] = -1;
		for (k = 0; k < OBJ_SWBHASH; k++)
			o->swbhash[k] = -1;
	}
	VMG->vm_object_list_head = VMG->vm_object_list_tail = -1;
	VMG->pagethread = -1;
	VMG->vm_pages_needed = 0;
	for (i = 0; i < cfg->nvnodes; i++) {
		memset(&VN[i], 0, sizeof(VN[i]));
		VN[i].v_object = -1;
	}
	for (i = 0; i < nswb; i++) {
		SWB[i].swb_next = (int32_t)i + 1 < (int32_t)nswb ? (int32_t)i + 1 : -1;
		SWB[i].swb_object = -1;
	}
	VMG->swb_free_head = 0;
	/* blist: the first dmmax blocks are never allocated (swaponvp) */
	memset(BL, 0, (cfg->nswap + 31) / 32 * sizeof(uint32_t));
	BL[0] = 0xffffffffu;
	if (cfg->nswap % 32)
		BL[cfg->nswap / 32] |= ~((1u << (cfg->nswap % 32)) - 1);
	VMG->vm_swap_max = (int64_t)cfg->nswap - SWB_DMMAX;
	VMG->vm_swap_size = VMG->vm_swap_max;

	v = &VMG->vmstats;
	v->v_page_count = NPAGES;
	v->v_free_reserved = NPAGES / 128 + 4;
	v->v_free_severe = NPAGES / 128;        /* v_free_min * 4 / 8 scaled */
	v->v_free_min = NPAGES / 64 + 8;
	v->v_free_target = NPAGES / 16 + 16;
	v->v_cache_min = NPAGES / 32 + 8;
	v->v_inactive_target = NPAGES / 4;      /* v_free_count / 4 at start */
	VMG->vm_swapcache_inactive_heuristic = 0;
}

/*
 * vm_set_version(version): make this machine kernel version `version`
 * (KV_*), at boot, before any page leaves the free queues: the version
 * fixes the page colours in use (PQ_L2_SIZE, 64 before 51c99c6153 and 256
 * from it on), so the free pages are coloured again.  Returns 0, or -1 (a
 * panic) for a bad version or a machine already in use.
 */
int
vm_set_version(int version)
{
	uint32_t i, saved_race;

	if (version < KV_SEED || version > KV_NEWEST) {
		panicf("vm_set_version: bad version %d", version);
		return -1;
	}
	if (VMG->vmstats.v_free_count != NPAGES) {
		panicf("vm_set_version: %u of %u pages are free: too late",
		    VMG->vmstats.v_free_count, NPAGES);
		return -1;
	}
	saved_race = race_on;   /* the machine is still private: no checks */
	race_on = 0;
	for (i = 0; i < NPAGES; i++)
		pq_remove(PG[i].queue, (int)i);
	VMG->version = (uint32_t)version;
	VMG->pq_l2_size = version >= KV_51C99C6153 ? PQ_L2_SIZE_51C99C6153 :
	    PQ_L2_SIZE_SEED;
	for (i = 0; i < NPAGES; i++) {
		PG[i].pc = (uint16_t)(i & (PQ_L2_SIZE - 1));
		PG[i].queue = (uint16_t)(PQ_FREE + PG[i].pc);
		pq_insert_tail(PG[i].queue, (int)i);
	}
	race_on = saved_race;
	return 0;
}

/* ---- page spinlocks and lock-order assertions ------------------------------- */
static inline uint64_t
page_kva(int m)
{
	return KVA_PAGES + (uint64_t)m * KVA_PAGE_STRIDE;
}

static inline uint64_t
object_kva(int o)
{
	return KVA_OBJECTS + (uint64_t)o * KVA_OBJECT_STRIDE;
}

int
vm_page_spin_index(int m)
{
	return spin_pool_index(page_kva(m));
}

uint64_t
vm_page_kva(int m)
{
	return page_kva(m);
}

uint64_t
vm_object_kva(int o)
{
	return object_kva(o);
}

/* Does this thread hold a page (pool) spinlock / a queue spinlock? */
static int
holds_pool_spin(void)
{
	int i, n = td->nspins < SMPVM_MAXSPINS_HELD ? td->nspins : SMPVM_MAXSPINS_HELD;

	for (i = 0; i < n; i++)
		if (td->spins_held[i] < (int)H->cfg.spin_pool)
			return 1;
	return 0;
}

static int
holds_queue_spin(void)
{
	int i, n = td->nspins < SMPVM_MAXSPINS_HELD ? td->nspins : SMPVM_MAXSPINS_HELD;

	for (i = 0; i < n; i++) {
		int id = td->spins_held[i] - (int)H->cfg.spin_pool;

		if (id >= SPIN_NAMED_QUEUE0 && id < SPIN_NAMED_QUEUE0 + PQ_COUNT)
			return 1;
	}
	return 0;
}

#define CHECK_PAGE(fn, m, rv) do {                                      \
	if (__builtin_expect(td == NULL, 0)) {                          \
		panic(fn ": called by a process that is not a thread");   \
		return rv;                                              \
	}                                                               \
	if (__builtin_expect((uint32_t)(m) >= NPAGES_ALL, 0)) {         \
		panicf(fn ": bad page %d", (int)(m));                   \
		return rv;                                              \
	}                                                               \
} while (0)
#define NORV

/*
 * vm_page_spin_lock(m): the pool spinlock of m.  Lock order is asserted:
 * never while a queue spinlock or another page spinlock is held.
 * page_spin_lock(m, cfunc) is the same for C callers, naming themselves
 * for the profiler (which also learns that the lock is taken for page m).
 */
static void
page_spin_lock(int m, const char *cfunc)
{
	if (__builtin_expect(td->nspins > 0, 0)) {
		if (holds_queue_spin() && !race_rule(RR_ORDER, LK_SPIN,
		    vm_page_spin_index(m), cfunc, "lock order: page %d "
		    "spinlock taken while holding a queue spinlock (declared "
		    "order: page spinlock -> queue spinlock)", m)) {
			panicf("lock order: page %d spinlock taken while holding "
			    "a queue spinlock", m);
			return;
		}
		if (holds_pool_spin() && !race_rule(RR_ORDER, LK_SPIN,
		    vm_page_spin_index(m), cfunc, "lock order: page %d "
		    "spinlock taken while holding another page spinlock "
		    "(never two: pool aliasing makes them one lock)", m)) {
			panicf("lock order: page %d spinlock taken while holding "
			    "another page spinlock", m);
			return;
		}
	}
	td->prof_key = m;
	spin_lock_at(vm_page_spin_index(m), cfunc);
	td->prof_key = -1;
}

static inline void
page_spin_unlock(int m, const char *cfunc)
{
	spin_unlock_at(vm_page_spin_index(m), cfunc);
}

void
vm_page_spin_lock(int m)
{
	CHECK_PAGE("vm_page_spin_lock", m, NORV);
	page_spin_lock(m, NULL);
}

void
vm_page_spin_unlock(int m)
{
	page_spin_unlock(m, NULL);
}

void
vm_page_queues_spin_lock(int q)
{
	if ((uint32_t)q >= PQ_COUNT) {
		panicf("vm_page_queues_spin_lock: bad queue %d", q);
		return;
	}
	spin_lock_at(QSPIN(q), __func__);
}

void
vm_page_queues_spin_unlock(int q)
{
	spin_unlock_at(QSPIN(q), __func__);
}

static inline int
queue_locked(int q)
{
	return SL[QSPIN(q)].counta == curref;
}

/* Take m off its queue; page spinlock held.  Returns the old queue. */
static int
rem_queue_spinlocked(int m)
{
	int q = PG[m].queue;

	if (q != PQ_NONE) {
		spin_lock_at(QSPIN(q), __func__);
		pq_remove(q, m);
		RACE_CHK(SK_PAGE, struct vm_page, m, queue, 1);
		PG[m].queue = PQ_NONE;
		spin_unlock_at(QSPIN(q), __func__);
	}
	return q;
}

/* Put m on queue q (head or tail); page spinlock held, m on no queue. */
static void
add_queue_spinlocked(int m, int q, int athead)
{
	spin_lock_at(QSPIN(q), __func__);
	PG[m].queue = (uint16_t)q;
	RACE_CHK(SK_PAGE, struct vm_page, m, queue, 1);
	if (athead)
		pq_insert_head(q, m);
	else
		pq_insert_tail(q, m);
	/* vm_page_unwire, _vm_page_deactivate_locked: a tail insert on any
	 * INACTIVE queue bumps the heuristic (racy by design, H5) */
	if (q - PQ_FAN(m) == PQ_INACTIVE && !athead)
		++VMG->vm_swapcache_inactive_heuristic;
	spin_unlock_at(QSPIN(q), __func__);
}

/* ---- busy ------------------------------------------------------------------- */

/*
 * vm_page_busy_try(m, also_m_busy): set PG_BUSY by CAS.  Takes no lock,
 * never blocks.  Returns 0 on SUCCESS, non-zero when the page is busy (or
 * soft-busy and also_m_busy).  A failure does not set PG_WANTED.
 */
int
vm_page_busy_try(int m, int also_m_busy)
{
	uint32_t f;

	CHECK_PAGE("vm_page_busy_try", m, 1);
	PREEMPT_POINT(HOOK_ATOMIC, m);
	f = __atomic_load_n(&PG[m].flags, __ATOMIC_RELAXED);
	for (;;) {
		if (f & PG_BUSY)
			return 1;
		if (also_m_busy && (f & PG_SBUSY))
			return 1;
		if (__atomic_compare_exchange_n(&PG[m].flags, &f, f | PG_BUSY,
		    0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
			if (__builtin_expect(race_on != 0, 0))
				race_busy_acquired(m);
			return 0;
		}
	}
}

/*
 * Sleep once until m's busy state (and soft-busy if also_m_busy) may have
 * changed: tsleep_interlock, publish PG_WANTED|PG_REFERENCED by CAS while
 * the awaited bit is still set, then tsleep.  Releases all tokens while
 * asleep.  Returns 1 if it slept.
 */
static int
busy_sleep_once(int m, int also_m_busy, const char *wmesg)
{
	uint64_t ident = page_kva(m);

	for (;;) {
		uint32_t f = __atomic_load_n(&PG[m].flags, __ATOMIC_SEQ_CST);

		if (!((f & PG_BUSY) || (also_m_busy && (f & PG_SBUSY))))
			return 0;
		tsleep_interlock(ident);
		if (__atomic_compare_exchange_n(&PG[m].flags, &f,
		    f | PG_WANTED | PG_REFERENCED, 0, __ATOMIC_SEQ_CST,
		    __ATOMIC_SEQ_CST)) {
			uint64_t t0 = smpvm_nanotime();

			tsleep(ident, PINTERLOCKED, wmesg, 0);
			prof_wait(LK_BUSY, m, wmesg, smpvm_nanotime() - t0);
			return 1;
		}
		/* the flags changed under us: look again (vm_page_sleep_busy) */
	}
}

/*
 * vm_page_busy_wait(m, also_m_busy, wmesg): busy m, sleeping as long as it
 * is busy (or soft-busy when also_m_busy).  May block: every token is
 * released while asleep.
 */
void
vm_page_busy_wait(int m, int also_m_busy, const char *wmesg)
{
	CHECK_PAGE("vm_page_busy_wait", m, NORV);
	if (__builtin_expect(race_on != 0, 0) && td->gd_spinlocks_wr)
		race_rule(RR_SLEEP_SPIN, LK_BUSY, m, wmesg, "vm_page_busy_wait"
		    "(page %d) while holding %d spinlocks (it may sleep)", m,
		    td->gd_spinlocks_wr);
	if (PG[m].flags & PG_MARKER) {
		panicf("vm_page_busy_wait: page %d is a marker", m);
		return;
	}
	while (vm_page_busy_try(m, also_m_busy)) {
		if (H->panicking)
			return;
		busy_sleep_once(m, also_m_busy, wmesg);
	}
}

/* vm_page_sleep_busy: wait at most once, never busy.  1 if it slept. */
int
vm_page_sleep_busy(int m, int also_m_busy, const char *wmesg)
{
	CHECK_PAGE("vm_page_sleep_busy", m, 0);
	return busy_sleep_once(m, also_m_busy, wmesg);
}

/*
 * vm_page_wakeup(m): m must be busy (any thread may release it: busy has no
 * owner).  Clears PG_BUSY and PG_WANTED under the page spinlock and wakes
 * the sleepers if PG_WANTED was set.  Never with a queue spinlock held.
 */
void
vm_page_wakeup(int m)
{
	uint32_t old;

	CHECK_PAGE("vm_page_wakeup", m, NORV);
	PREEMPT_POINT(HOOK_WAKEUP, m);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_wakeup: page %d not busy", m);
		return;
	}
	if (td->nspins && holds_queue_spin() && !race_rule(RR_ORDER,
	    LK_BUSY, m, __func__, "vm_page_wakeup(page %d) with a queue "
	    "spinlock held (it takes the page spinlock)", m)) {
		panicf("vm_page_wakeup: page %d woken with a queue spinlock held",
		    m);
		return;
	}
	if (__builtin_expect(race_on != 0, 0))
		race_busy_released(m);
	page_spin_lock(m, __func__);
	old = __atomic_fetch_and(&PG[m].flags, ~(PG_BUSY | PG_WANTED),
	    __ATOMIC_RELEASE);
	page_spin_unlock(m, __func__);
	if (old & PG_WANTED)
		wakeup(page_kva(m));
}

/* vm_page_flash(m): wake PG_WANTED sleepers without changing busy. */
void
vm_page_flash(int m)
{
	CHECK_PAGE("vm_page_flash", m, NORV);
	if (__atomic_fetch_and(&PG[m].flags, ~PG_WANTED, __ATOMIC_SEQ_CST) &
	    PG_WANTED)
		wakeup(page_kva(m));
}

/* vm_page_io_start(m): soft-busy; m must be hard-busy. */
void
vm_page_io_start(int m)
{
	CHECK_PAGE("vm_page_io_start", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_io_start: page %d not busy", m);
		return;
	}
	RACE_CHK(SK_PAGE, struct vm_page, m, busy, 1);
	__atomic_fetch_add(&PG[m].busy, 1, __ATOMIC_SEQ_CST);
	__atomic_fetch_or(&PG[m].flags, PG_SBUSY, __ATOMIC_SEQ_CST);
}

/*
 * vm_page_io_finish(m): drop one soft busy; m must be hard-busy.  Wakes
 * nobody: the vm_page_wakeup that must follow does.
 */
void
vm_page_io_finish(int m)
{
	CHECK_PAGE("vm_page_io_finish", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_io_finish: page %d not busy", m);
		return;
	}
	if (PG[m].busy == 0) {
		panicf("vm_page_io_finish: page %d not soft-busy", m);
		return;
	}
	RACE_CHK(SK_PAGE, struct vm_page, m, busy, 1);
	if (__builtin_expect(race_on != 0, 0))
		race_release(LK_BUSY, m);       /* completion -> next busier */
	if (__atomic_sub_fetch(&PG[m].busy, 1, __ATOMIC_SEQ_CST) == 0)
		__atomic_fetch_and(&PG[m].flags, ~PG_SBUSY, __ATOMIC_SEQ_CST);
}

/* ---- hold / wire --------------------------------------------------------------- */

/* vm_page_hold(m): no busy needed; a held FREE page moves to PQ_HOLD. */
void
vm_page_hold(int m)
{
	CHECK_PAGE("vm_page_hold", m, NORV);
	page_spin_lock(m, __func__);
	RACE_CHK(SK_PAGE, struct vm_page, m, hold_count, 1);
	__atomic_fetch_add(&PG[m].hold_count, 1, __ATOMIC_SEQ_CST);
	if (PG[m].queue - PG[m].pc == PQ_FREE) {
		rem_queue_spinlocked(m);
		add_queue_spinlocked(m, PQ_HOLD + PQ_FAN(m), 0);
	}
	page_spin_unlock(m, __func__);
}

/* vm_page_unhold(m): the last unhold of a page on PQ_HOLD frees it. */
void
vm_page_unhold(int m)
{
	CHECK_PAGE("vm_page_unhold", m, NORV);
	page_spin_lock(m, __func__);
	if (PG[m].hold_count <= 0) {
		page_spin_unlock(m, __func__);
		panicf("vm_page_unhold: page %d hold count %d", m,
		    PG[m].hold_count);
		return;
	}
	RACE_CHK(SK_PAGE, struct vm_page, m, hold_count, 1);
	if (__atomic_sub_fetch(&PG[m].hold_count, 1, __ATOMIC_SEQ_CST) == 0 &&
	    PG[m].queue - PQ_FAN(m) == PQ_HOLD) {
		rem_queue_spinlocked(m);
		add_queue_spinlocked(m, PQ_FREE + PG[m].pc, 0);
	}
	page_spin_unlock(m, __func__);
}

/*
 * vm_page_wire(m): m busy.  0->1 takes a managed page off its queue
 * (vm_page_unqueue: the pagedaemon is woken if it left FREE or CACHE).
 */
void
vm_page_wire(int m)
{
	CHECK_PAGE("vm_page_wire", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_wire: page %d not busy", m);
		return;
	}
	if (PG[m].flags & PG_FICTITIOUS)
		return;
	if (__atomic_fetch_add(&PG[m].wire_count, 1, __ATOMIC_SEQ_CST) == 0) {
		if (!(PG[m].flags & PG_UNMANAGED))
			vm_page_unqueue(m);
		__atomic_fetch_add(&VMG->vmstats.v_wire_count, 1,
		    __ATOMIC_RELAXED);
	}
}

/*
 * vm_page_unwire(m, activate): m busy.  1->0 puts a managed page on the
 * ACTIVE tail, or the INACTIVE tail (clearing PG_WINATCFLS, bumping the
 * swapcache heuristic).  Panics if not wired.
 */
void
vm_page_unwire(int m, int activate)
{
	CHECK_PAGE("vm_page_unwire", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_unwire: page %d not busy", m);
		return;
	}
	if (PG[m].flags & PG_FICTITIOUS)
		return;
	if (PG[m].wire_count == 0) {
		panicf("vm_page_unwire: page %d invalid wire count 0", m);
		return;
	}
	if (__atomic_sub_fetch(&PG[m].wire_count, 1, __ATOMIC_SEQ_CST) == 0) {
		__atomic_fetch_sub(&VMG->vmstats.v_wire_count, 1,
		    __ATOMIC_RELAXED);
		if (!(PG[m].flags & PG_UNMANAGED)) {
			page_spin_lock(m, __func__);
			if (activate) {
				add_queue_spinlocked(m, PQ_ACTIVE + PQ_FAN(m),
				    0);
			} else {
				__atomic_fetch_and(&PG[m].flags, ~PG_WINATCFLS,
				    __ATOMIC_SEQ_CST);
				add_queue_spinlocked(m, PQ_INACTIVE + PQ_FAN(m),
				    0);
			}
			page_spin_unlock(m, __func__);
		}
	}
}

/* ---- queue moves ----------------------------------------------------------------- */

/*
 * vm_page_deactivate(m): no busy needed.  Page spinlock then queue
 * spinlock.  A page already on INACTIVE stays put; otherwise it leaves its
 * queue and, unwired and managed, goes to the INACTIVE tail (heuristic++).
 */
void
vm_page_deactivate(int m)
{
	CHECK_PAGE("vm_page_deactivate", m, NORV);
	page_spin_lock(m, __func__);
	if (PG[m].queue - PQ_FAN(m) == PQ_INACTIVE ||
	    (PG[m].flags & PG_MARKER)) {
		page_spin_unlock(m, __func__);
		return;
	}
	if (PG[m].queue - PG[m].pc == PQ_CACHE)
		__atomic_fetch_add(&VMG->vmstats.v_reactivated, 1,
		    __ATOMIC_RELAXED);
	rem_queue_spinlocked(m);
	if (PG[m].wire_count == 0 && !(PG[m].flags & PG_UNMANAGED)) {
		__atomic_fetch_and(&PG[m].flags, ~PG_WINATCFLS, __ATOMIC_SEQ_CST);
		add_queue_spinlocked(m, PQ_INACTIVE + PQ_FAN(m), 0);
	}
	page_spin_unlock(m, __func__);
}

/* _vm_page_deactivate_locked(m, athead=1): to the INACTIVE head, no bump. */
void
vm_page_deactivate_head(int m)
{
	CHECK_PAGE("vm_page_deactivate_head", m, NORV);
	page_spin_lock(m, __func__);
	if (PG[m].queue - PQ_FAN(m) != PQ_INACTIVE &&
	    !(PG[m].flags & PG_MARKER)) {
		rem_queue_spinlocked(m);
		if (PG[m].wire_count == 0 && !(PG[m].flags & PG_UNMANAGED))
			add_queue_spinlocked(m, PQ_INACTIVE + PQ_FAN(m), 1);
	}
	page_spin_unlock(m, __func__);
}

/*
 * vm_page_activate(m): to the ACTIVE tail, act_count >= ACT_INIT (raised
 * even when already active); wakes the pagedaemon if it left FREE/CACHE.
 */
void
vm_page_activate(int m)
{
	CHECK_PAGE("vm_page_activate", m, NORV);
	int oq = PQ_NONE;

	page_spin_lock(m, __func__);
	if (PG[m].flags & PG_MARKER) {
		page_spin_unlock(m, __func__);
		return;
	}
	if (PG[m].queue - PQ_FAN(m) != PQ_ACTIVE) {
		oq = rem_queue_spinlocked(m) - PG[m].pc;
		if (oq == PQ_CACHE)
			__atomic_fetch_add(&VMG->vmstats.v_reactivated, 1,
			    __ATOMIC_RELAXED);
		if (PG[m].wire_count == 0 && !(PG[m].flags & PG_UNMANAGED)) {
			if (PG[m].act_count < ACT_INIT)
				PG[m].act_count = ACT_INIT;
			add_queue_spinlocked(m, PQ_ACTIVE + PQ_FAN(m), 0);
		}
	} else if (PG[m].act_count < ACT_INIT) {
		PG[m].act_count = ACT_INIT;
	}
	page_spin_unlock(m, __func__);
	if (oq == PQ_CACHE || oq == PQ_FREE)
		pagedaemon_wakeup();
}

/*
 * vm_page_requeue(m, base): the pageout's second chance, under the page
 * and queue spinlocks: if m is still on a queue of class base (PQ_INACTIVE,
 * PQ_ACTIVE), TAILQ_REMOVE + TAILQ_INSERT_TAIL on that queue.  No busy
 * needed.  Returns 1 if m moved (the caller bumps the swapcache heuristic
 * as its version does), 0 if m is on another queue now.
 */
int
vm_page_requeue(int m, int base)
{
	int q, moved = 0;

	CHECK_PAGE("vm_page_requeue", m, 0);
	page_spin_lock(m, __func__);
	q = PG[m].queue;
	if (q != PQ_NONE && q - PQ_FAN(m) == base) {
		spin_lock_at(QSPIN(q), __func__);
		pq_remove(q, m);
		pq_insert_tail(q, m);
		spin_unlock_at(QSPIN(q), __func__);
		moved = 1;
	}
	page_spin_unlock(m, __func__);
	return moved;
}

/* vm_page_unqueue_nowakeup(m): off its queue; queue becomes PQ_NONE. */
void
vm_page_unqueue_nowakeup(int m)
{
	CHECK_PAGE("vm_page_unqueue_nowakeup", m, NORV);
	page_spin_lock(m, __func__);
	rem_queue_spinlocked(m);
	page_spin_unlock(m, __func__);
}

/* vm_page_unqueue(m): as _nowakeup, waking the pagedaemon when m left
 * FREE or CACHE. */
void
vm_page_unqueue(int m)
{
	int q;

	CHECK_PAGE("vm_page_unqueue", m, NORV);
	page_spin_lock(m, __func__);
	q = rem_queue_spinlocked(m);
	page_spin_unlock(m, __func__);
	if (q - PG[m].pc == PQ_FREE || q - PG[m].pc == PQ_CACHE)
		pagedaemon_wakeup();
}

/* ---- the emulated pmap --------------------------------------------------------- */

/* vm_page_dirty(m): dirty = all; the object might be dirty.  Not FREE/CACHE. */
void
vm_page_dirty(int m)
{
	int q;

	CHECK_PAGE("vm_page_dirty", m, NORV);
	q = PG[m].queue - PG[m].pc;
	if (q == PQ_FREE || q == PQ_CACHE) {
		panicf("vm_page_dirty: page %d on queue %d", m, PG[m].queue);
		return;
	}
	RACE_CHK(SK_PAGE, struct vm_page, m, dirty, 1);
	PG[m].dirty = VM_PAGE_BITS_ALL;
	if (PG[m].object >= 0)
		__atomic_fetch_or(&OBJ[PG[m].object].flags,
		    OBJ_WRITEABLE | OBJ_MIGHTBEDIRTY, __ATOMIC_SEQ_CST);
}

/* vm_page_undirty(m): m busy; the page is clean again. */
void
vm_page_undirty(int m)
{
	CHECK_PAGE("vm_page_undirty", m, NORV);
	RACE_CHK(SK_PAGE, struct vm_page, m, dirty, 1);
	PG[m].dirty = 0;
}

/* fold the pte modified bits into dirty; page spinlock held */
static void
fold_modified(int m)
{
	if (PG[m].md_modified) {
		RACE_CHK(SK_PAGE, struct vm_page, m, md_modified, 1);
		PG[m].md_modified = 0;
		vm_page_dirty(m);
	}
}

/*
 * vm_page_protect(m, prot): m busy.  Never raises protection.  NONE removes
 * every mapping; READ write-protects.  Either way a pte found modified is
 * folded into m->dirty (pmap_clearbit).  Takes the page spinlock, which is
 * also what a store through a mapping takes: the TLB-shootdown interlock.
 */
void
vm_page_protect(int m, int prot)
{
	uint32_t f;

	CHECK_PAGE("vm_page_protect", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_protect: page %d not busy", m);
		return;
	}
	page_spin_lock(m, __func__);
	f = PG[m].flags;
	if (prot == VM_PROT_NONE) {
		if (f & (PG_WRITEABLE | PG_MAPPED)) {
			fold_modified(m);
			__atomic_fetch_and(&PG[m].flags,
			    ~(PG_WRITEABLE | PG_MAPPED), __ATOMIC_SEQ_CST);
		}
	} else if ((prot & VM_PROT_WRITE) == 0) {
		if (f & PG_WRITEABLE) {
			fold_modified(m);
			__atomic_fetch_and(&PG[m].flags, ~PG_WRITEABLE,
			    __ATOMIC_SEQ_CST);
		}
	}
	page_spin_unlock(m, __func__);
}

/*
 * vm_page_test_dirty(m): m busy.  If dirty is not already all-ones and the
 * pmap reports the page modified, vm_page_dirty(m).  Touches no swap.
 */
void
vm_page_test_dirty(int m)
{
	CHECK_PAGE("vm_page_test_dirty", m, NORV);
	if (PG[m].dirty != VM_PAGE_BITS_ALL && PG[m].md_modified)
		vm_page_dirty(m);
}

/* pmap_clear_modify(m): clear the pte modified bits (after a clean). */
void
pmap_clear_modify(int m)
{
	CHECK_PAGE("pmap_clear_modify", m, NORV);
	page_spin_lock(m, __func__);
	RACE_CHK(SK_PAGE, struct vm_page, m, md_modified, 1);
	PG[m].md_modified = 0;
	page_spin_unlock(m, __func__);
}

/* pmap_enter(m, writable): map m (caller busied it in the fault path). */
void
pmap_enter(int m, int writable)
{
	CHECK_PAGE("pmap_enter", m, NORV);
	if (__builtin_expect(race_on != 0, 0))
		race_page_mapped(m, writable, __func__);
	page_spin_lock(m, __func__);
	__atomic_fetch_or(&PG[m].flags,
	    PG_MAPPED | (writable ? PG_WRITEABLE : 0), __ATOMIC_SEQ_CST);
	page_spin_unlock(m, __func__);
}

/*
 * pmap_store(m, o, pindex, off, src, len): a CPU store through a mapping of
 * (o, pindex).  Succeeds (0) only while m is that page and a writable pte
 * exists: it then sets the modified bit, as hardware does, with no busy.
 * -1 means "write fault".
 */
int
pmap_store(int m, int o, uint64_t pindex, uint32_t off, const char *src,
    uint32_t len)
{
	CHECK_PAGE("pmap_store", m, -1);
	if (off + len > PAGE_SIZE || (uint32_t)m >= NPAGES) {
		panicf("pmap_store: page %d off %u len %u", m, off, len);
		return -1;
	}
	page_spin_lock(m, __func__);
	if (!(PG[m].flags & PG_WRITEABLE) || PG[m].object != o ||
	    PG[m].pindex != pindex) {
		page_spin_unlock(m, __func__);
		return -1;
	}
	memcpy(PHYS + (uint64_t)m * PAGE_SIZE + off, src, len);
	RACE_CHK(SK_PAGE, struct vm_page, m, md_modified, 1);
	PG[m].md_modified = 1;
	PG[m].md_referenced = 1;
	page_spin_unlock(m, __func__);
	return 0;
}

/*
 * vm_page_copyin(m, off, src, len): the buffer cache writes file data into
 * page m (the kernel's bcopy into a buffer's pages).  The caller holds
 * PG_BUSY.  Checked machines report a write into a page whose swap write is
 * in flight (PG_SWAPINPROG): the device may take the old or a torn image
 * and the page then carries PG_SWAPPED over stale swap (hazard H1).
 */
void
vm_page_copyin(int m, uint32_t off, const char *src, uint32_t len)
{
	CHECK_PAGE("vm_page_copyin", m, NORV);
	if (off + len > PAGE_SIZE || (uint32_t)m >= NPAGES) {
		panicf("vm_page_copyin: page %d off %u len %u", m, off, len);
		return;
	}
	if (__builtin_expect(race_on != 0, 0))
		race_page_write(m, __func__);
	memcpy(PHYS + (uint64_t)m * PAGE_SIZE + off, src, len);
}

/* pmap_load(m, o, pindex, off, dst, len): a CPU load through a mapping of
 * (o, pindex); -1: fault. */
int
pmap_load(int m, int o, uint64_t pindex, uint32_t off, char *dst,
    uint32_t len)
{
	CHECK_PAGE("pmap_load", m, -1);
	if (off + len > PAGE_SIZE || (uint32_t)m >= NPAGES) {
		panicf("pmap_load: page %d off %u len %u", m, off, len);
		return -1;
	}
	page_spin_lock(m, __func__);
	if (!(PG[m].flags & PG_MAPPED) || PG[m].object != o ||
	    PG[m].pindex != pindex) {
		page_spin_unlock(m, __func__);
		return -1;
	}
	memcpy(dst, PHYS + (uint64_t)m * PAGE_SIZE + off, len);
	PG[m].md_referenced = 1;
	page_spin_unlock(m, __func__);
	return 0;
}

/* ---- objects ------------------------------------------------------------------ */
#define CHECK_OBJ(fn, o, rv) do {                                       \
	if (__builtin_expect((uint32_t)(o) >= NOBJSLOTS, 0)) {          \
		panicf(fn ": bad object %d", (int)(o));                 \
		return rv;                                              \
	}                                                               \
} while (0)

int
vm_object_token(int o)
{
	return lwkt_token_pool_index(object_kva(o));
}

static inline int
object_held(int o)
{
	return lwkt_token_held(vm_object_token(o));
}

/*
 * vm_object_hold(o): hold_count++ first (so the object cannot be freed
 * while we wait), then the object's pool token, which may block.  The
 * caller must have a stable reference.  Recursive.
 */
static void
object_hold(int o, const char *cfunc)
{
	CHECK_OBJ("vm_object_hold", o, NORV);
	if (__builtin_expect(OBJ[o].state == 0, 0)) {
		/* the kernel would be using freed memory: crash */
		panicf("vm_object_hold: object %d is free (use after free)", o);
		return;
	}
	__atomic_fetch_add(&OBJ[o].hold_count, 1, __ATOMIC_SEQ_CST);
	if (td)
		td->prof_key = o;
	lwkt_gettoken_at(vm_object_token(o), cfunc);
	if (td)
		td->prof_key = -1;
}

void
vm_object_hold(int o)
{
	object_hold(o, NULL);
}

/* vm_object_hold_try(o): as vm_object_hold but never blocks; 1 if held. */
int
vm_object_hold_try(int o)
{
	CHECK_OBJ("vm_object_hold_try", o, 0);
	if (OBJ[o].state == 0)
		return 0;
	__atomic_fetch_add(&OBJ[o].hold_count, 1, __ATOMIC_SEQ_CST);
	if (lwkt_trytoken(vm_object_token(o)))
		return 1;
	__atomic_fetch_sub(&OBJ[o].hold_count, 1, __ATOMIC_SEQ_CST);
	return 0;
}

/*
 * vm_object_drop(o): the most recent token acquisition must be o's (LIFO).
 * hold_count--; at zero with ref_count 0 and OBJ_DEAD the slot is freed
 * here; then the pool token is released (keyed by address: safe).
 */
void
vm_object_drop(int o)
{
	struct vm_object *obj;

	CHECK_OBJ("vm_object_drop", o, NORV);
	obj = &OBJ[o];
	if (obj->hold_count <= 0) {
		panicf("vm_object_drop: object %d hold count %d", o,
		    obj->hold_count);
		return;
	}
	if (__atomic_sub_fetch(&obj->hold_count, 1, __ATOMIC_SEQ_CST) == 0 &&
	    obj->ref_count == 0 && (obj->flags & OBJ_DEAD) &&
	    obj->type != OBJT_MARKER)
		__atomic_store_n(&obj->state, 0, __ATOMIC_SEQ_CST);
	lwkt_reltoken(vm_object_token(o));
}

/*
 * vm_object_allocate(type, size): a new object with ref_count 1, put on
 * vm_object_list (under vmobj_token) before the caller has finished with
 * it, as the seed does.  Returns its index, or -1 when out of slots.
 */
int
vm_object_allocate(int type, uint64_t size)
{
	uint32_t i;
	int k;

	for (i = 0; i < H->cfg.nobjects; i++) {
		uint32_t zero = 0;
		struct vm_object *o = &OBJ[i];

		if (o->state != 0 || o->hold_count != 0)
			continue;
		if (!__atomic_compare_exchange_n(&o->state, &zero, 1, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			continue;
		for (k = 0; k < OBJ_PGHASH; k++)
			if (o->pghash[k] >= 0) {
				panicf("vm_object_allocate: slot %u still has "
				    "pages", i);
				return -1;
			}
		for (k = 0; k < OBJ_SWBHASH; k++)
			if (o->swbhash[k] >= 0) {
				panicf("vm_object_allocate: slot %u still has "
				    "swap metadata", i);
				return -1;
			}
		o->type = (uint32_t)type;
		o->flags = 0;
		o->ref_count = 1;
		o->paging_in_progress = 0;
		o->size = size;
		o->handle = -1;
		o->backing_object = -1;
		o->generation++;
		o->resident_page_count = 0;
		o->swblock_count = 0;
		o->alloc_gen++;
		lwkt_gettoken(TOK_VMOBJ);
		o->list_next = -1;
		o->list_prev = VMG->vm_object_list_tail;
		if (VMG->vm_object_list_tail >= 0)
			OBJ[VMG->vm_object_list_tail].list_next = (int)i;
		else
			VMG->vm_object_list_head = (int)i;
		VMG->vm_object_list_tail = (int)i;
		o->on_list = 1;
		VMG->vm_object_count++;
		lwkt_reltoken(TOK_VMOBJ);
		return (int)i;
	}
	return -1;
}

/* This thread's object marker slot (OBJT_MARKER, never on a list at init). */
int
vm_object_marker(void)
{
	int o;

	if (td == NULL)
		return -1;
	o = (int)H->cfg.nobjects + curtid;
	memset(&OBJ[o], 0, sizeof(OBJ[o]));
	OBJ[o].state = 1;
	OBJ[o].type = OBJT_MARKER;
	OBJ[o].handle = -1;
	OBJ[o].list_next = OBJ[o].list_prev = -1;
	OBJ[o].backing_object = -1;
	memset(OBJ[o].pghash, 0xff, sizeof(OBJ[o].pghash));
	memset(OBJ[o].swbhash, 0xff, sizeof(OBJ[o].swbhash));
	return o;
}

#define NEED_VMOBJ(fn, rv) do {                                         \
	if (!lwkt_token_held(TOK_VMOBJ)) {                              \
		panic(fn ": vmobj_token not held");                     \
		return rv;                                              \
	}                                                               \
} while (0)

/*
 * vm_object_list walking and marker moves; the caller holds vmobj_token.
 *
 * These are the TAILQ macros of sys/queue.h (no QUEUE_MACRO_DEBUG), over
 * indices: list_prev -1 stands for tqe_prev == &tqh_first, tail -1 for
 * tqh_last == &tqh_first.  TAILQ_REMOVE leaves the removed element's links
 * as they were, so a walker that steps from an unlinked (or freed) object
 * follows its stale list_next, and INSERT_BEFORE an unlinked object splices
 * through its stale list_prev -- the seed's defects (b) and (c) play out as
 * in the kernel.  on_list (smpvm's) says whether the object is linked, for
 * the invariants and the fixed variant.  On a checked machine, touching the
 * links of a freed slot is a use-after-free report.
 */
static inline void
list_uaf(int o, const char *fn, const char *what)
{
	if (__builtin_expect(race_on != 0, 0) && OBJ[o].state == 0)
		race_use_after_free(SK_OBJECT, o, fn, what);
}

int
vm_object_list_first(void)
{
	NEED_VMOBJ("vm_object_list_first", -1);
	return VMG->vm_object_list_head;
}

/* TAILQ_NEXT(o, object_list) */
int
vm_object_list_next(int o)
{
	NEED_VMOBJ("vm_object_list_next", -1);
	CHECK_OBJ("vm_object_list_next", o, -1);
	list_uaf(o, __func__, "TAILQ_NEXT");
	return OBJ[o].list_next;
}

/* TAILQ_REMOVE(&vm_object_list, o, object_list); o's links stay stale. */
void
vm_object_list_remove(int o)
{
	struct vm_object *obj = &OBJ[o];

	NEED_VMOBJ("vm_object_list_remove", NORV);
	CHECK_OBJ("vm_object_list_remove", o, NORV);
	list_uaf(o, __func__, "TAILQ_REMOVE");
	RACE_CHK(SK_OBJECT, struct vm_object, o, list_next, 1);
	RACE_CHK(SK_VMG, struct vm_globals, 0, vm_object_count, 1);
	if (obj->list_next >= 0)
		OBJ[obj->list_next].list_prev = obj->list_prev;
	else
		VMG->vm_object_list_tail = obj->list_prev;
	if (obj->list_prev >= 0)
		OBJ[obj->list_prev].list_next = obj->list_next;
	else
		VMG->vm_object_list_head = obj->list_next;
	if (obj->on_list && obj->type != OBJT_MARKER)
		VMG->vm_object_count--;
	obj->on_list = 0;
}

/* TAILQ_INSERT_HEAD */
void
vm_object_list_insert_head(int o)
{
	NEED_VMOBJ("vm_object_list_insert_head", NORV);
	CHECK_OBJ("vm_object_list_insert_head", o, NORV);
	RACE_CHK(SK_OBJECT, struct vm_object, o, list_next, 1);
	RACE_CHK(SK_VMG, struct vm_globals, 0, vm_object_list_head, 1);
	OBJ[o].list_next = VMG->vm_object_list_head;
	if (VMG->vm_object_list_head >= 0)
		OBJ[VMG->vm_object_list_head].list_prev = o;
	else
		VMG->vm_object_list_tail = o;
	VMG->vm_object_list_head = o;
	OBJ[o].list_prev = -1;
	OBJ[o].on_list = 1;
}

/* TAILQ_INSERT_AFTER(&vm_object_list, after, o, object_list) */
void
vm_object_list_insert_after(int after, int o)
{
	NEED_VMOBJ("vm_object_list_insert_after", NORV);
	CHECK_OBJ("vm_object_list_insert_after", o, NORV);
	CHECK_OBJ("vm_object_list_insert_after", after, NORV);
	list_uaf(after, __func__, "TAILQ_INSERT_AFTER");
	RACE_CHK(SK_OBJECT, struct vm_object, o, list_prev, 1);
	RACE_CHK(SK_OBJECT, struct vm_object, after, list_next, 1);
	OBJ[o].list_next = OBJ[after].list_next;
	if (OBJ[after].list_next >= 0)
		OBJ[OBJ[after].list_next].list_prev = o;
	else
		VMG->vm_object_list_tail = o;
	OBJ[after].list_next = o;
	OBJ[o].list_prev = after;
	OBJ[o].on_list = 1;
}

/* TAILQ_INSERT_BEFORE(before, o, object_list) */
void
vm_object_list_insert_before(int before, int o)
{
	int prev;

	NEED_VMOBJ("vm_object_list_insert_before", NORV);
	CHECK_OBJ("vm_object_list_insert_before", o, NORV);
	CHECK_OBJ("vm_object_list_insert_before", before, NORV);
	list_uaf(before, __func__, "TAILQ_INSERT_BEFORE");
	RACE_CHK(SK_OBJECT, struct vm_object, o, list_next, 1);
	RACE_CHK(SK_OBJECT, struct vm_object, before, list_prev, 1);
	prev = OBJ[before].list_prev;
	OBJ[o].list_prev = prev;
	OBJ[o].list_next = before;
	if (prev >= 0)
		OBJ[prev].list_next = o;
	else
		VMG->vm_object_list_head = o;
	OBJ[before].list_prev = o;
	OBJ[o].on_list = 1;
}

/* ---- paging in progress -------------------------------------------------------- */
static inline uint64_t
pip_ident(int o)
{
	return object_kva(o) + 20;
}

void
vm_object_pip_add(int o, int n)
{
	CHECK_OBJ("vm_object_pip_add", o, NORV);
	__atomic_fetch_add(&OBJ[o].paging_in_progress, (uint32_t)n,
	    __ATOMIC_SEQ_CST);
}

/* Drop n references; the last one wakes a waiter (refcount_release_n). */
void
vm_object_pip_wakeup_n(int o, int n)
{
	uint32_t *p, v, nv;

	CHECK_OBJ("vm_object_pip_wakeup_n", o, NORV);
	p = &OBJ[o].paging_in_progress;
	v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
	for (;;) {
		if ((v & ~REFCNTF_WAITING) < (uint32_t)n) {
			panicf("vm_object_pip_wakeup: object %d pip %u - %d",
			    o, v & ~REFCNTF_WAITING, n);
			return;
		}
		nv = v - (uint32_t)n;
		if ((nv & ~REFCNTF_WAITING) == 0)
			nv = 0;
		if (__atomic_compare_exchange_n(p, &v, nv, 0, __ATOMIC_SEQ_CST,
		    __ATOMIC_SEQ_CST))
			break;
	}
	if (nv == 0 && (v & REFCNTF_WAITING))
		wakeup(pip_ident(o));
}

void
vm_object_pip_wakeup(int o)
{
	vm_object_pip_wakeup_n(o, 1);
}

/* vm_object_pip_wait(o, wmesg): sleep until pip is 0 (10 s slices). */
void
vm_object_pip_wait(int o, const char *wmesg)
{
	uint32_t *p, v;

	CHECK_OBJ("vm_object_pip_wait", o, NORV);
	p = &OBJ[o].paging_in_progress;
	for (;;) {
		v = __atomic_load_n(p, __ATOMIC_SEQ_CST);
		if ((v & ~REFCNTF_WAITING) == 0 || H->panicking)
			return;
		tsleep_interlock(pip_ident(o));
		if (__atomic_compare_exchange_n(p, &v, v | REFCNTF_WAITING, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			tsleep(pip_ident(o), PINTERLOCKED, wmesg,
			    (int)H->cfg.hz * 10);
	}
}

/* ---- page <-> object ------------------------------------------------------------ */
static inline int
pghash_bucket(uint64_t pindex)
{
	return (int)(pindex & (OBJ_PGHASH - 1));
}

/* vm_page_lookup(o, pindex): the caller holds o's token.  -1 if absent. */
int
vm_page_lookup(int o, uint64_t pindex)
{
	int m;

	CHECK_OBJ("vm_page_lookup", o, -1);
	if (td && !object_held(o)) {
		panicf("vm_page_lookup: object %d not held", o);
		return -1;
	}
	for (m = OBJ[o].pghash[pghash_bucket(pindex)]; m >= 0; m = PG[m].hnext)
		if (PG[m].pindex == pindex)
			return m;
	return -1;
}

/*
 * vm_page_lookup_busy_try(o, pindex, also_m_busy, &error): o held.  -1 with
 * error 0: absent; m with error 1: busy (or soft-busy when also_m_busy);
 * m with error 0: m is now busied by the caller.
 */
int
vm_page_lookup_busy_try(int o, uint64_t pindex, int also_m_busy, int *error)
{
	int m = vm_page_lookup(o, pindex);

	*error = 0;
	if (m < 0)
		return -1;
	if (vm_page_busy_try(m, also_m_busy))
		*error = 1;
	return m;
}

/* ..._wait: sleep instead of failing, and look up again after each sleep. */
int
vm_page_lookup_busy_wait(int o, uint64_t pindex, int also_m_busy,
    const char *wmesg)
{
	int m;

	for (;;) {
		m = vm_page_lookup(o, pindex);
		if (m < 0)
			return -1;
		if (!vm_page_busy_try(m, also_m_busy))
			return m;
		if (H->panicking)
			return -1;
		vm_page_sleep_busy(m, also_m_busy, wmesg);
	}
}

static int swp_pager_meta_lookup(int o, uint64_t pindex);

/*
 * vm_page_insert(m, o, pindex): o held, m busy and in no object.  Returns 1,
 * or 0 on a collision.  swap_pager_page_inserted: PG_SWAPPED is set when
 * swap metadata already exists for (o, pindex).
 */
int
vm_page_insert(int m, int o, uint64_t pindex)
{
	int b;

	CHECK_PAGE("vm_page_insert", m, 0);
	CHECK_OBJ("vm_page_insert", o, 0);
	if (!object_held(o)) {
		panicf("vm_page_insert: object %d not held", o);
		return 0;
	}
	if (!(PG[m].flags & PG_BUSY) || PG[m].object >= 0) {
		panicf("vm_page_insert: page %d not busy or already in object %d",
		    m, PG[m].object);
		return 0;
	}
	if (vm_page_lookup(o, pindex) >= 0)
		return 0;
	b = pghash_bucket(pindex);
	page_spin_lock(m, __func__);
	PG[m].object = o;
	RACE_CHK(SK_PAGE, struct vm_page, m, object, 1);
	RACE_CHK(SK_PAGE, struct vm_page, m, hnext, 1);
	RACE_CHK(SK_OBJECT, struct vm_object, o, resident_page_count, 1);
	PG[m].pindex = pindex;
	PG[m].hnext = OBJ[o].pghash[b];
	OBJ[o].pghash[b] = m;
	page_spin_unlock(m, __func__);
	OBJ[o].resident_page_count++;
	OBJ[o].generation++;
	if ((PG[m].valid & PG[m].dirty) || (PG[m].flags & PG_WRITEABLE))
		__atomic_fetch_or(&OBJ[o].flags,
		    OBJ_WRITEABLE | OBJ_MIGHTBEDIRTY, __ATOMIC_SEQ_CST);
	if (swp_pager_meta_lookup(o, pindex) != SWAPBLK_NONE)
		__atomic_fetch_or(&PG[m].flags, PG_SWAPPED, __ATOMIC_SEQ_CST);
	return 1;
}

/*
 * vm_page_remove(m): m busy.  Takes the object hold itself; the page
 * leaves its object (its swap assignment stays with the object).
 */
void
vm_page_remove(int m)
{
	int o, *pp;

	CHECK_PAGE("vm_page_remove", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_remove: page %d not busy", m);
		return;
	}
	o = PG[m].object;
	if (o < 0)
		return;
	object_hold(o, __func__);
	if (PG[m].object != o) {            /* cannot happen while busy */
		vm_object_drop(o);
		panicf("vm_page_remove: page %d changed object under busy", m);
		return;
	}
	for (pp = &OBJ[o].pghash[pghash_bucket(PG[m].pindex)]; *pp >= 0;
	    pp = &PG[*pp].hnext) {
		if (*pp == m) {
			page_spin_lock(m, __func__);
			RACE_CHK(SK_PAGE, struct vm_page, m, object, 1);
			RACE_CHK(SK_PAGE, struct vm_page, m, hnext, 1);
			*pp = PG[m].hnext;
			PG[m].hnext = -1;
			PG[m].object = -1;
			page_spin_unlock(m, __func__);
			OBJ[o].resident_page_count--;
			OBJ[o].generation++;
			break;
		}
	}
	vm_object_drop(o);
}

/* List up to max resident pages of o with pindex in [start, end). o held. */
int
vm_object_pages(int o, uint64_t start, uint64_t end, int *out, int max)
{
	int b, m, n = 0;

	CHECK_OBJ("vm_object_pages", o, 0);
	if (!object_held(o)) {
		panicf("vm_object_pages: object %d not held", o);
		return 0;
	}
	for (b = 0; b < OBJ_PGHASH; b++)
		for (m = OBJ[o].pghash[b]; m >= 0; m = PG[m].hnext)
			if (PG[m].pindex >= start && PG[m].pindex < end &&
			    n < max)
				out[n++] = m;
	return n;
}

/* ---- free / cache / alloc -------------------------------------------------------- */

/*
 * vm_page_free(m) (vm_page_free_toq): m busy, unmapped, not soft-busy
 * (panics otherwise).  Removes m from its object (vm_page_remove: holds the
 * object, which may block) and its queue, zeroes valid/dirty, puts it on
 * PQ_HOLD (if held) or FREE+pc (at the head, PG_ZERO pages at the tail) and
 * unbusies it.  Flags other than PG_UNMANAGED are left alone, as the seed
 * leaves them: vm_page_alloc clears them.  The object's swap metadata is
 * untouched: that is swapcache's point.
 */
void
vm_page_free(int m)
{
	CHECK_PAGE("vm_page_free", m, NORV);
	if (!(PG[m].flags & PG_BUSY) || PG[m].busy ||
	    (PG[m].flags & (PG_MAPPED | PG_MARKER)) ||
	    PG[m].queue - PG[m].pc == PQ_FREE) {
		panicf("vm_page_free: page %d flags %#x busy %u queue %u", m,
		    PG[m].flags, PG[m].busy, PG[m].queue);
		return;
	}
	if (PG[m].wire_count) {
		panicf("vm_page_free: page %d wired", m);
		return;
	}
	vm_page_remove(m);
	page_spin_lock(m, __func__);
	rem_queue_spinlocked(m);
	RACE_CHK(SK_PAGE, struct vm_page, m, valid, 1);
	PG[m].valid = 0;
	PG[m].dirty = 0;
	PG[m].md_modified = 0;
	PG[m].md_referenced = 0;
	__atomic_fetch_and(&PG[m].flags, ~PG_UNMANAGED, __ATOMIC_SEQ_CST);
	if (PG[m].hold_count) {
		__atomic_fetch_and(&PG[m].flags, ~PG_ZERO, __ATOMIC_SEQ_CST);
		add_queue_spinlocked(m, PQ_HOLD + PQ_FAN(m), 0);
	} else {
		add_queue_spinlocked(m, PQ_FREE + PG[m].pc,
		    !(PG[m].flags & PG_ZERO));
	}
	page_spin_unlock(m, __func__);
	__atomic_fetch_add(&VMG->cnt.page_frees, 1, __ATOMIC_RELAXED);
	vm_page_wakeup(m);
	wakeup(IDENT_VM_FREE);
}

/*
 * vm_page_cache(m): m busy; consumes the busy.  Refuses (just unbusies)
 * unmanaged, soft-busy, wired or held pages, and a page already on CACHE;
 * panics on a dirty page.  Removes all mappings and re-checks everything
 * (the protect may block in the kernel): a page that became dirty is
 * deactivated instead.  Otherwise to CACHE+pc, still in its object.
 */
void
vm_page_cache(int m)
{
	CHECK_PAGE("vm_page_cache", m, NORV);
	if (!(PG[m].flags & PG_BUSY)) {
		panicf("vm_page_cache: page %d not busy", m);
		return;
	}
	if ((PG[m].flags & PG_UNMANAGED) || PG[m].busy || PG[m].wire_count ||
	    PG[m].hold_count) {
		vm_page_wakeup(m);
		return;
	}
	if (PG[m].queue - PG[m].pc == PQ_CACHE) {       /* already cached */
		vm_page_wakeup(m);
		return;
	}
	if (PG[m].dirty) {
		panicf("vm_page_cache: caching a dirty page %d", m);
		return;
	}
	vm_page_protect(m, VM_PROT_NONE);
	if ((PG[m].flags & (PG_UNMANAGED | PG_MAPPED)) || PG[m].busy ||
	    PG[m].wire_count || PG[m].hold_count || PG[m].object < 0) {
		vm_page_wakeup(m);
		return;
	}
	if (PG[m].dirty) {
		vm_page_deactivate(m);
		vm_page_wakeup(m);
		return;
	}
	page_spin_lock(m, __func__);
	rem_queue_spinlocked(m);
	add_queue_spinlocked(m, PQ_CACHE + PG[m].pc, 0);
	page_spin_unlock(m, __func__);
	__atomic_fetch_add(&VMG->cnt.page_caches, 1, __ATOMIC_RELAXED);
	vm_page_wakeup(m);
	wakeup(IDENT_VM_FREE);
}

/*
 * _vm_page_deactivate_locked for a page found on queue class base, if it is
 * still there once its spinlock is held (its busy holder may have freed it
 * meanwhile): to the INACTIVE tail, heuristic++.
 */
static void
deactivate_if_on(int m, int base)
{
	page_spin_lock(m, __func__);
	if (PG[m].queue - PG[m].pc == base && PG[m].wire_count == 0 &&
	    !(PG[m].flags & PG_UNMANAGED)) {
		rem_queue_spinlocked(m);
		__atomic_fetch_and(&PG[m].flags, ~PG_WINATCFLS, __ATOMIC_SEQ_CST);
		add_queue_spinlocked(m, PQ_INACTIVE + PQ_FAN(m), 0);
	}
	page_spin_unlock(m, __func__);
}

/*
 * Busy the first page of the queues base+colour, starting at colour pc
 * (vm_page_select_free / vm_page_select_cache).  The queue spinlock is held
 * across vm_page_busy_try, which is only a CAS (rule 5 of the lock order).
 * A CACHE page that cannot be busied is deactivated (INACTIVE tail,
 * heuristic++) as the seed does, and the search goes on; a busy FREE page
 * (only a stale lookup busies one, briefly) is passed over.  Returns a
 * busied page, still on its queue, or -1.
 */
static int
select_from(int base, int pc)
{
	int k;

	for (k = 0; k < PQ_L2_SIZE; k++) {
		int q = base + ((pc + k) & (PQ_L2_SIZE - 1)), m, tries = 0;

		while (PQS[q].head >= 0) {
			int busy = -1;

			vm_page_queues_spin_lock(q);
			for (m = PQS[q].head; m >= 0; m = PG[m].pq_next) {
				if (PG[m].flags & PG_MARKER)
					continue;
				if (vm_page_busy_try(m, 1) == 0)
					break;
				if (base == PQ_CACHE) {
					busy = m;
					m = -1;
					break;
				}
				if (++tries >= 8) {
					m = -1;
					break;
				}
			}
			vm_page_queues_spin_unlock(q);
			if (m >= 0)
				return m;
			if (busy < 0)
				break;
			deactivate_if_on(busy, PQ_CACHE);
			if (++tries >= 8)
				break;
		}
	}
	return -1;
}

/*
 * vm_page_alloc(o, pindex, req): a busied page (vm_page.c @seed).  From
 * FREE (by colour) while v_free_count > v_free_reserved (a system thread
 * may go below when CACHE is empty); else, for VM_ALLOC_NORMAL, a CACHE
 * page is reclaimed -- unmapped and vm_page_free'd, whose vm_page_remove
 * holds the page's object and may block, costing the caller its own tokens
 * -- and the allocation starts over.  A held or wired CACHE page is
 * deactivated instead.  Flags are reset to ZERO|BUSY|SBUSY (smpvm keeps
 * PG_WANTED too), valid and act_count to 0, and the page is inserted into o
 * (held by the caller) when o >= 0.  Returns -1 when memory is short, or on
 * an insert collision with VM_ALLOC_NULL_OK (the seed's "PAGE RACE", after
 * a blocking reclaim; a collision without it panics).
 */
int
vm_page_alloc(int o, uint64_t pindex, int req)
{
	struct vmstats *v = &VMG->vmstats;
	int m, pc;

	if (td == NULL) {
		panic("vm_page_alloc: not a thread");
		return -1;
	}
	if (o >= 0 && !object_held(o)) {
		panicf("vm_page_alloc: object %d not held", o);
		return -1;
	}
	if (td->kind == TDK_KTHREAD)            /* TDF_SYSTHREAD */
		req |= VM_ALLOC_SYSTEM;
	pc = (int)((pindex + (o >= 0 ? (uint64_t)o * 7 : 0)) &
	    (PQ_L2_SIZE - 1));
	for (;;) {
		if (v->v_free_count > v->v_free_reserved ||
		    ((req & VM_ALLOC_SYSTEM) && v->v_cache_count == 0 &&
		    v->v_free_count > 0)) {
			m = select_from(PQ_FREE, pc);
			if (m < 0)
				return -1;      /* raced empty, or all busy */
			/* a hold may have moved it to PQ_HOLD meanwhile */
			page_spin_lock(m, __func__);
			if (PG[m].queue - PG[m].pc == PQ_FREE &&
			    PG[m].hold_count == 0) {
				rem_queue_spinlocked(m);
				break;
			}
			page_spin_unlock(m, __func__);
			vm_page_wakeup(m);
			continue;
		}
		if (!(req & VM_ALLOC_NORMAL)) {
			pagedaemon_wakeup();    /* no pages: give up */
			return -1;
		}
		m = select_from(PQ_CACHE, pc);
		if (m < 0) {
			pagedaemon_wakeup();
			return -1;
		}
		if (PG[m].queue - PG[m].pc != PQ_CACHE ||
		    (PG[m].flags & PG_UNMANAGED) || PG[m].hold_count ||
		    PG[m].wire_count || PG[m].busy) {
			if (PG[m].queue - PG[m].pc == PQ_CACHE)
				vm_page_deactivate(m);
			vm_page_wakeup(m);
			continue;
		}
		pagedaemon_wakeup();            /* vm_page_select_cache's */
		if (PG[m].dirty) {
			panicf("vm_page_alloc: found dirty cache page %d", m);
			return -1;
		}
		vm_page_protect(m, VM_PROT_NONE);
		vm_page_free(m);        /* may block: vm_page_remove's hold */
	}
	PG[m].valid = 0;
	PG[m].dirty = 0;
	PG[m].act_count = 0;
	PG[m].md_modified = 0;
	PG[m].md_referenced = 0;
	PG[m].gen++;
	/*
	 * The seed keeps ZERO|BUSY|SBUSY.  smpvm also keeps PG_WANTED: a
	 * thread that looked the page up before it was freed may be asleep
	 * on it, and clearing WANTED here would lose its wakeup for good
	 * (no timeout).  With WANTED kept, our vm_page_wakeup wakes it and
	 * it re-checks, as every sleeper must.
	 */
	__atomic_fetch_and(&PG[m].flags,
	    PG_ZERO | PG_BUSY | PG_SBUSY | PG_WANTED, __ATOMIC_SEQ_CST);
	page_spin_unlock(m, __func__);
	__atomic_fetch_add(&VMG->cnt.page_allocs, 1, __ATOMIC_RELAXED);
	pagedaemon_wakeup();            /* it tests whether memory is short */
	if (o >= 0 && !vm_page_insert(m, o, pindex)) {
		vm_page_free(m);
		if (!(req & VM_ALLOC_NULL_OK))
			panicf("vm_page_alloc: object %d pindex %llu exists", o,
			    (unsigned long long)pindex);
		return -1;
	}
	return m;
}

/*
 * vm_page_count_severe(): memory is severely short (vm_page2.h @seed):
 * free+cache below v_free_severe, or free below v_free_reserved.
 */
int
vm_page_count_severe(void)
{
	struct vmstats *v = &VMG->vmstats;

	return v->v_free_severe > v->v_free_count + v->v_cache_count ||
	    v->v_free_reserved > v->v_free_count;
}

/* vm_page_count_target(): free+cache below v_free_target. */
int
vm_page_count_target(void)
{
	struct vmstats *v = &VMG->vmstats;

	return v->v_free_target > v->v_free_count + v->v_cache_count;
}

/*
 * vm_page_count_min(donotcount): free+cache below v_free_min + donotcount,
 * or free below v_free_reserved (vm_page2.h @seed, the form of
 * vm_page_count_severe).  The pagedaemon's "memory at its minimum".
 */
int
vm_page_count_min(int donotcount)
{
	struct vmstats *v = &VMG->vmstats;

	return (int)v->v_free_min + donotcount >
	    (int)(v->v_free_count + v->v_cache_count) ||
	    v->v_free_reserved > v->v_free_count;
}

/*
 * vm_paging_needed(): the pagedaemon should be woken: free+cache below
 * v_free_reserved + v_cache_min (vm_page2.h), the low-water mark, with
 * v_free_min the stop (vm_pageout.c @seed).  v_cache_min is smpvm's
 * npages / 32 + 8 at every size (vm_init): the seed's init zeroes it below
 * 2048 free pages, which on smpvm's small machines would leave the daemon
 * no cushion between its wakeup and the allocations' stall.
 */
int
vm_paging_needed(void)
{
	struct vmstats *v = &VMG->vmstats;

	return v->v_free_reserved + v->v_cache_min >
	    v->v_free_count + v->v_cache_count;
}

/*
 * pagedaemon_wakeup() (vm_pageout.c @seed): when paging is needed and the
 * caller is not the pagedaemon, wake it -- only if nobody has asked yet
 * (vm_pages_needed 0 -> 1); if somebody has and memory is at its minimum,
 * bump vm_pages_needed, the hint that more requests are pending (the
 * daemon then scans again without sleeping).  So a burst of allocations
 * costs one wakeup, not one each.  Racy on purpose, as the kernel's ("SMP
 * race ok"): a request lost to the daemon clearing vm_pages_needed is made
 * again by the next allocation, and the daemon's sleeps time out.  No
 * requirements; never blocks.
 */
void
pagedaemon_wakeup(void)
{
	uint32_t needed;

	if (!vm_paging_needed() ||
	    (td != NULL && curtid == __atomic_load_n(&VMG->pagethread,
	    __ATOMIC_RELAXED)))
		return;
	needed = __atomic_load_n(&VMG->vm_pages_needed, __ATOMIC_RELAXED);
	if (needed == 0) {
		__atomic_store_n(&VMG->vm_pages_needed, 1, __ATOMIC_RELAXED);
		wakeup(IDENT_PAGEDAEMON);
	} else if (vm_page_count_min(0)) {
		__atomic_store_n(&VMG->vm_pages_needed, needed + 1,
		    __ATOMIC_RELAXED);
	}
}

/* ---- queue walking for markers (caller holds the queue spinlock) -------- */
#define NEED_QLOCK(fn, q, rv) do {                                      \
	if (td == NULL || (uint32_t)(q) >= PQ_COUNT || !queue_locked(q)) {\
		panicf(fn ": queue %d spinlock not held", (int)(q));    \
		return rv;                                              \
	}                                                               \
} while (0)

/* This thread's k-th marker page: BUSY|FICTITIOUS|MARKER, wire_count 1. */
int
vm_page_marker(int k)
{
	if (td == NULL || k < 0 || k >= VM_MARKERS_PER_THREAD)
		return -1;
	return (int)NPAGES + curtid * VM_MARKERS_PER_THREAD + k;
}

/* Static marker q (swapcached's page_marker[q]), the same for every thread. */
int
vm_page_static_marker(int q)
{
	if (q < 0 || q >= VM_STATIC_MARKERS)
		return -1;
	return (int)NPAGES + (int)H->cfg.maxthreads * VM_MARKERS_PER_THREAD + q;
}

int
vm_page_queue_first(int q)
{
	NEED_QLOCK("vm_page_queue_first", q, -1);
	return PQS[q].head;
}

/* TAILQ_NEXT(m, pageq); m must be on queue q. */
int
vm_page_queue_next(int q, int m)
{
	NEED_QLOCK("vm_page_queue_next", q, -1);
	if (PG[m].queue != q) {
		panicf("vm_page_queue_next: page %d on queue %d, not %d", m,
		    PG[m].queue, q);
		return -1;
	}
	return PG[m].pq_next;
}

void
vm_page_marker_insert_head(int q, int marker)
{
	NEED_QLOCK("vm_page_marker_insert_head", q, NORV);
	if (!(PG[marker].flags & PG_MARKER) || PG[marker].queue != PQ_NONE) {
		panicf("vm_page_marker_insert_head: page %d is no free marker",
		    marker);
		return;
	}
	PG[marker].queue = (uint16_t)q;
	pq_insert_head(q, marker);
}

void
vm_page_marker_insert_tail(int q, int marker)
{
	NEED_QLOCK("vm_page_marker_insert_tail", q, NORV);
	if (!(PG[marker].flags & PG_MARKER) || PG[marker].queue != PQ_NONE) {
		panicf("vm_page_marker_insert_tail: page %d is no free marker",
		    marker);
		return;
	}
	PG[marker].queue = (uint16_t)q;
	pq_insert_tail(q, marker);
}

/* TAILQ_REMOVE marker; TAILQ_INSERT_AFTER(after, marker). */
void
vm_page_marker_move_after(int q, int marker, int after)
{
	NEED_QLOCK("vm_page_marker_move_after", q, NORV);
	if (!(PG[marker].flags & PG_MARKER) || PG[after].queue != q ||
	    PG[marker].queue != q) {
		panicf("vm_page_marker_move_after: %d is no marker or %d not "
		    "on queue %d", marker, after, q);
		return;
	}
	pq_remove(q, marker);
	pq_insert_after(q, after, marker);
}

void
vm_page_marker_remove(int q, int marker)
{
	NEED_QLOCK("vm_page_marker_remove", q, NORV);
	if (PG[marker].queue != q) {
		panicf("vm_page_marker_remove: page %d is not on queue %d",
		    marker, q);
		return;
	}
	pq_remove(q, marker);
	PG[marker].queue = PQ_NONE;
}

/* ---- swap: the blist allocator (vm_token) ---------------------------------- */
static int
blist_alloc(int n)
{
	uint32_t nleaf = (H->cfg.nswap + 31) / 32, l;
	uint32_t want = n >= 32 ? 0xffffffffu : ((1u << n) - 1);

	for (l = 0; l < nleaf; l++) {
		uint32_t w = BL[l], s;

		if (w == 0xffffffffu)
			continue;
		for (s = 0; s + (uint32_t)n <= 32; s++) {
			if ((w & (want << s)) == 0) {
				BL[l] = w | (want << s);
				return (int)(l * 32 + s);
			}
		}
	}
	return SWAPBLK_NONE;
}

static void
blist_free(int blk, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		uint32_t b = (uint32_t)(blk + i);

		if (!(BL[b / 32] & (1u << (b % 32)))) {
			panicf("blist_free: block %u not allocated", b);
			return;
		}
		BL[b / 32] &= ~(1u << (b % 32));
	}
}

static inline int64_t *
use_counter(int o)
{
	return OBJ[o].type == OBJT_SWAP ? &VMG->vm_swap_anon_use :
	    &VMG->vm_swap_cache_use;
}

/*
 * swp_pager_getswapspace(o, n): n contiguous blocks inside one 32-block
 * leaf, under vm_token (which may block and cost the caller its other
 * tokens).  Accounts by o's type.  SWAPBLK_NONE when full.
 */
/*
 * swp_sizecheck: swap_pager_almost_full with the seed's lowat/hiwat
 * hysteresis (128/512 pages); swap_pager_full is cleared at hiwat.
 * vm_token held.
 */
static void
swp_sizecheck(void)
{
	if (VMG->vm_swap_size < 128) {
		VMG->swap_pager_almost_full = 1;
	} else if (VMG->vm_swap_size > 512) {
		VMG->swap_pager_almost_full = 0;
		VMG->swap_pager_full = 0;
	}
}

int
swp_pager_getswapspace(int o, int n)
{
	int blk;

	CHECK_OBJ("swp_pager_getswapspace", o, SWAPBLK_NONE);
	lwkt_gettoken(TOK_VM);
	blk = blist_alloc(n);
	if (blk == SWAPBLK_NONE) {
		VMG->swap_pager_full = 2;
		VMG->swap_pager_almost_full = 1;
		__atomic_fetch_add(&VMG->cnt.swap_alloc_fail, 1,
		    __ATOMIC_RELAXED);
	} else {
		RACE_CHK(SK_VMG, struct vm_globals, 0, vm_swap_size, 1);
		VMG->vm_swap_size -= n;
		VMG->sw_nused += n;
		*use_counter(o) += n;
		swp_sizecheck();
	}
	lwkt_reltoken(TOK_VM);
	return blk;
}

/* swp_pager_freeswapspace(o, blk, n): under vm_token, which may block. */
void
swp_pager_freeswapspace(int o, int blk, int n)
{
	CHECK_OBJ("swp_pager_freeswapspace", o, NORV);
	lwkt_gettoken(TOK_VM);
	VMG->sw_nused -= n;
	*use_counter(o) -= n;
	blist_free(blk, n);
	RACE_CHK(SK_VMG, struct vm_globals, 0, vm_swap_size, 1);
	VMG->vm_swap_size += n;
	swp_sizecheck();
	lwkt_reltoken(TOK_VM);
}

/* ---- swap metadata (the object's token) -------------------------------------- */
static inline int
swb_bucket(uint64_t idx)
{
	return (int)((idx / SWAP_META_PAGES) & (OBJ_SWBHASH - 1));
}

static int
swp_pager_lookup(int o, uint64_t pindex)
{
	uint64_t base = pindex & ~(uint64_t)SWAP_META_MASK;
	int s;

	for (s = OBJ[o].swbhash[swb_bucket(base)]; s >= 0; s = SWB[s].swb_next)
		if (SWB[s].swb_index == base)
			return s;
	return -1;
}

static int
swp_pager_meta_lookup(int o, uint64_t pindex)
{
	int s = swp_pager_lookup(o, pindex);

	return s < 0 ? SWAPBLK_NONE :
	    SWB[s].swb_pages[pindex & SWAP_META_MASK];
}

/* swp_pager_remove: take swblock s out of o's tree (o held). */
static void
swb_unlink(int o, int s)
{
	int *pp;

	for (pp = &OBJ[o].swbhash[swb_bucket(SWB[s].swb_index)]; *pp >= 0;
	    pp = &SWB[*pp].swb_next) {
		if (*pp == s) {
			*pp = SWB[s].swb_next;
			break;
		}
	}
}

/* zfree(swap_zone, s); --object->swblock_count (o held). */
static void
swb_zfree(int o, int s)
{
	OBJ[o].swblock_count--;
	SWB[s].swb_object = -1;
	spin_lock((int)H->cfg.spin_pool + SPIN_NAMED_SWAPZONE);
	SWB[s].swb_next = VMG->swb_free_head;
	VMG->swb_free_head = s;
	spin_unlock((int)H->cfg.spin_pool + SPIN_NAMED_SWAPZONE);
}

static void
swb_destroy(int o, int s)
{
	swb_unlink(o, s);
	swb_zfree(o, s);
}

static int
swb_create(int o, uint64_t base)
{
	int s, b, i;

	spin_lock((int)H->cfg.spin_pool + SPIN_NAMED_SWAPZONE);
	s = VMG->swb_free_head;
	if (s >= 0)
		VMG->swb_free_head = SWB[s].swb_next;
	spin_unlock((int)H->cfg.spin_pool + SPIN_NAMED_SWAPZONE);
	if (s < 0) {
		panic("swp_pager_meta_build: swap zone exhausted");
		return -1;
	}
	SWB[s].swb_object = o;
	SWB[s].swb_index = base;
	SWB[s].swb_count = 0;
	for (i = 0; i < SWAP_META_PAGES; i++)
		SWB[s].swb_pages[i] = SWAPBLK_NONE;
	b = swb_bucket(base);
	SWB[s].swb_next = OBJ[o].swbhash[b];
	OBJ[o].swbhash[b] = s;
	OBJ[o].swblock_count++;
	return s;
}

#define NEED_OBJ_HELD(fn, o, rv) do {                                   \
	CHECK_OBJ(fn, o, rv);                                           \
	if (td == NULL || !object_held(o)) {                            \
		panicf(fn ": object %d not held", (int)(o));            \
		return rv;                                              \
	}                                                               \
} while (0)

/*
 * swp_pager_meta_build(o, pindex, blk): o held.  DEFAULT becomes SWAP.
 * Finds or creates the swblock, frees any block already recorded for
 * pindex (swp_pager_freeswapspace may block on vm_token: o's token can be
 * lost there), and records blk.
 *
 * BUG_META_BUILD_FREE_FIRST (the seed): the old block is freed while it is
 * still recorded and swb_count still counts it, and both are updated after
 * the blocking free -- on a swblock that another thread may have emptied
 * and destroyed meanwhile.  Fixed (0301c40799): the entry is cleared
 * first, swb_count decremented after the free (so the swblock cannot be
 * destroyed under us), and the entry re-checked.
 */
void
swp_pager_meta_build(int o, uint64_t pindex, int blk)
{
	int s, i, v;

	NEED_OBJ_HELD("swp_pager_meta_build", o, NORV);
	if (OBJ[o].type == OBJT_DEFAULT)
		OBJ[o].type = OBJT_SWAP;
	s = swp_pager_lookup(o, pindex);
	if (s < 0)
		s = swb_create(o, pindex & ~(uint64_t)SWAP_META_MASK);
	if (s < 0)
		return;
	i = (int)(pindex & SWAP_META_MASK);
	if (VMG->bugs & BUG_META_BUILD_FREE_FIRST) {
		if (SWB[s].swb_pages[i] != SWAPBLK_NONE) {
			swp_pager_freeswapspace(o, SWB[s].swb_pages[i], 1);
			--SWB[s].swb_count;
		}
	} else {
		while ((v = SWB[s].swb_pages[i]) != SWAPBLK_NONE) {
			SWB[s].swb_pages[i] = SWAPBLK_NONE;
			swp_pager_freeswapspace(o, v, 1);      /* can block */
			--SWB[s].swb_count;
		}
	}
	RACE_CHK(SK_SWBLOCK, struct swblock, s, swb_pages, 1);
	SWB[s].swb_pages[i] = blk;
	if (blk != SWAPBLK_NONE)
		++SWB[s].swb_count;
}

/*
 * swp_pager_meta_ctl(o, pindex, flags): o held.  Returns the block (or
 * SWAPBLK_NONE).  SWM_FREE / SWM_POP clear the entry (destroying an
 * emptied swblock); SWM_FREE also frees the block and returns NONE.
 */
int
swp_pager_meta_ctl(int o, uint64_t pindex, int flags)
{
	int s, i, r;

	NEED_OBJ_HELD("swp_pager_meta_ctl", o, SWAPBLK_NONE);
	s = swp_pager_lookup(o, pindex);
	if (s < 0)
		return SWAPBLK_NONE;
	i = (int)(pindex & SWAP_META_MASK);
	r = SWB[s].swb_pages[i];
	if (r != SWAPBLK_NONE && (flags & (SWM_FREE | SWM_POP))) {
		SWB[s].swb_pages[i] = SWAPBLK_NONE;
		RACE_CHK(SK_SWBLOCK, struct swblock, s, swb_count, 1);
		if (--SWB[s].swb_count == 0)
			swb_destroy(o, s);
		if (flags & SWM_FREE) {
			swp_pager_freeswapspace(o, r, 1);
			r = SWAPBLK_NONE;
		}
	}
	return r;
}

/*
 * The (at most max) swblocks of o with the lowest swb_index that overlap
 * [lo, hi), sorted by index.  o held.
 */
static int
swb_range(int o, uint64_t lo, uint64_t hi, int *out, int max)
{
	int b, s, n = 0, j;

	for (b = 0; b < OBJ_SWBHASH; b++) {
		for (s = OBJ[o].swbhash[b]; s >= 0; s = SWB[s].swb_next) {
			if (SWB[s].swb_index + SWAP_META_PAGES <= lo ||
			    SWB[s].swb_index >= hi)
				continue;
			if (n == max) {
				if (SWB[out[n - 1]].swb_index <= SWB[s].swb_index)
					continue;
				n--;            /* drop the highest */
			}
			for (j = n; j > 0 && SWB[out[j - 1]].swb_index >
			    SWB[s].swb_index; j--)
				out[j] = out[j - 1];
			out[j] = s;
			n++;
		}
	}
	return n;
}

/*
 * swp_pager_meta_free(o, start, count): o held.  Clears every entry in
 * [start, start+count) and frees its block: a range free (truncation,
 * condfree, a partial vm_object_page_remove).  The blocks are freed by
 * swp_pager_freeswapspace, which may block and lose o's token.
 *
 * BUG_RANGE_FREE_INTERLEAVED (the seed, and upstream after 0301c40799):
 * swp_pager_meta_free_callback, entry by entry, each cleared entry's block
 * freed at once -- a blocking point between entries (hazard H2: a page
 * inserted meanwhile gets PG_SWAPPED from an entry about to vanish).
 * Without it (smpvm's fix of H2): every entry of the range is detached
 * first, with no blocking point in between, then the blocks are freed.
 *
 * BUG_SWBLOCK_LEAK (the seed's defect (g), fixed by 0301c40799): when a
 * swblock empties, it is destroyed and the block of its last entry is
 * never freed (it stays allocated and counted in vm_swap_cache_use).
 */
void
swp_pager_meta_free(int o, uint64_t start, uint64_t count)
{
	int list[256], n, k, nfree = 0, *freed = NULL, cap = 0;
	uint64_t end = start + count;
	int interleaved = (VMG->bugs & BUG_RANGE_FREE_INTERLEAVED) != 0;
	int leak = (VMG->bugs & BUG_SWBLOCK_LEAK) != 0;

	NEED_OBJ_HELD("swp_pager_meta_free", o, NORV);
	if (OBJ[o].swblock_count == 0 || count == 0)
		return;
	for (;;) {
		n = swb_range(o, start, end, list, 256);
		if (n == 0)
			break;
		for (k = 0; k < n; k++) {
			int s = list[k], i;
			uint64_t base;

			if (SWB[s].swb_object != o)
				continue;       /* destroyed while we blocked */
			base = SWB[s].swb_index;
			for (i = 0; i < SWAP_META_PAGES; i++) {
				uint64_t idx = base + (uint64_t)i;
				int v, last;

				if (idx < start || idx >= end)
					continue;
				v = SWB[s].swb_pages[i];
				if (v == SWAPBLK_NONE)
					continue;
				SWB[s].swb_pages[i] = SWAPBLK_NONE;
				__atomic_fetch_add(&VMG->cnt.range_freed, 1,
				    __ATOMIC_RELAXED);
				if (race_on)
					race_swap_freed(o, idx, __func__);
				if (interleaved && !leak) {
					/* 0301c40799: free, then count */
					swp_pager_freeswapspace(o, v, 1);
					v = SWAPBLK_NONE;
				}
				RACE_CHK(SK_SWBLOCK, struct swblock, s,
				    swb_count, 1);
				last = --SWB[s].swb_count == 0;
				if (last) {
					swb_destroy(o, s);
					if (leak)
						v = SWAPBLK_NONE;   /* (g) */
				}
				if (v == SWAPBLK_NONE) {
					/* freed above, or leaked */
				} else if (interleaved) {
					/*
					 * The seed's order: counted down, then
					 * freed (can block); another holder of o
					 * may empty and free the swblock meanwhile
					 * and we go on with it (the zfree race
					 * 0301c40799 also fixes).
					 */
					swp_pager_freeswapspace(o, v, 1);
					if (race_on && (SWB[s].swb_object != o ||
					    SWB[s].swb_index != base))
						race_use_after_free(SK_SWBLOCK, s,
						    __func__, "swp_pager_meta_free"
						    "_callback after its blocking "
						    "free");
				} else {
					if (nfree == cap) {
						cap = cap ? 2 * cap : 256;
						freed = realloc(freed,
						    (size_t)cap * sizeof(int));
					}
					freed[nfree++] = v;
				}
				if (last)
					break;
			}
			if (base + SWAP_META_PAGES > start)
				start = base + SWAP_META_PAGES;
		}
		if (start >= end)
			break;
	}
	for (k = 0; k < nfree; k++)
		swp_pager_freeswapspace(o, freed[k], 1);
	free(freed);
}

/*
 * swp_pager_meta_free_all(o): o held.  Destroys all of o's swap metadata
 * (vnode_pager_dealloc, vm_object_page_remove of a whole object): each
 * swblock is taken out of the tree first, then every block of it is freed
 * (each free may block; nobody can see the detached swblock meanwhile).
 * No leak in either variant: the seed's meta_free_all frees every block.
 * 0301c40799 only moved the count decrement after the free, which no one
 * can observe on a detached swblock.
 */
void
swp_pager_meta_free_all(int o)
{
	int b, s, i;

	NEED_OBJ_HELD("swp_pager_meta_free_all", o, NORV);
	for (;;) {
		s = -1;
		for (b = 0; b < OBJ_SWBHASH && s < 0; b++)
			s = OBJ[o].swbhash[b];
		if (s < 0)
			break;
		swb_unlink(o, s);
		for (i = 0; i < SWAP_META_PAGES; i++) {
			int v = SWB[s].swb_pages[i];

			if (v != SWAPBLK_NONE) {
				SWB[s].swb_pages[i] = SWAPBLK_NONE;
				--SWB[s].swb_count;
				swp_pager_freeswapspace(o, v, 1);
			}
		}
		if (SWB[s].swb_count != 0) {
			panicf("swap_pager_meta_free_all: swb_count %d != 0",
			    SWB[s].swb_count);
			return;
		}
		swb_zfree(o, s);
	}
	if (OBJ[o].swblock_count != 0)
		panicf("swap_pager_meta_free_all: object %d swblock_count %u", o,
		    OBJ[o].swblock_count);
}

/* swap_pager_freespace(o, start, n): holds o and frees the range's swap.
 * PG_SWAPPED of resident pages is not cleared (swap_pager.c @seed). */
void
swap_pager_freespace(int o, uint64_t start, uint64_t n)
{
	object_hold(o, __func__);
	swp_pager_meta_free(o, start, n);
	vm_object_drop(o);
}

void
swap_pager_freespace_all(int o)
{
	object_hold(o, __func__);
	swp_pager_meta_free_all(o);
	vm_object_drop(o);
}

/* The block of (o, pindex) for the protocol checks (race.c): no checks. */
HIDDEN int
swap_meta_peek(int o, uint64_t pindex)
{
	return swp_pager_meta_lookup(o, pindex);
}

/* swp_pager_meta_lookup for Python: o held. */
int
swap_pager_meta_lookup(int o, uint64_t pindex)
{
	NEED_OBJ_HELD("swap_pager_meta_lookup", o, SWAPBLK_NONE);
	return swp_pager_meta_lookup(o, pindex);
}

/*
 * swap_pager_unswapped(m): m busy or soft-busy.  Only if PG_SWAPPED is set:
 * hold the object, free the assignment (SWM_FREE), clear PG_SWAPPED.
 */
void
swap_pager_unswapped(int m)
{
	int o;

	CHECK_PAGE("swap_pager_unswapped", m, NORV);
	if (!(PG[m].flags & (PG_BUSY | PG_SBUSY))) {
		panicf("swap_pager_unswapped: page %d not busy", m);
		return;
	}
	if (!(PG[m].flags & PG_SWAPPED))
		return;
	o = PG[m].object;
	if (o < 0)
		return;
	object_hold(o, __func__);
	swp_pager_meta_ctl(o, PG[m].pindex, SWM_FREE);
	__atomic_fetch_and(&PG[m].flags, ~PG_SWAPPED, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&VMG->cnt.unswapped, 1, __ATOMIC_RELAXED);
	vm_object_drop(o);
}

/*
 * swap_pager_condfree(o, &basei, count): o held.  Visits o's swblocks from
 * *basei on, in index order (the RB_SCAN of swap_pager.c @seed with
 * rb_swblock_condcmp); a swblock none of whose 32 pages is resident is freed
 * whole (swap_pager_freespace, which may block on vm_token).  Budgets, as the
 * seed's struct swfreeinfo keeps them in vm_pindex_t (unsigned 64-bit):
 * begi = count swap pages, endi = count*8 swblocks; the scan stops once
 * (int)begi or (int)endi goes negative, with lwkt_yield between swblocks.
 * *basei is the resume point.
 *
 * Returns, with BUG_CONDFREE_UNCHARGED (the seed): count - (int)begi, the
 * pages freed -- 0 when nothing was freed, however many swblocks were
 * visited (defect (e): the seed's "if (info.endi < 0 ...)" is dead code on
 * an unsigned endi).  Fixed (08fb7a9da0): the larger of the pages freed
 * and the swblocks visited, at least 1.
 *
 * smpvm's cleaning meter: the call, the swblocks visited, the pages freed
 * and the fixed variant's charge are added to the pass in progress
 * (vm_counters.clean_pass_*).  A call that starts when the objects the pass
 * reached plus the fixed charges so far have used up its budget marks the
 * pass as overrun: under the fix its count would have run out first.
 */
int
swap_pager_condfree(int o, uint64_t *basei, int count)
{
	uint64_t begi = (uint64_t)(int64_t)count;      /* max swap pages */
	uint64_t endi = (uint64_t)(int64_t)(count * 8); /* max swblocks */
	struct vm_counters *c = &VMG->cnt;
	int n, t;

	NEED_OBJ_HELD("swap_pager_condfree", o, 0);
	/*
	 * clean_pass_charge holds what the pass's count has been charged so far
	 * under the fix (vm_swapcache_cleaning adds its per-object units).  A
	 * pass that obeys it enters condfree with some budget left -- at least 1
	 * while "--count <= 0" ends it, at least 0 since 0bf8126181 moved that
	 * test to scount and only "count < 0" ends it.
	 */
	if (c->clean_pass_charge + (VMG->version >= KV_0BF8126181 ? 0 : 1) >
	    c->clean_pass_budget)
		c->clean_pass_overran = 1;
	c->clean_pass_condfrees++;
	for (;;) {
		int s = -1, b, x, i, resident = 0;
		uint64_t best = ~0ull, base;

		for (b = 0; b < OBJ_SWBHASH; b++)
			for (x = OBJ[o].swbhash[b]; x >= 0; x = SWB[x].swb_next)
				if (SWB[x].swb_index >= *basei &&
				    SWB[x].swb_index < best) {
					best = SWB[x].swb_index;
					s = x;
				}
		if (s < 0)
			break;
		/* swap_pager_condfree_callback */
		base = SWB[s].swb_index;
		for (i = 0; i < SWAP_META_PAGES && !resident; i++)
			resident = vm_page_lookup(o, base + (uint64_t)i) >= 0;
		*basei = base + SWAP_META_PAGES;
		if (!resident) {
			begi -= (uint64_t)(int64_t)SWB[s].swb_count;
			c->clean_pass_freed += (uint64_t)SWB[s].swb_count;
			swap_pager_freespace(o, base, SWAP_META_PAGES);
		}
		--endi;
		c->clean_pass_swblocks++;
		if ((int)begi < 0 || (int)endi < 0)
			break;
		lwkt_yield();
	}
	n = count - (int)begi;
	/* 08fb7a9da0: take the higher difference swblocks vs pages */
	t = count * 8 - (int)endi;
	if (t < n)
		t = n;
	if (t < 1)
		t = 1;
	c->clean_pass_charge += (uint64_t)t;
	if (VMG->bugs & BUG_CONDFREE_UNCHARGED)
		return n;
	return t;
}

/* Physical offset of page m's contents inside REG_PHYS. */
uint64_t
vm_page_phys(int m)
{
	return (uint64_t)m * PAGE_SIZE;
}
