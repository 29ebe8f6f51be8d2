/*
 * stamp.c - the stress workload's stamps (smpvm/stress/stamps.py), in C
 * because a verified page is 64 of them: every 64-byte unit a writer puts
 * in a file is its 24-byte header (file id, unit index, incarnation, cpu,
 * op number; little-endian "<IIIIQ") repeated to 64 bytes.
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
