/*
 * pageout.c - the pageout daemon's scans (sys/vm/vm_pageout.c), reduced as
 * smpvm/vm/vm_pageout.py's docstring describes: vm_pageout_scan_inactive,
 * vm_pageout_scan_active, the seed's vm_pageout_scan and 027193eb61's
 * per-queue loop (vm_pageout_scan_queues), for every kernel version (the
 * version is vm_globals.version, KV_*).  The daemon's loop, which runs at
 * 10 Hz, stays Python (vm_pageout_thread).
 *
 * Each function is the C transliteration of the Python it replaced,
 * statement for statement: the same primitives (vm.c, smpvm.c) called in
 * the same order with the same arguments, so every lock operation, busy
 * try, atomic, yield and wakeup -- every preemption point of a
 * deterministic schedule -- is where it was.
 *
 * The Python read and wrote page, queue, object and vm_globals fields
 * through the views of smpvm/vm/vmview.py; on a machine checked for fields
 * or happens-before each such access was a preemption point (HOOK_ACCESS)
 * followed by a field check.  PY_READ/PY_STORE below make the same access,
 * in the same order, with the same check (race_access, the views' own
 * entry): a read the view checks (a field with an @R protector), every
 * store.  The value is read before the point and a store made after it, as
 * the views do (the pattern of csrc/bio.c).  vmstats and the counters were
 * unchecked views (raw) and are read here directly.
 *
 * Why C: on the 256-queue kernels every pass walks 256 INACTIVE and 256
 * ACTIVE queues, a marker inserted and removed in each under its spinlock;
 * in Python the pagedaemon took as much host CPU as two CPU processes.
 *
 * The laundering of a dirty page writes it through vnode_pager_putpage
 * (bio.c); its backing file's descriptor is this process's, cached by
 * Python (smpvm/vfs/vnode.py backing_fd), which C asks through
 * vm_pageout_set_fd_fn's callback.  A host I/O error or an exception of
 * that callback ends the scan where the Python's exception did (the object
 * dropped, nothing else undone); the Python wrapper then raises it.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "smpvm_priv.h"

#define INACTIVE_MARKER 0       /* this thread's marker k=0: the inactive scans */
#define ACTIVE_MARKER   1
#define VM_MAX_LAUNDER  32      /* vm_max_launder @seed */
#define NULLPG          (-1)

#define SINCE(kv)       (VMG->version >= (kv))

/* ---- the Python views' field accesses, from C ------------------------------ */
/* (the page fields' names are their members', for PAGE_READ) */
enum { F_PG_flags, F_PG_hold_count, F_PG_wire_count, F_PG_object, F_PG_queue,
	F_PG_pc, F_PG_md_referenced, F_PG_act_count, F_PG_dirty, F_PG_valid,
	F_PQ_LCNT, F_OBJ_HANDLE, F_OBJ_TYPE, F_OBJ_FLAGS, F_VMG_HEURISTIC,
	F_NPYF };
static const char *const pyf_name[F_NPYF][2] = {
	[F_PG_flags] = {"vm_page", "flags"},
	[F_PG_hold_count] = {"vm_page", "hold_count"},
	[F_PG_wire_count] = {"vm_page", "wire_count"},
	[F_PG_object] = {"vm_page", "object"},
	[F_PG_queue] = {"vm_page", "queue"},
	[F_PG_pc] = {"vm_page", "pc"},
	[F_PG_md_referenced] = {"vm_page", "md_referenced"},
	[F_PG_act_count] = {"vm_page", "act_count"},
	[F_PG_dirty] = {"vm_page", "dirty"},
	[F_PG_valid] = {"vm_page", "valid"},
	[F_PQ_LCNT] = {"vpgqueues", "lcnt"},
	[F_OBJ_HANDLE] = {"vm_object", "handle"},
	[F_OBJ_TYPE] = {"vm_object", "type"},
	[F_OBJ_FLAGS] = {"vm_object", "flags"},
	[F_VMG_HEURISTIC] = {"vm_globals", "vm_swapcache_inactive_heuristic"},
};
static int pyf_id[F_NPYF];
static int pyf_rd[F_NPYF];              /* the view checks its reads     */
static int pyf_resolved;

/*
 * The site of an access, "pageout.c:<line>:<function>" as the views name
 * theirs ("vm_pageout.py:<line>:<function>"), so that race reports and the
 * hunt's alias coverage still tell the scans' accesses apart.  Interned
 * once per machine (a later machine may be mapped at the same address:
 * its creation time tells it apart).
 */
struct pysite {
	const struct smpvm_header *h;
	uint64_t created_ns;
	uint32_t id;
};

static uint32_t
py_site(struct pysite *s, const char *func, int line)
{
	char text[120];

	if (s->h != H || s->created_ns != H->created_ns) {
		snprintf(text, sizeof(text), "pageout.c:%d:%s", line, func);
		s->id = (uint32_t)prof_site_intern(text);
		s->h = H;
		s->created_ns = H->created_ns;
	}
	return s->id;
}

static void
py_access(int k, int idx, int write, uint64_t value, struct pysite *site,
    const char *func, int line)
{
	if (!pyf_resolved) {        /* the generated table's: any machine's */
		py_view_fields(pyf_name, F_NPYF, pyf_id, pyf_rd);
		pyf_resolved = 1;
	}
	if (pyf_id[k] >= 0 && (write || pyf_rd[k]))
		race_access(pyf_id[k], idx, write, value,
		    py_site(site, func, line));
}

/* v = field, as `x = v.pages[idx].field` reads it (value first, then the
 * point and the check); signed fields keep their sign */
#define PY_READ(k, idx, lval) ({                                         \
	static struct pysite _site;                                     \
	__typeof__(lval) _r = (lval);                                   \
	if (PY_VIEWS_CHECKED())                                         \
		py_access((k), (idx), 0, (uint64_t)(int64_t)_r, &_site, \
		    __func__, __LINE__);                                \
	_r; })
/* field = v, as `v.pages[idx].field = v` stores it (a plain store: 2; the
 * view passes the Python int's 64-bit two's complement) */
#define PY_STORE(k, idx, lval, v) do {                                   \
	static struct pysite _site;                                     \
	int64_t _v = (int64_t)(v);                                      \
	if (PY_VIEWS_CHECKED())                                         \
		py_access((k), (idx), 2, (uint64_t)_v, &_site, __func__,\
		    __LINE__);                                          \
	(lval) = (__typeof__(lval))_v;                                  \
} while (0)

#define PAGE_READ(f, m)         PY_READ(F_PG_##f, (m), PG[m].f)
#define COUNTER_ADD(field, n)                                            \
	atomic_fetchadd_long(&VMG->cnt.field, (uint64_t)(n))

/* ---- the scan's abort: a host error or a failed callback ---------------------- */
static pageout_fd_fn fd_fn;
static int po_error;            /* errno of a host error, -1 a callback's */

void
vm_pageout_set_fd_fn(pageout_fd_fn fn)
{
	fd_fn = fn;
}

/* Why the last scan of this process stopped early (0: it did not); reading
 * it clears it.  -1: the descriptor callback failed (Python holds its
 * exception), else the errno of the host write. */
int
vm_pageout_take_error(void)
{
	int e = po_error;

	po_error = 0;
	return e;
}

/* A scan stops where the Python raised: a panic of this machine (Python's
 * Panic at the return of the primitive), or a launder that failed. */
#define SCAN_STOPPED()  (__builtin_expect(po_error != 0 || H->panicking, 0))

/* ---- helpers ------------------------------------------------------------------ */

/*
 * vm_paging_target(): pages to reclaim, free+cache below v_free_target.
 * No lock (the counts are atomics, read as the kernel reads them).
 */
int
vm_paging_target(void)
{
	struct vmstats *s = &VMG->vmstats;

	return (int)s->v_free_target - (int)s->v_free_count -
	    (int)s->v_cache_count;
}

/*
 * vm_pageout_thread_init(): the calling thread is the pagedaemon
 * (pagethread), whose own page operations do not wake it.
 */
void
vm_pageout_thread_init(void)
{
	if (td == NULL) {
		panic("vm_pageout_thread_init: not a thread");
		return;
	}
	__atomic_store_n(&VMG->pagethread, curtid, __ATOMIC_RELAXED);
}

/* 51c99c6153: n spread over the PQ_L2_SIZE queues, rounded away from zero,
 * plus one. */
static int
PQAVERAGE(int n)
{
	int size = (int)VMG->pq_l2_size;

	if (n >= 0)
		return (n + (size - 1)) / size + 1;
	return (n - (size - 1)) / size - 1;
}

/* ++vm_swapcache_inactive_heuristic (racy by design, H5); wraps as the
 * kernel's int does. */
static void
bump_heuristic(void)
{
	int32_t h = PY_READ(F_VMG_HEURISTIC, 0,
	    VMG->vm_swapcache_inactive_heuristic);

	PY_STORE(F_VMG_HEURISTIC, 0, VMG->vm_swapcache_inactive_heuristic,
	    (int32_t)((uint32_t)h + 1u));
}

/* if (m->queue - m->pc == PQ_INACTIVE) { TAILQ_REMOVE; TAILQ_INSERT_TAIL;
 * [64949baad7: ++heuristic] } [until then: ++heuristic].  m busied. */
static void
requeue_inactive(int m)
{
	int moved = vm_page_requeue(m, PQ_INACTIVE);

	if (moved || !SINCE(KV_64949BAAD7))
		bump_heuristic();
}

/* The pmap's and the VM's reference bits of busied page m cleared. */
static void
clear_referenced(int m)
{
	vm_page_flag_clear(m, PG_REFERENCED);
	PY_STORE(F_PG_md_referenced, m, PG[m].md_referenced, 0);
}

/*
 * One step of a scan's loop head: under queue qq's spinlock, m =
 * TAILQ_NEXT(marker); unless the budget says stop (*maxscan-- > 0 and the
 * scan's own condition `more`, evaluated only then), move the marker past
 * m and try to busy it.  Another thread's marker is stepped over without
 * charging maxscan (smpvm's deviation: upstream charges maxscan for it --
 * harmless with thousands of pages a queue, but on smpvm's machines of a
 * page or two per queue swapcached's page_marker[q] would eat a queue's
 * whole maxscan and the pagedaemon would free nothing).  The caller holds
 * no lock.  Returns m (NULLPG at the end of the queue or when the scan
 * stops); *busied 0 for a busy page.
 */
static int
next_busied(int qq, int marker, int *maxscan, int more, int *busied)
{
	int m;

	*busied = 0;
	vm_page_queues_spin_lock(qq);
	for (;;) {
		m = vm_page_queue_next(qq, marker);
		if (m == NULLPG || !(PAGE_READ(flags, m) & PG_MARKER))
			break;
		vm_page_marker_move_after(qq, marker, m);
	}
	if (m == NULLPG || !((*maxscan)-- > 0 && more) || H->panicking) {
		vm_page_queues_spin_unlock(qq);
		return NULLPG;
	}
	vm_page_marker_move_after(qq, marker, m);
	COUNTER_ADD(pageout_pass_pdpages, 1);           /* v_pdpages */
	*busied = vm_page_busy_try(m, 1) == 0;
	vm_page_queues_spin_unlock(qq);
	return m;
}

/* This thread's marker k at the head of queue qq; returns it, *lcnt the
 * queue's count, read under the queue's spinlock. */
static int
insert_marker(int qq, int k, int *lcnt)
{
	int marker = vm_page_marker(k);

	vm_page_queues_spin_lock(qq);
	vm_page_marker_insert_head(qq, marker);
	*lcnt = PY_READ(F_PQ_LCNT, qq, VMG->vm_page_queues[qq].lcnt);
	vm_page_queues_spin_unlock(qq);
	return marker;
}

static void
remove_marker(int qq, int marker)
{
	vm_page_queues_spin_lock(qq);
	vm_page_marker_remove(qq, marker);
	vm_page_queues_spin_unlock(qq);
}

/*
 * Write dirty page m (busied by the caller, which holds no lock) back to
 * its file, holding its object.  Returns 1 if it was written, 0 for an
 * object in rundown (OBJ_DEAD, or no longer a vnode's), -1 when the scan
 * must stop (po_error set; the object dropped).
 */
static int
launder(int m)
{
	int obj = PAGE_READ(object, m), vp, fd, r = 0;

	vm_object_hold(obj);
	vp = PY_READ(F_OBJ_HANDLE, obj, OBJ[obj].handle);
	if (PAGE_READ(object, m) == obj && vp >= 0 &&
	    PY_READ(F_OBJ_TYPE, obj, OBJ[obj].type) == OBJT_VNODE &&
	    !(PY_READ(F_OBJ_FLAGS, obj, OBJ[obj].flags) & OBJ_DEAD)) {
		fd = fd_fn != NULL ? fd_fn(vp) : -1;
		if (fd < 0) {
			po_error = -1;
			r = -1;
		} else {
			vnode_pager_putpage(vp, m, fd);
			if ((po_error = bio_take_host_errno()) != 0) {
				r = -1;
			} else {
				vm_page_flag_clear(m, PG_WINATCFLS);
				r = 1;
			}
		}
	}
	vm_object_drop(obj);
	return r;
}

/* ---- the scans ------------------------------------------------------------------ */

/*
 * vm_pageout_scan_inactive(pass, q, avail_shortage): scan INACTIVE queue q
 * (PQ_INACTIVE + q; the seed's one queue is q 0) from its head with a
 * marker, for pages to free or cache, until avail_shortage pages were
 * freed, maxscan pages visited or the end: free invalid pages, cache clean
 * ones, give dirty ones a second pass through the queue (pass 0) and then
 * launder them (vm_max_launder a scan, unlimited once a pass fell short),
 * reactivate referenced ones.  maxscan is the whole INACTIVE count
 * (v_inactive_count) until 51c99c6153 makes it the queue's own.  The
 * pagedaemon holds no lock on entry; each page it handles is busied
 * (also_m_busy), and it yields after each.  Returns delta, the pages
 * freed, cached or laundered (a scan stopped by a host error returns at
 * once, its marker left in the queue, as the Python's exception did).
 */
int
vm_pageout_scan_inactive(int pass, int q, int avail_shortage)
{
	int qq = PQ_INACTIVE + q;
	int delta = 0, maxlaunder, maxscan, lcnt, marker, m, busied, r;

	maxlaunder = VM_MAX_LAUNDER > 1 ? VM_MAX_LAUNDER : 1;
	if (pass)
		maxlaunder = 10000;

	marker = insert_marker(qq, INACTIVE_MARKER, &lcnt);
	if (SINCE(KV_51C99C6153))
		maxscan = lcnt;
	else
		maxscan = (int)VMG->vmstats.v_inactive_count;

	for (;;) {
		m = next_busied(qq, marker, &maxscan,
		    avail_shortage - delta > 0, &busied);
		if (m == NULLPG)
			break;
		if (!busied)
			continue;

		lwkt_yield();

		/*
		 * The page has been successfully busied and is now no longer
		 * spinlocked.  The queue is no longer spinlocked either.
		 */

		/*
		 * A held page may be undergoing I/O, so skip it.  (Also a page
		 * that left the queue or its object meanwhile.)
		 */
		if (PAGE_READ(hold_count, m) || PAGE_READ(wire_count, m) ||
		    PAGE_READ(object, m) < 0 ||
		    (int)PAGE_READ(queue, m) - (SINCE(KV_027193EB61) ?
		    (int)PAGE_READ(pc, m) : 0) != PQ_INACTIVE) {
			if (PAGE_READ(hold_count, m))
				requeue_inactive(m);
			vm_page_wakeup(m);
			continue;
		}

		/*
		 * If the page has been referenced while in the inactive queue,
		 * activate it (the pmap's and the VM's reference bits).
		 */
		if ((PAGE_READ(flags, m) & PG_REFERENCED) ||
		    PAGE_READ(md_referenced, m)) {
			clear_referenced(m);
			r = PAGE_READ(act_count, m) + ACT_ADVANCE;
			PY_STORE(F_PG_act_count, m, PG[m].act_count,
			    r < ACT_MAX ? r : ACT_MAX);
			vm_page_activate(m);
			vm_page_wakeup(m);
			continue;
		}

		/*
		 * If the upper level VM system doesn't know anything about the
		 * page being dirty, we have to check for it again.
		 */
		if (PAGE_READ(dirty, m) == 0)
			vm_page_test_dirty(m);

		if (PAGE_READ(valid, m) == 0) {
			/* Invalid pages can be easily freed
			 * (vm_pageout_page_free) */
			vm_page_protect(m, VM_PROT_NONE);
			vm_page_free(m);
			COUNTER_ADD(pageout_cached, 1);
			delta++;
		} else if (PAGE_READ(dirty, m) == 0) {
			/*
			 * Clean pages can be placed onto the cache queue.
			 * This effectively frees them.
			 */
			vm_page_cache(m);       /* consumes the busy */
			COUNTER_ADD(pageout_cached, 1);
			delta++;
		} else if ((PAGE_READ(flags, m) & PG_WINATCFLS) == 0 &&
		    pass == 0) {
			/*
			 * Dirty pages need to be paged out, but flushing a
			 * page is extremely expensive verses freeing a clean
			 * page: cycle them through the queue twice before
			 * flushing them.
			 */
			vm_page_flag_set(m, PG_WINATCFLS);
			requeue_inactive(m);
			vm_page_wakeup(m);
		} else if (maxlaunder > 0) {
			/*
			 * We don't bother paging objects that are "dead".
			 * Those objects are in a "rundown" state.
			 */
			r = launder(m);
			if (r < 0)
				return delta;
			if (r == 0) {
				requeue_inactive(m);
				vm_page_wakeup(m);
				continue;
			}
			/*
			 * decrement the shortage on success to account for
			 * the (future) cleaned page
			 */
			delta++;
			maxlaunder--;
			vm_page_wakeup(m);
		} else {
			vm_page_wakeup(m);
		}
	}
	remove_marker(qq, marker);
	return delta;
}

/*
 * vm_pageout_scan_active(pass, q, avail_shortage, inactive_shortage,
 * recycle_count): scan ACTIVE queue q (PQ_ACTIVE + q; the seed's one queue
 * is q 0): move pages to INACTIVE to meet inactive_shortage, and while
 * avail_shortage - delta > 0 cache clean ones directly.  Referenced pages
 * gain act_count and go to the tail, others lose it and are deactivated
 * below pass + 1.  maxscan is v_active_count until 51c99c6153 makes it the
 * queue's own.  Names as 51c99c6153 has them; 027193eb61 and the seed
 * called them inactive_shortage and active_shortage, and counted in delta
 * only the pages cached (since 51c99c6153: every page moved).  The
 * pagedaemon holds no lock on entry.  Returns delta; adds the pages
 * recycled to *recycle_count.
 */
int
vm_pageout_scan_active(int pass, int q, int avail_shortage,
    int inactive_shortage, int *recycle_count)
{
	int qq = PQ_ACTIVE + q;
	int delta = 0, maxscan, lcnt, marker, m, busied, actcount, a;
	int fanned = SINCE(KV_027193EB61);
	int every_move = SINCE(KV_51C99C6153);

	marker = insert_marker(qq, ACTIVE_MARKER, &lcnt);
	if (every_move)
		maxscan = lcnt;
	else
		maxscan = (int)VMG->vmstats.v_active_count;

	for (;;) {
		m = next_busied(qq, marker, &maxscan,
		    avail_shortage - delta > 0 || inactive_shortage > 0,
		    &busied);
		if (m == NULLPG)
			break;
		if (!busied)
			continue;

		/*
		 * Don't deactivate pages that are held, even if we can busy
		 * them.
		 */
		if (PAGE_READ(hold_count, m) != 0) {
			vm_page_requeue(m, PQ_ACTIVE);
			vm_page_wakeup(m);
			continue;
		}
		lwkt_yield();
		if (PAGE_READ(wire_count, m) || PAGE_READ(object, m) < 0 ||
		    (int)PAGE_READ(queue, m) - (fanned ?
		    (int)PAGE_READ(pc, m) : 0) != PQ_ACTIVE) {
			vm_page_wakeup(m);
			continue;
		}

		/*
		 * Check to see "how much" the page has been used and clear the
		 * tracking access bits.
		 */
		actcount = 0;
		if (PAGE_READ(flags, m) & PG_REFERENCED)
			actcount++;
		if (PAGE_READ(md_referenced, m))        /* pmap_ts_referenced */
			actcount++;
		if (actcount) {
			a = PAGE_READ(act_count, m) + ACT_ADVANCE + actcount;
			PY_STORE(F_PG_act_count, m, PG[m].act_count,
			    a < ACT_MAX ? a : ACT_MAX);
		}
		clear_referenced(m);

		if (actcount) {
			vm_page_requeue(m, PQ_ACTIVE);
			vm_page_wakeup(m);
			continue;
		}
		/* act_count -= min(act_count, ACT_DECLINE): two reads, a store */
		a = PAGE_READ(act_count, m);
		actcount = PAGE_READ(act_count, m);
		a -= actcount < ACT_DECLINE ? actcount : ACT_DECLINE;
		PY_STORE(F_PG_act_count, m, PG[m].act_count, a);
		if (PAGE_READ(act_count, m) < pass + 1) {
			/*
			 * Deactivate the page.  If we had a shortage from our
			 * inactive scan try to free (cache) the page instead.
			 *
			 * Don't just blindly cache the page if we do not have
			 * a shortage from the inactive scan, that could lead
			 * to gigabytes being moved.
			 */
			inactive_shortage--;
			COUNTER_ADD(pageout_deactivated, 1);
			if (avail_shortage - delta > 0) {
				++*recycle_count;
				vm_page_protect(m, VM_PROT_NONE);
				if (PAGE_READ(dirty, m) == 0) {
					if (!every_move)
						delta++; /* 027193eb61: only cached pages */
					vm_page_cache(m); /* consumes the busy */
					COUNTER_ADD(pageout_cached, 1);
				} else {
					vm_page_deactivate(m);
					vm_page_wakeup(m);
				}
			} else {
				vm_page_deactivate(m);
				vm_page_wakeup(m);
			}
			if (every_move)
				delta++;        /* 51c99c6153: every page moved */
		} else {
			vm_page_requeue(m, PQ_ACTIVE);
			vm_page_wakeup(m);
		}
	}
	remove_marker(qq, marker);
	return delta;
}

/*
 * vm_pageout_scan(pass) @seed: one pass of the pagedaemon: PQ_INACTIVE,
 * then PQ_ACTIVE (027193eb61 split it into the per-queue scans, called
 * from the daemon's loop: vm_pageout_scan_queues).  No locks held.
 * Returns the inactive shortage left.
 */
int
vm_pageout_scan(int pass)
{
	struct vmstats *s = &VMG->vmstats;
	int inactive_shortage, inactive_original_shortage, active_shortage;
	int recycle_count = 0;

	/*
	 * Calculate our target for the number of free+cache pages we want to
	 * get to.  This is higher then the number that causes allocations to
	 * stall (severe) in order to provide hysteresis, and if we don't make
	 * it all the way but get to the minimum we're happy.
	 */
	inactive_shortage = vm_paging_target();
	inactive_original_shortage = inactive_shortage;

	inactive_shortage -= vm_pageout_scan_inactive(pass, 0,
	    inactive_shortage);
	if (SCAN_STOPPED())
		return inactive_shortage;

	/*
	 * We want to move pages from the active queue to the inactive queue
	 * to get the inactive queue to the inactive target.  If we still have
	 * a page shortage from above we try to directly free clean pages
	 * instead of moving them.
	 */
	active_shortage = (int)s->v_inactive_target - (int)s->v_inactive_count;
	if (inactive_original_shortage < (int)s->v_inactive_target / 10)
		inactive_original_shortage = (int)s->v_inactive_target / 10;
	if (inactive_shortage <= 0 &&
	    active_shortage > inactive_original_shortage * 2)
		active_shortage = inactive_original_shortage * 2;

	inactive_shortage -= vm_pageout_scan_active(pass, 0,
	    inactive_shortage, active_shortage, &recycle_count);
	return inactive_shortage;
}

/*
 * vm_pageout_scan_queues(pass), 027193eb61 on: the body of the daemon's
 * loop that replaced vm_pageout_scan -- every INACTIVE queue, then every
 * ACTIVE queue, each with its share of the shortages.  No locks held.
 * Returns the shortage left (027193eb61's inactive_shortage, 51c99c6153's
 * avail_shortage).
 */
int
vm_pageout_scan_queues(int pass)
{
	struct vmstats *s = &VMG->vmstats;
	int recycle_count = 0, nq, q, delta1, delta2, tmp;
	int avail_shortage, inactive_shortage, active_shortage;

	if (!SINCE(KV_51C99C6153)) {
		/* 027193eb61: PQ_MAXL2_SIZE queues (only PQ_L2_SIZE = 64 of
		 * them carry pages), shortage / PQ_MAXL2_SIZE + 1 each */
		nq = PQ_MAXL2_SIZE;
		inactive_shortage = vm_paging_target();
		delta1 = 0;
		for (q = 0; q < nq; q++) {
			delta1 += vm_pageout_scan_inactive(pass, q,
			    inactive_shortage / nq + 1);
			if (SCAN_STOPPED())
				return inactive_shortage - delta1;
		}

		/*
		 * Figure out how many active pages we must deactivate.  If we
		 * were able to reach our target with just the inactive scan
		 * above we limit the number of active pages we deactivate to
		 * reduce unnecessary work.
		 */
		active_shortage = (int)s->v_inactive_target -
		    (int)s->v_inactive_count;
		tmp = inactive_shortage;
		if (tmp < (int)s->v_inactive_target / 10)
			tmp = (int)s->v_inactive_target / 10;
		inactive_shortage -= delta1;
		if (inactive_shortage <= 0 && active_shortage > tmp * 2)
			active_shortage = tmp * 2;

		delta2 = 0;
		for (q = 0; q < nq; q++) {
			delta2 += vm_pageout_scan_active(pass, q,
			    inactive_shortage / nq + 1,
			    active_shortage / nq + 1, &recycle_count);
			if (SCAN_STOPPED())
				break;
		}
		inactive_shortage -= delta2;
		return inactive_shortage;
	}

	/* 51c99c6153: PQ_L2_SIZE queues, every one populated, PQAVERAGE
	 * shares */
	nq = (int)VMG->pq_l2_size;
	avail_shortage = vm_paging_target();
	delta1 = 0;
	if (avail_shortage > 0) {
		for (q = 0; q < nq; q++) {
			delta1 += vm_pageout_scan_inactive(pass, q,
			    PQAVERAGE(avail_shortage));
			if (SCAN_STOPPED())
				return avail_shortage - delta1;
		}
		avail_shortage -= delta1;
	}

	/*
	 * Figure out how many active pages we must deactivate.  If we were
	 * able to reach our target with just the inactive scan above we limit
	 * the number of active pages we deactivate to reduce unnecessary work.
	 */
	inactive_shortage = (int)s->v_inactive_target -
	    (int)s->v_inactive_count;

	/*
	 * If we were unable to free sufficient inactive pages to satisfy the
	 * free/cache queue requirements then simply reaching the inactive
	 * target may not be good enough.  Try to deactivate pages in excess of
	 * the target based on the shortfall, but do not deactivate more than
	 * an additional 1/10 the inactive target's worth of active pages.
	 */
	if (avail_shortage > 0) {
		tmp = avail_shortage * 2;
		if (tmp > (int)s->v_inactive_target / 10)
			tmp = (int)s->v_inactive_target / 10;
		inactive_shortage += tmp;
	}

	if (avail_shortage > 0 || inactive_shortage > 0) {
		delta2 = 0;
		for (q = 0; q < nq; q++) {
			delta2 += vm_pageout_scan_active(pass, q,
			    PQAVERAGE(avail_shortage),
			    PQAVERAGE(inactive_shortage), &recycle_count);
			if (SCAN_STOPPED())
				break;
		}
		inactive_shortage -= delta2;
		avail_shortage -= delta2;
	}
	return avail_shortage;
}
