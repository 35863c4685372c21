/* A minimal JSON reader for sstctl: parses one control reply (RFC 8259 subset: a \u escape is
 * decoded on its own, a surrogate as U+FFFD) into a tree of values it can print for humans. */
#include "jsonv.h"

#include <stdlib.h>
#include <string.h>

struct parser {
    const char *p, *end;
    int depth;
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static struct jv *parse_value(struct parser *ps);

/* \uXXXX's four hex digits at h as UTF-8 at o; returns the end.  A surrogate (half of a pair
 * sstd never writes) or non-hex digits give U+FFFD. */
static char *put_utf8(char *o, const char *h)
{
    unsigned long c = 0;
    for (int i = 0; i < 4; i++) {
        char d = h[i];
        unsigned v = d >= '0' && d <= '9' ? (unsigned)(d - '0')
                   : d >= 'a' && d <= 'f' ? (unsigned)(d - 'a' + 10)
                   : d >= 'A' && d <= 'F' ? (unsigned)(d - 'A' + 10) : 16;
        c = v == 16 ? 0xfffd : c * 16 + v;
        if (v == 16)
            break;
    }
    if (c >= 0xd800 && c <= 0xdfff)
        c = 0xfffd;
    if (c < 0x80) {
        *o++ = (char)c;
    } else if (c < 0x800) {
        *o++ = (char)(0xc0 | c >> 6);
        *o++ = (char)(0x80 | (c & 0x3f));
    } else {
        *o++ = (char)(0xe0 | c >> 12);
        *o++ = (char)(0x80 | (c >> 6 & 0x3f));
        *o++ = (char)(0x80 | (c & 0x3f));
    }
    return o;
}

static char *parse_string(struct parser *ps)
{
    /* Phase 1: find the closing quote and the decoded length; phase 2: decode. */
    const char *q = ps->p + 1;
    size_t n = 0;
    while (q < ps->end && *q != '"') {
        if (*q == '\\') {
            if (q + 1 >= ps->end)
                return NULL;
            n += q[1] == 'u' ? 3 : 1;   /* a \u escape is at most 3 bytes of UTF-8 */
            q += q[1] == 'u' ? 6 : 2;
        } else {
            q++;
            n++;
        }
    }
    if (q >= ps->end)
        return NULL;
    char *s = malloc(n + 1), *o = s;
    if (!s)
        return NULL;
    for (const char *r = ps->p + 1; r < q;) {
        if (*r != '\\') {
            *o++ = *r++;
            continue;
        }
        switch (r[1]) {
        case 'n': *o++ = '\n'; break;
        case 't': *o++ = '\t'; break;
        case 'r': *o++ = '\r'; break;
        case 'u': o = put_utf8(o, r + 2); break;
        default: *o++ = r[1]; break;
        }
        r += r[1] == 'u' ? 6 : 2;
    }
    *o = '\0';
    ps->p = q + 1;
    return s;
}

static struct jv *new_jv(enum jv_type t)
{
    struct jv *v = calloc(1, sizeof *v);
    if (v)
        v->type = t;
    return v;
}

static struct jv *parse_container(struct parser *ps, bool object)
{
    struct jv *v = new_jv(object ? JV_OBJECT : JV_ARRAY), **tail;
    if (!v || ++ps->depth > 32)
        goto bad;
    tail = &v->child;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
        ps->p++;
        ps->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (object) {
            if (ps->p >= ps->end || *ps->p != '"' || !(key = parse_string(ps)))
                goto bad;
            skip_ws(ps);
            if (ps->p >= ps->end || *ps->p != ':') {
                free(key);
                goto bad;
            }
            ps->p++;
        }
        struct jv *item = parse_value(ps);
        if (!item) {
            free(key);
            goto bad;
        }
        item->key = key;
        *tail = item;
        tail = &item->next;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == (object ? '}' : ']')) {
            ps->p++;
            ps->depth--;
            return v;
        }
        goto bad;
    }
bad:
    jv_free(v);
    return NULL;
}

static struct jv *parse_value(struct parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return NULL;
    char c = *ps->p;
    if (c == '{' || c == '[')
        return parse_container(ps, c == '{');
    if (c == '"') {
        struct jv *v = new_jv(JV_STRING);
        if (v && !(v->str = parse_string(ps))) {
            free(v);
            return NULL;
        }
        return v;
    }
    static const struct { const char *word; enum jv_type t; bool b; } words[] = {
        { "true", JV_BOOL, true }, { "false", JV_BOOL, false }, { "null", JV_NULL, false } };
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(words[i].word);
        if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, words[i].word, n) == 0) {
            struct jv *v = new_jv(words[i].t);
            if (v)
                v->b = words[i].b;
            ps->p += n;
            return v;
        }
    }
    char *end;
    char buf[64];
    size_t n = SST_MIN((size_t)(ps->end - ps->p), sizeof buf - 1);
    memcpy(buf, ps->p, n);
    buf[n] = '\0';
    double d = strtod(buf, &end);
    if (end == buf)
        return NULL;
    struct jv *v = new_jv(JV_NUMBER);
    if (v)
        v->num = d;
    ps->p += end - buf;
    return v;
}

struct jv *jv_parse(const char *text, size_t len)
{
    struct parser ps = { .p = text, .end = text + len };
    struct jv *v = parse_value(&ps);
    skip_ws(&ps);
    if (v && ps.p != ps.end) {
        jv_free(v);
        return NULL;
    }
    return v;
}

void jv_free(struct jv *v)
{
    while (v) {
        struct jv *next = v->next;
        jv_free(v->child);
        free(v->key);
        free(v->str);
        free(v);
        v = next;
    }
}

const struct jv *jv_get(const struct jv *obj, const char *key)
{
    if (!obj || obj->type != JV_OBJECT)
        return NULL;
    for (const struct jv *c = obj->child; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0)
            return c;
    return NULL;
}

const char *jv_str(const struct jv *obj, const char *key, const char *dflt)
{
    const struct jv *v = jv_get(obj, key);
    return v && v->type == JV_STRING ? v->str : dflt;
}

double jv_num(const struct jv *obj, const char *key, double dflt)
{
    const struct jv *v = jv_get(obj, key);
    return v && v->type == JV_NUMBER ? v->num : dflt;
}

bool jv_bool(const struct jv *obj, const char *key)
{
    const struct jv *v = jv_get(obj, key);
    return v && v->type == JV_BOOL && v->b;
}
