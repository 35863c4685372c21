/* A minimal JSON reader for sstctl (one control reply at a time). */
#ifndef SSTD_JSONV_H
#define SSTD_JSONV_H

#include <stdbool.h>
#include <stddef.h>

#include "types.h"

enum jv_type { JV_NULL, JV_BOOL, JV_NUMBER, JV_STRING, JV_ARRAY, JV_OBJECT };

struct jv {
    enum jv_type type;
    char *key;            /* member name inside an object */
    char *str;
    double num;
    bool b;
    struct jv *child;     /* first element / member */
    struct jv *next;
};

/* Parses exactly one value filling text[0..len); NULL if malformed. */
struct jv *jv_parse(const char *text, size_t len);
void jv_free(struct jv *v);
const struct jv *jv_get(const struct jv *obj, const char *key);
const char *jv_str(const struct jv *obj, const char *key, const char *dflt);
double jv_num(const struct jv *obj, const char *key, double dflt);
bool jv_bool(const struct jv *obj, const char *key);

#endif
