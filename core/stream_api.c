/* The public per-stream API of sst.h: connect, substreams, read/write, shutdown, close,
 * priority and statistics. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

SST_API struct sst_stream *sst_connect(struct sst_ctx *c, const struct sst_addr *peer,
                                       const char *service, sst_stream_cb cb, void *arg)
{
    size_t slen = service != NULL ? strlen(service) : 0;
    if (c->host == NULL || peer == NULL || slen == 0 || slen > 255)
        return NULL;
    struct conn *cn = sst_conn_find_peer(c, peer);
    if (cn == NULL) {
        struct sst_chan *ch = sst_host_connect(c->host, c->now, peer);
        if (ch == NULL)
            return NULL;
        cn = sst_conn_find_chan(c, ch);
        if (cn == NULL)
            cn = sst_conn_new(c, ch, peer);
        if (cn == NULL)
            return NULL;
    }
    struct sst_stream *s = sst_strm_open_child(cn, cn->root);
    if (s == NULL)
        return NULL;
    s->cb = cb;
    s->arg = arg;
    s->app_owned = true;
    s->svc = SVC_WAIT_REPLY;
    uint8_t req[SVC_REQ_HDR + 255] = { 'S', 'R', SVC_VERSION, (uint8_t)slen };
    memcpy(req + SVC_REQ_HDR, service, slen);
    (void)sst_tx_write(&s->tx, req, SVC_REQ_HDR + slen);
    sst_strm_api_done(c);
    return s;
}
SST_API struct sst_stream *sst_stream_open_substream(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    /* A detached parent attaches again first; in limbo (no channel) children must wait, and a
     * dormant parent (its channel idled out) starts reconnecting so a retry succeeds. */
    if (s->conn != NULL && s->conn->dormant && s->err == 0) {
        sst_mig_wake(s);
        sst_strm_api_done(s->ctx);
        return NULL;
    }
    if (s->conn == NULL || s->err != 0 || s->local_only || s->conn->limbo || (!s->has_local && !s->usid_set))
        return NULL;
    if (!s->has_local)
        sst_mig_need_attach(s);
    if (!s->has_local)
        return NULL;
    struct sst_stream *child = sst_strm_open_child(s->conn, s);
    if (child == NULL)
        return NULL;
    child->cb = cb;
    child->arg = arg;
    child->app_owned = true;
    sst_strm_api_done(s->ctx);
    return child;
}

SST_API void sst_stream_listen(struct sst_stream *s, bool on)
{
    s->listening = on;
}

SST_API struct sst_stream *sst_stream_accept(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    struct sst_stream *child = s->acceptq;
    if (child == NULL)
        return NULL;
    DL_DELETE2(s->acceptq, child, aq_prev, aq_next);
    s->nacceptq--;
    child->aq_owner = NULL;
    sst_strm_adopt(child, cb, arg);
    sst_strm_api_done(s->ctx);
    return child;
}

/* ---- streams: data ----------------------------------------------------------------------- */

/* A failed stream still gives what arrived before it failed, then its error.  A reset or a lost
 * channel that came after the peer's end of stream leaves that end readable: TCP reads a FIN's
 * end before a later RST's error (the peer closed, then reset what we still sent, or freed the
 * stream: paper §4.3.8).  A refusal or a malformed answer has no such end. */
static bool read_fails(const struct sst_stream *s)
{
    if (s->err == 0 || sst_rx_available(&s->rx) > 0)
        return false;
    return !sst_rx_eof(&s->rx) || (s->err != SST_ERR_RESET && s->err != SST_ERR_TIMEOUT);
}

SST_API sst_ssize_t sst_stream_read(struct sst_stream *s, void *buf, size_t len)
{
    if (s->svc == SVC_WAIT_REPLY)
        return s->err != 0 ? s->err : SST_ERR_AGAIN;
    if (read_fails(s))
        return s->err;
    if (s->rd_shut)
        return 0;
    size_t n = s->svc == SVC_NONE || s->svc == SVC_UNANSWERED ? sst_svc_read(s, buf, len) : 0;
    s->bytes_read += n;
    if (n > 0) {
        sst_mig_after_read(s);
        sst_strm_api_done(s->ctx);
        return (sst_ssize_t)n;
    }
    if (sst_rx_eof(&s->rx))
        return 0;
    return s->err != 0 ? s->err : SST_ERR_AGAIN;
}

SST_API sst_ssize_t sst_stream_write(struct sst_stream *s, const void *buf, size_t len)
{
    if (s->local_only || s->ephemeral)
        return SST_ERR_RESET;
    if (s->err != 0)
        return s->err;
    if (s->wr_shut)
        return SST_ERR_CLOSED;
    if (s->svc == SVC_UNANSWERED) {   /* the answer goes first (sst_stream_answer) */
        s->want_write = true;
        return SST_ERR_AGAIN;
    }
    size_t n = sst_tx_write(&s->tx, buf, len);
    s->bytes_written += n;
    if (n < len)
        s->want_write = true;
    if (n == 0)
        return SST_ERR_AGAIN;
    sst_strm_make_ready(s);
    sst_strm_api_done(s->ctx);
    return (sst_ssize_t)n;
}

/* ---- messages: record boundaries (paper §2.3) ---------------------------------------- */

static int write_check(struct sst_stream *s)
{
    if (s->local_only || s->ephemeral)
        return SST_ERR_RESET;
    if (s->err != 0)
        return s->err;
    if (s->wr_shut)
        return SST_ERR_CLOSED;
    if (s->svc == SVC_UNANSWERED) {
        s->want_write = true;
        return SST_ERR_AGAIN;
    }
    return 0;
}

SST_API int sst_stream_mark(struct sst_stream *s)
{
    int rc = write_check(s);
    if (rc != 0)
        return rc;
    rc = sst_tx_mark(&s->tx);
    if (rc == SST_ERR_AGAIN)
        s->want_write = true;
    if (rc != 0)
        return rc;
    sst_strm_make_ready(s);
    sst_strm_api_done(s->ctx);
    return 0;
}

SST_API sst_ssize_t sst_stream_write_msg(struct sst_stream *s, const void *buf, size_t len)
{
    int rc = write_check(s);
    if (rc != 0)
        return rc;
    /* All or nothing: the bytes and their boundary (one unit) must fit the buffer now. */
    if (len >= s->tx.max)
        return SST_ERR_TOO_BIG;
    if (!sst_tx_reserve(&s->tx, len + 1)) {
        if (sst_tx_space(&s->tx) > len)
            return SST_ERR_NOMEM;
        s->want_write = true;
        return SST_ERR_AGAIN;
    }
    (void)sst_tx_write(&s->tx, buf, len);
    rc = sst_tx_mark(&s->tx);
    if (rc != 0)
        return rc;   /* unreachable: reserved above */
    s->bytes_written += len;
    sst_strm_make_ready(s);
    sst_strm_api_done(s->ctx);
    return (sst_ssize_t)len;
}

SST_API sst_ssize_t sst_stream_read_msg(struct sst_stream *s, void *buf, size_t len, bool *end)
{
    *end = false;
    if (len == 0)
        return SST_ERR_INVAL;
    if (s->svc == SVC_WAIT_REPLY)
        return s->err != 0 ? s->err : SST_ERR_AGAIN;
    if (read_fails(s))
        return s->err;
    if (s->rd_shut)
        return 0;
    size_t n = s->svc == SVC_NONE || s->svc == SVC_UNANSWERED ? sst_svc_read_msg(s, buf, len, end) : 0;
    s->bytes_read += n;
    if (n > 0 || *end) {
        sst_mig_after_read(s);
        sst_strm_api_done(s->ctx);
        return (sst_ssize_t)n;
    }
    if (sst_rx_eof(&s->rx))
        return 0;
    return s->err != 0 ? s->err : SST_ERR_AGAIN;
}

SST_API int sst_stream_shutdown(struct sst_stream *s, enum sst_shut how)
{
    if (how == SST_SHUT_RESET) {
        if (s->err == 0 || s->conn != NULL)
            sst_strm_abort(s, SST_ERR_RESET, true);
        s->pending_ev &= ~(unsigned)SST_EV_ERROR;   /* the caller knows */
        sst_strm_api_done(s->ctx);
        return 0;
    }
    if ((how & ~SST_SHUT_BOTH) != 0 || how == 0)
        return SST_ERR_INVAL;
    if (how & SST_SHUT_WRITE) {
        if (!s->wr_shut && !s->local_only) {
            s->wr_shut = true;
            if (s->svc != SVC_UNANSWERED) {   /* else behind the answer (sst_stream_answer) */
                sst_tx_close(&s->tx);
                sst_strm_make_ready(s);
            }
        }
    }
    if (how & SST_SHUT_READ) {
        s->rd_shut = true;
        size_t avail = (size_t)sst_rx_available(&s->rx);
        if (avail > 0)
            (void)sst_svc_read(s, NULL, avail);
    }
    sst_strm_api_done(s->ctx);
    return 0;
}

SST_API void sst_stream_close(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    if (s->svc == SVC_UNANSWERED)   /* given back without an answer: not served */
        sst_svc_refuse_unanswered(s);
    if (s->err == 0 && !s->local_only)
        (void)sst_stream_shutdown(s, SST_SHUT_BOTH);
    s->rd_shut = true;
    s->cb = NULL;
    s->app_owned = false;
    s->counted_closing = true;    /* until freed: below at once, or when its data is delivered */
    c->stats.streams_closing++;
    if (s->in_evq) {
        DL_DELETE2(c->evq, s, ev_prev, ev_next);
        s->in_evq = false;
    }
    sst_strm_maybe_free(s);
    sst_strm_api_done(c);
}

SST_API int sst_stream_error(const struct sst_stream *s)
{
    return s->err;
}

SST_API void sst_stream_set_callback(struct sst_stream *s, sst_stream_cb cb, void *arg)
{
    s->cb = cb;
    s->arg = arg;
}

SST_API void sst_stream_set_priority(struct sst_stream *s, int priority)
{
    s->prio = priority;
}

SST_API void sst_stream_set_redundant(struct sst_stream *s, bool on)
{
    s->tx.redundant = on;
}
/* ---- introspection ----------------------------------------------------------------------- */

SST_API void sst_stream_get_stats(const struct sst_stream *s, struct sst_stream_stats *out)
{
    memset(out, 0, sizeof *out);
    out->bytes_written = s->bytes_written;
    out->bytes_read = s->bytes_read;
    out->bytes_retransmitted = s->tx.retx_bytes;
    out->tx_inflight = s->ftx.inflight;
    out->tx_credit = s->ftx.credit;
    out->rx_buffered = sst_rx_available(&s->rx);
    out->priority = s->prio;
    out->local_lsid = s->local_lsid;
    out->remote_lsid = s->remote_lsid;
    out->attached = s->conn != NULL && s->conn->up && s->has_local;
    out->redundant = s->tx.redundant;
    out->bytes_redundant = s->tx.dup_bytes;
    /* The send window's offsets count the end of stream too (tracked like a byte): clamped. */
    out->bytes_sent = s->tx.sent < s->bytes_written ? s->tx.sent : s->bytes_written;
    out->bytes_acked = s->tx.base < s->bytes_written ? s->tx.base : s->bytes_written;
}

SST_API const struct sst_addr *sst_stream_peer(const struct sst_stream *s)
{
    return &s->peer;
}

SST_API const struct sst_addr *sst_stream_local(const struct sst_stream *s)
{
    return s->conn != NULL && s->conn->ch != NULL ? sst_chan_local(s->conn->ch) : NULL;
}
