/* Unit tests for sstd's pure parts: option parsing and defaults, the capability cache and its
 * expiry, the capability file the shim reads (rendered by sstd, looked up by the shim), PROXY v2
 * header encoding, JSON string escaping and sstctl's JSON reader. */
#include <check.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>

#include "../../helper/sstd.h"
#include "../../helper/jsonv.h"
#include "io/helper_path.h"

static int parse(struct sstd_opts *o, char *err, size_t errlen, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, errlen);
    argv[argc++] = "sstd";
    for (char *a; (a = va_arg(ap, char *)) != NULL;)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return sstd_options_parse(o, argc, argv, err, errlen);
}

/* Every log line is one printable line, whatever the message quotes: a control client's word
 * (CONNECT's address at the descriptor limit), --bind, --keydir, a peer's string.  Until
 * 2026-11-22 sstd wrote them raw: a newline forged a line, an escape reached the terminal.  A
 * long message is cut, still one line ending in its newline. */
START_TEST(test_log_lines_printable)
{
    int p[2];
    char got[2048], want[160];
    ck_assert_int_eq(pipe(p), 0);
    sstd_log_setup(SSTD_LOG_DEBUG, p[1], false);
    SSTD_WARN("CONNECT %s 80: out of descriptors", "x\nsstd[1] error: forged\x1b[2J\x0b\x7f\t");
    ssize_t n = read(p[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 0);
    got[n] = '\0';
    snprintf(want, sizeof want, "sstd[%d] warn: CONNECT x\\nsstd[1] error: forged\\x1b[2J\\x0b\\x7f\\t 80: "
             "out of descriptors\n", (int)getpid());
    ck_assert_str_eq(got, want);
    char longv[1500];
    memset(longv, '\n', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    SSTD_DEBUG("%s", longv);
    n = read(p[0], got, sizeof got - 1);
    ck_assert_int_gt(n, 100);
    ck_assert_int_le(n, 1024);
    got[n] = '\0';
    ck_assert_ptr_eq(strchr(got, '\n'), got + n - 1);
    const char *text = strstr(got, ": ") + 2;   /* only "\\n" escapes, none cut in two */
    ck_assert_int_eq((got + n - 1 - text) % 2, 0);
    ck_assert(got[n - 2] == 'n' && got[n - 3] == '\\');
    sstd_log_setup(SSTD_LOG_WARN, -1, false);
    close(p[0]);
    close(p[1]);
}
END_TEST

START_TEST(test_options_defaults)
{
    struct sstd_opts o;
    char err[256] = "";
    unsetenv("SST_LOG");
    unsetenv("SST_LOG_FILE");
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/tmp/x/sstd.sock", NULL), 0);
    ck_assert_str_eq(o.log_file, "");
    ck_assert_uint_eq(o.port, 8661);
    ck_assert_uint_eq(o.idle_sec, 300);
    ck_assert_uint_eq(o.handshake_timeout_sec, 10);
    ck_assert_int_eq(o.log_level, SSTD_LOG_WARN);
    ck_assert(!o.foreground && !o.proxy_protocol);
    ck_assert_uint_eq(o.nforward, 0);
    ck_assert_str_eq(o.pid_file, "/tmp/x/sstd.pid");
    /* Unset: the engine's own defaults stay in charge. */
    ck_assert(!o.cc_set && !o.security_set && !o.migrate_set && !o.liveness_set);
}
END_TEST

START_TEST(test_options_env)
{
    struct sstd_opts o;
    char err[256] = "";
    setenv("SST_LOG", "info", 1);
    setenv("SST_LOG_FILE", "/tmp/sstd-test.log", 1);
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", NULL), 0);
    ck_assert_int_eq(o.log_level, SSTD_LOG_INFO);
    ck_assert_str_eq(o.log_file, "/tmp/sstd-test.log");
    /* The command line wins over the environment. */
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--log", "error", "--log-file", "/x", NULL), 0);
    ck_assert_int_eq(o.log_level, SSTD_LOG_ERROR);
    ck_assert_str_eq(o.log_file, "/x");
    unsetenv("SST_LOG");
    unsetenv("SST_LOG_FILE");
}
END_TEST

START_TEST(test_options_values)
{
    struct sstd_opts o;
    char err[256] = "";
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--port", "9000", "--forward", "80,8000-8002,80",
                           "--proxy-protocol", "--foreground", "--log", "debug", "--idle", "5", "--allow-uid",
                           "1000,root", "--bind", "10.0.0.1", NULL),
                     0);
    ck_assert_uint_eq(o.port, 9000);
    ck_assert_uint_eq(o.nforward, 4); /* 80 listed twice counts once */
    ck_assert(sstd_forwarded(&o, 80) && sstd_forwarded(&o, 8001) && sstd_forwarded(&o, 8002));
    ck_assert(!sstd_forwarded(&o, 8003));
    ck_assert(o.proxy_protocol && o.foreground);
    ck_assert_int_eq(o.log_level, SSTD_LOG_DEBUG);
    ck_assert_uint_eq(o.idle_sec, 5);
    ck_assert_uint_eq(o.nallow, 2);
    ck_assert_uint_eq(o.allow_uid[0], 1000);
    ck_assert_uint_eq(o.allow_uid[1], 0);
    ck_assert_str_eq(o.bind, "10.0.0.1");
    ck_assert_str_eq(o.pid_file, "/s.pid");
    ck_assert(!o.cc_set && !o.security_set);

    static const struct {
        const char *name;
        enum sst_cc_algo cc;
    } ccs[] = { { "cubic", SST_CC_CUBIC }, { "newreno", SST_CC_NEWRENO }, { "bbr", SST_CC_BBR } };
    for (size_t i = 0; i < sizeof ccs / sizeof ccs[0]; i++) {
        ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--cc", ccs[i].name, NULL), 0);
        ck_assert(o.cc_set);
        ck_assert_int_eq(o.cc, ccs[i].cc);
    }
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--security", "light", NULL), 0);
    ck_assert(o.security_set);
    ck_assert_int_eq(o.security, SST_SEC_LIGHT);
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--security", "strong", "--cc", "bbr", NULL), 0);
    ck_assert(o.security_set && o.cc_set);
    ck_assert_int_eq(o.security, SST_SEC_STRONG);
    ck_assert_int_eq(o.cc, SST_CC_BBR);
    ck_assert_int_eq(parse(&o, err, sizeof err, "--socket", "/s", "--migrate-timeout", "0", "--liveness", "86400", NULL), 0);
    ck_assert(o.migrate_set && o.migrate_sec == 0 && o.liveness_set && o.liveness_sec == 86400);
}
END_TEST

START_TEST(test_options_errors)
{
    static const char *const bad[][2] = {
        { "--port", "70000" }, { "--port", "-1" },        { "--forward", "0" },     { "--forward", "9-3" },
        { "--forward", "x" },  { "--log", "loud" },       { "--idle", "abc" },      { "--allow-uid", "no-such-user-xyz" },
        { "--handshake-timeout", "0" }, { "--bogus", "1" }, { "--cc", "vegas" }, { "--cc", "reno" },
        { "--cc", "BBR" }, { "--cc", "" }, { "--security", "weak" }, { "--security", "" },
        { "--migrate-timeout", "3601" }, { "--migrate-timeout", "-1" }, { "--migrate-timeout", "1s" },
        { "--liveness", "86401" }, { "--liveness", "" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct sstd_opts o;
        char err[256] = "";
        int rc = parse(&o, err, sizeof err, "--socket", "/s", bad[i][0], bad[i][1], NULL);
        ck_assert_msg(rc == -1, "%s %s accepted", bad[i][0], bad[i][1]);
        ck_assert_msg(err[0] != '\0', "%s %s: no message", bad[i][0], bad[i][1]);
    }
}
END_TEST

START_TEST(test_default_socket_path)
{
    char buf[SSTD_PATH_MAX];
    ck_assert_int_eq(sstd_default_socket_path(buf, sizeof buf, 0, "/run/user/0"), 0);
    ck_assert_str_eq(buf, "/run/sst/sstd.sock");
    ck_assert_int_eq(sstd_default_socket_path(buf, sizeof buf, 1000, "/run/user/1000"), 0);
    ck_assert_str_eq(buf, "/run/user/1000/sst/sstd.sock");
    ck_assert_int_eq(sstd_default_socket_path(buf, sizeof buf, 1000, NULL), 0);
    ck_assert_str_eq(buf, "/tmp/sst-1000/sstd.sock");
    ck_assert_int_eq(sstd_default_socket_path(buf, 8, 1000, "/run/user/1000"), -1);
}
END_TEST

START_TEST(test_caps_expiry)
{
    struct sstd_caps *c = sstd_caps_new();
    sst_time_t exp;
    const char *reason;
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.2:8661", 0, NULL, NULL), SSTD_CAP_UNKNOWN);
    sstd_caps_set(c, "10.0.0.2:8661", SSTD_CAP_NO_SST, "timeout", SST_SEC(100), SST_SEC(600));
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.2:8661", SST_SEC(699), &exp, &reason), SSTD_CAP_NO_SST);
    ck_assert_uint_eq(exp, SST_SEC(700));
    ck_assert_str_eq(reason, "timeout");
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.2:8661", SST_SEC(700), NULL, NULL), SSTD_CAP_UNKNOWN);
    /* Overwrite: a later handshake success replaces the negative entry. */
    sstd_caps_set(c, "10.0.0.3:8661", SSTD_CAP_NO_SST, "timeout", 0, SST_SEC(10));
    sstd_caps_set(c, "10.0.0.3:8661", SSTD_CAP_SST, "ok", SST_SEC(1), SST_SEC(10));
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.3:8661", SST_SEC(5), NULL, NULL), SSTD_CAP_SST);
    ck_assert_str_eq(sstd_cap_name(SSTD_CAP_NO_SST), "no-sst");
    sstd_caps_free(c);
}
END_TEST

/* The capability file lists only hosts answered SST, with their expiry, and the shim's lookup
 * reads exactly that back: a listed host until its expiry, nothing for unlisted, negative,
 * expired or prefix-only matches, a torn file or a file without the header. */
START_TEST(test_capsfile_roundtrip)
{
    struct sstd_caps *c = sstd_caps_new();
    char text[SSTD_CAPSFILE_MAX], path[64];
    uint64_t exp = 0;
    ck_assert_ptr_nonnull(c);
    sstd_caps_set(c, "10.0.0.2:8661", SSTD_CAP_SST, "handshake completed", SST_SEC(100), SST_SEC(3600));
    sstd_caps_set(c, "10.0.0.3:8661", SSTD_CAP_NO_SST, "timeout", SST_SEC(100), SST_SEC(600));
    sstd_caps_set(c, "[fd77::2]:8661", SSTD_CAP_SST, "handshake completed", SST_SEC(100), SST_SEC(10));
    sstd_caps_set(c, "10.0.0.4:8661", SSTD_CAP_SST, "handshake completed", 0, SST_SEC(50));
    size_t n = sstd_capsfile_render(c, SST_SEC(100), text, sizeof text);
    ck_assert_uint_eq(n, strlen(text));
    ck_assert_ptr_nonnull(strstr(text, "10.0.0.2:8661 3700000000000\n"));
    ck_assert_ptr_null(strstr(text, "10.0.0.3"));   /* negative answers are not published */
    ck_assert_ptr_null(strstr(text, "10.0.0.4"));   /* expired */
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661", SST_SEC(200), &exp));
    ck_assert_uint_eq(exp, SST_SEC(3700));
    ck_assert(sst_helper_caps_lookup(text, "[fd77::2]:8661", SST_SEC(109), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "[fd77::2]:8661", SST_SEC(110), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.3:8661", SST_SEC(200), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:866", SST_SEC(200), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:8661", SST_SEC(3700), &exp));
    ck_assert(!sst_helper_caps_lookup("10.0.0.2:8661 99999999999999\n", "10.0.0.2:8661", 0, &exp));
    ck_assert(!sst_helper_caps_lookup("sstd-caps 1\n10.0.0.2:8661 99999999999999", "10.0.0.2:8661", 0, &exp));
    ck_assert(!sst_helper_caps_lookup("sstd-caps 1\n10.0.0.2:8661 9x\n", "10.0.0.2:8661", 0, &exp));
    /* Too small a buffer: the header alone, never a torn line. */
    n = sstd_capsfile_render(c, SST_SEC(100), text, 20);
    ck_assert_str_eq(text, "sstd-caps 1\n");
    ck_assert_uint_eq(n, 12);
    ck_assert_uint_eq(sstd_capsfile_render(c, SST_SEC(100), text, 5), 0);
    /* Named after the socket, like the pid file. */
    ck_assert_int_eq(sst_helper_caps_path(path, sizeof path, "/run/sst/sstd.sock"), 0);
    ck_assert_str_eq(path, "/run/sst/sstd.caps");
    ck_assert_int_eq(sst_helper_caps_path(path, sizeof path, "/tmp/x/ctl"), 0);
    ck_assert_str_eq(path, "/tmp/x/ctl.caps");
    ck_assert_int_eq(sst_helper_caps_path(path, 8, "/run/sst/sstd.sock"), -1);
    sstd_caps_free(c);
}
END_TEST

static bool file_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return true;
}

/* Ports that answered a hand-off are published as HOST/PORT lines for 10 minutes, the file is
 * not rewritten for a renewal while more than half of that is left, and a refusal removes the
 * line (docs/helper.md "Ports that answered"). */
START_TEST(test_capsfile_ports)
{
    static struct sstd d;
    char text[SSTD_CAPSFILE_MAX];
    uint64_t exp = 0;
    memset(&d, 0, sizeof d);
    d.caps = sstd_caps_new();
    ck_assert_ptr_nonnull(d.caps);
    snprintf(d.opts.caps_file, sizeof d.opts.caps_file, "/tmp/test_helper_pure.%d.caps", (int)getpid());
    sstd_caps_set(d.caps, "10.0.0.2:8661", SSTD_CAP_SST, "handshake completed", 0, SST_SEC(3600));
    sstd_port_answered(&d, "10.0.0.2:8661/8080", SST_SEC(100));
    ck_assert(file_text(d.opts.caps_file, text, sizeof text));
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661/8080", SST_SEC(101), &exp));
    ck_assert_uint_eq(exp, SST_SEC(100 + SSTD_PORT_OK_SEC));
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661", SST_SEC(101), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:8661/8081", SST_SEC(101), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:8661/808", SST_SEC(101), &exp));
    /* A renewal with most of the lifetime left changes nothing on disk. */
    unlink(d.opts.caps_file);
    sstd_port_answered(&d, "10.0.0.2:8661/8080", SST_SEC(200));
    ck_assert(!file_text(d.opts.caps_file, text, sizeof text));
    /* Past half of it: rewritten with the new expiry. */
    sstd_port_answered(&d, "10.0.0.2:8661/8080", SST_SEC(100 + SSTD_PORT_OK_SEC / 2 + 1));
    ck_assert(file_text(d.opts.caps_file, text, sizeof text));
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661/8080", SST_SEC(101), &exp));
    ck_assert_uint_eq(exp, SST_SEC(100 + SSTD_PORT_OK_SEC / 2 + 1 + SSTD_PORT_OK_SEC));
    /* Refused: gone from the file; refusing an unlisted port does not rewrite it. */
    sstd_port_refused(&d, "10.0.0.2:8661/8080", SST_SEC(500));
    ck_assert(file_text(d.opts.caps_file, text, sizeof text));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:8661/8080", SST_SEC(501), &exp));
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661", SST_SEC(501), &exp));
    unlink(d.opts.caps_file);
    sstd_port_refused(&d, "10.0.0.2:8661/8081", SST_SEC(500));
    ck_assert(!file_text(d.opts.caps_file, text, sizeof text));
    /* Refused and then served by a shim's TCP fallback (TCPONLY): a "!" line for the given
     * time, never mistaken for an answering port; a new refusal keeps it, renewal with more
     * than half left does not rewrite, and an SST answer replaces it. */
    sstd_port_tcp_only(&d, "10.0.0.2:8661/8081", SST_SEC(600), SST_SEC(60));
    ck_assert(file_text(d.opts.caps_file, text, sizeof text));
    ck_assert(sst_helper_caps_lookup(text, "!10.0.0.2:8661/8081", SST_SEC(601), &exp));
    ck_assert_uint_eq(exp, SST_SEC(660));
    ck_assert(!sst_helper_caps_lookup(text, "10.0.0.2:8661/8081", SST_SEC(601), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "!10.0.0.2:8661/8081", SST_SEC(660), &exp));
    unlink(d.opts.caps_file);
    sstd_port_refused(&d, "10.0.0.2:8661/8081", SST_SEC(610));
    sstd_port_tcp_only(&d, "10.0.0.2:8661/8081", SST_SEC(620), SST_SEC(60));
    ck_assert(!file_text(d.opts.caps_file, text, sizeof text));
    ck_assert_int_eq(sstd_caps_get(d.caps, "10.0.0.2:8661/8081", SST_SEC(621), NULL, NULL), SSTD_CAP_NO_SST);
    sstd_port_answered(&d, "10.0.0.2:8661/8081", SST_SEC(630));
    ck_assert(file_text(d.opts.caps_file, text, sizeof text));
    ck_assert(sst_helper_caps_lookup(text, "10.0.0.2:8661/8081", SST_SEC(631), &exp));
    ck_assert(!sst_helper_caps_lookup(text, "!10.0.0.2:8661/8081", SST_SEC(631), &exp));
    /* ... and a TCPONLY that comes after the answer does not undo it. */
    sstd_port_tcp_only(&d, "10.0.0.2:8661/8081", SST_SEC(640), SST_SEC(60));
    ck_assert_int_eq(sstd_caps_get(d.caps, "10.0.0.2:8661/8081", SST_SEC(641), NULL, NULL), SSTD_CAP_SST);
    unlink(d.opts.caps_file);
    sstd_caps_free(d.caps);
}
END_TEST

static unsigned count_cb_n;
static void count_cb(void *arg, const char *host, enum sstd_cap cap, const char *reason, sst_time_t expires)
{
    count_cb_n++;
}

START_TEST(test_caps_foreach_skips_expired)
{
    struct sstd_caps *c = sstd_caps_new();
    sstd_caps_set(c, "a", SSTD_CAP_SST, "", 0, SST_SEC(1));
    sstd_caps_set(c, "b", SSTD_CAP_SST, "", 0, SST_SEC(10));
    count_cb_n = 0;
    sstd_caps_foreach(c, SST_SEC(5), count_cb, NULL);
    ck_assert_uint_eq(count_cb_n, 1);
    sstd_caps_free(c);
}
END_TEST

/* A crawler (SST_PEERS=*) visiting many hosts: the cache stays at SSTD_CAPS_MAX entries, the
 * least recently used giving way; a host looked up (or set) lately survives the flood. */
START_TEST(test_caps_bounded_lru)
{
    struct sstd_caps *c = sstd_caps_new();
    char host[64];
    uint64_t evicted = 1;
    ck_assert_ptr_nonnull(c);
    sstd_caps_set(c, "10.0.0.1:8661", SSTD_CAP_SST, "handshake completed", 0, SST_SEC(3600));
    sstd_caps_set(c, "10.0.0.2:8661", SSTD_CAP_SST, "handshake completed", 0, SST_SEC(3600));
    sstd_caps_set(c, "10.0.0.3:8661", SSTD_CAP_SST, "handshake completed", 0, SST_SEC(3600));
    ck_assert_uint_eq(sstd_caps_count(c, &evicted), 3);
    ck_assert_uint_eq(evicted, 0);
    for (unsigned i = 0; i < 3 * SSTD_CAPS_MAX; i++) {
        snprintf(host, sizeof host, "10.%u.%u.%u:8661", 1 + i / 65536, (i / 256) % 256, i % 256);
        sstd_caps_set(c, host, SSTD_CAP_NO_SST, "timeout", SST_SEC(1), SST_SEC(600));
        /* In use all along: looked up now and then, set again once. */
        if (i % 64 == 0)
            ck_assert_int_eq(sstd_caps_get(c, "10.0.0.1:8661", SST_SEC(1), NULL, NULL), SSTD_CAP_SST);
        if (i == SSTD_CAPS_MAX / 2)
            sstd_caps_set(c, "10.0.0.3:8661", SSTD_CAP_SST, "handshake completed", SST_SEC(1), SST_SEC(3600));
        ck_assert_uint_le(sstd_caps_count(c, NULL), SSTD_CAPS_MAX);
    }
    ck_assert_uint_eq(sstd_caps_count(c, &evicted), SSTD_CAPS_MAX);
    ck_assert_uint_eq(evicted, 3 + 3 * SSTD_CAPS_MAX - SSTD_CAPS_MAX);
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.1:8661", SST_SEC(2), NULL, NULL), SSTD_CAP_SST);
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.2:8661", SST_SEC(2), NULL, NULL), SSTD_CAP_UNKNOWN);
    /* Set at SSTD_CAPS_MAX / 2, untouched since: a full cache's worth of newer hosts evicted it. */
    ck_assert_int_eq(sstd_caps_get(c, "10.0.0.3:8661", SST_SEC(2), NULL, NULL), SSTD_CAP_UNKNOWN);
    /* The newest hosts are all there, the oldest of the flood are gone. */
    snprintf(host, sizeof host, "10.%u.%u.%u:8661", 1 + (3 * SSTD_CAPS_MAX - 1) / 65536,
             ((3 * SSTD_CAPS_MAX - 1) / 256) % 256, (3 * SSTD_CAPS_MAX - 1) % 256);
    ck_assert_int_eq(sstd_caps_get(c, host, SST_SEC(2), NULL, NULL), SSTD_CAP_NO_SST);
    ck_assert_int_eq(sstd_caps_get(c, "10.1.0.0:8661", SST_SEC(2), NULL, NULL), SSTD_CAP_UNKNOWN);
    sstd_caps_free(c);
}
END_TEST

START_TEST(test_proxy_v2_ipv4)
{
    uint8_t out[SSTD_PROXY_V2_MAX];
    struct sst_addr src = { .family = SST_AF_INET4, .port = 8661, .ip = { 10, 77, 0, 1 } };
    struct sst_addr dst = { .family = SST_AF_INET4, .port = 80, .ip = { 127, 0, 0, 1 } };
    static const uint8_t want[28] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
                                      0x21, 0x11, 0x00, 0x0C, 10, 77, 0, 1, 127, 0, 0, 1, 0x21, 0xD5, 0x00, 0x50 };
    ck_assert_uint_eq(sstd_proxy_v2(out, sizeof out, &src, &dst), 28);
    ck_assert_mem_eq(out, want, 28);
    ck_assert_uint_eq(sstd_proxy_v2(out, 27, &src, &dst), 0);
}
END_TEST

START_TEST(test_proxy_v2_mixed_is_ipv6)
{
    uint8_t out[SSTD_PROXY_V2_MAX];
    struct sst_addr src = { .family = SST_AF_INET6, .port = 1, .ip = { 0xfd, 0x77, [15] = 1 } };
    struct sst_addr dst = { .family = SST_AF_INET4, .port = 2, .ip = { 127, 0, 0, 1 } };
    ck_assert_uint_eq(sstd_proxy_v2(out, sizeof out, &src, &dst), 52);
    ck_assert_uint_eq(out[13], 0x21);
    ck_assert_uint_eq(out[15], 36);
    ck_assert_mem_eq(out + 16, src.ip, 16);
    static const uint8_t mapped[16] = { [10] = 0xff, [11] = 0xff, [12] = 127, [15] = 1 };
    ck_assert_mem_eq(out + 32, mapped, 16);
    ck_assert_uint_eq(out[49], 1);
    ck_assert_uint_eq(out[51], 2);
    struct sst_addr none = { 0 };
    ck_assert_uint_eq(sstd_proxy_v2(out, sizeof out, &none, &dst), 0);
}
END_TEST

START_TEST(test_json_escape_roundtrip)
{
    struct evbuffer *b = evbuffer_new();
    const char *s = "a\"b\\c\nd\x01";
    evbuffer_add(b, "{\"k\":", 5);
    sstd_json_str(b, s);
    const char *rest = ",\"n\":-1.5e1,\"t\":true,\"a\":[1,2,{\"x\":null}]}";
    evbuffer_add(b, rest, strlen(rest));
    size_t len = evbuffer_get_length(b);
    char *text = (char *)evbuffer_pullup(b, -1);
    ck_assert_ptr_null(memchr(text, '\n', len)); /* one reply = one line */
    struct jv *v = jv_parse(text, len);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(jv_str(v, "k", ""), s);
    ck_assert(jv_num(v, "n", 0) == -15.0);
    ck_assert(jv_bool(v, "t"));
    const struct jv *a = jv_get(v, "a");
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->type, JV_ARRAY);
    ck_assert(a->child->num == 1.0 && a->child->next->num == 2.0);
    ck_assert_int_eq(a->child->next->next->type, JV_OBJECT);
    jv_free(v);
    evbuffer_free(b);
}
END_TEST

/* Replies are UTF-8 throughout: a client's ill-formed bytes echo back as U+FFFD (python's json
 * refused them raw), well-formed text as it is; sstctl decodes \u escapes to UTF-8. */
START_TEST(test_json_utf8)
{
    struct evbuffer *b = evbuffer_new();
    sstd_json_str(b, "caf\xc3\xa9 \xff\xc3\x28 \xed\xa0\x80 \xf0\x9f\x98\x80");
    size_t len = evbuffer_get_length(b);
    char *text = (char *)evbuffer_pullup(b, -1);
    const char want[] = "\"caf\xc3\xa9 \\ufffd\\ufffd( \\ufffd\\ufffd\\ufffd \xf0\x9f\x98\x80\"";
    ck_assert_uint_eq(len, sizeof want - 1);
    ck_assert_mem_eq(text, want, len);
    struct jv *v = jv_parse(text, len);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v->str, "caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd( \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \xf0\x9f\x98\x80");
    jv_free(v);
    const char esc[] = "\"\\u00e9\\u0041\\ud800\\u00zz\"";
    v = jv_parse(esc, sizeof esc - 1);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v->str, "\xc3\xa9" "A\xef\xbf\xbd\xef\xbf\xbd");
    jv_free(v);
    evbuffer_free(b);
}
END_TEST

START_TEST(test_json_rejects_malformed)
{
    static const char *const bad[] = { "", "{", "{\"a\":}", "{\"a\" 1}", "[1,]", "{\"a\":1} x", "\"abc", "tru" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct jv *v = jv_parse(bad[i], strlen(bad[i]));
        ck_assert_msg(v == NULL, "accepted '%s'", bad[i]);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("helper");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, test_options_defaults);
    tcase_add_test(tc, test_options_env);
    tcase_add_test(tc, test_options_values);
    tcase_add_test(tc, test_options_errors);
    tcase_add_test(tc, test_default_socket_path);
    tcase_add_test(tc, test_caps_expiry);
    tcase_add_test(tc, test_caps_foreach_skips_expired);
    tcase_add_test(tc, test_caps_bounded_lru);
    tcase_add_test(tc, test_capsfile_roundtrip);
    tcase_add_test(tc, test_capsfile_ports);
    tcase_add_test(tc, test_proxy_v2_ipv4);
    tcase_add_test(tc, test_proxy_v2_mixed_is_ipv6);
    tcase_add_test(tc, test_json_escape_roundtrip);
    tcase_add_test(tc, test_json_utf8);
    tcase_add_test(tc, test_json_rejects_malformed);
    tcase_add_test(tc, test_log_lines_printable);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
