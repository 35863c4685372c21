/* Example: an SST echo server over real UDP with the public API (core/sst.h).
 *
 *   sst_echo_server [ADDR:PORT]        default [::]:8661, service "echo"
 *
 * Every top-level stream to service "echo" gets its bytes back; the server closes its side
 * after the client closes its own (half-close, like TCP's FIN).  See docs/api.md. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/driver.h"
#include "sst.h"

struct echo {
    uint8_t buf[65536];
    size_t off, len;        /* bytes read but not yet written back */
};

static void on_stream(struct sst_stream *s, unsigned events, void *arg)
{
    struct echo *e = arg;
    for (;;) {
        if (e->len == 0) {
            sst_ssize_t r = sst_stream_read(s, e->buf, sizeof e->buf);
            if (r == 0) { /* the client is done: so are we, once our bytes are out */
                sst_stream_close(s);
                free(e);
                return;
            }
            if (r < 0) {
                if (r != SST_ERR_AGAIN) {
                    fprintf(stderr, "stream failed: %s\n", sst_strerror((int)r));
                    sst_stream_close(s);
                    free(e);
                }
                return;
            }
            e->off = 0;
            e->len = (size_t)r;
        }
        sst_ssize_t w = sst_stream_write(s, e->buf + e->off, e->len);
        if (w <= 0)
            return; /* WRITABLE brings us back */
        e->off += (size_t)w;
        e->len -= (size_t)w;
    }
    (void)events;
}

static void on_listener(struct sst_listener *l, void *arg)
{
    struct sst_stream *s;
    (void)arg;
    for (;;) {
        struct echo *e = calloc(1, sizeof *e);
        if (!e || !(s = sst_accept(l, on_stream, e))) {
            free(e);
            return;
        }
        char peer[SST_ADDR_STRLEN];
        printf("stream from %s\n", sst_addr_str(sst_stream_peer(s), peer, sizeof peer));
        fflush(stdout);
    }
}

int main(int argc, char **argv)
{
    struct sst_addr bind;
    if (sst_addr_parse(&bind, argc > 1 ? argv[1] : "[::]:8661", 8661) != 0) {
        fprintf(stderr, "usage: %s [ADDR:PORT]\n", argv[0]);
        return 2;
    }
    struct event_base *base = event_base_new();
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    sst_host_config_default(&cfg.host); /* an ephemeral host key: see core/io/keystore.h to pin one */
    struct sst_driver *d = sst_driver_new_ctx(base, &cfg, &bind, NULL, NULL);
    if (!d) {
        perror("cannot bind");
        return 1;
    }
    if (!sst_listen(sst_driver_ctx(d), "echo", on_listener, NULL))
        return 1;
    struct sst_addr local;
    char text[SST_ADDR_STRLEN];
    sst_driver_local_addr(d, &local);
    printf("listening on %s, service \"echo\"\n", sst_addr_str(&local, text, sizeof text));
    fflush(stdout);
    event_base_dispatch(base);
    sst_driver_free(d);
    event_base_free(base);
    return 0;
}
