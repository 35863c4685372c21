/* Fuzz target: the bytes a local client sends sstd's control socket (helper/control.c,
 * docs/helper.md "Control protocol") and the reply lines sstctl reads back (helper/jsonv.c).
 * The daemon's request handling needs a live daemon only to act; reading a request is pure
 * (helper/request.c and sst_addr_parse), and that is what runs here, on the words exactly as
 * dispatch() gets them.  Each input is a script of records (fuzz.h):
 *   op % 2 == 0: bytes a client writes.  Cut into lines at LF as sstd's reader does; a line
 *                over SSTD_LINE_MAX is refused whole (never parsed), as sstd refuses it.  Each
 *                line is split into words, and every word goes through the parser its place
 *                in the request has: HOST through sst_addr_parse (default port 8661), PORT/COUNT/SECONDS through sstd_request_long, MARK's and INFO's
 *                DEV INO through sstd_request_devino, CONNECT's tail through sstd_request_notify,
 *                its option words and MARK's through sstd_request_utimeout/_keepalive.
 *   op % 2 == 1: a reply line for sstctl's reader: jv_parse and the getters it uses.
 * Checked beyond "no crash, no sanitizer report": every text sstd echoes into a reply (the
 * unknown command, a host as it prints it, FORGET's name, TCPONLY's destination, the error
 * messages) comes out of sstd_json_str as JSON that jv_parse reads back as the same text; a host
 * sst_addr_parse accepts prints as text it accepts again, as the same address. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>

#include "../../helper/jsonv.h"
#include "../../helper/sstd.h"
#include "fuzz.h"

/* What the seeds reach, over all runs (test_helper_fuzz checks the seeds reach it). */
static unsigned long control_hosts_ok, control_requests_ok, control_replies_ok;

/* The UTF-8 sequence at p decoded by its code point (written apart from helper/json.c's
 * check, by the value's ranges): its length, 0 if ill-formed (RFC 3629). */
static size_t control_utf8(const unsigned char *p, size_t avail)
{
    size_t n = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2 : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || n > avail)
        return 0;
    unsigned long cp = n == 1 ? p[0] : p[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    static const unsigned long min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* sstd's reply {"ok":false,"error":CODE,"message":TEXT} for text, read back by sstctl's
 * reader: the reply is UTF-8 throughout (JSON text is, RFC 8259 §8.1), and the message is
 * text byte for byte, each byte of an ill-formed sequence read as U+FFFD. */
static void control_check_echo(const char *text)
{
    static char want[4 * 4096];
    struct evbuffer *b = evbuffer_new();
    if (!b)
        abort();
    evbuffer_add_printf(b, "{\"ok\":false,\"error\":\"unknown\",\"message\":");
    sstd_json_str(b, text);
    evbuffer_add(b, "}", 1);
    size_t len = evbuffer_get_length(b);
    const unsigned char *json = evbuffer_pullup(b, -1);
    for (size_t i = 0, n; i < len; i += n)
        if ((n = control_utf8(json + i, len - i)) == 0)
            abort();
    size_t w = 0, tlen = strlen(text);
    for (size_t i = 0, n; i < tlen && w + 4 < sizeof want; i += n ? n : 1) {
        n = control_utf8((const unsigned char *)text + i, tlen - i);
        memcpy(want + w, n ? text + i : "\xef\xbf\xbd", n ? n : 3);
        w += n ? n : 3;
    }
    want[w] = '\0';
    struct jv *v = jv_parse((const char *)json, len);
    if (!v || jv_bool(v, "ok") || strcmp(jv_str(v, "error", ""), "unknown") != 0 ||
        !jv_str(v, "message", NULL) || strcmp(jv_str(v, "message", ""), want) != 0)
        abort();
    jv_free(v);
    evbuffer_free(b);
}

/* An error message as sstd_client_reply_error formats it (512 bytes at most). */
static void control_check_error(const char *fmt, const char *word)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, word);
    control_check_echo(msg);
}

/* HOST as parse_peer reads it; what sstd then prints of it (reply texts, caps keys). */
static bool control_host(const char *text, char name[SST_ADDR_STRLEN])
{
    struct sst_addr a, again;
    if (!text)
        return false;
    if (sst_addr_parse(&a, text, SSTD_DEFAULT_PORT) < 0) {
        control_check_error("'%s' is not a numeric IPv4/IPv6 address[:port]", text);
        return false;
    }
    control_hosts_ok++;
    sst_addr_str(&a, name, SST_ADDR_STRLEN);
    if (sst_addr_parse(&again, name, 1) < 0 || a.family != again.family || a.port != again.port ||
        memcmp(a.ip, again.ip, sizeof a.ip) != 0 || a.scope_id != again.scope_id)
        abort();
    control_check_echo(name);
    return true;
}

/* An option word of CONNECT or MARK (UTIMEOUT=MS, KEEPALIVE=IDLE,INTVL,CNT): what sstd takes
 * must be in range -- a negative time or a keepalive with idle but no probes never reaches the
 * engine. */
static void control_option_word(const char *w)
{
    int ka[3];
    if (sstd_request_utimeout(w) < -1)
        abort();
    if (sstd_request_keepalive(w, ka) &&
        (ka[0] < 0 || ka[1] < 0 || ka[2] < 0 || (ka[0] > 0 && (ka[1] == 0 || ka[2] == 0))))
        abort();
}

static void control_line(char *line)
{
    char *w[SSTD_REQ_WORDS], name[SST_ADDR_STRLEN];
    long n;
    unsigned long long dev, ino;
    int fd;
    sstd_request_split(line, w);
    if (!w[0])
        return;
    if (strcmp(w[0], "PING") == 0 || strcmp(w[0], "WARM") == 0) {
        if (control_host(w[1], name) && (!w[2] || sstd_request_long(w[2], 1, 20, &n)))
            control_requests_ok++;
    } else if (strcmp(w[0], "CAPS") == 0) {
        if (control_host(w[1], name) && sstd_request_long(w[2], 1, 65535, &n))
            control_requests_ok++;
    } else if (strcmp(w[0], "TCPONLY") == 0) {
        long secs;
        if (control_host(w[1], name) && sstd_request_long(w[2], 1, 65535, &n) &&
            sstd_request_long(w[3], 1, SSTD_PORT_TCP_MAX_SEC, &secs)) {
            char dest[SST_ADDR_STRLEN + 8];
            snprintf(dest, sizeof dest, "%s/%ld", name, n);
            control_check_echo(dest);
            control_requests_ok++;
        }
    } else if (strcmp(w[0], "FORGET") == 0) {
        if (w[1]) {
            control_check_echo(w[1]);
            control_requests_ok++;
        }
    } else if (strcmp(w[0], "CONNECT") == 0) {
        if (sstd_request_long(w[2], 1, 65535, &n) && control_host(w[1], name)) {
            if (sstd_request_notify(w + 3, &fd, &dev, &ino) && fd < 0)
                abort();
            for (int i = 7; i < SSTD_REQ_WORDS && w[i]; i++)   /* the option words */
                control_option_word(w[i]);
            control_requests_ok++;
        }
    } else if (strcmp(w[0], "MARK") == 0 || strcmp(w[0], "INFO") == 0) {
        if (sstd_request_devino(w[1], w[2], &dev, &ino)) {
            if (w[3])
                control_option_word(w[3]);
            control_requests_ok++;
        }
    } else if (strcmp(w[0], "STATUS") != 0 && strcmp(w[0], "EVENTS") != 0) {
        control_check_error("unknown request '%s' (STATUS, PING, WARM, CAPS, TCPONLY, FORGET, "
                            "CONNECT, EVENTS, MARK, INFO)", w[0]);
    }
}

/* The bytes of one client write: lines at LF; the last, unterminated, waits (as in sstd). */
static void control_bytes(const uint8_t *data, size_t len)
{
    static char line[SSTD_LINE_MAX + 1];
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n')
            continue;
        size_t n = i - start;
        if (n <= SSTD_LINE_MAX) {
            /* evbuffer_readln hands over the line as a C string: a NUL ends it early. */
            memcpy(line, data + start, n);
            line[n] = '\0';
            control_line(line);
        }
        start = i + 1;
    }
}

/* sstctl's reader on one reply (it prints every member; the getters it calls). */
static void control_reply(const uint8_t *data, size_t len)
{
    struct jv *v = jv_parse((const char *)data, len);
    if (!v)
        return;
    control_replies_ok++;
    (void)jv_str(v, "error", NULL);
    (void)jv_str(v, "message", NULL);
    (void)jv_num(v, "rtt_ms", 0);
    (void)jv_bool(v, "ok");
    for (const struct jv *c = v->type == JV_OBJECT || v->type == JV_ARRAY ? v->child : NULL; c; c = c->next)
        if (v->type == JV_OBJECT && (!c->key || jv_get(v, c->key) == NULL))
            abort();
    jv_free(v);
}

int fuzz_control_one(const uint8_t *in, size_t size)
{
    size_t pos = 0;
    struct fuzz_rec r;
    while (fuzz_next(in, size, &pos, &r)) {
        if (r.op % 2 == 0)
            control_bytes(r.data, r.len);
        else
            control_reply(r.data, r.len);
    }
    return 0;
}

/* ---- seeds: every request of the protocol and replies of every shape (docs/helper.md) ---- */

void fuzz_control_seeds(fuzz_emit_fn emit, void *arg)
{
    static const char *const requests[] = {
        "STATUS\n",
        "PING 10.0.0.2 3\nWARM [::1]:8661\n",
        "CAPS 10.0.0.2:8661 5201\nCAPS [fe80::1%2]:9000 80\n",
        "TCPONLY 10.0.0.2 5201 30\nFORGET peer.example\n",
        "CONNECT 10.0.0.2 5201 RESET 7 2049 123456 LINGER0\nCONNECT ::ffff:10.0.0.2 80\n",
        "MARK 2049 123456 SHUTWR\nINFO 2049 123456\nEVENTS\n",
        ("CONNECT 10.0.0.2 80 RESET 7 2049 123456 LINGER0 UTIMEOUT=5000 KEEPALIVE=10,2,3\n"
         "MARK 2049 123456 UTIMEOUT=0\nMARK 2049 123456 KEEPALIVE=0,0,0\nMARK 1 2 KEEPALIVE=1,,3\n"),
        "BOGUS words\t\there\r\n\n",
        /* A client's ill-formed UTF-8 came back raw (until 2026-11-22), invalid JSON for
         * strict readers (helper/json.c). */
        "FORGET \xff\n\xc3\x28\nPING 1.2.3.4\xfe\nFORGET caf\xc3\xa9\xed\xa0\x80\xf4\x90\x80\x80\n",
    };
    static const char *const replies[] = {
        "{\"ok\":true,\"pid\":12,\"uptime_s\":3.5,\"port\":8661,\"socket\":\"/tmp/sst-1/sstd.sock\","
        "\"forward\":[8080,5201],\"host\":{\"channels\":1,\"rx_packets\":10},\"peers\":[{\"peer\":"
        "\"10.0.0.2:8661\",\"state\":\"up\",\"srtt_ms\":20.125}]}",
        "{\"ok\":true,\"peer\":\"10.0.0.2:8661\",\"rtt_ms\":[1.5,1.25,1.75],\"min_ms\":1.25,"
        "\"avg_ms\":1.5,\"srtt_ms\":1.5,\"handshake_ms\":0.000}",
        "{\"ok\":false,\"error\":\"bad-host\",\"message\":\"'x\\\"y\\u0001' is not a numeric\"}",
        "{\"ok\":false,\"result\":\"REFUSED\",\"error\":\"refused\",\"errno\":111,\"message\":null}",
        "{\"ok\":true,\"app_done\":false,\"peer_done\":true,\"bytes_written\":100,\"cwnd\":14600,"
        "\"v6\":false,\"srtt_ns\":20000000}",
        "{\"ok\":true,\"host\":\"caf\\u00e9 \\ufffd \\ud800 \\u00zz\",\"removed\":0}",
    };
    uint8_t buf[1024];
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        size_t len = 0;
        fuzz_put(buf, sizeof buf, &len, 0, requests[i], strlen(requests[i]));
        if (i < sizeof replies / sizeof replies[0])
            fuzz_put(buf, sizeof buf, &len, 1, replies[i], strlen(replies[i]));
        emit(arg, buf, len);
    }
}
