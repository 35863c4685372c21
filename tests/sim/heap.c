/* The simulator's event queue: a binary min-heap ordered by (time, insertion sequence), so
 * simultaneous events run in the order they were scheduled and runs are reproducible. */
#include <stdlib.h>

#include "err.h"
#include "sim_internal.h"

static bool before(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

int sim_heap_push(struct sim_heap *h, struct sim_ev ev)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        struct sim_ev *e = realloc(h->ev, cap * sizeof *e);
        if (!e)
            return SST_ERR_NOMEM;
        h->ev = e;
        h->cap = cap;
    }
    ev.seq = h->next_seq++;
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&ev, &h->ev[parent]))
            break;
        h->ev[i] = h->ev[parent];
        i = parent;
    }
    h->ev[i] = ev;
    return 0;
}

bool sim_heap_pop(struct sim_heap *h, struct sim_ev *out)
{
    if (h->n == 0)
        return false;
    *out = h->ev[0];
    struct sim_ev last = h->ev[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->ev[c + 1], &h->ev[c]))
            c++;
        if (!before(&h->ev[c], &last))
            break;
        h->ev[i] = h->ev[c];
        i = c;
    }
    if (h->n > 0)
        h->ev[i] = last;
    return true;
}

sst_time_t sim_heap_peek_time(const struct sim_heap *h)
{
    return h->n ? h->ev[0].t : SST_TIME_NEVER;
}

void sim_heap_free(struct sim_heap *h)
{
    free(h->ev);
    h->ev = NULL;
    h->n = h->cap = 0;
}
