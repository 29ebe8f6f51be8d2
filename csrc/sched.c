/*
 * sched.c - the deterministic scheduler: exactly one scheduled thread runs
 * between preemption points, chosen from a seeded PRNG by a strategy
 * (uniform random, PCT, preemption-bounded) or replayed from a list of
 * choices (forced).  The same seed and workload give the same interleaving,
 * checked by a hash over every event of the trace.
 *
 * The scheduled threads are the CPU processes and kernel threads (TDK_CPU,
 * TDK_KTHREAD).  The turn is the word sched_state.running; a thread that
 * gives it away bumps the chosen thread's futex word wake[tid] and waits on
 * its own.  Runnability is derived from the thread states smpvm already
 * keeps (TDS_*, woken, wake_tick, the lock words), so the blocking loops of
 * smpvm.c only call sched_block() instead of spinning or futex-waiting.
 *
 * Everything here runs in the process holding the turn, except registration
 * (sched_attach, sched_go: under reg_lock, before the turn exists).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "smpvm_priv.h"

HIDDEN struct sched_state *SCH;
HIDDEN int sched_on;
static int in_sched;            /* a point inside the scheduler: ignore   */

/* why a decision is taken */
#define AT_POINT        0       /* a preemption point; current runnable   */
#define AT_YIELD        1       /* lwkt_yield / lwkt_switch: a free switch */
#define AT_BLOCK        2       /* the current thread waits               */
#define AT_EXIT         3
#define AT_START        4

#define TURN_WAIT_NS    50000000ull     /* re-check for a panic this often */

/* ---- region ------------------------------------------------------------------ */
static inline struct sched_event *
sched_trace(void)
{
	return (struct sched_event *)(SCH + 1);
}

/* Length of REG_SCHED: nothing unless the machine runs deterministically. */
HIDDEN void
sched_layout(struct smpvm_config *cfg, uint64_t *len)
{
	if (cfg->sched)
		len[REG_SCHED] = sizeof(struct sched_state) +
		    (uint64_t)cfg->sched_trace * sizeof(struct sched_event);
}

HIDDEN void
sched_bind(void *base)
{
	SCH = H->region_len[REG_SCHED] ? (struct sched_state *)
	    ((char *)base + H->region_off[REG_SCHED]) : NULL;
}

/* smpvm_init: zero the region; the strategy is set by sched_configure. */
HIDDEN void
sched_init(void)
{
	if (SCH == NULL)
		return;
	memset(SCH, 0, H->region_len[REG_SCHED]);
	SCH->running = -1;
	SCH->trace_cap = H->cfg.sched_trace;
}

HIDDEN void
sched_unbind(void)
{
	if (sched_on)
		hook = NULL;
	sched_on = 0;
	SCH = NULL;
}

/* ---- PRNG: splitmix64, state in the segment --------------------------------- */
static uint64_t
sched_rand(void)
{
	uint64_t z = (SCH->prng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* uniform in [0, n) (Lemire's multiply; the bias is 2^-64-small) */
static uint32_t
sched_below(uint64_t n)
{
	return (uint32_t)(((unsigned __int128)sched_rand() * n) >> 64);
}

/* ---- trace -------------------------------------------------------------------- */
/* Log one event: ring, full trace, running hash.  Caller holds the turn. */
static void
sched_event(int tid, int op, int id, int next)
{
	struct sched_event ev = { SCH->step, tid, op, id, next };
	uint64_t h = SCH->trace_hash, w[3];
	int i;

	memcpy(w, &ev, sizeof(w));
	for (i = 0; i < 3; i++)
		h = (h ^ w[i]) * 0x100000001b3ull;
	SCH->trace_hash = h;
	SCH->ring[SCH->nevents % SCHED_RING] = ev;
	if (SCH->nevents < SCH->trace_cap)
		sched_trace()[SCH->nevents] = ev;
	SCH->nevents++;
}

/* ---- runnability --------------------------------------------------------------- */
/*
 * Can thread t make progress if given the turn?  The predicates are exactly
 * the exit conditions of the blocking loops, so a thread picked in
 * sched_block() always gets past its wait: spin loops never burn steps.
 */
static int
td_runnable(const struct smpvm_thread *t)
{
	int i;

	switch (__atomic_load_n(&t->state, __ATOMIC_SEQ_CST)) {
	case TDS_RUNNING:
		return 1;
	case TDS_SLEEPING:
		return t->woken || (t->wake_tick && H->ticks >= t->wake_tick);
	case TDS_SPINWAIT:
		return SL[t->wait_id].counta == 0;
	case TDS_TOKWAIT:
		/* lwkt_reacquire: every token on its stack, all or nothing */
		for (i = 0; i < t->td_toks_stop; i++) {
			uint32_t ref = TK[t->td_toks[i]].t_ref;

			if (ref != 0 && ref != (uint32_t)t->tid + 1)
				return 0;
		}
		return 1;
	default:
		return 0;
	}
}

/* The runnable members in ascending tid order; returns how many. */
static int
sched_runnable(int *run)
{
	uint64_t m = __atomic_load_n(&SCH->members, __ATOMIC_SEQ_CST);
	int n = 0;

	while (m) {
		int t = __builtin_ctzll(m);

		m &= m - 1;
		if (td_runnable(&T[t]))
			run[n++] = t;
	}
	return n;
}

/* One line on what thread t waits for (the deadlock report). */
static int
describe_wait(const struct smpvm_thread *t, char *buf, size_t len)
{
	switch (t->state) {
	case TDS_SLEEPING:
		return snprintf(buf, len, "%s (tid %d) sleeps on %#llx \"%s\"%s",
		    t->name, t->tid, (unsigned long long)t->wchan, t->wmesg,
		    t->wake_tick ? " with a timeout" : "");
	case TDS_SPINWAIT:
		return snprintf(buf, len, "%s (tid %d) spins on spinlock %d "
		    "held by tid %d", t->name, t->tid, t->wait_id,
		    (int)SL[t->wait_id].counta - 1);
	case TDS_TOKWAIT:
		return snprintf(buf, len, "%s (tid %d) waits for token %d "
		    "held by tid %d", t->name, t->tid, t->wait_id,
		    t->wait_id >= 0 ? (int)TK[t->wait_id].t_ref - 1 : -1);
	case TDS_RUNNING:
		return snprintf(buf, len, "%s (tid %d) runs", t->name, t->tid);
	default:
		return snprintf(buf, len, "%s (tid %d) in state %u", t->name,
		    t->tid, t->state);
	}
}

/*
 * Nobody is runnable: advance the virtual clock to the earliest tsleep
 * timeout and return the runnable threads then; 0 if no timeout is
 * pending (a deadlock).  Caller holds the turn.
 */
static int
sched_idle(int *run)
{
	uint64_t m = SCH->members, first = 0;
	int n;

	while (m) {
		const struct smpvm_thread *t = &T[__builtin_ctzll(m)];

		m &= m - 1;
		if (t->state == TDS_SLEEPING && !t->woken && t->wake_tick &&
		    (first == 0 || t->wake_tick < first))
			first = t->wake_tick;
	}
	if (first) {
		if (first > H->ticks)
			__atomic_store_n(&H->ticks, first, __ATOMIC_SEQ_CST);
		sched_event(curtid, SCHED_EV_CLOCK, (int)first, -1);
		n = sched_runnable(run);
		if (n > 0)
			return n;
	}
	return 0;
}

/*
 * The schedule cannot go on: a deadlock (nobody runnable, no timeout), or a
 * hang (threads still running max_steps steps after the shutdown asked at
 * max_steps).  Record it and panic naming every thread and its wait.
 */
static void
sched_stop(int hang)
{
	char *buf = SCH->report;
	size_t len = sizeof(SCH->report), off;
	uint64_t m;

	if (hang)
		SCH->hang = 1;
	else
		SCH->deadlock = 1;
	SCH->stop_step = SCH->step;
	sched_event(curtid, hang ? SCHED_EV_HANG : SCHED_EV_DEADLOCK, -1, -1);
	off = (size_t)snprintf(buf, len, hang ? "sched: no exit %llu steps "
	    "after the shutdown at step %llu:" : "sched: deadlock at step %llu:",
	    (unsigned long long)(hang ? SCH->step - SCH->shutdown_step :
	    SCH->step),
	    (unsigned long long)SCH->shutdown_step);
	m = SCH->members;
	while (m && off < len) {
		const struct smpvm_thread *t = &T[__builtin_ctzll(m)];

		m &= m - 1;
		off += (size_t)snprintf(buf + off, len - off, " ");
		if (off < len)
			off += (size_t)describe_wait(t, buf + off, len - off);
		if (m && off < len)
			off += (size_t)snprintf(buf + off, len - off, ";");
	}
	panic(buf);
}

/*
 * The steps of the budget: every step, or (SCHED_F_PHASED) the steps since
 * the first CPU finished its set-up -- 0 until then, so that max_steps and
 * the pct/bounded plans fall in the workload, not in creating its files.
 */
static uint64_t
sched_budget_step(void)
{
	if (!(SCH->flags & SCHED_F_PHASED))
		return SCH->step;
	return SCH->setup_done ? SCH->step - SCH->base : 0;
}

/*
 * Steps the threads get to exit after the shutdown before it is a hang:
 * max_steps; a phased schedule (whose shutdown may come at a finding, and
 * whose budget a shrinker cuts to a few steps) at least SCHED_EXIT_STEPS,
 * enough to finish the operation in progress.
 */
static uint64_t
sched_exit_window(void)
{
	if ((SCH->flags & SCHED_F_PHASED) && SCH->max_steps < SCHED_EXIT_STEPS)
		return SCHED_EXIT_STEPS;
	return SCH->max_steps ? SCH->max_steps : SCHED_EXIT_STEPS;
}

/* ---- strategies --------------------------------------------------------------- */
static int
index_of(const int *run, int n, int tid)
{
	int i;

	for (i = 0; i < n; i++)
		if (run[i] == tid)
			return i;
	return -1;
}

/*
 * The default policy, which forced schedules fall back on: keep the current
 * thread if it may run; after a yield the next runnable tid after it (so a
 * thread polling with lwkt_yield cannot starve the one it waits for); else
 * the lowest runnable tid.
 */
static int
sched_default(const int *run, int n, int cur, int why)
{
	int i;

	if (why == AT_YIELD) {
		for (i = 0; i < n; i++)
			if (run[i] > cur)
				return run[i];
		return run[0];
	}
	if (cur >= 0 && index_of(run, n, cur) >= 0)
		return cur;
	return run[0];
}

/* a uniformly chosen runnable thread other than cur (cur if it is alone) */
static int
pick_other(const int *run, int n, int cur)
{
	int i = index_of(run, n, cur), j;

	if (i < 0)
		return run[sched_below((uint64_t)n)];
	if (n == 1)
		return cur;
	j = (int)sched_below((uint64_t)n - 1);
	return run[j >= i ? j + 1 : j];
}

/* PCT: the highest-priority runnable thread; after a yield not cur if any */
static int
pick_pct(const int *run, int n, int cur, int why)
{
	int i, best = -1;

	for (i = 0; i < n; i++) {
		if (why == AT_YIELD && run[i] == cur && n > 1)
			continue;
		if (best < 0 || SCH->prio[run[i]] > SCH->prio[best])
			best = run[i];
	}
	return best;
}

/*
 * The forced choice anchored at this decision (global step step; the
 * thread of slot at its tsteps[slot]-th decision): its tid, or -1 when the
 * default policy decides.  Anchors that were passed without matching (the
 * run went another way) are skipped.  A token loss (SCHED_CH_TOKLOSS) at
 * this anchor is not a pick: forced_token_loss takes it.
 */
static int
forced_pick(uint64_t step, int slot)
{
	uint32_t t = SCH->tsteps[slot];

	if (SCH->forced_mode == 2) {
		while (SCH->iforced < SCH->nforced &&
		    SCH->forced[SCH->iforced].step < step)
			SCH->iforced++;
		if (SCH->iforced < SCH->nforced &&
		    SCH->forced[SCH->iforced].step == step)
			return SCH->forced[SCH->iforced++].tid;
		return -1;
	}
	while (SCH->fnext[slot] < SCH->fend[slot] &&
	    SCH->forced[SCH->fnext[slot]].tstep < t)
		SCH->fnext[slot]++;
	if (SCH->fnext[slot] < SCH->fend[slot] &&
	    SCH->forced[SCH->fnext[slot]].tstep == t &&
	    SCH->forced[SCH->fnext[slot]].kind != SCHED_CH_TOKLOSS)
		return SCH->forced[SCH->fnext[slot]++].tid;
	return -1;
}

/* Is a forced token loss anchored at slot's current decision?  (Taken.) */
static int
forced_token_loss(int slot)
{
	uint32_t t = SCH->tsteps[slot];

	if (SCH->forced_mode != 1)
		return 0;
	while (SCH->fnext[slot] < SCH->fend[slot] &&
	    SCH->forced[SCH->fnext[slot]].tstep < t)
		SCH->fnext[slot]++;
	if (SCH->fnext[slot] < SCH->fend[slot] &&
	    SCH->forced[SCH->fnext[slot]].tstep == t &&
	    SCH->forced[SCH->fnext[slot]].kind == SCHED_CH_TOKLOSS) {
		SCH->fnext[slot]++;
		return 1;
	}
	return 0;
}

/* Does waiting thread t need back one of the tokens in lost (id mod 64)? */
static int
waits_for_lost(const struct smpvm_thread *t, uint64_t lost)
{
	int i;

	if (t->state != TDS_TOKWAIT)
		return 0;
	for (i = 0; i < t->td_toks_stop; i++)
		if (lost & (1ull << (t->td_toks[i] & 63)))
			return 1;
	return 0;
}

/*
 * After an injected token loss (sched_token_loss, steering on): a runnable
 * thread other than cur that was waiting for one of the tokens cur let go
 * -- the thread that touches what cur was in the middle of updating -- or
 * -1 if none.
 */
static int
pick_lost_waiter(const int *run, int n, int cur, uint64_t lost)
{
	int cand[SMPVM_MAXTHREADS], nc = 0, i;

	for (i = 0; i < n; i++)
		if (run[i] != cur && waits_for_lost(&T[run[i]], lost))
			cand[nc++] = run[i];
	return nc ? cand[sched_below((uint64_t)nc)] : -1;
}

/*
 * One scheduling decision at the current step: whom to give the turn.
 * cur is the thread at the point (-1 at the start).  Records a choice when
 * the pick differs from the default policy.  Returns a tid, or -1 after a
 * deadlock panic.  Caller holds the turn (or reg_lock at the start).
 */
static int
sched_decide(int cur, int why, int op, int id)
{
	int run[SMPVM_MAXTHREADS], n, def, pick = -1, cur_ok, want;
	uint64_t step = SCH->step, bstep = sched_budget_step();
	uint64_t lost = SCH->lost_mask;
	int slot = cur + 1;             /* tsteps[0]: the start (cur -1) */

	SCH->tsteps[slot]++;

	/* plans due at this step: pct change points, bounded preemptions */
	while (bstep && SCH->iplan < SCH->nplan &&
	    SCH->plan[SCH->iplan] <= bstep) {
		if (SCH->strategy == SCHED_PCT && cur >= 0)
			SCH->prio[cur] = (int32_t)SCH->iplan + 1;
		else if (SCH->strategy == SCHED_BOUNDED)
			SCH->pending++;
		SCH->iplan++;
	}
	n = sched_runnable(run);
	if (n == 0)
		n = sched_idle(run);
	if (n == 0) {
		sched_event(cur, op, id, -1);
		sched_stop(0);
		return -1;
	}
	cur_ok = cur >= 0 && index_of(run, n, cur) >= 0;
	def = sched_default(run, n, cur, why);
	SCH->lost_mask = 0;
	if (lost && SCH->steer && why == AT_YIELD &&
	    SCH->strategy != SCHED_FORCED) {
		pick = pick_lost_waiter(run, n, cur, lost);
		if (pick >= 0)
			SCH->steered++;
	}

	if (pick >= 0)
		;       /* steered */
	else switch (SCH->strategy) {
	case SCHED_RANDOM:
		pick = run[sched_below((uint64_t)n)];
		break;
	case SCHED_PCT:
		pick = pick_pct(run, n, cur, why);
		break;
	case SCHED_BOUNDED:
		if (why == AT_POINT && cur_ok) {
			pick = cur;
			if (SCH->pending > 0 && n > 1) {
				SCH->pending--;
				pick = pick_other(run, n, cur);
			}
		} else if (why == AT_YIELD) {
			pick = pick_other(run, n, cur);
		} else {
			pick = run[sched_below((uint64_t)n)];
		}
		break;
	default:        /* SCHED_FORCED */
		pick = def;
		want = forced_pick(step, slot);
		if (want >= 0) {
			if (index_of(run, n, want) >= 0)
				pick = want;
			else
				SCH->diverged++;
		}
		break;
	}
	if (pick != def) {
		if (SCH->nchoices < SCHED_MAXCHOICES) {
			struct sched_choice *c = &SCH->choices[SCH->nchoices++];

			c->step = step;
			c->tid = pick;
			c->at = cur;
			c->tstep = SCH->tsteps[slot];
			c->kind = (why == AT_POINT && cur_ok) ?
			    SCHED_CH_PREEMPT : SCHED_CH_SWITCH;
		} else {
			SCH->choices_lost++;
		}
	}
	if (why == AT_POINT && cur_ok && pick != cur)
		SCH->preemptions++;
	sched_event(cur, op, id, pick);
	return pick;
}

/* ---- the turn ------------------------------------------------------------------ */
/* Give the turn to tid (the caller holds it, or holds reg_lock at start). */
static void
sched_handoff(int tid)
{
	if (tid == SCH->running)
		return;
	SCH->switches++;
	__atomic_store_n(&SCH->running, tid, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&SCH->wake[tid], 1, __ATOMIC_SEQ_CST);
	futex_wake(&SCH->wake[tid], 1);
}

/* Wait until this thread holds the turn.  0, or -1 if the machine panicked. */
static int
sched_wait_turn(void)
{
	for (;;) {
		uint32_t w = __atomic_load_n(&SCH->wake[curtid],
		    __ATOMIC_SEQ_CST);

		if (__atomic_load_n(&SCH->running, __ATOMIC_SEQ_CST) == curtid)
			return 0;
		if (__atomic_load_n(&H->panicking, __ATOMIC_SEQ_CST))
			return -1;
		futex_wait(&SCH->wake[curtid], w, TURN_WAIT_NS);
	}
}

/* max_steps reached: ask for shutdown as request_shutdown() does, at a
 * step of the schedule, so the daemons' exits replay too. */
static void
sched_shutdown(void)
{
	uint32_t running = MS_RUNNING;

	SCH->shutdown_step = SCH->step;
	sched_event(curtid, SCHED_EV_SHUTDOWN, -1, -1);
	__atomic_store_n(&H->shutdown, 1, __ATOMIC_SEQ_CST);
	__atomic_compare_exchange_n(&H->state, &running, MS_SHUTDOWN, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	wakeup(IDENT_SHUTDOWN);         /* its preemption point is ignored */
}

/*
 * A step of the current thread: count it, decide, hand the turn over and
 * wait until it comes back.  Returns 0, or -1 if the machine panicked.
 */
static int
sched_step(int op, int id, int why)
{
	int next, r = 0;

	if (in_sched || !sched_on || H->panicking || !SCH->started)
		return H->panicking ? -1 : 0;
	in_sched = 1;
	SCH->step++;
	if (SCH->tick_steps && SCH->step % SCH->tick_steps == 0) {
		__atomic_fetch_add(&H->ticks, 1, __ATOMIC_SEQ_CST);
		sched_event(curtid, SCHED_EV_CLOCK, (int)H->ticks, -1);
	}
	if (!SCH->shutdown_step) {
		if (SCH->max_steps && sched_budget_step() == SCH->max_steps) {
			sched_shutdown();
		} else if ((SCH->flags & SCHED_F_STOP) && race_found()) {
			/* the first finding ends the run here, so a replay of
			 * the schedule ends at the same step */
			SCH->found = 1;
			sched_event(curtid, SCHED_EV_FOUND, -1, -1);
			sched_shutdown();
		}
	}
	if (SCH->shutdown_step && SCH->step == SCH->shutdown_step +
	    sched_exit_window()) {
		sched_stop(1);
		in_sched = 0;
		return -1;
	}
	next = sched_decide(curtid, why, op, id);
	if (next < 0) {
		r = -1;
	} else if (next != curtid) {
		sched_handoff(next);
		r = sched_wait_turn();
	}
	in_sched = 0;
	return r;
}

/* The hook of every scheduled process: a preemption point. */
static void
sched_point(int op, int id)
{
	sched_step(op, id, op == HOOK_YIELD ? AT_YIELD : AT_POINT);
}

/*
 * sched_block(): the current thread cannot go on (td->state says why: it
 * sleeps, spins or waits for tokens).  Gives the turn to a runnable thread
 * (advancing the virtual clock, or reporting a deadlock, when there is none)
 * and returns once this thread is picked again, which happens only when it
 * is runnable.  Returns 0, or -1 if the machine panicked.
 */
HIDDEN int
sched_block(void)
{
	return sched_step(SCHED_EV_BLOCK, (int)td->state, AT_BLOCK);
}

/* lwkt_switch with every token released: a free switch (as a yield). */
HIDDEN void
sched_switch(void)
{
	sched_step(SCHED_EV_SWITCH, -1, AT_YIELD);
}

/* Start the schedule: PCT priorities, then the first pick by the seed.
 * Caller holds reg_lock; every expected thread has registered. */
static void
sched_start(void)
{
	uint64_t m = SCH->members;
	int tids[SMPVM_MAXTHREADS], n = 0, i, next;

	while (m) {
		tids[n++] = __builtin_ctzll(m);
		m &= m - 1;
	}
	/* pct: a random permutation of priorities d .. d+n-1 (Fisher-Yates) */
	for (i = n - 1; i > 0; i--) {
		int j = (int)sched_below((uint64_t)i + 1), t = tids[i];

		tids[i] = tids[j];
		tids[j] = t;
	}
	for (i = 0; i < n; i++)
		SCH->prio[tids[i]] = (int32_t)(SCH->depth + (uint32_t)i);
	SCH->started = 1;
	next = sched_decide(-1, AT_START, SCHED_EV_START, n);
	if (next >= 0)
		sched_handoff(next);
}

static void
reg_lock(void)
{
	uint32_t zero = 0;

	while (!__atomic_compare_exchange_n(&SCH->reg_lock, &zero, 1, 0,
	    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		zero = 0;
}

static void
reg_unlock(void)
{
	__atomic_store_n(&SCH->reg_lock, 0, __ATOMIC_SEQ_CST);
}

static void
sched_maybe_start(void)
{
	if (!SCH->started && SCH->gate && SCH->registered >= SCH->expected &&
	    SCH->members)
		sched_start();
}

static int
sched_kind(int kind)
{
	return kind == TDK_CPU || kind == TDK_KTHREAD;
}

/*
 * smpvm_thread_attach: a CPU process or kernel thread kproc_start'ed on a
 * deterministic machine (sched_expect) registers, makes sched_point its hook and waits for its first
 * turn, so even the code before its first lock runs alone.  The last of
 * the expected threads (or sched_go) starts the schedule.  A thread that
 * joins a running schedule is picked like any other (its joining point
 * depends on the host's timing).
 */
HIDDEN void
sched_attach(void)
{
	if (SCH == NULL || SCH->strategy == SCHED_OFF ||
	    !(SCH->expect_mask & (1ull << curtid)))
		return;
	hook = sched_point;
	sched_on = 1;
	reg_lock();
	__atomic_fetch_or(&SCH->members, 1ull << curtid, __ATOMIC_SEQ_CST);
	SCH->registered++;
	if (SCH->started) {
		SCH->prio[curtid] = (int32_t)(SCH->depth + SCH->registered);
		if (SCH->running < 0) {         /* everyone else had exited */
			SCH->done = 0;
			sched_event(curtid, SCHED_EV_JOIN, -1, curtid);
			__atomic_store_n(&SCH->running, curtid,
			    __ATOMIC_SEQ_CST);
		}
	} else {
		sched_maybe_start();
	}
	reg_unlock();
	sched_wait_turn();
}

/*
 * smpvm_thread_exit: the current thread (state already TDS_FREE) leaves
 * the schedule and hands the turn on without waiting for it again.
 */
HIDDEN void
sched_exit(void)
{
	int next;

	if (!sched_on)
		return;
	hook = NULL;
	if (!H->panicking && SCH->started && SCH->running == curtid)
		sched_setup_done();     /* a CPU that ends before its workload */
	__atomic_fetch_and(&SCH->members, ~(1ull << curtid), __ATOMIC_SEQ_CST);
	__atomic_fetch_and(&SCH->expect_mask, ~(1ull << curtid),
	    __ATOMIC_SEQ_CST);
	if (!H->panicking && SCH->started && SCH->running == curtid) {
		in_sched = 1;
		SCH->step++;
		if (SCH->members == 0) {
			sched_event(curtid, SCHED_EV_EXIT, -1, -1);
			SCH->done = 1;
			__atomic_store_n(&SCH->running, -1, __ATOMIC_SEQ_CST);
		} else {
			next = sched_decide(curtid, AT_EXIT, SCHED_EV_EXIT, -1);
			if (next >= 0)
				sched_handoff(next);
		}
		in_sched = 0;
	}
	sched_on = 0;
}

/* panic(): every scheduled thread stops waiting for its turn. */
HIDDEN void
sched_panic(void)
{
	uint32_t i;

	if (SCH == NULL)
		return;
	for (i = 0; i < SMPVM_MAXTHREADS; i++) {
		__atomic_fetch_add(&SCH->wake[i], 1, __ATOMIC_SEQ_CST);
		futex_wake(&SCH->wake[i], INT_MAX);
	}
}

/* ---- the host's face ------------------------------------------------------------ */
/*
 * sched_configure(base, ...): at machine creation, before any thread runs.
 * base must be the machine this process is bound to.  The clock must be
 * virtual: the scheduler advances it when nobody can run, and also one tick
 * every tick_steps steps (0: only then), so that daemons polling with
 * tsleep timeouts run while CPUs are busy.  Plans the PCT change points (d-1)
 * or the bounded preemption steps (b), uniform in [1, k], from the seed.
 * Returns 0, or -1 when a parameter is out of range.
 */
int
sched_configure(void *base, int strategy, uint64_t seed, int depth,
    uint64_t k, int bound, uint64_t max_steps, uint64_t tick_steps,
    uint32_t flags)
{
	uint32_t i, j, n = 0;

	if (SCH == NULL || (void *)H != base || SCH->started ||
	    strategy < SCHED_RANDOM || strategy > SCHED_FORCED ||
	    H->clock_mode != CLOCK_VIRTUAL || k < 1 ||
	    depth < 1 || depth > SCHED_MAXPLAN + 1 ||
	    bound < 0 || bound > SCHED_MAXPLAN ||
	    (flags & ~(uint32_t)(SCHED_F_PHASED | SCHED_F_STOP)))
		return -1;
	SCH->flags = flags;
	SCH->strategy = (uint32_t)strategy;
	SCH->seed = seed;
	SCH->prng = seed;
	SCH->depth = (uint32_t)depth;
	SCH->k = k;
	SCH->bound = (uint32_t)bound;
	SCH->max_steps = max_steps;
	SCH->tick_steps = tick_steps;
	if (strategy == SCHED_PCT)
		n = (uint32_t)depth - 1;
	else if (strategy == SCHED_BOUNDED)
		n = (uint32_t)bound;
	for (i = 0; i < n; i++) {
		uint64_t s = 1 + sched_below(k);

		for (j = i; j > 0 && SCH->plan[j - 1] > s; j--)
			SCH->plan[j] = SCH->plan[j - 1];
		SCH->plan[j] = s;
	}
	SCH->nplan = n;
	return 0;
}

/*
 * Append a forced choice: anchored at (at, tstep), ascending in that order,
 * or with at == SCHED_AT_STEP at the global step, steps ascending; a list
 * is all of one kind.  0, or -1 if full, unordered or mixed.
 */
int
sched_force(void *base, uint64_t step, int tid, int kind, int at,
    uint32_t tstep)
{
	struct sched_choice *c, *last;
	uint32_t mode = at == SCHED_AT_STEP ? 2 : 1;
	int slot = at + 1;

	if (SCH == NULL || (void *)H != base || SCH->started ||
	    SCH->nforced >= SCHED_MAXCHOICES || tid < 0 ||
	    tid >= SMPVM_MAXTHREADS ||
	    (SCH->forced_mode && SCH->forced_mode != mode) ||
	    (mode == 1 && (at < -1 || at >= SMPVM_MAXTHREADS || tstep < 1)))
		return -1;
	last = SCH->nforced ? &SCH->forced[SCH->nforced - 1] : NULL;
	if (last && (mode == 2 ? last->step >= step :
	    (last->at > at || (last->at == at && (last->tstep > tstep ||
	    (last->tstep == tstep && (kind != SCHED_CH_TOKLOSS ||
	    last->kind == SCHED_CH_TOKLOSS)))))))
		return -1;
	if (kind == SCHED_CH_TOKLOSS && (mode != 1 || tid != at))
		return -1;
	if (mode == 1) {
		if (!last || last->at != at)
			SCH->fnext[slot] = SCH->nforced;
		SCH->fend[slot] = SCH->nforced + 1;
	}
	SCH->forced_mode = mode;
	c = &SCH->forced[SCH->nforced++];
	c->step = step;
	c->tid = tid;
	c->kind = kind;
	c->at = at;
	c->tstep = tstep;
	return 0;
}

/*
 * kproc_start (in the parent, before fork): thread slot tid, allocated as
 * a CPU or kernel thread, is to be scheduled; the schedule waits for it.
 * A process that binds a slot itself (the host, `init` at boot, tools) is
 * never scheduled.
 */
void
sched_expect(void *base, int tid)
{
	if (SCH == NULL || (void *)H != base || SCH->strategy == SCHED_OFF ||
	    tid < 0 || tid >= SMPVM_MAXTHREADS || !sched_kind(T[tid].kind))
		return;
	__atomic_fetch_or(&SCH->expect_mask, 1ull << tid, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&SCH->expected, 1, __ATOMIC_SEQ_CST);
	if ((SCH->flags & SCHED_F_PHASED) && T[tid].kind == TDK_CPU)
		__atomic_fetch_or(&SCH->setup_mask, 1ull << tid,
		    __ATOMIC_SEQ_CST);
}

/*
 * sched_token_loss(id): called by lwkt_gettoken for an acquisition of token
 * id that is not recursive, by a scheduled thread holding other tokens and
 * no spinlock: should it block here and lose its tokens, as it would if
 * another CPU held id?  Any such acquisition may block in the kernel, so
 * this is a legal interleaving (the worst case, as lwkt_yield's with
 * debug.lwkt_yield_switch=1), and it is the one a multi-step update of
 * shared state that blocks between its steps exposes.  Drawn from the seed
 * at SCH->tokloss per mille (and recorded as a SCHED_CH_TOKLOSS choice at
 * this thread's current decision: its token_get point), or replayed from
 * the forced list (and recorded again, as a forced pick that took is).
 * Returns 1 when the caller must switch (lwkt_switch); with SCH->steer the
 * next pick is then a thread that waited for one of its tokens.
 */
HIDDEN int
sched_token_loss(int id)
{
	int slot = curtid + 1, i;
	uint64_t mask = 0;

	if (in_sched || !sched_on || H->panicking || !SCH->started ||
	    SCH->shutdown_step)
		return 0;
	if (SCH->strategy == SCHED_FORCED) {
		if (!forced_token_loss(slot))
			return 0;
	} else if (SCH->tokloss == 0 ||
	    sched_below(SCHED_TOKLOSS_SCALE) >= SCH->tokloss) {
		return 0;
	}
	/* recorded when replayed too: a shrinker keeps the choices that took */
	if (SCH->nchoices < SCHED_MAXCHOICES) {
		struct sched_choice *c = &SCH->choices[SCH->nchoices++];

		c->step = SCH->step;
		c->tid = curtid;
		c->kind = SCHED_CH_TOKLOSS;
		c->at = curtid;
		c->tstep = SCH->tsteps[slot];
	} else {
		SCH->choices_lost++;
	}
	for (i = 0; i < td->td_toks_stop; i++)
		mask |= 1ull << (td->td_toks[i] & 63);
	SCH->lost_mask = mask;
	SCH->toklosses++;
	in_sched = 1;
	sched_event(curtid, SCHED_EV_TOKLOSS, id, curtid);
	in_sched = 0;
	return 1;
}

/*
 * sched_token_loss_rate(base, per_mille, steer): before the start, make
 * per_mille of the eligible token acquisitions block (sched_token_loss),
 * and with steer give the turn after each to a thread that waited for a
 * token the blocked thread let go.  0, or -1 when out of range.
 */
int
sched_token_loss_rate(void *base, uint32_t per_mille, int steer)
{
	if (SCH == NULL || (void *)H != base || SCH->started ||
	    per_mille > SCHED_TOKLOSS_SCALE)
		return -1;
	SCH->tokloss = per_mille;
	SCH->steer = steer != 0;
	return 0;
}

/*
 * sched_setup_done(): the current CPU thread finished setting up (the
 * stress workload created its files) and starts its workload: the budget
 * of a phased schedule counts from the first CPU that does.  (Not from the
 * last: PCT may starve a low-priority CPU's set-up for as long as the
 * others never block.)  Called by the thread holding the turn, so it is a
 * step of the schedule like any other; a no-op elsewhere.
 */
void
sched_setup_done(void)
{
	if (!sched_on || SCH == NULL || !(SCH->flags & SCHED_F_PHASED) ||
	    !(SCH->setup_mask & (1ull << curtid)))
		return;
	SCH->setup_mask &= ~(1ull << curtid);
	if (!SCH->setup_done) {
		SCH->setup_done = 1;
		SCH->base = SCH->step;
		sched_event(curtid, SCHED_EV_WORKLOAD, -1, -1);
	}
}

/*
 * sched_go(base): the host has started every thread it wants scheduled;
 * the schedule starts as soon as they have all registered (now, or at the
 * last registration), so fork timing does not matter.  Idempotent.
 */
void
sched_go(void *base)
{
	if (SCH == NULL || (void *)H != base || SCH->strategy == SCHED_OFF ||
	    SCH->gate)
		return;
	reg_lock();
	SCH->gate = 1;
	sched_maybe_start();
	reg_unlock();
}

/* This process's hook: 0 none, 1 the scheduler's, 2 another. */
int
sched_hook_installed(void)
{
	if (hook == NULL)
		return 0;
	return hook == sched_point ? 1 : 2;
}
