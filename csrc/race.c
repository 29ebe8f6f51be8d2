/*
 * race.c - smpvm's race checkers, in the segment so that they see every
 * process: field discipline (each access against the table of protection
 * generated from smpvm.h), witness (lock order by class), happens-before
 * (vector clocks and shadow cells) and the per-thread trace rings that hang
 * forensics print.  Nothing here exists in the kernel; it is the
 * lockdep/WITNESS/KCSAN of the emulated one.
 *
 * Everything is off unless the machine was created with cfg.check != 0:
 * REG_RACE is then empty and race_on is 0, so the hooks in smpvm.c and
 * vm.c cost one predictable branch.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "smpvm_priv.h"

HIDDEN uint32_t race_on;                /* RG->flags, copied at bind */
static uint32_t bind_gen;               /* bumped per bind: site caches */
static struct race_globals *RG;
static uint32_t *VC, *SPINVC, *TOKVC, *BUSYVC, *WAKEVC;
static struct race_shadow *SHADOW;
static int32_t *BUSYTID;
static uint8_t *CLASSOF;
static uint32_t NC;                     /* vector clock width */

extern const struct smpvm_field smpvm_fields_gen[];
extern const int smpvm_nfields_gen;
/* process-local: (skind, offset) -> field index, built at bind */
static int16_t fid_by_off[8][512];
static int16_t slot_of[256];
static int nslots_of[8];

#define NPAGES_ALL      (H->cfg.npages + H->cfg.maxthreads * VM_MARKERS_PER_THREAD \
			 + VM_STATIC_MARKERS)

static inline uint64_t
r64(uint64_t v)
{
	return (v + 63) & ~63ull;
}

static uint32_t
sk_entities(const struct smpvm_config *cfg, int sk)
{
	switch (sk) {
	case SK_PAGE:
		return cfg->npages + cfg->maxthreads * VM_MARKERS_PER_THREAD +
		    VM_STATIC_MARKERS;
	case SK_PQ:
		return PQ_COUNT;
	case SK_OBJECT:
		return cfg->nobjects + cfg->maxthreads;
	case SK_SWBLOCK:
		return cfg->nswap + 64;
	case SK_VNODE:
		return cfg->nvnodes;
	case SK_VMG:
		return 1;
	}
	return 0;
}

/* Shadow slots: one per lock-protected field, numbered per struct kind. */
static void
number_slots(void)
{
	int i;

	memset(nslots_of, 0, sizeof(nslots_of));
	for (i = 0; i < smpvm_nfields_gen && i < 256; i++) {
		const struct smpvm_field *f = &smpvm_fields_gen[i];

		slot_of[i] = -1;
		if (f->kind == 0)
			slot_of[i] = (int16_t)nslots_of[f->skind]++;
	}
}

/* REG_RACE's length for cfg (0 when no checker is on). */
HIDDEN void
race_layout(struct smpvm_config *cfg, uint64_t *len)
{
	uint64_t n = sizeof(struct race_globals), nc = cfg->maxthreads;
	uint64_t npg = sk_entities(cfg, SK_PAGE);
	int sk;

	if (cfg->check == 0) {
		*len = 0;
		return;
	}
	number_slots();
	n = r64(n);
	n += r64(nc * nc * 4);                          /* VC */
	n += r64((uint64_t)cfg->nspinlocks * nc * 4);
	n += r64((uint64_t)cfg->ntokens * nc * 4);
	n += r64(npg * nc * 4);
	n += r64((uint64_t)RACE_NWAKE * nc * 4);
	for (sk = 1; sk < 8; sk++)
		n += r64((uint64_t)nslots_of[sk] * sk_entities(cfg, sk) *
		    sizeof(struct race_shadow));
	n += r64(npg * 4);                              /* busy tid */
	n += r64((uint64_t)cfg->nspinlocks + cfg->ntokens);
	*len = n;
}

static void
bind_arrays(void)
{
	char *b = (char *)RG;

	NC = RG->nclock;
	VC = (uint32_t *)(b + RG->off_vc);
	SPINVC = (uint32_t *)(b + RG->off_spinvc);
	TOKVC = (uint32_t *)(b + RG->off_tokvc);
	BUSYVC = (uint32_t *)(b + RG->off_busyvc);
	WAKEVC = (uint32_t *)(b + RG->off_wakevc);
	SHADOW = (struct race_shadow *)(b + RG->off_shadow);
	BUSYTID = (int32_t *)(b + RG->off_busytid);
	CLASSOF = (uint8_t *)(b + RG->off_classof);
}

HIDDEN void
race_bind(void *base)
{
	int i;

	race_on = 0;
	RG = NULL;
	if (H->region_len[REG_RACE] == 0)
		return;
	RG = (struct race_globals *)((char *)base + H->region_off[REG_RACE]);
	bind_gen++;
	number_slots();
	memset(fid_by_off, 0xff, sizeof(fid_by_off));
	for (i = 0; i < smpvm_nfields_gen && i < 256; i++) {
		const struct smpvm_field *f = &smpvm_fields_gen[i];
		int b;

		if (f->skind == SK_VMG && strchr(f->name, '.'))
			continue;       /* nested statistics: never checked in C */
		for (b = 0; b < f->size && f->off + b < 512; b++)
			fid_by_off[f->skind][f->off + b] = (int16_t)i;
	}
	if (RG->nclock)
		bind_arrays();
	race_on = RG->flags;
}

static void race_declare(int ca, int cb);
static void race_owed_wakeup(const char *at);
extern HIDDEN int swap_meta_peek(int o, uint64_t pindex);
static int race_lock_class(int kind, int id);

/*
 * The kernel's declared order (vm_page.c @seed): the page (pool)
 * spinlock before any queue spinlock.  The other declared rules (never two
 * page spinlocks, nothing that blocks under a spinlock, no vm_page_wakeup
 * under a queue spinlock) are checked where they apply, in vm.c/smpvm.c.
 */
static void
declare_kernel_order(void)
{
	int page = race_lock_class(LK_SPIN, 0), q;

	for (q = PQ_FREE; q < PQ_COUNT; q++)
		race_declare(page, race_lock_class(LK_SPIN, QSPIN(q)));
}

/* Lay out REG_RACE (after smpvm_init bound the regions and the VM). */
HIDDEN void
race_init(void)
{
	uint64_t off = r64(sizeof(struct race_globals)), nc, npg;
	int sk;

	if (RG == NULL)
		return;
	nc = H->cfg.maxthreads;
	npg = NPAGES_ALL;
	memset(RG, 0, H->region_len[REG_RACE]);
	RG->nclock = (uint32_t)nc;
	RG->nfields = (uint32_t)smpvm_nfields_gen;
	RG->sample = H->cfg.check_sample ? H->cfg.check_sample : 1;
	RG->off_vc = off;        off += r64(nc * nc * 4);
	RG->off_spinvc = off;    off += r64((uint64_t)H->cfg.nspinlocks * nc * 4);
	RG->off_tokvc = off;     off += r64((uint64_t)H->cfg.ntokens * nc * 4);
	RG->off_busyvc = off;    off += r64(npg * nc * 4);
	RG->off_wakevc = off;    off += r64((uint64_t)RACE_NWAKE * nc * 4);
	RG->off_shadow = off;
	for (sk = 1; sk < 8; sk++) {
		uint64_t cells = (uint64_t)nslots_of[sk] * sk_entities(&H->cfg, sk);

		RG->shadow_base[sk] = RG->nshadow;
		RG->shadow_nent[sk] = sk_entities(&H->cfg, sk);
		RG->nshadow += cells;
		off += r64(cells * sizeof(struct race_shadow));
	}
	RG->off_busytid = off;   off += r64(npg * 4);
	RG->off_classof = off;
	bind_arrays();
	memset(BUSYTID, 0xff, npg * 4);
	memset(CLASSOF, 0xff, (size_t)H->cfg.nspinlocks + H->cfg.ntokens);
	RG->busy_class = -1;
	for (sk = 0; sk < SMPVM_MAXTHREADS; sk++)
		RG->thr[sk].owed_wakeup = -1;
	RG->flags = H->cfg.check;
	race_on = RG->flags;
	declare_kernel_order();
}

/* ---- the field table ---------------------------------------------------- */
int
smpvm_nfields(void)
{
	return smpvm_nfields_gen;
}

const struct smpvm_field *
smpvm_field(int i)
{
	if (i < 0 || i >= smpvm_nfields_gen)
		return NULL;
	return &smpvm_fields_gen[i];
}

/* ---- lock classes --------------------------------------------------------- */

/*
 * The class of lock (kind, id): the header's class table (registered by the
 * creator after smpvm_init), looked up once per lock and cached.
 */
static int
race_lock_class(int kind, int id)
{
	uint32_t i, slot;

	if (kind == LK_BUSY)
		goto busy;
	if (RG == NULL || id < 0)
		return -1;
	slot = kind == LK_SPIN ? (uint32_t)id : H->cfg.nspinlocks + (uint32_t)id;
	if (slot >= H->cfg.nspinlocks + H->cfg.ntokens)
		return -1;
	if (CLASSOF[slot] != 0xff)
		return CLASSOF[slot];
	for (i = 0; i < H->nclasses; i++) {
		struct smpvm_lockclass *c = &H->classes[i];

		if (c->kind == (uint32_t)kind && (uint32_t)id >= c->first &&
		    (uint32_t)id < c->first + c->count) {
			CLASSOF[slot] = (uint8_t)i;
			return (int)i;
		}
	}
	return -1;
busy:
	if (RG == NULL)
		return -1;
	if (RG->busy_class < 0)
		for (i = 0; i < H->nclasses; i++)
			if (H->classes[i].kind == LK_BUSY)
				RG->busy_class = (int32_t)i;
	return RG->busy_class;
}

/* ---- reports ---------------------------------------------------------------- */
static uint32_t site_of(const char *cfunc);

static void
fill_side(struct race_side *s, uint32_t site, int write, uint64_t value)
{
	int i, n = 0;

	s->tid = curtid;
	s->cpu = td ? td->cpu : -1;
	s->site = site;
	s->write = (uint32_t)write;
	s->value = value;
	s->clock = (VC && curtid >= 0) ? VC[(uint32_t)curtid * NC + curtid] : 0;
	if (td) {
		int ns = td->nspins < SMPVM_MAXSPINS_HELD ? td->nspins :
		    SMPVM_MAXSPINS_HELD;

		for (i = 0; i < ns && n < RACE_NLOCKS; i++)
			s->locks[n++] = LK_SPIN << 24 | td->spins_held[i];
		for (i = 0; i < td->td_toks_stop && n < RACE_NLOCKS; i++)
			if (TK[td->td_toks[i]].t_ref == curref)
				s->locks[n++] = LK_TOKEN << 24 | td->td_toks[i];
		if (RG) {
			struct race_thread *rt = &RG->thr[curtid];

			for (i = 0; i < rt->nbusy && n < RACE_NLOCKS; i++)
				s->locks[n++] = LK_BUSY << 24 | rt->busy[i];
		}
	}
	s->nlocks = n;
}

/*
 * Claim a report slot for key hash, or count a repeat.  Returns the slot to
 * fill (state 1), or NULL when the report is a repeat or the table is full.
 */
static struct race_report *
report_claim(uint32_t type, uint32_t hash)
{
	uint32_t i;

	/*
	 * After a panic the kernel stops the other CPUs; here they run on
	 * with their locks abandoned (sched_wait_turn and the lock loops
	 * give up), so what they do is no finding: a report now would only
	 * make the run's verdict depend on host timing.
	 */
	if (__atomic_load_n(&H->panicking, __ATOMIC_ACQUIRE))
		return NULL;
	hash |= 1;
	for (i = 0; i < RACE_NREPORTS; i++) {
		struct race_report *r = &RG->reports[(hash + i) % RACE_NREPORTS];
		uint32_t zero = 0;

		if (__atomic_load_n(&r->state, __ATOMIC_ACQUIRE) != 0) {
			if (r->hash == hash && r->type == type) {
				__atomic_fetch_add(&r->count, 1, __ATOMIC_RELAXED);
				return NULL;
			}
			continue;
		}
		if (__atomic_compare_exchange_n(&r->state, &zero, 1, 0,
		    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			r->type = type;
			r->hash = hash;
			r->count = 1;
			r->seq = __atomic_add_fetch(&RG->seq, 1, __ATOMIC_SEQ_CST);
			r->field = -1;
			r->index = -1;
			r->ncycle = 0;
			__atomic_fetch_add(&RG->nreports, 1, __ATOMIC_SEQ_CST);
			return r;
		}
		if (r->hash == hash && r->type == type)
			return NULL;
	}
	__atomic_fetch_add(&RG->dropped, 1, __ATOMIC_RELAXED);
	return NULL;
}

static inline void
report_publish(struct race_report *r)
{
	__atomic_store_n(&r->state, 2, __ATOMIC_RELEASE);
}

static inline uint32_t
mix(uint32_t h, uint32_t v)
{
	return (h ^ v) * 16777619u;
}

/* ---- field discipline --------------------------------------------------- */

static int
page_of(int sk, int idx)
{
	return sk == SK_PAGE ? idx : -1;
}

static int
object_of(int sk, int idx)
{
	switch (sk) {
	case SK_PAGE:
		return PG[idx].object;
	case SK_OBJECT:
		return idx;
	case SK_SWBLOCK:
		return SWB[idx].swb_object;
	}
	return -1;
}

/* Does the current thread hold protector bit for entity (sk, idx)? */
static int
prot_held(uint32_t bit, int sk, int idx)
{
	int m, o, q;

	switch (bit) {
	case PROT_PAGE_SPIN:
		m = page_of(sk, idx);
		return m >= 0 && spin_held(vm_page_spin_index(m));
	case PROT_QUEUE_SPIN:
		q = sk == SK_PQ ? idx : (sk == SK_PAGE ? PG[idx].queue : -1);
		if (q == PQ_NONE)
			return 1;       /* on no queue: nothing to protect */
		return q > 0 && spin_held(QSPIN(q));
	case PROT_OBJ_TOKEN:
		o = object_of(sk, idx);
		if (o < 0 || (uint32_t)o >= H->cfg.nobjects + H->cfg.maxthreads)
			return 1;       /* no object: the page/swblock is private */
		if (OBJ[o].type == OBJT_MARKER)
			return 1;       /* a thread's own marker: private */
		return lwkt_token_held(vm_object_token(o));
	case PROT_BUSY:
		m = page_of(sk, idx);
		return m >= 0 && (PG[m].flags & PG_BUSY);
	case PROT_VM_TOKEN:
		return lwkt_token_held(TOK_VM);
	case PROT_VMOBJ_TOKEN:
		return lwkt_token_held(TOK_VMOBJ);
	case PROT_VNODE_TOKEN:
		return lwkt_token_held(TOK_VNODE);
	case PROT_SWAPZONE:
		return spin_held((int)H->cfg.spin_pool + SPIN_NAMED_SWAPZONE);
	}
	return 0;
}

static int
held_all(uint32_t mask, int sk, int idx)
{
	while (mask) {
		uint32_t bit = mask & -mask;

		if (!prot_held(bit, sk, idx))
			return 0;
		mask &= mask - 1;
	}
	return 1;
}

static int
held_any(uint32_t mask, int sk, int idx)
{
	while (mask) {
		uint32_t bit = mask & -mask;

		if (prot_held(bit, sk, idx))
			return 1;
		mask &= mask - 1;
	}
	return 0;
}

static void
report_field(int type, int fid, int idx, int write, uint64_t value,
    uint32_t required, uint32_t site, const char *cfunc)
{
	const struct smpvm_field *f = &smpvm_fields_gen[fid];
	struct race_report *r;
	uint32_t h;

	if (cfunc != NULL)      /* a C primitive: name its Python caller too */
		site = site_of(cfunc);
	h = mix(mix(mix(2166136261u, (uint32_t)type), (uint32_t)fid), site);
	h = mix(h, (uint32_t)write);
	r = report_claim((uint32_t)type, h);
	if (r == NULL)
		return;
	r->field = fid;
	r->index = idx;
	r->required = required;
	fill_side(&r->a, site, write, value);
	snprintf(r->msg, sizeof(r->msg), "%s of %s.%s",
	    write == 2 ? "plain store" : write ? "write" : "read",
	    f->sname, f->name);
	report_publish(r);
}

/* ---- happens-before ---------------------------------------------------- */

static inline uint32_t *
myvc(void)
{
	return &VC[(uint32_t)curtid * NC];
}

/* Only tids below maxtid ever ran: the rest of a clock is zero. */
static inline void
vc_join(uint32_t *dst, const uint32_t *src)
{
	uint32_t i, n = __atomic_load_n(&RG->maxtid, __ATOMIC_RELAXED);

	for (i = 0; i < n; i++)
		if (src[i] > dst[i])
			dst[i] = src[i];
}

static uint32_t *
lock_vc(int kind, int id)
{
	switch (kind) {
	case LK_SPIN:
		return &SPINVC[(uint64_t)id * NC];
	case LK_TOKEN:
		return &TOKVC[(uint64_t)id * NC];
	case LK_BUSY:
		return &BUSYVC[(uint64_t)id * NC];
	case LK_WAKE:
		return &WAKEVC[(uint64_t)id * NC];
	}
	return NULL;
}

/* Acquire edge: join the lock's clock into ours.  The caller owns it. */
HIDDEN void
race_acquire(int kind, int id)
{
	if (!(race_on & RACE_HB) || td == NULL || NC == 0)
		return;
	vc_join(myvc(), lock_vc(kind, id));
}

/*
 * Release edge: the lock's clock becomes ours (a join for busy and wakeup
 * channels, which several parties release), then our own clock ticks.
 */
HIDDEN void
race_release(int kind, int id)
{
	uint32_t *l, *me;

	if (!(race_on & RACE_HB) || td == NULL || NC == 0)
		return;
	l = lock_vc(kind, id);
	me = myvc();
	if (kind == LK_SPIN || kind == LK_TOKEN)
		memcpy(l, me, __atomic_load_n(&RG->maxtid, __ATOMIC_RELAXED) * 4);
	else
		vc_join(l, me);
	me[curtid]++;
}

static inline uint32_t
wake_bucket(uint64_t ident)
{
	return (uint32_t)((ident >> 4) ^ (ident >> 17)) & (RACE_NWAKE - 1);
}

static inline void
cpu_relax(void)
{
	__builtin_ia32_pause();
}

static inline void
raw_lock(uint32_t *w)
{
	uint32_t zero = 0;

	while (!__atomic_compare_exchange_n(w, &zero, 1, 0, __ATOMIC_ACQUIRE,
	    __ATOMIC_RELAXED)) {
		zero = 0;
		cpu_relax();
	}
}

static inline void
raw_unlock(uint32_t *w)
{
	__atomic_store_n(w, 0, __ATOMIC_RELEASE);
}

/* wakeup(ident) releases to whoever tsleep returns on ident. */
HIDDEN void
race_wakeup(uint64_t ident)
{
	uint32_t b;

	if (!(race_on & RACE_HB) || td == NULL || NC == 0)
		return;
	b = wake_bucket(ident);
	raw_lock(&RG->wake_lock[b]);
	race_release(LK_WAKE, (int)b);
	raw_unlock(&RG->wake_lock[b]);
}

HIDDEN void
race_woken(uint64_t ident)
{
	uint32_t b;

	if (!(race_on & RACE_HB) || td == NULL || NC == 0)
		return;
	b = wake_bucket(ident);
	raw_lock(&RG->wake_lock[b]);
	race_acquire(LK_WAKE, (int)b);
	raw_unlock(&RG->wake_lock[b]);
}

/* A new thread starts with its creator's knowledge (fork). */
HIDDEN void
race_thread_fork(int child)
{
	uint32_t *c;

	if (RG == NULL || child < 0)
		return;
	RG->thr[child].nbusy = 0;
	RG->thr[child].trace_pos = 0;
	RG->thr[child].owed_wakeup = -1;
	if (!(race_on & RACE_HB) || NC == 0)
		return;
	c = &VC[(uint32_t)child * NC];
	c[child]++;             /* slots are reused: epochs never go back */
	while (1) {
		uint32_t mt = __atomic_load_n(&RG->maxtid, __ATOMIC_SEQ_CST);

		if ((uint32_t)child < mt || __atomic_compare_exchange_n(
		    &RG->maxtid, &mt, (uint32_t)child + 1, 0, __ATOMIC_SEQ_CST,
		    __ATOMIC_SEQ_CST))
			break;
	}
	if (td != NULL) {
		vc_join(c, myvc());
		myvc()[curtid]++;
	}
}

static void
snapshot_locks(int32_t out[2])
{
	int n = 0, i;

	out[0] = out[1] = -1;
	if (td == NULL)
		return;
	for (i = td->nspins - 1; i >= 0 && n < 2; i--)
		if (i < SMPVM_MAXSPINS_HELD)
			out[n++] = LK_SPIN << 24 | td->spins_held[i];
	for (i = td->td_toks_stop - 1; i >= 0 && n < 2; i--)
		if (TK[td->td_toks[i]].t_ref == curref)
			out[n++] = LK_TOKEN << 24 | td->td_toks[i];
}

static void
report_race(int fid, int idx, int write, uint64_t value, uint32_t site,
    uint64_t epoch, uint32_t osite, int owrite, uint64_t oval,
    const int32_t olocks[2])
{
	const struct smpvm_field *f = &smpvm_fields_gen[fid];
	struct race_report *r;
	uint32_t h;
	int otid = (int)(epoch & 0xff);

	h = mix(mix(mix(2166136261u, RR_RACE), (uint32_t)fid), site);
	h = mix(mix(h, osite), (uint32_t)(write << 1 | owrite));
	r = report_claim(RR_RACE, h);
	if (r == NULL)
		return;
	r->field = fid;
	r->index = idx;
	r->required = f->wr_all | f->wr_any;
	fill_side(&r->a, site, write, value);
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = otid;
	r->b.cpu = T[otid].cpu;
	r->b.site = osite;
	r->b.write = (uint32_t)owrite;
	r->b.value = oval;
	r->b.clock = (uint32_t)(epoch >> 8);
	r->b.nlocks = 0;
	if (olocks[0] >= 0)
		r->b.locks[r->b.nlocks++] = olocks[0];
	if (olocks[1] >= 0)
		r->b.locks[r->b.nlocks++] = olocks[1];
	snprintf(r->msg, sizeof(r->msg), "data race on %s.%s: %s vs %s",
	    f->sname, f->name, write ? "write" : "read",
	    owrite ? "earlier write" : "earlier read");
	report_publish(r);
}

/* Is the access of epoch (clock<<8|tid) ordered before us? */
static inline int
hb_before(uint64_t epoch)
{
	int t;

	if (epoch == 0)
		return 1;
	t = (int)(epoch & 0xff);
	if (t == curtid)
		return 1;
	return (uint32_t)(epoch >> 8) <= myvc()[t];
}

/*
 * Coverage: the pair (field, kind, site_a, site_b) of two threads' accesses
 * to one field instance, the later (at site_b) finding the earlier (site_a)
 * in the shadow cell -- KRACE's alias coverage, from the happens-before
 * checker's own state.  A bounded probe; a full table counts a drop.
 */
static void
alias_add(int fid, uint32_t kind, uint32_t sa, uint32_t sb)
{
	uint32_t key = mix(mix(mix(mix(2166136261u, (uint32_t)fid), kind), sa),
	    sb) | 1, i;

	for (i = 0; i < 64; i++) {
		struct race_alias *a = &RG->alias[(key + i) & (RACE_NALIAS - 1)];
		uint32_t st = __atomic_load_n(&a->state, __ATOMIC_ACQUIRE);
		uint32_t zero = 0;

		if (st == 2) {
			if (a->key == key && a->field == fid && a->kind == kind &&
			    a->site_a == sa && a->site_b == sb) {
				__atomic_fetch_add(&a->count, 1,
				    __ATOMIC_RELAXED);
				return;
			}
			continue;
		}
		if (st == 0 && __atomic_compare_exchange_n(&a->state, &zero, 1,
		    0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
			a->key = key;
			a->field = fid;
			a->kind = kind;
			a->site_a = sa;
			a->site_b = sb;
			a->count = 1;
			__atomic_store_n(&a->state, 2, __ATOMIC_RELEASE);
			__atomic_fetch_add(&RG->nalias, 1, __ATOMIC_RELAXED);
			return;
		}
	}
	__atomic_fetch_add(&RG->alias_dropped, 1, __ATOMIC_RELAXED);
}

static void
hb_access(int fid, int slot, int sk, int idx, int write, uint64_t value,
    uint32_t site, const char *cfunc)
{
	struct race_shadow *c;
	uint64_t me, w, r;
	struct race_thread *rt = &RG->thr[curtid];

	int f_rd_locked = smpvm_fields_gen[fid].rd_any != 0;

	/* a field read without locks by design (no @R): only writes race */
	if (!write && !f_rd_locked)
		return;
	if (RG->sample > 1 && (++rt->sample % RG->sample) != 0)
		return;
	if ((uint32_t)idx >= RG->shadow_nent[sk])
		return;
	rt->hb_checks++;
	c = &SHADOW[RG->shadow_base[sk] + (uint64_t)slot * RG->shadow_nent[sk]
	    + (uint64_t)idx];
	me = (uint64_t)myvc()[curtid] << 8 | (uint64_t)curtid;
	w = __atomic_load_n(&c->wepoch, __ATOMIC_RELAXED);
	if (w && (int)(w & 0xff) != curtid)
		alias_add(fid, write ? ALIAS_WW : ALIAS_WR, c->wsite, site);
	if (!hb_before(w))
		report_race(fid, idx, write, value, cfunc ? site_of(cfunc) : site,
		    w, c->wsite, 1, c->wval, c->wlocks);
	if (write && f_rd_locked) {
		r = __atomic_load_n(&c->repoch, __ATOMIC_RELAXED);
		if (r && (int)(r & 0xff) != curtid)
			alias_add(fid, ALIAS_RW, c->rsite, site);
		if (!hb_before(r))
			report_race(fid, idx, write, value,
			    cfunc ? site_of(cfunc) : site, r, c->rsite, 0, 0,
			    c->rlocks);
		__atomic_store_n(&c->wepoch, me, __ATOMIC_RELAXED);
		c->wsite = site;
		c->wval = value;
		snapshot_locks(c->wlocks);
	} else {
		__atomic_store_n(&c->repoch, me, __ATOMIC_RELAXED);
		c->rsite = site;
		snapshot_locks(c->rlocks);
	}
}

/*
 * The check of one access to field fid of entity idx.  write: 0 read,
 * 1 write (the C primitives, atomically or under their locks), 2 a plain
 * Python store.  site: the caller's site id (0: derive it from cfunc).
 */
static void
access_check(int fid, int idx, int write, uint64_t value, uint32_t site,
    const char *cfunc)
{
	const struct smpvm_field *f = &smpvm_fields_gen[fid];
	int sk = f->skind;
	uint32_t need;

	RG->thr[curtid].checks++;
	/* coverage: checked accesses (preemption points) by site */
	__atomic_fetch_add(&RG->points[site & (RACE_NPOINTS - 1)], 1,
	    __ATOMIC_RELAXED);
	if (f->kind & PROT_RACY)
		return;
	if (f->kind & (PROT_ATOMIC | PROT_IMMUTABLE)) {
		if (write == 2 && (race_on & RACE_FIELDS))
			report_field(RR_PLAIN_STORE, fid, idx, write, value,
			    f->kind, site, cfunc);
		return;
	}
	if (race_on & RACE_FIELDS) {
		if (write) {
			need = f->wr_all | f->wr_any;
			if (!held_all(f->wr_all, sk, idx) ||
			    (f->wr_any && !held_any(f->wr_any, sk, idx)))
				report_field(RR_UNPROTECTED, fid, idx, write,
				    value, need, site, cfunc);
		} else if (f->rd_any && !held_any(f->rd_any, sk, idx)) {
			report_field(RR_UNPROTECTED, fid, idx, 0, value,
			    f->rd_any, site, cfunc);
		}
	}
	if ((race_on & RACE_HB) && NC && slot_of[fid] >= 0)
		hb_access(fid, slot_of[fid], sk, idx, write ? 1 : 0, value, site,
		    cfunc);
}

/*
 * The fields a Python view accesses, for C that replaced Python and makes
 * the views' accesses again (bio.c, pageout.c): names[k] = {struct, field}
 * -> id[k] (an smpvm_fields index, -1 if none) and rd[k] (the view checks
 * its reads: a field with a read protector; every store is checked).
 */
HIDDEN void
py_view_fields(const char *const (*names)[2], int n, int *id, int *rd)
{
	int i, k;

	for (k = 0; k < n; k++) {
		id[k] = -1;
		rd[k] = 0;
		for (i = 0; i < smpvm_nfields_gen; i++) {
			const struct smpvm_field *f = &smpvm_fields_gen[i];

			if (strcmp(f->sname, names[k][0]) == 0 &&
			    strcmp(f->name, names[k][1]) == 0) {
				id[k] = i;
				rd[k] = f->kind == 0 && f->rd_any != 0;
				break;
			}
		}
	}
}

/* Python's entry: field is an smpvm_fields index. */
void
race_access(int field, int idx, int write, uint64_t value, uint32_t site)
{
	if (!race_on || td == NULL || field < 0 || field >= smpvm_nfields_gen)
		return;
	/* a checked access is a preemption point (deterministic schedules) */
	PREEMPT_POINT(HOOK_ACCESS, field);
	access_check(field, idx, write, value, site, NULL);
}

/* C's entry (the RACE_CHK macro): field found by (struct kind, offset). */
HIDDEN void
race_access_c(int sk, int idx, int off, int write, uint64_t value,
    const char *cfunc, uint32_t *sitecache)
{
	int fid;

	if (td == NULL || off < 0 || off >= 512)
		return;
	fid = fid_by_off[sk][off];
	if (fid < 0)
		return;
	/* the C function's own site id, cached per call site: the shadow
	 * cells record it; a report asks Python for the caller (rare) */
	if (sitecache[1] != bind_gen) {
		sitecache[0] = (uint32_t)prof_site_intern(cfunc);
		sitecache[1] = bind_gen;
	}
	access_check(fid, idx, write, value, sitecache[0], cfunc);
}

/* ---- witness: lock order by class ------------------------------------------ */

static uint32_t
site_of(const char *cfunc)
{
	extern HIDDEN uint32_t prof_site_for(const char *cfunc);

	return prof_site_for(cfunc);
}

/* Shortest path from class a to class b over learned/declared edges. */
static int
graph_path(int a, int b, int *path, int max)
{
	int prev[SMPVM_MAXCLASSES], queue[SMPVM_MAXCLASSES], qh = 0, qt = 0;
	int i, n, v;

	for (i = 0; i < SMPVM_MAXCLASSES; i++)
		prev[i] = -2;
	prev[a] = -1;
	queue[qt++] = a;
	while (qh < qt) {
		v = queue[qh++];
		if (v == b)
			break;
		for (i = 0; i < SMPVM_MAXCLASSES; i++)
			if (RG->edge[v][i] && prev[i] == -2) {
				prev[i] = v;
				queue[qt++] = i;
			}
	}
	if (prev[b] == -2)
		return 0;
	n = 0;
	for (v = b; v != -1 && n < max; v = prev[v])
		path[n++] = v;
	for (i = 0; i < n / 2; i++) {
		int t = path[i];

		path[i] = path[n - 1 - i];
		path[n - 1 - i] = t;
	}
	return n;
}

static void
report_cycle(int held_kind, int held_id, int kind, int id, int ca, int cb,
    const int *path, int n, uint32_t site, const char *why)
{
	struct race_report *r;
	uint32_t h = mix(mix(2166136261u, RR_ORDER), (uint32_t)(ca << 8 | cb));
	int i;

	for (i = 0; i < n; i++)
		h = mix(h, (uint32_t)path[i]);
	r = report_claim(RR_ORDER, h);
	if (r == NULL)
		return;
	fill_side(&r->a, site, 0, (uint64_t)(kind << 24 | id));
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = -1;
	r->b.value = (uint64_t)(held_kind << 24 | held_id);
	/*
	 * The cycle: the held class ca, then the existing path cb .. (ca) back
	 * to it.  Edge k goes from cycle_class[k] to cycle_class[k + 1] (the
	 * last back to the first): edge 0 is this acquisition, the others
	 * carry the site and thread that first made them.
	 */
	r->cycle_class[0] = ca;
	r->ncycle = 1;
	for (i = 0; i + 1 < n && r->ncycle < RACE_MAXCYCLE; i++)
		r->cycle_class[r->ncycle++] = path[i];
	for (i = 0; i < r->ncycle; i++) {
		int from = r->cycle_class[i];
		int to = r->cycle_class[(i + 1) % r->ncycle];

		if (i == 0) {
			r->cycle_site[0] = site;
			r->cycle_tid[0] = curtid;
		} else {
			r->cycle_site[i] = RG->edge_site[from][to];
			r->cycle_tid[i] = RG->edge[from][to] == 2 ? -2 :
			    RG->edge_tid[from][to];
		}
	}
	snprintf(r->msg, sizeof(r->msg), "%s", why);
	report_publish(r);
}

/*
 * A blocking acquisition of (kind, id) by the current thread, before it
 * waits: record class edges from every lock it holds, and report an order
 * reversal when the new edge closes a cycle.  Returns 1 when reported.
 */
static int
witness_edge(int hk, int hid, int kind, int id, const char *cfunc)
{
	int ca = race_lock_class(hk, hid), cb = race_lock_class(kind, id);
	int path[SMPVM_MAXCLASSES], n;
	uint32_t site;

	if (ca < 0 || cb < 0)
		return 0;
	if (RG->edge[ca][cb])
		return 0;
	if (ca == cb)
		return 0;       /* same class: recursion rules are declared */
	if (RG->edge[cb][ca] == 2)
		return 0;       /* reverses a declared order: race_rule reports it */
	site = site_of(cfunc);
	raw_lock(&RG->graph_lock);
	if (RG->edge[ca][cb]) {
		raw_unlock(&RG->graph_lock);
		return 0;
	}
	n = graph_path(cb, ca, path, SMPVM_MAXCLASSES);
	if (n == 0) {
		RG->edge[ca][cb] = 1;
		RG->edge_site[ca][cb] = site;
		RG->edge_tid[ca][cb] = curtid;
		RG->edges++;
	}
	raw_unlock(&RG->graph_lock);
	if (n > 0) {
		report_cycle(hk, hid, kind, id, ca, cb, path, n, site,
		    "possible circular locking dependency");
		return 1;
	}
	return 0;
}

HIDDEN void
race_witness(int kind, int id, const char *cfunc)
{
	int i, ns;

	if (!(race_on & RACE_WITNESS) || td == NULL)
		return;
	ns = td->nspins < SMPVM_MAXSPINS_HELD ? td->nspins : SMPVM_MAXSPINS_HELD;
	for (i = 0; i < ns; i++)
		if (td->spins_held[i] != id)
			witness_edge(LK_SPIN, td->spins_held[i], kind, id, cfunc);
	/* page busy is a sleep lock held across spinlocks: busy -> spin edges
	 * (busy -> busy is one class, not an edge) */
	if (kind != LK_BUSY && RG) {
		struct race_thread *rt = &RG->thr[curtid];

		for (i = 0; i < rt->nbusy; i++)
			witness_edge(LK_BUSY, rt->busy[i], kind, id, cfunc);
	}
}

/* Declare the kernel's order: class a before class b. */
static void
race_declare(int ca, int cb)
{
	if (RG == NULL || ca < 0 || cb < 0 || ca == cb)
		return;
	RG->edge[ca][cb] = 2;
}

/*
 * A declared rule was broken (lock order, sleeping or taking a token under
 * a spinlock, wakeup under a queue spinlock).  In checked mode this is a
 * report and the caller carries on (returns 1); otherwise 0 and the caller
 * panics as the kernel's assertion would.
 */
HIDDEN int
race_rule(int type, int kind, int id, const char *cfunc, const char *fmt, ...)
{
	struct race_report *r;
	uint32_t site, h;
	va_list ap;
	char msg[160];

	if (!(race_on & RACE_WITNESS) || td == NULL)
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	site = site_of(cfunc);
	h = mix(mix(mix(2166136261u, (uint32_t)type), site),
	    (uint32_t)race_lock_class(kind, id));
	r = report_claim((uint32_t)type, h);
	if (r == NULL)
		return 1;
	fill_side(&r->a, site, 0, (uint64_t)(kind << 24 | id));
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = -1;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	report_publish(r);
	return 1;
}

/*
 * Page contents written by the buffer cache (vm_page_copyin): they need the
 * page busy and no I/O of the page in flight.  A swap write in flight
 * (PG_SWAPINPROG) is the H1 hazard.
 */
HIDDEN void
race_page_write(int m, const char *cfunc)
{
	uint32_t f = __atomic_load_n(&PG[m].flags, __ATOMIC_RELAXED);
	struct race_report *r;
	uint32_t site, h;

	if (!(race_on & RACE_FIELDS) || td == NULL)
		return;
	if ((f & PG_BUSY) && !(f & PG_SWAPINPROG))
		return;
	site = site_of(cfunc);
	h = mix(mix(2166136261u, RR_INFLIGHT), site);
	r = report_claim(RR_INFLIGHT, h);
	if (r == NULL)
		return;
	r->index = m;
	r->required = PROT_BUSY;
	fill_side(&r->a, site, 1, f);
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = -1;
	snprintf(r->msg, sizeof(r->msg), "page %d contents written %s", m,
	    (f & PG_SWAPINPROG) ? "while its swap write is in flight "
	    "(PG_SWAPINPROG: the swap copy may be stale, H1)" :
	    "without PG_BUSY");
	report_publish(r);
}

/*
 * A freed slot used as if it were live: the kernel would read or write freed
 * memory (e.g. TAILQ_NEXT of a vm_object freed at its last drop).  Checked
 * machines report it; the caller carries on with the stale contents, as the
 * kernel would.
 */
HIDDEN void
race_use_after_free(int sk, int idx, const char *cfunc, const char *what)
{
	struct race_report *r;
	uint32_t site, h;

	if (!(race_on & RACE_FIELDS) || td == NULL)
		return;
	site = site_of(cfunc);
	h = mix(mix(mix(2166136261u, RR_USE_AFTER_FREE), site), (uint32_t)sk);
	r = report_claim(RR_USE_AFTER_FREE, h);
	if (r == NULL)
		return;
	r->index = idx;
	fill_side(&r->a, site, 0, (uint64_t)(uint32_t)idx);
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = -1;
	snprintf(r->msg, sizeof(r->msg), "use after free: %s of freed %s %d",
	    what, sk == SK_OBJECT ? "object" : sk == SK_SWBLOCK ? "swblock" :
	    "slot", idx);
	report_publish(r);
}

/* ---- page busy as a lock (witness and happens-before) --------------------- */

HIDDEN void
race_busy_acquired(int m)
{
	struct race_thread *rt;

	if (!race_on || td == NULL)
		return;
	BUSYTID[m] = curtid;
	race_acquire(LK_BUSY, m);
	rt = &RG->thr[curtid];
	if (rt->nbusy < RACE_MAXBUSY)
		rt->busy[rt->nbusy++] = m;
}

HIDDEN void
race_busy_released(int m)
{
	int t, i;

	if (!race_on || td == NULL)
		return;
	race_release(LK_BUSY, m);
	t = BUSYTID[m];
	BUSYTID[m] = -1;
	if (t < 0 || (uint32_t)t >= H->cfg.maxthreads)
		return;
	/* busy has no owner: whoever releases it, the busier forgets it */
	{
		struct race_thread *rt = &RG->thr[t];
		int n = rt->nbusy;

		for (i = 0; i < n && i < RACE_MAXBUSY; i++)
			if (rt->busy[i] == m) {
				rt->busy[i] = rt->busy[n - 1];
				rt->nbusy = n - 1;
				break;
			}
	}
}

/* ---- protocol checks (RACE_PROTOCOL) ------------------------------------------ */
/*
 * The rules of the primitives that no lock states: checked at the moment a
 * flag is published (the atomics of smpvm.c tell race_flags_op what they
 * did to a page's flags) or a mapping is made (pmap_enter).  Each broken
 * rule is its own report type, named at the site that broke it.
 */
static void
report_protocol(uint32_t type, int m, uint32_t flags, uint32_t site,
    const char *fmt, ...)
{
	struct race_report *r;
	va_list ap;

	r = report_claim(type, mix(mix(2166136261u, type), site));
	if (r == NULL)
		return;
	r->index = m;
	r->required = 0;
	fill_side(&r->a, site, 1, flags);
	memset(&r->b, 0, sizeof(r->b));
	r->b.tid = -1;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	report_publish(r);
}

/* the page whose flags word p is, or -1 */
static int
page_of_flags(volatile uint32_t *p)
{
	uintptr_t a = (uintptr_t)p, b = (uintptr_t)PG;
	uint64_t n = (uint64_t)H->cfg.npages + VMG->nmarkers;

	if (PG == NULL || a < b || a >= b + n * sizeof(struct vm_page) ||
	    (a - b) % sizeof(struct vm_page) != offsetof(struct vm_page, flags))
		return -1;
	return (int)((a - b) / sizeof(struct vm_page));
}

/*
 * An atomic changed flags word p from old: bits set, bits cleared (the
 * caller's request; old says which really changed).  For a page:
 *  - PG_SWAPINPROG is set only on a soft-busy page (reference 5.2: the
 *    caller io_start'ed it), with no writable mapping (6.5: the flush
 *    write-protected it; a store now would not reach the swap copy, H1);
 *  - PG_SWAPPED is set only with a swap block behind it (5.6, C3: a stale
 *    flag turns a diverted read into a silent zero-fill, H4);
 *  - whoever clears PG_WANTED owes the page's sleepers a wakeup before it
 *    next blocks (4.4: vm_page_wakeup clears it and wakes).
 */
HIDDEN void
race_flags_op(volatile uint32_t *p, uint32_t old, uint32_t set,
    uint32_t clear, const char *cfunc)
{
	uint32_t newly = set & ~old, site;
	int m, o, blk;

	if (!(race_on & RACE_PROTOCOL) || td == NULL || RG == NULL)
		return;
	m = page_of_flags(p);
	if (m < 0)
		return;
	if (newly & PG_SWAPINPROG) {
		site = site_of(cfunc);
		if (!(old & PG_SBUSY) || PG[m].busy == 0)
			report_protocol(RR_SWAPIO_UNBUSY, m, old, site,
			    "PG_SWAPINPROG set on page %d, which is not "
			    "soft-busy (no vm_page_io_start)", m);
		if (old & PG_WRITEABLE)
			report_protocol(RR_SWAPIO_WRITABLE, m, old, site,
			    "swap write of page %d issued with a writable "
			    "mapping (no vm_page_protect(READ))", m);
	}
	if (newly & PG_SWAPPED) {
		o = PG[m].object;
		blk = o < 0 ? SWAPBLK_NONE : swap_meta_peek(o, PG[m].pindex);
		if (blk == SWAPBLK_NONE)
			report_protocol(RR_SWAPPED_NOSWAP, m, old,
			    site_of(cfunc), "PG_SWAPPED set on page "
			    "%d (object %d pindex %llu) with no swap block", m, o,
			    (unsigned long long)PG[m].pindex);
	}
	if (clear & old & PG_WANTED) {
		struct race_thread *rt = &RG->thr[curtid];

		if (rt->owed_wakeup >= 0 && rt->owed_wakeup != m)
			race_owed_wakeup("another PG_WANTED clear");
		rt->owed_wakeup = m;
		rt->owed_site = site_of(cfunc);
	}
}

/*
 * A range free (swp_pager_meta_free) cleared the swap block of (o, pindex),
 * o held: the other side of "PG_SWAPPED only with a swap block behind it".
 * Its callers removed the range's resident pages first (or chose swblocks
 * with none), so a resident page there with PG_SWAPPED was inserted while
 * the free blocked (H2) and keeps a flag, and data, no block backs.
 * Reads the page hash directly: no checked access, no preemption point.
 */
HIDDEN void
race_swap_freed(int o, uint64_t pindex, const char *cfunc)
{
	int m;

	if (!(race_on & RACE_PROTOCOL) || td == NULL || RG == NULL ||
	    o < 0 || PG == NULL)
		return;
	for (m = OBJ[o].pghash[pindex & (OBJ_PGHASH - 1)]; m >= 0;
	    m = PG[m].hnext)
		if (PG[m].pindex == pindex)
			break;
	if (m >= 0 && (PG[m].flags & PG_SWAPPED))
		report_protocol(RR_SWAPPED_NOSWAP, m, PG[m].flags,
		    site_of(cfunc), "the swap block of page %d (object %d "
		    "pindex %llu) freed by a range free while the page is "
		    "resident with PG_SWAPPED (inserted while the free "
		    "blocked?)", m, o, (unsigned long long)pindex);
}

/* wakeup(ident): pays the wakeup owed to page m's sleepers, if it is m's */
HIDDEN void
race_wakeup_ident(uint64_t ident)
{
	struct race_thread *rt;

	if (!(race_on & RACE_PROTOCOL) || td == NULL || RG == NULL)
		return;
	rt = &RG->thr[curtid];
	if (rt->owed_wakeup >= 0 && ident == vm_page_kva(rt->owed_wakeup))
		rt->owed_wakeup = -1;
}

/* The current thread is about to block (or end) owing a wakeup. */
static void
race_owed_wakeup(const char *at)
{
	struct race_thread *rt = &RG->thr[curtid];
	int m = rt->owed_wakeup;

	rt->owed_wakeup = -1;
	report_protocol(RR_LOST_WAKEUP, m, PG[m].flags, rt->owed_site,
	    "PG_WANTED of page %d cleared without waking its sleepers "
	    "(%s came first): they sleep on", m, at);
}

HIDDEN void
race_thread_end(void)
{
	if (RG != NULL && td != NULL && RG->thr[curtid].owed_wakeup >= 0)
		race_owed_wakeup("the thread's exit");
}

/* pmap_enter(m, writable): no writable mapping while a swap write is in
 * flight (the fault path waits for soft busy) */
HIDDEN void
race_page_mapped(int m, int writable, const char *cfunc)
{
	uint32_t f;

	if (!(race_on & RACE_PROTOCOL) || td == NULL || !writable)
		return;
	f = __atomic_load_n(&PG[m].flags, __ATOMIC_RELAXED);
	if (f & PG_SWAPINPROG)
		report_protocol(RR_SWAPIO_WRITABLE, m, f, site_of(cfunc),
		    "page %d mapped writable while its swap write is in "
		    "flight (PG_SWAPINPROG)", m);
}

/* Has the run found something a schedule can stop at (a race report, a
 * wrong byte the workload counted)? */
HIDDEN int
race_found(void)
{
	if (RG != NULL && __atomic_load_n(&RG->nreports, __ATOMIC_RELAXED))
		return 1;
	return __atomic_load_n(&H->stress[ST_FAILURES], __ATOMIC_RELAXED) != 0;
}

/* ---- trace rings ---------------------------------------------------------------- */
HIDDEN void
race_trace(int op, int id)
{
	struct race_thread *rt;
	struct race_trace_ev *e;

	if (td == NULL || RG == NULL)
		return;
	rt = &RG->thr[curtid];
	if (__builtin_expect(rt->owed_wakeup >= 0, 0) &&
	    (op == HOOK_TSLEEP || op == HOOK_YIELD))
		race_owed_wakeup(op == HOOK_TSLEEP ? "tsleep" : "lwkt_yield");
	e = &rt->ring[rt->trace_pos++ % RACE_TRACE_LEN];
	e->ns = smpvm_nanotime();
	e->op = (uint16_t)op;
	e->id = id;
}
