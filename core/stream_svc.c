/* Service requests on top-level streams and their listeners (paper §4.3.2): the request and
 * answer bytes each side consumes, and the listener backlog. */
#include <stdlib.h>
#include <string.h>
#include <uthash.h>
#include <utlist.h>

#include "stream_int.h"

/* ---- service requests (paper §4.3.2) ----------------------------------------------------- */

struct sst_listener *sst_svc_find_listener(struct sst_ctx *c, const char *name, size_t len)
{
    struct sst_listener *l;
    DL_FOREACH(c->listeners, l)
        if (strlen(l->service) == len && memcmp(l->service, name, len) == 0)
            return l;
    return NULL;
}

/* Reads stream-layer bytes from the front of s's receive buffer, cancelling their deduction. */
size_t sst_svc_read(struct sst_stream *s, uint8_t *buf, size_t len)
{
    return sst_svc_read_msg(s, buf, len, NULL);
}

size_t sst_svc_read_msg(struct sst_stream *s, uint8_t *buf, size_t len, bool *end)
{
    uint64_t before = s->rx.next;
    size_t n = end != NULL ? sst_rx_read_msg(&s->rx, buf, len, end) : sst_rx_read(&s->rx, buf, len);
    /* Flow control counts units: record boundaries occupy one each (docs/api.md). */
    size_t units = (size_t)(s->rx.next - before);
    size_t k = (size_t)SST_MIN((uint64_t)units, s->borrowed);
    if (k > 0 && s->parent != NULL)
        sst_fc_rx_release(&s->parent->frx, k);
    s->borrowed -= k;
    sst_fc_rx_release(&s->frx, units - k);
    if (s->parent != NULL)
        sst_srecv_window_check(s->parent);
    sst_srecv_window_check(s);
    return n;
}

static void svc_answer(struct sst_stream *s, uint8_t code)
{
    uint8_t reply[SVC_REPLY_LEN] = { 'S', 'A', code };
    /* The send buffer is empty here, so the three bytes always fit. */
    (void)sst_tx_write(&s->tx, reply, sizeof reply);
    sst_strm_make_ready(s);
}

/* Refusal: answer, close our side, and let the initiator reset or close (§4.3.2). */
static void svc_refuse(struct sst_stream *s, uint8_t code)
{
    s->ctx->stats.refused++;
    svc_answer(s, code);
    sst_tx_close(&s->tx);
    s->rd_shut = true;
    sst_svc_read(s, NULL, SIZE_MAX);
}

static void svc_done(struct sst_stream *s)
{
    s->svc = SVC_NONE;
    free(s->svcbuf);
    s->svcbuf = NULL;
}

void sst_svc_pump(struct sst_stream *s)
{
    struct sst_ctx *c = s->ctx;
    /* Only streams in the middle of a request or answer hold this buffer (idle ones do not). */
    if (s->svcbuf == NULL) {
        s->svcbuf = malloc(SVC_BUF);
        if (s->svcbuf == NULL) {
            sst_strm_abort(s, SST_ERR_NOMEM, true);
            return;
        }
    }
    if (s->svc == SVC_WAIT_REPLY) {
        s->svclen += sst_svc_read(s, s->svcbuf + s->svclen, SVC_REPLY_LEN - s->svclen);
        if (s->svclen < SVC_REPLY_LEN)
            return;
        uint8_t ans[SVC_REPLY_LEN];
        memcpy(ans, s->svcbuf, sizeof ans);
        svc_done(s);
        if (ans[0] != 'S' || ans[1] != 'A') {
            c->stats.malformed++;
            sst_strm_abort(s, SST_ERR_MALFORMED, true);
        } else if (ans[2] != SVC_OK) {
            c->stats.refused++;
            sst_strm_abort(s, SST_ERR_REFUSED, true);
        } else {
            sst_strm_post(s, SST_EV_CONNECTED | SST_EV_WRITABLE);
            if (sst_rx_available(&s->rx) > 0 || sst_rx_complete(&s->rx))
                sst_strm_post(s, SST_EV_READABLE);
        }
        return;
    }
    /* Responder: header, then the service name. */
    if (s->svclen < SVC_REQ_HDR)
        s->svclen += sst_svc_read(s, s->svcbuf + s->svclen, SVC_REQ_HDR - s->svclen);
    if (s->svclen < SVC_REQ_HDR)
        return;
    if (s->svcbuf[0] != 'S' || s->svcbuf[1] != 'R' || s->svcbuf[2] != SVC_VERSION || s->svcbuf[3] == 0) {
        c->stats.malformed++;
        sst_strm_abort(s, SST_ERR_MALFORMED, true);
        return;
    }
    size_t want = SVC_REQ_HDR + s->svcbuf[3];
    s->svclen += sst_svc_read(s, s->svcbuf + s->svclen, want - s->svclen);
    if (s->svclen < want)
        return;
    struct sst_stream *root = s->aq_owner;
    if (root != NULL) {
        DL_DELETE2(root->acceptq, s, aq_prev, aq_next);
        root->nacceptq--;
        s->aq_owner = NULL;
    }
    struct sst_listener *l = sst_svc_find_listener(c, (const char *)s->svcbuf + SVC_REQ_HDR, s->svcbuf[3]);
    svc_done(s);
    if (l == NULL || l->nbacklog >= c->cfg.max_pending) {
        svc_refuse(s, l == NULL ? SVC_NO_SERVICE : SVC_BACKLOG_FULL);
        sst_strm_maybe_free(s);
        return;
    }
    /* Answer-later: the application answers once it knows it can serve the stream. */
    if (l->answer_later)
        s->svc = SVC_UNANSWERED;
    else
        svc_answer(s, SVC_OK);
    DL_APPEND2(l->backlog, s, aq_prev, aq_next);
    l->nbacklog++;
    s->lq_owner = l;
    sst_strm_post_listener(l);
}
SST_API struct sst_listener *sst_listen(struct sst_ctx *c, const char *service, sst_listener_cb cb, void *arg)
{
    size_t slen = service != NULL ? strlen(service) : 0;
    if (slen == 0 || slen > 255 || sst_svc_find_listener(c, service, slen) != NULL)
        return NULL;
    struct sst_listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->ctx = c;
    memcpy(l->service, service, slen + 1);
    l->cb = cb;
    l->arg = arg;
    DL_APPEND(c->listeners, l);
    return l;
}
SST_API void sst_listener_set_answer_later(struct sst_listener *l, bool on)
{
    l->answer_later = on;
}

void sst_svc_refuse_unanswered(struct sst_stream *s)
{
    s->svc = SVC_NONE;
    if (s->err != 0)
        return;
    svc_refuse(s, SVC_NO_SERVICE);
    s->wr_shut = true;
}

SST_API int sst_stream_answer(struct sst_stream *s, bool ok)
{
    if (s->svc != SVC_UNANSWERED)
        return s->err != 0 ? s->err : SST_ERR_INVAL;
    if (s->err != 0) {   /* the initiator gave up meanwhile: nothing to answer */
        s->svc = SVC_NONE;
        return s->err;
    }
    if (!ok) {
        sst_svc_refuse_unanswered(s);
        sst_strm_api_done(s->ctx);
        return 0;
    }
    s->svc = SVC_NONE;
    /* Writes waited for this (SST_ERR_AGAIN), so the answer is the first byte we send; a
     * shutdown(WRITE) made meanwhile takes effect behind it. */
    svc_answer(s, SVC_OK);
    if (s->wr_shut)
        sst_tx_close(&s->tx);
    if (s->want_write && !s->wr_shut) {
        s->want_write = false;
        sst_strm_post(s, SST_EV_WRITABLE);
    }
    sst_strm_api_done(s->ctx);
    return 0;
}

SST_API struct sst_stream *sst_accept(struct sst_listener *l, sst_stream_cb cb, void *arg)
{
    struct sst_stream *s = l->backlog;
    if (s == NULL)
        return NULL;
    DL_DELETE2(l->backlog, s, aq_prev, aq_next);
    l->nbacklog--;
    s->lq_owner = NULL;
    sst_strm_adopt(s, cb, arg);
    sst_strm_api_done(l->ctx);
    return s;
}

SST_API void sst_listener_close(struct sst_listener *l)
{
    struct sst_ctx *c = l->ctx;
    while (l->backlog != NULL) {
        struct sst_stream *s = l->backlog;
        DL_DELETE2(l->backlog, s, aq_prev, aq_next);
        l->nbacklog--;
        s->lq_owner = NULL;
        sst_strm_abort(s, SST_ERR_RESET, true);
        sst_strm_maybe_free(s);
    }
    /* A pending callback must not run for a freed listener. */
    struct sst_listener **pp = &c->lev;
    while (*pp != NULL) {
        if (*pp == l)
            *pp = l->ev_next;
        else
            pp = &(*pp)->ev_next;
    }
    DL_DELETE(c->listeners, l);
    free(l);
    sst_strm_api_done(c);
}
