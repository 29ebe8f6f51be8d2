/*
 * bio.c - the code under the port that is not the subject of study: the
 * buffer path (sys/kern/vfs_bio.c), the vnode pager's I/O and the swap
 * pager's I/O (sys/vm/swap_pager.c), and page copies.  Each function here
 * is the C transliteration of the Python of smpvm/vfs/vfs_bio.py and
 * smpvm/vm/swap_pager.py that it replaced, statement for statement: the
 * same primitives (vm.c, smpvm.c) called in the same order with the same
 * arguments, so every lock operation, atomic, sleep, wakeup and yield --
 * every preemption point of a deterministic schedule -- is where it was.
 *
 * The Python it replaced also read and wrote page, object and vnode fields
 * through the checked views of a checked machine (smpvm/vm/vmview.py), and
 * each such access was a preemption point (HOOK_ACCESS) followed by a field
 * check.  PY_READ/PY_STORE below make the same access, in the same order,
 * with the same check (race_access, the Python views' own entry): a read
 * the view checked (a field with an @R protector), every store.  The value
 * is read before the point and a store made after it, as the views do.
 *
 * Why C: a page through the buffer path was ~10 cffi calls and ~40 Python
 * statements (~15 us of host CPU), against a few hundred ns here
 * (reference/measured-costs.md).  Python still decides where the kernel
 * decides: vm_wait (which may park at a safe point) and the fault
 * injection of the SSD stay Python (the fault hook is called back).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "smpvm_priv.h"

/* ---- the Python views' field checks, from C --------------------------------- */
enum { F_PG_VALID, F_PG_PINDEX, F_PG_SWAP_WRITES, F_OBJ_TYPE, F_VN_NAME,
	F_NPYF };
static const char *const pyf_name[F_NPYF][2] = {
	[F_PG_VALID] = {"vm_page", "valid"},
	[F_PG_PINDEX] = {"vm_page", "pindex"},
	[F_PG_SWAP_WRITES] = {"vm_page", "swap_writes"},
	[F_OBJ_TYPE] = {"vm_object", "type"},
	[F_VN_NAME] = {"vnode", "name"},
};
static int pyf_id[F_NPYF];
static int pyf_rd[F_NPYF];              /* the view checks its reads     */
static struct smpvm_header *pyf_h;      /* the machine pyf_site belongs to */
static uint32_t pyf_site;

static void
pyf_resolve(void)
{
	py_view_fields(pyf_name, F_NPYF, pyf_id, pyf_rd);
	pyf_site = (uint32_t)prof_site_intern("bio.c (the buffer path)");
	pyf_h = H;
}

static void
py_access(int k, int idx, int write, uint64_t value)
{
	if (pyf_h != H)
		pyf_resolve();
	if (pyf_id[k] >= 0 && (write || pyf_rd[k]))
		race_access(pyf_id[k], idx, write, value, pyf_site);
}

/* v = field, as `x = v.pages[idx].field` reads it (value first, then the
 * point and the check) */
#define PY_READ(k, idx, lval) ({                                         \
	uint64_t _v = (uint64_t)(lval);                                 \
	if (PY_VIEWS_CHECKED())                                         \
		py_access((k), (idx), 0, _v);                           \
	_v; })
/* field = v, as `v.pages[idx].field = v` stores it (a plain store: 2) */
#define PY_STORE(k, idx, lval, v) do {                                   \
	uint64_t _v = (uint64_t)(v);                                    \
	if (PY_VIEWS_CHECKED())                                         \
		py_access((k), (idx), 2, _v);                           \
	(lval) = _v;                                                    \
} while (0)

/* ---- I/O waits and the SSD's fault hook --------------------------------------- */

/* A synchronous bio wait is a blocking point (swap_pager.py io_wait). */
static inline void
io_wait(void)
{
	if (curtid >= 0)
		lwkt_yield();
}

/* The errno of a host I/O error of the buffer path (a full disk, a quota):
 * the Python caller raises it as the host error it is, as os.pwrite did. */
static int bio_host_errno;

static bio_fault_fn fault_fn;
static int fault_hook_on;

void
bio_set_fault_fn(bio_fault_fn fn)
{
	fault_fn = fn;
}

void
bio_fault_hook(int on)
{
	fault_hook_on = on;
}

/*
 * The fault to inject into one SSD I/O (swap_pager.py _fault): 0 none, an
 * errno, or -1 with *nbytes the length a short write keeps.  Python is
 * asked only when a fault can come (a test's hook, or a fault rate).
 */
static int
io_fault(int op, int blk, int n, int *nbytes)
{
	struct vm_faults *f = &VMG->faults;

	if (fault_fn == NULL || (!fault_hook_on && !(f->eio_ppm ||
	    f->short_ppm || f->enospc_ppm || f->delay_ppm)))
		return 0;
	return fault_fn(op, blk, n, nbytes);
}

static inline char *
page_mem(int m)
{
	return PHYS + (uint64_t)m * PAGE_SIZE;
}

static ssize_t
preadv_pages(int fd, const int *pages, int n, uint64_t off)
{
	struct iovec iov[BIO_MAXPAGES];
	int k;

	for (k = 0; k < n; k++) {
		iov[k].iov_base = page_mem(pages[k]);
		iov[k].iov_len = PAGE_SIZE;
	}
	return preadv(fd, iov, n, (off_t)off);
}

static ssize_t
pwritev_pages(int fd, const int *pages, int n, uint64_t off)
{
	struct iovec iov[BIO_MAXPAGES];
	int k;

	for (k = 0; k < n; k++) {
		iov[k].iov_base = page_mem(pages[k]);
		iov[k].iov_len = PAGE_SIZE;
	}
	return pwritev(fd, iov, n, (off_t)off);
}

#define COUNTER_ADD(field, n)                                            \
	atomic_fetchadd_long(&VMG->cnt.field, (uint64_t)(n))

/* ---- buffers (vfs_bio.c) --------------------------------------------------------- */

/*
 * bio_busy_pages(o, start, n, also_m_busy, pages): busy pages [start,
 * start+n) of o, allocating absent ones, in ascending pindex order (two
 * buffers never deadlock).  o held by the caller.  Returns n, or -1 after
 * releasing them when memory ran out (the caller vm_wait()s and retries).
 */
int
bio_busy_pages(int o, uint64_t start, int n, int also_m_busy, int *pages)
{
	int k, j, m;

	if (n < 0 || n > BIO_MAXPAGES) {
		panicf("bio_busy_pages: %d pages", n);
		return -1;
	}
	for (k = 0; k < n; k++) {
		uint64_t pindex = start + (uint64_t)k;

		for (;;) {
			m = vm_page_lookup_busy_wait(o, pindex, also_m_busy,
			    "getblk");
			if (m >= 0)
				break;
			m = vm_page_alloc(o, pindex,
			    VM_ALLOC_NORMAL | VM_ALLOC_NULL_OK);
			if (m >= 0)
				break;
			if (vm_page_lookup(o, pindex) >= 0)
				continue;       /* lost an insert race: look again */
			for (j = 0; j < k; j++)
				vm_page_wakeup(pages[j]);
			return -1;
		}
		pages[k] = m;
	}
	return n;
}

/*
 * getblk(o, start, n, also_m_busy, bp): the buffer over pages [start,
 * start+n) of o (held): each page busied and wired, as allocbuf does,
 * which takes it off its queue; b_act_count is the largest act_count of
 * its pages.  0, or -1 when memory ran out (nothing held).
 */
int
getblk(int o, uint64_t start, int n, int also_m_busy, struct buf *bp)
{
	int k, m;

	bp->b_npages = 0;
	if (bio_busy_pages(o, start, n, also_m_busy, bp->b_pages) < 0)
		return -1;
	bp->b_npages = n;
	bp->b_act_count = ACT_INIT;
	for (k = 0; k < n; k++) {
		m = bp->b_pages[k];
		vm_page_wire(m);
		if (bp->b_act_count < PG[m].act_count)
			bp->b_act_count = PG[m].act_count;
	}
	return 0;
}

/*
 * vfs_vmio_release(bp): give a destroyed buffer's pages back to the VM
 * (vfs_bio.c @seed): each busied, unwired to the INACTIVE tail (ACTIVE if
 * b_act_count reached vfs.vm_cycle_point), unmapped and unbusied.
 */
void
vfs_vmio_release(struct buf *bp)
{
	int activate = bp->b_act_count >= VM_CYCLE_POINT, k, m;

	for (k = 0; k < bp->b_npages; k++) {
		m = bp->b_pages[k];
		vm_page_busy_wait(m, 0, "vmiopg");
		vm_page_unwire(m, activate);
		vm_page_protect(m, VM_PROT_NONE);
		vm_page_wakeup(m);
	}
	bp->b_npages = 0;
}

/* brelse(bp): the buffer's lock (its pages' busy) goes, then it is
 * destroyed (vfs_vmio_release). */
void
brelse(struct buf *bp)
{
	int k;

	for (k = 0; k < bp->b_npages; k++)
		vm_page_wakeup(bp->b_pages[k]);
	vfs_vmio_release(bp);
}

/*
 * fault_release(pages, n): release pages a fault busied (never wired): a
 * page on no queue, or still on CACHE, goes to the INACTIVE tail, the
 * others are marked referenced.
 */
void
fault_release(const int *pages, int n)
{
	int k, m, q;

	for (k = 0; k < n; k++) {
		m = pages[k];
		q = PG[m].queue;
		if (q == PQ_NONE || q - PG[m].pc == PQ_CACHE)
			vm_page_deactivate(m);
		else
			atomic_set_int(&PG[m].flags, PG_REFERENCED);
		vm_page_wakeup(m);
	}
}

/* ---- the swap pager's read strategy ----------------------------------------------- */

/*
 * swap_pager_strategy_read(o, pages, n, swapfd, st): read the pages
 * (busied, consecutive pindexes of o) from swap: the read half of
 * swap_pager_strategy.  Holds o while it looks up each page's block;
 * contiguous blocks are one preadv.  A page with no block is zero-filled
 * silently, as the kernel does, counted (vm_counters.zero_fills) and
 * recorded in st->zero for the verifier.  Returns 0 or an errno.
 */
int
swap_pager_strategy_read(int o, const int *pages, int n, int swapfd,
    struct bio_stats *st)
{
	uint64_t pidx[BIO_MAXPAGES];
	int blks[BIO_MAXPAGES], i, j, k, error = 0, nzero = 0, nb, f;

	vm_object_hold(o);
	for (k = 0; k < n; k++)
		pidx[k] = PY_READ(F_PG_PINDEX, pages[k], PG[pages[k]].pindex);
	for (k = 0; k < n; k++)
		blks[k] = swap_pager_meta_lookup(o, pidx[k]);
	vm_object_drop(o);
	i = 0;
	while (i < n) {
		if (blks[i] == SWAPBLK_NONE) {
			memset(page_mem(pages[i]), 0, PAGE_SIZE);
			if (st->nzero < BIO_MAXPAGES)
				st->zero[st->nzero++] = pidx[i];
			nzero++;
			i++;
			continue;
		}
		j = i + 1;
		while (j < n && blks[j] == blks[j - 1] + 1 &&
		    (blks[j] & (SWB_DMMAX - 1)))
			j++;
		io_wait();
		f = io_fault(BIO_READ, blks[i], j - i, &nb);
		if (f > 0) {
			error = f;
		} else {
			ssize_t r = preadv_pages(swapfd, pages + i, j - i,
			    (uint64_t)blks[i] * PAGE_SIZE);

			if (r < 0)
				error = errno ? errno : EIO;
			else if (r != (ssize_t)(j - i) * PAGE_SIZE)
				error = EINVAL;
		}
		i = j;
	}
	if (nzero)
		COUNTER_ADD(zero_fills, nzero);
	return error;
}

/* ---- the strategy path ------------------------------------------------------------- */

/*
 * vn_cache_strategy: divert a read of pages (busied by the caller,
 * consecutive, page-aligned, not a pbuf) to swap when every page is
 * PG_SWAPPED and read_enable is set (vfs_bio.c @seed).  The caller holds
 * o.  1 when diverted.  A failed swap read is counted and the caller reads
 * the file instead (the kernel fails the read with EIO; smpvm keeps an SSD
 * fault from ever being a wrong byte).
 */
static int
vn_cache_strategy(int o, const int *pages, int n, int swapfd,
    struct bio_stats *st)
{
	int k, error, nzero0 = st->nzero;

	if (VMG->swapcache.read_enable == 0 || n == 0)
		return 0;
	for (k = 0; k < n; k++) {
		int m = pages[k];

		if (!(PG[m].flags & PG_SWAPPED) ||
		    PY_READ(F_PG_VALID, m, PG[m].valid))
			return 0;
	}
	error = swap_pager_strategy_read(o, pages, n, swapfd, st);
	if (error) {
		COUNTER_ADD(swap_read_errors, 1);
		st->error = error;
		st->nzero = nzero0;     /* the file's bytes replace them */
		return 0;
	}
	COUNTER_ADD(diverted_reads, 1);
	COUNTER_ADD(diverted_pages, n);
	for (k = 0; k < n; k++) {
		uint64_t p = PY_READ(F_PG_PINDEX, pages[k],
		    PG[pages[k]].pindex);

		if (st->ndiverted < BIO_MAXPAGES)
			st->diverted[st->ndiverted++] = p;
	}
	return 1;
}

/*
 * vnode_pager_getpages: read the invalid pages among pages (busied by the
 * caller, which holds their object) from the backing file fd; bytes past
 * EOF read as zero.  Each contiguous run is one I/O wait.
 */
static void
vnode_pager_getpages(int fd, const int *pages, int n)
{
	int i = 0, j, k;

	while (i < n) {
		if (PY_READ(F_PG_VALID, pages[i], PG[pages[i]].valid) ==
		    VM_PAGE_BITS_ALL) {
			i++;
			continue;
		}
		j = i + 1;
		while (j < n && PY_READ(F_PG_VALID, pages[j],
		    PG[pages[j]].valid) != VM_PAGE_BITS_ALL)
			j++;
		io_wait();
		{
			uint64_t off = PY_READ(F_PG_PINDEX, pages[i],
			    PG[pages[i]].pindex) * PAGE_SIZE;
			ssize_t r = preadv_pages(fd, pages + i, j - i, off);

			if (r < 0) {
				bio_host_errno = errno;
				r = 0;
			}
			if (r < (ssize_t)(j - i) * PAGE_SIZE)
				for (k = 0; k < j - i; k++) {
					ssize_t lo = r - (ssize_t)k * PAGE_SIZE;

					if (lo < 0)
						lo = 0;
					if (lo < PAGE_SIZE)
						memset(page_mem(pages[i + k]) + lo,
						    0, PAGE_SIZE - lo);
				}
		}
		i = j;
	}
	COUNTER_ADD(vnode_reads, 1);
}

/*
 * vn_strategy_read(o, pages, n, fd, swapfd, st): fill the invalid pages of
 * a busied buffer (o held): from the SSD if vn_cache_strategy diverts it,
 * else from the file fd.  All pages end valid.  Blocks (I/O waits).
 */
void
vn_strategy_read(int o, const int *pages, int n, int fd, int swapfd,
    struct bio_stats *st)
{
	int k, all = 1;

	for (k = 0; k < n; k++)
		if (PY_READ(F_PG_VALID, pages[k], PG[pages[k]].valid) !=
		    VM_PAGE_BITS_ALL) {
			all = 0;
			break;
		}
	if (!all && !vn_cache_strategy(o, pages, n, swapfd, st))
		vnode_pager_getpages(fd, pages, n);
	for (k = 0; k < n; k++)
		PY_STORE(F_PG_VALID, pages[k], PG[pages[k]].valid,
		    VM_PAGE_BITS_ALL);
}

/*
 * bread_copy(o, lblk, n, fd, swapfd, offset, length, dst, st): one buffer
 * of a read(2) (o held): bread [lblk, lblk+n), copy the bytes of
 * [offset, offset+length) it holds to dst (dst[0] is file byte offset),
 * brelse.  0; -1 when getblk found no memory (nothing held: the caller
 * vm_wait()s and calls again); -2 after a host I/O error (the caller raises
 * bio_take_host_errno()).
 */
int
bread_copy(int o, uint64_t lblk, int n, int fd, int swapfd, uint64_t offset,
    uint64_t length, char *dst, struct bio_stats *st)
{
	struct buf b;
	uint64_t first = offset / PAGE_SIZE;
	uint64_t last = (offset + length - 1) / PAGE_SIZE;
	int k;

	if (getblk(o, lblk, n, 0, &b) < 0)
		return -1;
	vn_strategy_read(o, b.b_pages, n, fd, swapfd, st);
	for (k = 0; k < n; k++) {
		uint64_t pidx = lblk + (uint64_t)k, lo, hi;

		if (pidx < first || pidx > last)
			continue;
		lo = pidx == first ? offset - pidx * PAGE_SIZE : 0;
		hi = pidx == last ? offset + length - pidx * PAGE_SIZE :
		    PAGE_SIZE;
		memcpy(dst + (pidx * PAGE_SIZE + lo - offset),
		    page_mem(b.b_pages[k]) + lo, hi - lo);
	}
	brelse(&b);
	return bio_host_errno ? -2 : 0;
}

/*
 * vfs_read(vp, o, offset, length, npages_file, fd, swapfd, dst, st): a
 * read(2) of [offset, offset + length) of vnode vp (object o, npages_file
 * pages, the bytes all before EOF) into dst, buffer by buffer (bread_copy)
 * with o held throughout -- taken at the first call, dropped when the read
 * ends; st->held and st->lblk keep the place between calls.  Returns 0
 * when done (o dropped); -1 when a buffer found no memory (o still held:
 * the caller vm_wait()s and calls again, or drops o if vm_wait raises); 1
 * when st is nearly full (the caller takes its entries and calls again);
 * -2 after a host I/O error (o dropped: the caller raises
 * bio_take_host_errno()).
 */
int
vfs_read(int vp, int o, uint64_t offset, uint64_t length,
    uint64_t npages_file, int fd, int swapfd, char *dst,
    struct bio_stats *st)
{
	uint64_t last = (offset + length - 1) / PAGE_SIZE;
	int n, r;

	if (!st->held) {
		vm_object_hold(o);
		st->held = 1;
		st->lblk = offset / PAGE_SIZE;
		st->lblk -= st->lblk % BUF_PAGES;
	}
	while (st->lblk <= last) {
		if (st->ndiverted > BIO_MAXPAGES - BUF_PAGES ||
		    st->nzero > BIO_MAXPAGES - BUF_PAGES)
			return 1;
		n = npages_file - st->lblk < BUF_PAGES ?
		    (int)(npages_file - st->lblk) : BUF_PAGES;
		r = bread_copy(o, st->lblk, n, fd, swapfd, offset, length, dst,
		    st);
		if (r == -1)
			return -1;
		st->lblk += BUF_PAGES;
		if (r == -2)
			break;
	}
	vm_object_drop(o);
	st->held = 0;
	return bio_host_errno ? -2 : 0;
}

/* ---- writes ---------------------------------------------------------------------------- */

/* vn.size = max(vn.size, end), atomically; the object's size follows. */
static void
extend_size(int vp, uint64_t end)
{
	volatile uint64_t *p = &VN[vp].size, *os;
	uint64_t cur, pages;

	for (;;) {
		cur = *p;
		if (end <= cur)
			return;
		if (atomic_cmpset_long(p, cur, end))
			break;
	}
	os = &OBJ[VN[vp].v_object].size;
	pages = (end + PAGE_SIZE - 1) / PAGE_SIZE;
	for (;;) {
		cur = *os;
		if (pages <= cur || atomic_cmpset_long(os, cur, pages))
			return;
	}
}

/*
 * vnode_pager_putpage(vp, m, fd): clean page m to vp's backing file fd:
 * the write half of a buffer write.  The caller holds m busy and m's
 * object.  Write-protect folds pte-modified bits into dirty, the swap copy
 * is released, the page is written up to EOF -- the size read after the
 * I/O wait, which loses the object's token, so a truncation that ran
 * meanwhile is not undone by an old page written past the new EOF -- and
 * then is clean.
 */
void
vnode_pager_putpage(int vp, int m, int fd)
{
	uint64_t size, off, n;

	vm_page_protect(m, VM_PROT_READ);
	if (!(VMG->bugs & BUG_SKIP_UNSWAP_ON_WRITE))
		swap_pager_unswapped(m);
	io_wait();
	size = VN[vp].size;
	off = PY_READ(F_PG_PINDEX, m, PG[m].pindex) * PAGE_SIZE;
	n = size > off ? size - off : 0;
	if (n > PAGE_SIZE)
		n = PAGE_SIZE;
	if (n) {
		ssize_t r = pwrite(fd, page_mem(m), n, (off_t)off);

		if (r < 0)
			bio_host_errno = errno;
	}
	vm_page_undirty(m);
	pmap_clear_modify(m);
	COUNTER_ADD(vnode_writes, 1);
}

/*
 * bwrite_page(vp, o, pindex, off, src, len, fd, swapfd, st): write src at
 * byte off of page pindex of vp through a one-page buffer (o held),
 * write-through; extends the file if needed.  A partial write of an
 * invalid page reads it first.  The fixed kernel waits for an in-flight
 * swap write (soft busy) before it modifies a page; the seed does not
 * (H1).  0; -1 when getblk found no memory (nothing held, nothing
 * written: the caller vm_wait()s and calls again); -2 after a host I/O
 * error.
 */
int
bwrite_page(int vp, int o, uint64_t pindex, uint32_t off, const char *src,
    uint32_t len, int fd, int swapfd, struct bio_stats *st)
{
	struct buf b;
	int also = !(VMG->bugs & BUG_WRITE_IGNORES_SWAPINPROG), m;
	int partial = off != 0 || len != PAGE_SIZE;

	if (getblk(o, pindex, 1, also, &b) < 0)
		return -1;
	m = b.b_pages[0];
	if (partial && PY_READ(F_PG_VALID, m, PG[m].valid) != VM_PAGE_BITS_ALL)
		vn_strategy_read(o, b.b_pages, 1, fd, swapfd, st);
	vm_page_copyin(m, off, src, len);
	PY_STORE(F_PG_VALID, m, PG[m].valid, VM_PAGE_BITS_ALL);
	vm_page_dirty(m);
	extend_size(vp, pindex * PAGE_SIZE + off + len);
	vnode_pager_putpage(vp, m, fd);
	brelse(&b);
	return bio_host_errno ? -2 : 0;
}

/* ---- the swap pager's writes -------------------------------------------------------- */

/* The write of a run (swap_pager.py _swap_write): the device takes the
 * pages' contents when the write is issued, then the thread waits for the
 * I/O (a token-loss point).  0 or an errno. */
static int
swap_write(const int *run, int n, int blk, int swapfd)
{
	int nb = 0, f, error;
	ssize_t r;

	f = io_fault(BIO_WRITE, blk, n, &nb);
	if (f > 0) {
		error = f;
	} else {
		r = pwritev_pages(swapfd, run, n, (uint64_t)blk * PAGE_SIZE);
		if (r < 0)
			error = errno ? errno : EIO;
		else {
			if (f < 0 && r > nb)
				r = nb;
			error = r == (ssize_t)n * PAGE_SIZE ? 0 : EIO;
		}
	}
	io_wait();
	return error;
}

/*
 * swp_pager_async_iodone: completion of a swap write of run (swap_pager.c
 * @seed), inline, o held.  Error: the assignment is destroyed (SWM_FREE),
 * PG_SWAPPED cleared (a SWAP object's page dirtied and activated),
 * PG_SWAPINPROG cleared.  Success: a SWAP object's page undirtied,
 * PG_SWAPINPROG cleared, PG_SWAPPED set, deactivated under a severe
 * shortage.  Each page busied ("swadpg"), io_finish'ed and unbusied; then
 * one pip release per page, and vm_token around the pbuf's release.
 */
static void
swp_pager_async_iodone(int o, const int *run, int n, int error)
{
	int k, m;

	for (k = 0; k < n; k++) {
		m = run[k];
		vm_page_busy_wait(m, 0, "swadpg");
		if (error) {
			uint64_t p = PY_READ(F_PG_PINDEX, m, PG[m].pindex);

			swp_pager_meta_ctl(o, p, SWM_FREE);
			atomic_clear_int(&PG[m].flags, PG_SWAPPED);
			if (OBJ[o].type == OBJT_SWAP) {
				vm_page_dirty(m);
				vm_page_activate(m);
			}
			atomic_clear_int(&PG[m].flags, PG_SWAPINPROG);
		} else {
			if (OBJ[o].type == OBJT_SWAP)
				vm_page_undirty(m);
			atomic_clear_int(&PG[m].flags, PG_SWAPINPROG);
			atomic_set_int(&PG[m].flags, PG_SWAPPED);
			if (vm_page_count_severe())
				vm_page_deactivate(m);
			PY_STORE(F_PG_SWAP_WRITES, m, PG[m].swap_writes,
			    PG[m].swap_writes + 1);
		}
		vm_page_io_finish(m);
		if (VMG->bugs & BUG_LOST_IO_WAKEUP)     /* broken on purpose */
			atomic_clear_int(&PG[m].flags, PG_BUSY | PG_WANTED);
		else
			vm_page_wakeup(m);
	}
	if (error) {
		COUNTER_ADD(swap_write_errors, 1);
	} else {
		COUNTER_ADD(swap_write_pages, n);
		COUNTER_ADD(swap_write_clusters, 1);
	}
	vm_object_pip_wakeup_n(o, n);
	lwkt_gettoken(TOK_VM);          /* relpbuf(bp, &nsw_wcount_sync) */
	lwkt_reltoken(TOK_VM);
}

/*
 * swap_pager_putpages(o, marray, count, swapfd, rtvals): write the pages
 * of marray (all in o) to newly assigned swap (swap_pager.c @seed).
 * Caller's duties: every page in o and soft-busied (vm_page_io_start), its
 * hard busy released, vm_object_pip_add(o, count) taken.  Synchronous (as
 * for every thread but pageout): the completion runs inline.  rtvals[i]
 * becomes VM_PAGER_PEND for every page whose I/O was issued and
 * VM_PAGER_FAIL for pages that got no swap.
 */
void
swap_pager_putpages(int o, const int *marray, int count, int swapfd,
    int *rtvals)
{
	int i = 0, j, n, blk, inside, error;

	vm_object_hold(o);
	if (OBJ[o].type == OBJT_DEFAULT)
		PY_STORE(F_OBJ_TYPE, o, OBJ[o].type, OBJT_SWAP);
	while (i < count) {
		n = count - i;
		if (n > SWAP_META_PAGES)
			n = SWAP_META_PAGES;
		if (n > NSW_CLUSTER_MAX)
			n = NSW_CLUSTER_MAX;
		/* vm_token across the allocation, its retries and the stripe
		 * trim (the inner takes are recursive) */
		lwkt_gettoken(TOK_VM);
		blk = swp_pager_getswapspace(o, n);
		while (blk == SWAPBLK_NONE && n > 4) {
			n >>= 1;
			blk = swp_pager_getswapspace(o, n);
		}
		if (blk == SWAPBLK_NONE) {
			for (j = i; j < i + n; j++)
				rtvals[j] = VM_PAGER_FAIL;
			lwkt_reltoken(TOK_VM);
			i += n;
			continue;
		}
		/* a run may not cross a dmmax stripe: give back the tail */
		inside = blk & (SWB_DMMAX - 1);
		if (inside + n > SWB_DMMAX) {
			j = SWB_DMMAX - inside;
			swp_pager_freeswapspace(o, blk + j, n - j);
			n = j;
		}
		lwkt_reltoken(TOK_VM);
		for (j = 0; j < n; j++) {
			int m = marray[i + j];
			uint64_t p = PY_READ(F_PG_PINDEX, m, PG[m].pindex);

			/* frees the page's previous block at once, if any */
			swp_pager_meta_build(o, p, blk + j);
			if (OBJ[o].type == OBJT_SWAP)
				vm_page_dirty(m);
			atomic_set_int(&PG[m].flags, PG_SWAPINPROG);
		}
		error = swap_write(marray + i, n, blk, swapfd);
		for (j = i; j < i + n; j++)
			rtvals[j] = VM_PAGER_PEND;
		swp_pager_async_iodone(o, marray + i, n, error);
		i += n;
	}
	vm_object_drop(o);
}

/* ---- names (smpvm/vfs/vnode.py) ------------------------------------------------------- */

/*
 * vn_lookup_locked(name): the vnode of a live (allocated, not unlinked)
 * file called name, or -1; vnode_token held.  Slot by slot, as the Python
 * it replaced: each candidate's name is read through the view's check.
 */
int
vn_lookup_locked(const char *name)
{
	int vp;

	for (vp = 0; vp < (int)H->cfg.nvnodes; vp++) {
		struct vnode *vn = &VN[vp];

		if (vn->state != 1 || vn->unlinked)
			continue;
		PY_READ(F_VN_NAME, vp, 0);
		if (strncmp(vn->name, name, sizeof(vn->name)) == 0)
			return vp;
	}
	return -1;
}

/* ---- page flags, for Python (smpvm/vm/vm_page.py) ------------------------------------ */

/* vm_page_flag_set(m, bits): m->flags |= bits, atomically (no lock). */
void
vm_page_flag_set(int m, uint32_t bits)
{
	atomic_set_int(&PG[m].flags, bits);
}

/* vm_page_flag_clear(m, bits): m->flags &= ~bits, atomically. */
void
vm_page_flag_clear(int m, uint32_t bits)
{
	atomic_clear_int(&PG[m].flags, bits);
}

/* ---- page copies ------------------------------------------------------------------------ */

/* Copy n bytes at byte off of page m to dst (no lock: the caller holds m
 * busy or the world is stopped). */
void
vm_page_copyout(int m, uint32_t off, char *dst, uint32_t n)
{
	if ((uint32_t)m >= H->cfg.npages || off + n > PAGE_SIZE) {
		panicf("vm_page_copyout: page %d off %u len %u", m, off, n);
		return;
	}
	memcpy(dst, page_mem(m) + off, n);
}

/* The errno of the last host write of this process that failed (0 none);
 * reading it clears it. */
int
bio_take_host_errno(void)
{
	int e = bio_host_errno;

	bio_host_errno = 0;
	return e;
}
