/* noise_peer: our Noise_XX_25519_ChaChaPoly_SHA256 driven line by line over stdin/stdout, so an
 * independent implementation (tests/integration/noise_interop.py, dissononce) can talk to it.
 *
 *   usage: noise_peer initiator|responder [PROLOGUE_HEX]
 *   prints "s <hex>" (our static public key) at start, then answers one line per command:
 *     write <hex payload>  -> "msg <hex>"        next handshake message
 *     read <hex message>   -> "payload <hex>"    next handshake message from the peer
 *     rs                   -> "rs <hex>"         peer static key learnt in the handshake
 *     hash                 -> "h <hex>"          handshake hash
 *     enc <hex plaintext>  -> "msg <hex>"        transport message in our sending direction
 *     dec <hex ciphertext> -> "payload <hex>"    transport message from the peer
 *   Any failure answers "error <code> <text>" and the handshake state is unchanged.  An empty
 *   payload is written as "-". */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "noise.h"

#define LINE_MAX_LEN 200000

static uint8_t bin_buf[SST_NOISE_MAX_MSG + 64], out_buf[SST_NOISE_MAX_MSG + 64];
static char line[LINE_MAX_LEN], hex_out[2 * (SST_NOISE_MAX_MSG + 64) + 1];

static void emit(const char *tag, const uint8_t *b, size_t n)
{
    if (n == 0)
        printf("%s -\n", tag);
    else
        printf("%s %s\n", tag, sodium_bin2hex(hex_out, sizeof hex_out, b, n));
    fflush(stdout);
}

static void emit_err(int rc)
{
    printf("error %d %s\n", rc, sst_strerror(rc));
    fflush(stdout);
}

/* Decodes the hex argument ("-" is empty); -1 on bad hex. */
static long arg_bin(const char *arg)
{
    if (strcmp(arg, "-") == 0)
        return 0;
    size_t n = 0;
    const char *end;
    if (sodium_hex2bin(bin_buf, sizeof bin_buf, arg, strlen(arg), NULL, &n, &end) != 0 || *end != '\0')
        return -1;
    return (long)n;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "initiator") != 0 && strcmp(argv[1], "responder") != 0)) {
        fprintf(stderr, "usage: noise_peer initiator|responder [PROLOGUE_HEX]\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    bool initiator = strcmp(argv[1], "initiator") == 0;
    uint8_t prologue[256];
    size_t plen = 0;
    if (argc > 2 && sodium_hex2bin(prologue, sizeof prologue, argv[2], strlen(argv[2]), NULL, &plen, NULL) != 0) {
        fprintf(stderr, "noise_peer: bad prologue hex\n");
        return 2;
    }
    uint8_t s_sk[32], e_sk[32], s_pk[32];
    randombytes_buf(s_sk, sizeof s_sk);
    randombytes_buf(e_sk, sizeof e_sk);
    crypto_scalarmult_base(s_pk, s_sk);
    struct sst_noise_hs hs;
    if (sst_noise_hs_init(&hs, initiator, prologue, plen, s_sk, e_sk) != 0)
        return 1;
    sodium_memzero(s_sk, sizeof s_sk);
    sodium_memzero(e_sk, sizeof e_sk);
    emit("s", s_pk, 32);

    struct sst_noise_cipher tx = {0}, rx = {0};
    bool split = false;
    uint8_t rs[32] = {0}, h[32] = {0};
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *arg = strchr(line, ' ');
        if (arg)
            *arg++ = '\0';
        else
            arg = (char *)"-";
        long n = arg_bin(arg);
        if (n < 0) {
            emit_err(SST_ERR_INVAL);
            continue;
        }
        int rc;
        if (strcmp(line, "write") == 0) {
            rc = sst_noise_hs_write(&hs, bin_buf, (size_t)n, out_buf, sizeof out_buf);
            if (rc >= 0)
                emit("msg", out_buf, (size_t)rc);
        } else if (strcmp(line, "read") == 0) {
            rc = sst_noise_hs_read(&hs, bin_buf, (size_t)n, out_buf, sizeof out_buf);
            if (rc >= 0)
                emit("payload", out_buf, (size_t)rc);
        } else if (strcmp(line, "rs") == 0) {
            rc = sst_noise_hs_done(&hs) || split ? 0 : SST_ERR_STATE;
            if (rc == 0)
                emit("rs", split ? rs : hs.rs, 32);
        } else if (strcmp(line, "hash") == 0) {
            if (!split)
                sst_noise_hs_hash(&hs, h);
            rc = 0;
            emit("h", h, 32);
        } else if (strcmp(line, "enc") == 0 || strcmp(line, "dec") == 0) {
            rc = 0;
            if (!split) {
                memcpy(rs, hs.rs, 32);
                sst_noise_hs_hash(&hs, h);
                struct sst_noise_cipher i2r, r2i;
                rc = sst_noise_hs_split(&hs, &i2r, &r2i);
                if (rc == 0) {
                    tx = initiator ? i2r : r2i;
                    rx = initiator ? r2i : i2r;
                    split = true;
                }
            }
            if (rc == 0 && line[0] == 'e') {
                rc = sst_noise_encrypt(&tx, NULL, 0, bin_buf, (size_t)n, out_buf);
                if (rc >= 0)
                    emit("msg", out_buf, (size_t)rc);
            } else if (rc == 0) {
                rc = sst_noise_decrypt(&rx, NULL, 0, bin_buf, (size_t)n, out_buf);
                if (rc >= 0)
                    emit("payload", out_buf, (size_t)rc);
            }
        } else {
            rc = SST_ERR_INVAL;
        }
        if (rc < 0)
            emit_err(rc);
    }
    sst_noise_hs_wipe(&hs);
    sst_noise_cipher_wipe(&tx);
    sst_noise_cipher_wipe(&rx);
    return 0;
}
