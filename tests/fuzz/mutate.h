/* The regression side of the fuzz targets (tests/fuzz/fuzz_*.c), shared by the Check tests that
 * run them in `make test` (test_fuzz, test_helper_fuzz, test_shim_fuzz): each target's seeds,
 * then deterministic mutations of them (bit flips, interesting bytes, cuts, repeated and dropped
 * stretches).  Included by a Check test after check.h; SST_FUZZ_RUNS=N sets the mutations. */
#ifndef SST_FUZZ_MUTATE_H
#define SST_FUZZ_MUTATE_H

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#define FUZZ_MAX_SEEDS 16
#define FUZZ_MAX_INPUT 65536

struct seedset {
    uint8_t *data[FUZZ_MAX_SEEDS];
    size_t len[FUZZ_MAX_SEEDS];
    unsigned n;
};

static void collect(void *arg, const uint8_t *data, size_t len)
{
    struct seedset *ss = arg;
    if (ss->n == FUZZ_MAX_SEEDS || len > FUZZ_MAX_INPUT)
        return;
    ss->data[ss->n] = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(ss->data[ss->n]);
    memcpy(ss->data[ss->n], data, len);
    ss->len[ss->n++] = len;
}

static void seedset_free(struct seedset *ss)
{
    for (unsigned i = 0; i < ss->n; i++)
        free(ss->data[i]);
}

static uint64_t rng_next(uint64_t *x)
{
    /* xorshift64*: deterministic, so a failing mutation is found again by its index. */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * UINT64_C(2685821657736338717);
}

/* One mutation of `in` into out (FUZZ_MAX_INPUT bytes); returns the new length. */
static size_t mutate(const uint8_t *in, size_t len, uint8_t *out, uint64_t *x)
{
    static const uint8_t interesting[] = { 0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff };
    memcpy(out, in, len);
    unsigned edits = 1 + (unsigned)(rng_next(x) % 8);
    for (unsigned e = 0; e < edits; e++) {
        uint64_t r = rng_next(x);
        size_t at = len ? (size_t)(rng_next(x) % len) : 0;
        switch (r % 6) {
        case 0:                                    /* flip a bit */
            if (len)
                out[at] ^= (uint8_t)(1u << (r >> 8) % 8);
            break;
        case 1:                                    /* an interesting byte */
            if (len)
                out[at] = interesting[(r >> 8) % sizeof interesting];
            break;
        case 2:                                    /* a random byte */
            if (len)
                out[at] = (uint8_t)(r >> 16);
            break;
        case 3:                                    /* cut the input short */
            len = at;
            break;
        case 4: {                                  /* repeat a stretch */
            size_t n = 1 + (size_t)((r >> 8) % 64);
            if (len && len + n <= FUZZ_MAX_INPUT && at + n <= len) {
                memmove(out + at + n, out + at, len - at);
                len += n;
            }
            break;
        }
        default: {                                 /* drop a stretch */
            size_t n = 1 + (size_t)((r >> 8) % 64);
            if (at + n <= len) {
                memmove(out + at, out + at + n, len - at - n);
                len -= n;
            }
            break;
        }
        }
    }
    return len;
}

static unsigned runs_wanted(unsigned dflt)
{
    const char *v = getenv("SST_FUZZ_RUNS");
    char *end;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n > 0 && n < 10000000 ? (unsigned)n : dflt;
}

/* Runs the seeds, calls reached() (it checks they reach what the target is about), then the
 * mutations (SST_FUZZ_RUNS, else dflt_runs). */
static void run_target(int (*one)(const uint8_t *, size_t),
                       void (*seeds)(fuzz_emit_fn, void *), void (*reached)(void), uint64_t seed,
                       unsigned dflt_runs)
{
    static struct seedset ss;
    memset(&ss, 0, sizeof ss);
    seeds(collect, &ss);
    ck_assert_uint_ge(ss.n, 1);
    for (unsigned i = 0; i < ss.n; i++) {
        ck_assert_uint_gt(ss.len[i], 3);          /* a seed is a real script, not empty */
        one(ss.data[i], ss.len[i]);
    }
    reached();
    uint8_t *buf = malloc(FUZZ_MAX_INPUT);
    ck_assert_ptr_nonnull(buf);
    uint64_t x = seed;
    unsigned runs = runs_wanted(dflt_runs);
    for (unsigned i = 0; i < runs; i++) {
        unsigned k = (unsigned)(rng_next(&x) % ss.n);
        size_t n = mutate(ss.data[k], ss.len[k], buf, &x);
        one(buf, n);
    }
    free(buf);
    seedset_free(&ss);
}

#endif
