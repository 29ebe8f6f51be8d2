/*
 * smpvm_priv.h - what the C files of the machine share and Python does not
 * see: the process-local binding and a few inline helpers.
 */
#ifndef SMPVM_PRIV_H
#define SMPVM_PRIV_H
#include "smpvm.h"

#define HIDDEN __attribute__((visibility("hidden")))

/* the process-local binding (smpvm_bind) */
extern HIDDEN struct smpvm_header *H;
extern HIDDEN struct smpvm_thread *T;
extern HIDDEN struct spinlock *SL;
extern HIDDEN struct lwkt_token *TK;
extern HIDDEN struct smpvm_sleepq *SQ;
extern HIDDEN struct smpvm_thread *td;
extern HIDDEN int curtid;
extern HIDDEN uint32_t curref;
extern HIDDEN smpvm_hook_fn hook;

/* the VM's regions (vm.c, bound by vm_bind) */
extern HIDDEN struct vm_globals *VMG;
extern HIDDEN struct vm_page *PG;
extern HIDDEN char *PHYS;
extern HIDDEN struct vm_object *OBJ;
extern HIDDEN struct vnode *VN;
extern HIDDEN struct swblock *SWB;
extern HIDDEN uint32_t *BL;

/* the spinlock id of page queue q (the named queue spinlocks follow the
 * pool) */
#define QSPIN(q)        ((int)H->cfg.spin_pool + SPIN_NAMED_QUEUE0 + (q))

HIDDEN void panicf(const char *fmt, ...);
HIDDEN void spin_lock_at(int id, const char *cfunc);
HIDDEN void spin_unlock_at(int id, const char *cfunc);
HIDDEN void lwkt_gettoken_at(int id, const char *cfunc);
HIDDEN void prof_wait(int kind, int lock, const char *cfunc, uint64_t wait_ns);
HIDDEN void vm_layout(struct smpvm_config *cfg, uint64_t *len);
HIDDEN void vm_bind(void *base);
HIDDEN void vm_init(void);
HIDDEN int futex_wait(volatile uint32_t *w, uint32_t val, uint64_t timeout_ns);
HIDDEN void futex_wake(volatile uint32_t *w, int n);

/* the deterministic scheduler (sched.c) */
extern HIDDEN struct sched_state *SCH;  /* NULL: no REG_SCHED           */
extern HIDDEN int sched_on;             /* this process is a scheduled thread */
HIDDEN void sched_layout(struct smpvm_config *cfg, uint64_t *len);
HIDDEN void sched_bind(void *base);
HIDDEN void sched_init(void);
HIDDEN void sched_unbind(void);
HIDDEN void sched_attach(void);
HIDDEN void sched_exit(void);
HIDDEN int  sched_block(void);
HIDDEN void sched_switch(void);
HIDDEN int  sched_token_loss(int id);
HIDDEN void sched_panic(void);

/* the race checkers (race.c); race_on is 0 unless the machine is checked */
extern HIDDEN uint32_t race_on;
HIDDEN void race_layout(struct smpvm_config *cfg, uint64_t *len);
HIDDEN void race_bind(void *base);
HIDDEN void race_init(void);
HIDDEN void race_acquire(int kind, int id);
HIDDEN void race_release(int kind, int id);
HIDDEN void race_wakeup(uint64_t ident);
HIDDEN void race_woken(uint64_t ident);
HIDDEN void race_thread_fork(int child);
HIDDEN void race_witness(int kind, int id, const char *cfunc);
HIDDEN int  race_rule(int type, int kind, int id, const char *cfunc,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
HIDDEN void race_page_write(int m, const char *cfunc);
HIDDEN void race_use_after_free(int sk, int idx, const char *cfunc,
    const char *what);
HIDDEN void race_busy_acquired(int m);
HIDDEN void race_busy_released(int m);
HIDDEN void race_trace(int op, int id);
HIDDEN void race_access_c(int sk, int idx, int off, int write, uint64_t value,
    const char *cfunc, uint32_t *sitecache);
HIDDEN uint32_t prof_site_for(const char *cfunc);
HIDDEN int  race_found(void);
HIDDEN void race_flags_op(volatile uint32_t *p, uint32_t old, uint32_t set,
    uint32_t clear, const char *cfunc);
HIDDEN void race_wakeup_ident(uint64_t ident);
HIDDEN void race_swap_freed(int o, uint64_t pindex, const char *cfunc);
HIDDEN void race_page_mapped(int m, int writable, const char *cfunc);
HIDDEN void race_thread_end(void);
HIDDEN void py_view_fields(const char *const (*names)[2], int n, int *id,
    int *rd);

/* Python's checked views (smpvm/vm/vmview.py) exist on machines checked
 * for fields or happens-before: C that replaced Python makes their
 * accesses (race_access: a preemption point, then the check) only there. */
#define PY_VIEWS_CHECKED()  (__builtin_expect(race_on != 0, 0) &&        \
	    (race_on & (RACE_FIELDS | RACE_HB)))

/* noise (smpvm.c): delays at preemption points of free runs */
extern HIDDEN int noise_on;
HIDDEN void noise_point(int op, int id);

/*
 * RACE_CHK(sk, type, idx, field, write): the field discipline and
 * happens-before check of one access by a C primitive (write: 0 read,
 * 1 write).  Placed where the primitive touches a lock-protected field, so a
 * change to the C locking is checked like one in Python.
 */
#define RACE_CHK(sk, type, idx, field, write) do {                      \
	static uint32_t _site[2];       /* site id, machine generation */ \
	if (__builtin_expect(race_on != 0, 0))                          \
		race_access_c((sk), (idx), offsetof(type, field), (write), \
		    0, __func__, _site);                                \
} while (0)

#define PREEMPT_POINT(op, id) do {                                      \
	if (__builtin_expect(race_on != 0, 0))                          \
		race_trace((op), (id));                                 \
	if (__builtin_expect(hook != NULL, 0))                          \
		hook((op), (id));                                       \
} while (0)

/*
 * NOISE_POINT(op, id): a point where only the noise of a free run may
 * delay the thread (after an atomic published a flag); never a step of a
 * deterministic schedule.  Off, it is one predictable branch.
 */
#define NOISE_POINT(op, id) do {                                        \
	if (__builtin_expect(noise_on != 0, 0))                         \
		noise_point((op), (id));                                \
} while (0)

#endif
