/* Example: an SST client over real UDP with the public API (core/sst.h).
 *
 *   sst_echo_client ADDR:PORT < input > output
 *
 * Opens a top-level stream to service "echo" at the server, sends standard input, half-closes,
 * and writes what comes back to standard output.  The first bytes leave before the server has
 * answered (paper §4.3.4).  Exit status 0 when the stream ended cleanly.  See docs/api.md.
 * (Standard input is read with plain blocking reads for brevity: fine for files and pipes that
 * keep up; a real program would watch it with an event.) */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "io/driver.h"
#include "sst.h"

struct client {
    struct event_base *base;
    struct sst_driver *d;
    uint8_t out[65536];
    size_t off, len;
    bool in_eof, done;
    int err;
};

static void pump(struct sst_stream *s, struct client *c)
{
    /* stdin -> stream */
    while (!c->in_eof) {
        if (c->len == 0) {
            ssize_t n = read(0, c->out, sizeof c->out);
            if (n <= 0) {
                c->in_eof = true;
                sst_stream_shutdown(s, SST_SHUT_WRITE);
                break;
            }
            c->off = 0;
            c->len = (size_t)n;
        }
        sst_ssize_t w = sst_stream_write(s, c->out + c->off, c->len);
        if (w <= 0)
            break; /* WRITABLE brings us back */
        c->off += (size_t)w;
        c->len -= (size_t)w;
    }
    /* stream -> stdout */
    uint8_t in[65536];
    for (;;) {
        sst_ssize_t r = sst_stream_read(s, in, sizeof in);
        if (r == SST_ERR_AGAIN)
            break;
        if (r <= 0) {
            c->err = (int)r;
            c->done = true;
            event_base_loopbreak(c->base);
            break;
        }
        if (fwrite(in, 1, (size_t)r, stdout) != (size_t)r) {
            c->err = SST_ERR_IO;
            c->done = true;
            event_base_loopbreak(c->base);
            break;
        }
    }
    sst_driver_rearm(c->d);
}

static void on_stream(struct sst_stream *s, unsigned events, void *arg)
{
    struct client *c = arg;
    if (events & SST_EV_ERROR) {
        c->err = sst_stream_error(s);
        c->done = true;
        event_base_loopbreak(c->base);
        return;
    }
    pump(s, c);
}

int main(int argc, char **argv)
{
    struct sst_addr server, any;
    if (argc != 2 || sst_addr_parse(&server, argv[1], 8661) != 0) {
        fprintf(stderr, "usage: %s ADDR[:PORT] < input\n", argv[0]);
        return 2;
    }
    sst_addr_parse(&any, server.family == SST_AF_INET6 ? "[::]:0" : "0.0.0.0:0", 0);
    struct client c = { .base = event_base_new() };
    struct sst_ctx_config cfg;
    sst_ctx_config_default(&cfg);
    sst_host_config_default(&cfg.host);
    c.d = sst_driver_new_ctx(c.base, &cfg, &any, NULL, NULL);
    if (!c.d) {
        perror("cannot open a UDP socket");
        return 1;
    }
    struct sst_ctx *ctx = sst_driver_ctx(c.d);
    sst_ctx_set_time(ctx, sst_driver_now(c.d)); /* the engine reads no clock */
    struct sst_stream *s = sst_connect(ctx, &server, "echo", on_stream, &c);
    if (!s)
        return 1;
    pump(s, &c); /* writable at once */
    event_base_dispatch(c.base);
    fflush(stdout);
    if (c.err)
        fprintf(stderr, "stream ended: %s\n", sst_strerror(c.err));
    sst_stream_close(s);
    sst_driver_free(c.d);
    event_base_free(c.base);
    return c.err ? 1 : 0;
}
