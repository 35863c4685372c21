/* libFuzzer entry points for one target (scripts/fuzz.sh builds it with -DFUZZ_TARGET=host or
 * stream, clang -fsanitize=fuzzer).  FUZZ_WRITE_SEEDS=DIR writes the target's seed inputs into
 * DIR and exits, so the corpus starts from real traffic. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

#define FUZZ_CAT2(a, b) a##b
#define FUZZ_CAT(a, b) FUZZ_CAT2(a, b)
int FUZZ_CAT(FUZZ_CAT(fuzz_, FUZZ_TARGET), _one)(const uint8_t *in, size_t size);
void FUZZ_CAT(FUZZ_CAT(fuzz_, FUZZ_TARGET), _seeds)(fuzz_emit_fn emit, void *arg);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size);

static void write_seed(void *arg, const uint8_t *data, size_t len)
{
    static unsigned n;
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%03u", (const char *)arg, n++);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = getenv("FUZZ_WRITE_SEEDS");
    if (dir != NULL) {
        FUZZ_CAT(FUZZ_CAT(fuzz_, FUZZ_TARGET), _seeds)(write_seed, (void *)dir);
        exit(0);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
    return FUZZ_CAT(FUZZ_CAT(fuzz_, FUZZ_TARGET), _one)(in, size);
}
