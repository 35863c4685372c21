/* Error code table and strerror. */
#include "err.h"

SST_API const char *sst_strerror(int err)
{
    switch (err) {
    case SST_OK: return "success";
    case SST_ERR_INVAL: return "invalid argument or configuration value";
    case SST_ERR_NOMEM: return "out of memory or pool exhausted";
    case SST_ERR_MALFORMED: return "malformed packet";
    case SST_ERR_AUTH: return "packet authentication failed";
    case SST_ERR_REPLAY: return "duplicate packet";
    case SST_ERR_TOO_OLD: return "packet older than the replay window";
    case SST_ERR_NO_CHANNEL: return "no such channel";
    case SST_ERR_STATE: return "operation not valid in this state";
    case SST_ERR_AGAIN: return "resource temporarily unavailable";
    case SST_ERR_IDENTITY: return "peer host key does not match the pinned key";
    case SST_ERR_TIMEOUT: return "peer not responding";
    case SST_ERR_RESET: return "reset by peer";
    case SST_ERR_REFUSED: return "refused by peer";
    case SST_ERR_CLOSED: return "closed";
    case SST_ERR_CRYPTO: return "cryptographic failure";
    case SST_ERR_VERSION: return "incompatible protocol version";
    case SST_ERR_TOO_BIG: return "too large";
    case SST_ERR_IO: return "I/O error";
    case SST_ERR_LIMIT: return "limit reached";
    case SST_ERR_NO_SST: return "peer does not speak SST (its SST port is closed)";
    }
    return "unknown error";
}
