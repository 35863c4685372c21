/* libsst error codes: negative ints, one table, one strerror.  The engine never touches errno;
 * the shim maps these to errno in exactly one place. */
#ifndef SST_ERR_H
#define SST_ERR_H

#include "types.h"

enum sst_err {
    SST_OK = 0,
    SST_ERR_INVAL = -1,        /* bad argument or configuration value */
    SST_ERR_NOMEM = -2,        /* allocation failed or a bounded pool is full */
    SST_ERR_MALFORMED = -3,    /* packet too short, bad field, trailing garbage */
    SST_ERR_AUTH = -4,         /* authenticator or AEAD tag did not verify */
    SST_ERR_REPLAY = -5,       /* duplicate packet sequence number */
    SST_ERR_TOO_OLD = -6,      /* sequence number behind the replay window */
    SST_ERR_NO_CHANNEL = -7,   /* no channel with that ID for that peer */
    SST_ERR_STATE = -8,        /* operation not valid in the current state */
    SST_ERR_AGAIN = -9,        /* would block: window, cwnd or buffer full */
    SST_ERR_IDENTITY = -10,    /* peer's host key differs from the pinned one */
    SST_ERR_TIMEOUT = -11,     /* peer stopped answering */
    SST_ERR_RESET = -12,       /* peer reset the channel or stream */
    SST_ERR_REFUSED = -13,     /* peer refused: no such service */
    SST_ERR_CLOSED = -14,      /* already closed */
    SST_ERR_CRYPTO = -15,      /* libsodium failure or unsupported algorithm */
    SST_ERR_VERSION = -16,     /* peer speaks an incompatible protocol version */
    SST_ERR_TOO_BIG = -17,     /* does not fit: MTU, buffer, or field width */
    SST_ERR_IO = -18,          /* driver-level I/O failure (files, sockets) */
    SST_ERR_LIMIT = -19,       /* a configured limit was hit (channels, streams, amplification) */
    SST_ERR_NO_SST = -20,      /* the peer host answered that nothing listens on its SST port */
};

SST_API const char *sst_strerror(int err);

#endif
