/* Fuzz targets (tests/fuzz/fuzz_*.c): each reads its input as a script of records and drives a
 * real engine in the simulator with it.  The same code runs three ways: under libFuzzer
 * (`make fuzz`, scripts/fuzz.sh: clang, coverage-guided, ASan + UBSan), from
 * tests/unit/test_fuzz.c (`make test` and `make asan`: the seeds plus deterministic mutations of
 * them), and to write the seed corpus (FUZZ_WRITE_SEEDS=dir).  docs/fuzzing.md explains. */
#ifndef SST_FUZZ_H
#define SST_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* One record of an input: an operation byte, a 16-bit little-endian length, that many bytes
 * (cut short at the end of the input). */
struct fuzz_rec {
    uint8_t op;
    const uint8_t *data;
    size_t len;
};

/* The next record of in[*pos..size), false at the end. */
static inline int fuzz_next(const uint8_t *in, size_t size, size_t *pos, struct fuzz_rec *r)
{
    if (*pos + 3 > size)
        return 0;
    r->op = in[*pos];
    size_t want = (size_t)in[*pos + 1] | (size_t)in[*pos + 2] << 8;
    *pos += 3;
    r->len = want < size - *pos ? want : size - *pos;
    r->data = in + *pos;
    *pos += r->len;
    return 1;
}

/* Appends a record to buf (cap bytes, *len used); records that do not fit are dropped. */
static inline void fuzz_put(uint8_t *buf, size_t cap, size_t *len, uint8_t op, const void *data,
                            size_t n)
{
    if (n > 0xffff || *len + 3 + n > cap)
        return;
    buf[(*len)++] = op;
    buf[(*len)++] = (uint8_t)(n & 0xff);
    buf[(*len)++] = (uint8_t)(n >> 8);
    for (size_t i = 0; i < n; i++)
        buf[(*len)++] = ((const uint8_t *)data)[i];
}

typedef void (*fuzz_emit_fn)(void *arg, const uint8_t *data, size_t len);

#endif
