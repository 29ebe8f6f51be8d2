/*
 * stamp.c - the stress workload's stamps (smpvm/stress/stamps.py), in C
 * because a verified page is 64 of them: every 64-byte unit a writer puts
 * in a file is its 24-byte header (file id, unit index, incarnation, cpu,
 * op number; little-endian "<IIIIQ") repeated to 64 bytes.  And the
 * workload's counters of one verified read, in one call.
 */
#include <string.h>

#include "smpvm_priv.h"

#define HDR     24

static inline void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t
get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

/* stamp_fill(dst, len, ...): the units of a write of len bytes (a multiple
 * of STAMP_UNIT) whose first unit has index first_unit. */
void
stamp_fill(char *dst, uint64_t len, uint32_t file_id, uint64_t first_unit,
    uint32_t inc, uint32_t cpu, uint64_t op)
{
	unsigned char h[HDR];
	uint64_t k;

	put32(h, file_id);
	put32(h + 8, inc);
	put32(h + 12, cpu);
	put32(h + 16, (uint32_t)op);
	put32(h + 20, (uint32_t)(op >> 32));
	for (k = 0; k < len / STAMP_UNIT; k++) {
		unsigned char *u = (unsigned char *)dst + k * STAMP_UNIT;

		put32(h + 4, (uint32_t)(first_unit + k));
		memcpy(u, h, HDR);
		memcpy(u + HDR, h, HDR);
		memcpy(u + 2 * HDR, h, STAMP_UNIT - 2 * HDR);
	}
}

/*
 * stamp_check_foreign(buf, len, first_unit, file_id, zeros_ok): the byte
 * offset in buf of the first unit that is neither zeros (a hole, a
 * truncated tail; only if zeros_ok) nor a stamp of file_id at its own
 * unit index; -1 if every unit is one.
 */
int64_t
stamp_check_foreign(const char *buf, uint64_t len, uint64_t first_unit,
    uint32_t file_id, int zeros_ok)
{
	static const unsigned char zero[STAMP_UNIT];
	uint64_t k;

	for (k = 0; k < len / STAMP_UNIT; k++) {
		const unsigned char *u = (const unsigned char *)buf +
		    k * STAMP_UNIT;

		if (memcmp(u, zero, STAMP_UNIT) == 0) {
			if (zeros_ok)
				continue;
			return (int64_t)(k * STAMP_UNIT);
		}
		if (memcmp(u + HDR, u, HDR) != 0 ||
		    memcmp(u + 2 * HDR, u, STAMP_UNIT - 2 * HDR) != 0 ||
		    get32(u) != file_id ||
		    get32(u + 4) != (uint32_t)(first_unit + k))
			return (int64_t)(k * STAMP_UNIT);
	}
	return -1;
}

/*
 * stress_count_read(stress, pages, diverted, zero_filled): the counters of
 * one verified read (hdr.stress[]), as the workload's bump()s add them:
 * one atomic add each (each a preemption point, as every atomic is), none
 * for a count of 0.
 */
void
stress_count_read(uint64_t *stress, uint64_t pages, uint64_t diverted,
    uint64_t zero_filled)
{
	atomic_fetchadd_long(&stress[ST_READS], 1);
	if (pages)
		atomic_fetchadd_long(&stress[ST_READ_PAGES], pages);
	if (diverted)
		atomic_fetchadd_long(&stress[ST_DIVERTED], diverted);
	if (zero_filled)
		atomic_fetchadd_long(&stress[ST_ZERO_FILLS], zero_filled);
}

/*
 * stress_check_read(got, ngot, want, nwant, stress, diverted, zero_filled):
 * the counters of one verified read of ngot bytes (stress_count_read: its
 * pages, at least 1), then the verdict: 0 when got is want and nothing was
 * zero-filled, 1 otherwise.
 */
int
stress_check_read(const char *got, uint64_t ngot, const char *want,
    uint64_t nwant, uint64_t *stress, uint64_t diverted, uint64_t zero_filled)
{
	uint64_t pages = ngot / PAGE_SIZE;

	stress_count_read(stress, pages ? pages : 1, diverted, zero_filled);
	return ngot != nwant || (ngot && memcmp(got, want, ngot) != 0) ||
	    zero_filled != 0;
}
