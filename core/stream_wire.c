/* Two-phase codecs for the stream layer's packet types (paper Fig. 5 and 6). */
#include <string.h>

#include "err.h"
#include "stream_wire.h"
#include "wire.h"

/* Flags each type defines; anything else is malformed. */
static uint8_t allowed_flags(unsigned type)
{
    switch (type) {
    case SST_PT_INIT:
    case SST_PT_REPLY:
    case SST_PT_DATA:
        return SST_SF_PUSH | SST_SF_MARK | SST_SF_CLOSE;
    case SST_PT_DATAGRAM:
        return SST_DGF_FIRST | SST_DGF_LAST;
    case SST_PT_RESET:
        return SST_RSTF_ORIENT;
    case SST_PT_ATTACH:
        return SST_ATTF_SLOT | SST_ATTF_INIT;
    default:
        return 0;
    }
}

size_t sst_spkt_hdr_len(unsigned type)
{
    switch (type) {
    case SST_PT_INIT:
    case SST_PT_REPLY:
        return SST_INIT_HDR_LEN;
    case SST_PT_DATA:
        return SST_DATA_HDR_LEN;
    case SST_PT_DATAGRAM:
        return SST_DGRAM_HDR_LEN;
    case SST_PT_RESET:
        return SST_RESET_LEN;
    case SST_PT_ATTACH:
        return SST_ATTACH_LEN;
    case SST_PT_DETACH:
        return SST_DETACH_LEN;
    default:
        return 0;
    }
}

static void put_usid(uint8_t *p, const struct sst_usid *u)
{
    sst_put64(p, u->counter);
    sst_put64(p + 8, u->nonce);
}

static void get_usid(struct sst_usid *u, const uint8_t *p)
{
    u->counter = sst_get64(p);
    u->nonce = sst_get64(p + 8);
}

size_t sst_spkt_put_hdr(uint8_t *buf, size_t cap, const struct sst_spkt *p)
{
    size_t hl = sst_spkt_hdr_len(p->type);
    if (p->type == SST_PT_ATTACH && (p->flags & SST_ATTF_INIT))
        hl = SST_ATTACH_INIT_LEN;
    if (hl == 0 || cap < hl || (p->flags & ~allowed_flags(p->type)) || p->win > 31)
        return 0;
    if ((p->type == SST_PT_INIT || p->type == SST_PT_REPLY) && p->bsn > SST_INIT_BSN_MAX)
        return 0;
    sst_put16(buf, p->lsid);
    sst_put8(buf + 2, (uint8_t)(p->type << 4 | p->flags));
    sst_put8(buf + 3, p->win);
    switch (p->type) {
    case SST_PT_INIT:
    case SST_PT_REPLY:
        sst_put16(buf + 4, p->ref_lsid);
        sst_put16(buf + 6, (uint16_t)p->bsn);
        break;
    case SST_PT_DATA:
        sst_put32(buf + 4, p->bsn);
        break;
    case SST_PT_DATAGRAM:
        sst_put16(buf + 4, p->dg_id);
        sst_put8(buf + 6, p->dg_idx);
        sst_put8(buf + 7, p->dg_cnt);
        break;
    case SST_PT_ATTACH:
        put_usid(buf + 4, &p->usid);
        if (p->flags & SST_ATTF_INIT)
            put_usid(buf + 4 + SST_USID_LEN, &p->parent_usid);
        break;
    default:
        break;
    }
    return hl;
}

size_t sst_spkt_encode(uint8_t *buf, size_t cap, const struct sst_spkt *p)
{
    size_t hl = sst_spkt_put_hdr(buf, cap, p);
    if (hl == 0)
        return 0;
    if (p->len > 0) {
        bool carries_data = p->type == SST_PT_INIT || p->type == SST_PT_REPLY ||
                            p->type == SST_PT_DATA || p->type == SST_PT_DATAGRAM;
        if (!carries_data || cap - hl < p->len)
            return 0;
        memcpy(buf + hl, p->data, p->len);
    }
    return hl + p->len;
}

int sst_spkt_decode(struct sst_spkt *p, const uint8_t *buf, size_t len)
{
    /* Phase 1: every length and reserved bit, before any field is stored. */
    if (len < SST_STREAM_HDR_LEN)
        return SST_ERR_MALFORMED;
    unsigned type = buf[2] >> 4;
    uint8_t flags = buf[2] & 0x0f;
    size_t hl = sst_spkt_hdr_len(type);
    if (hl == 0)
        return SST_ERR_MALFORMED;
    if (flags & ~allowed_flags(type))
        return SST_ERR_MALFORMED;
    if (buf[3] & SST_WIN_RESERVED)
        return SST_ERR_MALFORMED;
    if (type == SST_PT_ATTACH && (flags & SST_ATTF_INIT))
        hl = SST_ATTACH_INIT_LEN;
    if (len < hl)
        return SST_ERR_MALFORMED;
    bool fixed = type == SST_PT_RESET || type == SST_PT_ATTACH || type == SST_PT_DETACH;
    if (fixed && len != hl)
        return SST_ERR_MALFORMED;
    uint16_t lsid = sst_get16(buf);
    if ((type == SST_PT_INIT || type == SST_PT_REPLY) && lsid == SST_LSID_ROOT)
        return SST_ERR_MALFORMED;
    if (type == SST_PT_REPLY && sst_get16(buf + 4) == SST_LSID_ROOT)
        return SST_ERR_MALFORMED;
    /* The root stream is never attached, detached or reset (paper §4.3.2). */
    if ((type == SST_PT_ATTACH || type == SST_PT_DETACH || type == SST_PT_RESET) &&
        lsid == SST_LSID_ROOT)
        return SST_ERR_MALFORMED;
    if (type == SST_PT_DATAGRAM) {
        uint8_t idx = buf[6], cnt = buf[7];
        if (cnt == 0 || idx >= cnt)
            return SST_ERR_MALFORMED;
        if (((flags & SST_DGF_FIRST) != 0) != (idx == 0))
            return SST_ERR_MALFORMED;
        if (((flags & SST_DGF_LAST) != 0) != (idx == cnt - 1))
            return SST_ERR_MALFORMED;
    }

    /* Phase 2: decode. */
    memset(p, 0, sizeof *p);
    p->type = (uint8_t)type;
    p->flags = flags;
    p->win = buf[3];
    p->lsid = lsid;
    switch (type) {
    case SST_PT_INIT:
    case SST_PT_REPLY:
        p->ref_lsid = sst_get16(buf + 4);
        p->bsn = sst_get16(buf + 6);
        break;
    case SST_PT_DATA:
        p->bsn = sst_get32(buf + 4);
        break;
    case SST_PT_DATAGRAM:
        p->dg_id = sst_get16(buf + 4);
        p->dg_idx = buf[6];
        p->dg_cnt = buf[7];
        break;
    case SST_PT_ATTACH:
        get_usid(&p->usid, buf + 4);
        if (flags & SST_ATTF_INIT)
            get_usid(&p->parent_usid, buf + 4 + SST_USID_LEN);
        break;
    default:
        break;
    }
    p->data = buf + hl;
    p->len = len - hl;
    return 0;
}
