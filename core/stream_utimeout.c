/* The per-stream user timeout (sst_stream_set_user_timeout): TCP_USER_TIMEOUT (RFC 5482) for a
 * stream.  A stream whose written bytes (or Close) see no acknowledgment for longer than its
 * limit fails with SST_ERR_TIMEOUT, and the peer is told with a Reset when it can be reached.
 * The channel's own failure detection is per host pair and lets a stream wait for a new
 * channel for migrate_timeout (30 s by default, paper §4.3.7); an application that asked for
 * less (a database client that must fail over within seconds) gets its limit.
 *
 * Few streams set it, so their records live in a list of their own (struct sst_stream, what an
 * idle stream costs, gains nothing; freeing a stream looks the list up only when it is not
 * empty).  No hook in the write or ack paths: each record is looked at every eighth of
 * its limit; a look that finds bytes outstanding and the acknowledged offset where the last look
 * left it counts on from when it first saw them outstanding, so the stream fails between the
 * limit and 1.25 times the limit after its bytes stopped being acknowledged -- never before. */
#include <stdlib.h>
#include <utlist.h>

#include "stream_int.h"

struct sst_utimer {
    struct sst_utimer *prev, *next;
    struct sst_stream *s;
    sst_time_t limit, step;
    sst_time_t since;      /* the first look that saw the current run without progress */
    bool counting;         /* such a run is on */
    sst_time_t check_at;
    uint64_t base;         /* the acknowledged offset at that look */
};

static struct sst_utimer *ut_find(const struct sst_stream *s)
{
    struct sst_utimer *r;
    DL_SEARCH_SCALAR(s->ctx->utimers, r, s, s);
    return r;
}

static void ut_drop(struct sst_ctx *c, struct sst_utimer *r)
{
    DL_DELETE(c->utimers, r);
    free(r);
}

/* Bytes or the Close written and not yet acknowledged. */
static bool ut_outstanding(const struct sst_stream *s)
{
    return s->tx.base < s->tx.end + (s->tx.fin ? 1u : 0u);
}

SST_API int sst_stream_set_user_timeout(struct sst_stream *s, sst_time_t limit)
{
    struct sst_ctx *c = s->ctx;
    if (s->is_root || s->local_only)
        return SST_ERR_INVAL;
    struct sst_utimer *r = ut_find(s);
    if (limit == 0) {
        if (r != NULL)
            ut_drop(c, r);
        return 0;
    }
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return SST_ERR_NOMEM;
        r->s = s;
        DL_APPEND(c->utimers, r);
    }
    r->limit = limit;
    r->step = SST_MAX(limit / 8, SST_MS(1));
    r->counting = false;
    r->check_at = c->now + r->step;
    return s->err;
}

void sst_ut_forget(struct sst_stream *s)
{
    struct sst_utimer *r = ut_find(s);
    if (r != NULL)
        ut_drop(s->ctx, r);
}

sst_time_t sst_ut_deadline(const struct sst_ctx *c)
{
    sst_time_t t = SST_TIME_NEVER;
    const struct sst_utimer *r;
    DL_FOREACH(c->utimers, r)
        t = SST_MIN(t, r->check_at);
    return t;
}

void sst_ut_timeout(struct sst_ctx *c)
{
    struct sst_utimer *r, *tmp;
    DL_FOREACH_SAFE(c->utimers, r, tmp) {
        struct sst_stream *s = r->s;
        if (s->err != 0) {
            ut_drop(c, r);   /* failed already: nothing left to time */
            continue;
        }
        if (c->now < r->check_at)
            continue;
        r->check_at = c->now + r->step;
        if (!ut_outstanding(s)) {
            r->counting = false;
        } else if (!r->counting || s->tx.base != r->base) {
            r->counting = true;
            r->since = c->now;
            r->base = s->tx.base;
        } else if (c->now - r->since >= r->limit) {
            c->stats.user_timeouts++;
            ut_drop(c, r);
            sst_strm_abort(s, SST_ERR_TIMEOUT, true);
        }
    }
}
