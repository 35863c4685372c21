/* The fuzz targets (tests/fuzz/, docs/fuzzing.md) as a regression test: every seed input, then
 * deterministic mutations of them (bit flips, byte and length changes, records cut, repeated
 * or spliced), each run in a fresh engine.  A crash, an abort of a target's own check or (under
 * `make asan`) a sanitizer report fails it.  `make fuzz` runs the same targets under libFuzzer
 * for as long as asked; SST_FUZZ_RUNS=N sets the mutations per target here (default 200). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../fuzz/fuzz_host.c"
#include "../fuzz/fuzz_stream.c"

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

static unsigned runs_wanted(void)
{
    const char *v = getenv("SST_FUZZ_RUNS");
    char *end;
    unsigned long n = v ? strtoul(v, &end, 10) : 0;
    return v && *v && *end == '\0' && n > 0 && n < 10000000 ? (unsigned)n : 200;
}

/* Runs the seeds, calls reached() (it checks they reach what the target is about), then the
 * mutations. */
static void run_target(int (*one)(const uint8_t *, size_t),
                       void (*seeds)(fuzz_emit_fn, void *), void (*reached)(void), uint64_t seed)
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
    unsigned runs = runs_wanted();
    for (unsigned i = 0; i < runs; i++) {
        unsigned k = (unsigned)(rng_next(&x) % ss.n);
        size_t n = mutate(ss.data[k], ss.len[k], buf, &x);
        one(buf, n);
    }
    free(buf);
    seedset_free(&ss);
}

/* The host target's seeds are real negotiation datagrams: the target's host answers them. */
static void host_reached(void)
{
    ck_assert_uint_gt(host_answered, 0);
}

/* The stream target's seeds reach B's stream layer, and B's server accepts streams. */
static void stream_reached(void)
{
    ck_assert_uint_gt(stream_injected, 10);
    ck_assert_uint_gt(stream_accepted, 0);
}

START_TEST(test_fuzz_host_seeds_and_mutations)
{
    run_target(fuzz_host_one, fuzz_host_seeds, host_reached, 0x5eed0001);
}
END_TEST

START_TEST(test_fuzz_stream_seeds_and_mutations)
{
    run_target(fuzz_stream_one, fuzz_stream_seeds, stream_reached, 0x5eed0002);
}
END_TEST

/* The host target's own check holds on its seeds: replaying the datagrams of a real handshake
 * (another host key) completes nothing, and the script format reads back what was written. */
START_TEST(test_fuzz_script_format)
{
    uint8_t buf[64];
    size_t len = 0;
    fuzz_put(buf, sizeof buf, &len, 7, "abc", 3);
    fuzz_put(buf, sizeof buf, &len, 2, "", 0);
    fuzz_put(buf, sizeof buf, &len, 9, buf, 100);  /* does not fit: dropped */
    ck_assert_uint_eq(len, 9);
    size_t pos = 0;
    struct fuzz_rec r;
    ck_assert(fuzz_next(buf, len, &pos, &r));
    ck_assert_uint_eq(r.op, 7);
    ck_assert_uint_eq(r.len, 3);
    ck_assert_int_eq(memcmp(r.data, "abc", 3), 0);
    ck_assert(fuzz_next(buf, len, &pos, &r));
    ck_assert_uint_eq(r.op, 2);
    ck_assert_uint_eq(r.len, 0);
    ck_assert(!fuzz_next(buf, len, &pos, &r));
    /* A length beyond the end is cut to what is there. */
    uint8_t cut[] = { 1, 10, 0, 'x', 'y' };
    pos = 0;
    ck_assert(fuzz_next(cut, sizeof cut, &pos, &r));
    ck_assert_uint_eq(r.len, 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fuzz");
    TCase *tc = tcase_create("targets");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_fuzz_script_format);
    tcase_add_test(tc, test_fuzz_host_seeds_and_mutations);
    tcase_add_test(tc, test_fuzz_stream_seeds_and_mutations);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
