/* Host keys on disk: this host's long-term identity and trust-on-first-use pins of peers' keys.
 *
 * Directory (first that is set): $SST_KEYDIR, $XDG_CONFIG_HOME/sst, $HOME/.config/sst.
 * It is created 0700 on first use and holds:
 *   host_key     this host's X25519 secret key, 64 lowercase hex digits and a newline, mode 0600.
 *                Created on first use; a file readable by group or others is refused (like ssh).
 *   host_key.pub the public key, same format, mode 0644 (for `cat` and fingerprints; never read).
 *   known_hosts  one pin per line: "<name> <64 hex digits of the peer's public key>"; '#' starts a
 *                comment line, blank lines are ignored.  <name> is the peer's address (no port) or
 *                host name, without whitespace.
 *
 * A peer whose key differs from its pin is refused (SST_ERR_IDENTITY) with a message that says how
 * to override: delete the line from known_hosts, `sstctl forget NAME` (sst_keystore_forget), or run
 * once with SST_ACCEPT_CHANGED_HOSTKEY=NAME, which re-pins the new key. */
#ifndef SST_KEYSTORE_H
#define SST_KEYSTORE_H

#include "types.h"
#include "negotiate.h"

#define SST_KEYSTORE_ERRLEN 1024
#define SST_KEYSTORE_ENV_DIR "SST_KEYDIR"
#define SST_KEYSTORE_ENV_ACCEPT "SST_ACCEPT_CHANGED_HOSTKEY"

struct sst_keystore;

/* Writes the default key directory into buf.  0, or SST_ERR_INVAL when no variable is set or the
 * path does not fit. */
int sst_keystore_default_dir(char *buf, size_t len);

/* Opens the key directory (dir NULL: the default), creating it 0700 if needed.  NULL on failure,
 * with the reason in errbuf. */
struct sst_keystore *sst_keystore_open(const char *dir, char *errbuf, size_t errlen);
void sst_keystore_close(struct sst_keystore *ks);
const char *sst_keystore_dir(const struct sst_keystore *ks);

/* This host's identity, created on first use.  0, SST_ERR_IO (unreadable, corrupt, or too-open
 * permissions: errbuf says which file and what to do). */
SST_MUST_CHECK int sst_keystore_identity(struct sst_keystore *ks, struct sst_identity *out, char *errbuf,
                                         size_t errlen);

/* Trust on first use: pins pk for `name` if unknown, accepts a matching pin.  0, SST_ERR_IDENTITY
 * (the pinned key differs: errbuf has the full warning and the override instructions),
 * SST_ERR_INVAL (bad name), SST_ERR_IO (unreadable or corrupt known_hosts). */
SST_MUST_CHECK int sst_keystore_check_peer(struct sst_keystore *ks, const char *name, const uint8_t pk[32],
                                           char *errbuf, size_t errlen);

/* Removes every pin for `name` (what `sstctl forget NAME` does).  Returns the number of lines
 * removed, or SST_ERR_IO / SST_ERR_INVAL. */
int sst_keystore_forget(struct sst_keystore *ks, const char *name, char *errbuf, size_t errlen);

/* A ready-made sst_host_io.verify_peer / sst_nego_host_ops.verify_peer: ctx is the keystore; pins
 * by the peer's IP address text (no port) when we initiated, accepts any key from initiators.
 * The message of the last refusal is kept for sst_keystore_last_error. */
int sst_keystore_verify_cb(void *ctx, const struct sst_addr *peer, const uint8_t pk[32], bool we_initiated);
const char *sst_keystore_last_error(const struct sst_keystore *ks);

#endif
