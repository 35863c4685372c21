/* The per-stream timeouts an application asks for, as TCP offers them: the user timeout
 * (sst_stream_set_user_timeout, TCP_USER_TIMEOUT of RFC 5482) and keepalive
 * (sst_stream_set_keepalive, SO_KEEPALIVE with TCP_KEEPIDLE/INTVL/CNT, RFC 1122 §4.2.3.6).
 * The channel's own failure detection is per host pair: a stream waits for a new channel for
 * migrate_timeout (30 s by default, paper §4.3.7), and a silent peer of an idle channel is
 * found by the liveness probe (protocol-streams.md §2c) after minutes.  An application that
 * asked for less (a database client that must fail over within seconds) gets what it asked.
 *
 * User timeout: a stream whose written bytes (or Close) see no acknowledgment for longer than
 * the limit fails with SST_ERR_TIMEOUT.  No hook in the write or ack paths: the record is looked
 * at every eighth of the limit; a look that finds bytes outstanding and the acknowledged offset
 * where the last look left it counts on from when it first saw them outstanding, so the stream
 * fails between the limit and 1.25 times the limit after its bytes stopped being acknowledged
 * -- never before.
 *
 * Keepalive: once nothing has come from the peer on the stream's channel for `idle` (any
 * authenticated packet counts, as any segment does for TCP), the channel sends a ping; then
 * every `intvl` another, up to `cnt`; if the channel still hears nothing `intvl` after the last,
 * the stream fails with SST_ERR_TIMEOUT.  A stream without a live channel (dormant, or waiting
 * for a new one) is not probed here: the liveness probe and migrate_timeout decide for it, as
 * for every stream.  Hearing is looked at when a ping is due, so the timeline only ever slips
 * later than TCP's.
 *
 * Either way the peer is told with a Reset when it can be reached.  Few streams ask, so their
 * records live in a list of their own (struct sst_stream, what an idle stream costs, gains
 * nothing; freeing a stream looks the list up only when it is not empty). */
#include <stdlib.h>
#include <utlist.h>

#include "channel.h"
#include "stream_int.h"

struct sst_utimer {
    struct sst_utimer *prev, *next;
    struct sst_stream *s;
    /* user timeout (limit 0: off) */
    sst_time_t limit, step, ut_at;
    sst_time_t since;      /* the first look that saw the current run without progress */
    bool counting;         /* such a run is on */
    uint64_t base;         /* the acknowledged offset at that look */
    /* keepalive (idle 0: off) */
    sst_time_t idle, intvl, ka_at;
    unsigned cnt, probes;  /* pings allowed, and sent since the peer was last heard */
    sst_time_t heard;      /* the look that saw the channel's received sequence move */
    uint64_t seen;         /* that sequence number */
    sst_time_t check_at;   /* the earlier of ut_at and ka_at */
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

/* The record for s, made if need be (NULL: no memory). */
static struct sst_utimer *ut_get(struct sst_stream *s)
{
    struct sst_utimer *r = ut_find(s);
    if (r == NULL) {
        r = calloc(1, sizeof *r);
        if (r == NULL)
            return NULL;
        r->s = s;
        r->ut_at = r->ka_at = SST_TIME_NEVER;
        DL_APPEND(s->ctx->utimers, r);
    }
    return r;
}

/* After a change: the record goes once both timers are off, else its next look is set. */
static void ut_settle(struct sst_ctx *c, struct sst_utimer *r)
{
    if (r->limit == 0 && r->idle == 0)
        ut_drop(c, r);
    else
        r->check_at = SST_MIN(r->ut_at, r->ka_at);
}

/* The live channel s would be probed on, or NULL. */
static struct sst_chan *ut_chan(const struct sst_stream *s)
{
    return s->conn != NULL && s->conn->up && !s->conn->dormant ? s->conn->ch : NULL;
}

SST_API int sst_stream_set_user_timeout(struct sst_stream *s, sst_time_t limit)
{
    struct sst_ctx *c = s->ctx;
    if (s->is_root || s->local_only)
        return SST_ERR_INVAL;
    if (limit == 0 && ut_find(s) == NULL)
        return 0;
    struct sst_utimer *r = ut_get(s);
    if (r == NULL)
        return SST_ERR_NOMEM;
    r->limit = limit;
    r->step = SST_MAX(limit / 8, SST_MS(1));
    r->counting = false;
    r->ut_at = limit ? c->now + r->step : SST_TIME_NEVER;
    ut_settle(c, r);
    return s->err;
}

SST_API int sst_stream_set_keepalive(struct sst_stream *s, sst_time_t idle, sst_time_t intvl, unsigned cnt)
{
    struct sst_ctx *c = s->ctx;
    if (s->is_root || s->local_only || (idle != 0 && (intvl == 0 || cnt == 0)))
        return SST_ERR_INVAL;
    if (idle == 0 && ut_find(s) == NULL)
        return 0;
    struct sst_utimer *r = ut_get(s);
    if (r == NULL)
        return SST_ERR_NOMEM;
    r->idle = idle;
    r->intvl = intvl;
    r->cnt = cnt;
    r->probes = 0;
    r->heard = c->now;   /* idle from now: what came before is not looked for */
    struct sst_chan *ch = ut_chan(s);
    r->seen = ch != NULL ? sst_chan_seq_received(ch) : 0;
    r->ka_at = idle ? c->now + idle : SST_TIME_NEVER;
    ut_settle(c, r);
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

/* Bytes or the Close written and not yet acknowledged. */
static bool ut_outstanding(const struct sst_stream *s)
{
    return s->tx.base < s->tx.end + (s->tx.fin ? 1u : 0u);
}

/* The user timeout's look; true if the stream is to fail. */
static bool ut_look(struct sst_ctx *c, struct sst_utimer *r)
{
    struct sst_stream *s = r->s;
    r->ut_at = c->now + r->step;
    if (!ut_outstanding(s)) {
        r->counting = false;
    } else if (!r->counting || s->tx.base != r->base) {
        r->counting = true;
        r->since = c->now;
        r->base = s->tx.base;
    } else if (c->now - r->since >= r->limit) {
        return true;
    }
    return false;
}

/* Keepalive's look; true if the stream is to fail. */
static bool ka_look(struct sst_ctx *c, struct sst_utimer *r)
{
    struct sst_chan *ch = ut_chan(r->s);
    uint64_t seq = ch != NULL ? sst_chan_seq_received(ch) : r->seen;
    if (ch == NULL || seq != r->seen) {
        r->seen = seq;
        r->heard = c->now;   /* heard from, or not ours to probe (see above) */
        r->probes = 0;
        r->ka_at = c->now + r->idle;
        return false;
    }
    if (r->probes >= r->cnt)
        return true;
    (void)sst_chan_ping(ch, c->now);
    r->probes++;
    r->ka_at = c->now + r->intvl;
    return false;
}

void sst_ut_timeout(struct sst_ctx *c)
{
    struct sst_utimer *r, *tmp;
again:
    DL_FOREACH_SAFE(c->utimers, r, tmp) {
        struct sst_stream *s = r->s;
        if (s->err != 0) {
            ut_drop(c, r);   /* failed already: nothing left to time */
            continue;
        }
        if (c->now < r->check_at)
            continue;
        bool fail = false;
        if (r->limit != 0 && c->now >= r->ut_at && ut_look(c, r)) {
            c->stats.user_timeouts++;
            fail = true;
        }
        if (!fail && r->idle != 0 && c->now >= r->ka_at && ka_look(c, r)) {
            c->stats.keepalive_timeouts++;
            fail = true;
        }
        if (!fail) {
            r->check_at = SST_MIN(r->ut_at, r->ka_at);
            continue;
        }
        ut_drop(c, r);
        sst_strm_abort(s, SST_ERR_TIMEOUT, true);
        /* A stream the application gave back (sst_stream_close: delivering, the peer silent)
         * is freed once its Reset is through, as after the peer's reset (on_reset).  That may
         * free others' records with it: the walk starts over (the ones looked at wait for
         * their next look). */
        sst_strm_maybe_free(s);
        goto again;
    }
}
