#!/usr/bin/python3
"""Noise XX interop: our noise_peer (C, libsodium) against dissononce (independent Python Noise).

Runs a full Noise_XX_25519_ChaChaPoly_SHA256 handshake with each implementation in each role,
checks payloads, learnt static keys and handshake hashes agree, exchanges transport messages both
ways, and checks that each side rejects a tampered message.  Exits non-zero on any deviation.
usage: noise_interop.py PATH/TO/noise_peer
"""
import os
import subprocess
import sys

from dissononce.processing.impl.handshakestate import HandshakeState
from dissononce.processing.impl.symmetricstate import SymmetricState
from dissononce.processing.impl.cipherstate import CipherState
from dissononce.processing.handshakepatterns.interactive.XX import XXHandshakePattern
from dissononce.cipher.chachapoly import ChaChaPolyCipher
from dissononce.dh.x25519.x25519 import X25519DH
from dissononce.hash.sha256 import SHA256Hash

PROLOGUE = b"SST negotiation interop"


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)
    print("  ok: " + what)


class Peer:
    """Our C implementation behind its line protocol."""

    def __init__(self, tool, role):
        self.p = subprocess.Popen([tool, role, PROLOGUE.hex()], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        tag, val = self._line()
        if tag != "s":
            raise Fail("noise_peer did not announce its static key: %r" % tag)
        self.s = bytes.fromhex(val)

    def _line(self):
        line = self.p.stdout.readline()
        if not line:
            raise Fail("noise_peer exited unexpectedly")
        tag, _, val = line.strip().partition(" ")
        return tag, val

    def cmd(self, verb, data=b""):
        self.p.stdin.write("%s %s\n" % (verb, data.hex() if data else "-"))
        self.p.stdin.flush()
        tag, val = self._line()
        if tag == "error":
            return None, val
        return (b"" if val == "-" else bytes.fromhex(val)), tag

    def must(self, verb, data=b""):
        out, tag = self.cmd(verb, data)
        if out is None:
            raise Fail("noise_peer %s failed: %s" % (verb, tag))
        return out

    def close(self):
        self.p.stdin.close()
        if self.p.wait(timeout=10) != 0:
            raise Fail("noise_peer exit status %d" % self.p.returncode)


def dissononce_hs(initiator):
    dh = X25519DH()
    s = dh.generate_keypair()
    hs = HandshakeState(SymmetricState(CipherState(ChaChaPolyCipher()), SHA256Hash()), dh)
    hs.initialize(XXHandshakePattern(), initiator, PROLOGUE, s=s)
    return hs, s.public.data


def tampered(msg, pos):
    b = bytearray(msg)
    b[pos % len(b)] ^= 0x01
    return bytes(b)


def run(tool, we_initiate):
    role = "initiator" if we_initiate else "responder"
    print("our noise_peer as %s, dissononce as the other side" % role)
    ours = Peer(tool, role)
    theirs, their_s = dissononce_hs(not we_initiate)
    payloads = [b"hello from msg1", b"", b"third message payload " * 3]
    # Message i is written by the initiator when i is even.
    result = None
    for i, payload in enumerate(payloads):
        ours_writes = (i % 2 == 0) == we_initiate
        if ours_writes:
            msg = ours.must("write", payload)
            got = bytearray()
            result = theirs.read_message(msg, got)
            check(bytes(got) == payload, "msg%d %s -> dissononce payload" % (i + 1, role))
        else:
            buf = bytearray()
            result = theirs.write_message(payload, buf)
            msg = bytes(buf)
            if i > 0:
                # A flipped bit anywhere in an encrypted handshake message must be refused, and
                # our state must survive it (the genuine message is read right after).
                for pos in (0, len(msg) // 2, len(msg) - 1):
                    out, err = ours.cmd("read", tampered(msg, pos))
                    check(out is None, "ours rejects msg%d tampered at byte %d (%s)" % (i + 1, pos, err))
            got = ours.must("read", msg)
            check(got == payload, "msg%d dissononce -> ours payload" % (i + 1))
    check(result is not None, "dissononce finished the handshake")
    check(ours.must("rs") == their_s, "ours learnt dissononce's static key")
    check(theirs.rs.data == ours.s, "dissononce learnt our static key")
    check(ours.must("hash") == theirs.symmetricstate.get_handshake_hash(), "handshake hashes agree")
    c_i2r, c_r2i = result
    their_tx, their_rx = (c_r2i, c_i2r) if we_initiate else (c_i2r, c_r2i)
    for k in range(5):
        data = os.urandom(1 + 37 * k)
        ct = ours.must("enc", data)
        check(their_rx.decrypt_with_ad(b"", ct) == data, "transport %d ours -> dissononce" % k)
        data = os.urandom(3 + 51 * k)
        ct = their_tx.encrypt_with_ad(b"", data)
        if k == 2:
            out, err = ours.cmd("dec", tampered(ct, 5))
            check(out is None, "ours rejects a tampered transport message (%s)" % err)
        check(ours.must("dec", ct) == data, "transport %d dissononce -> ours" % k)
    # dissononce must refuse a tampered transport message from us.
    ct = ours.must("enc", b"tamper me")
    try:
        their_rx.decrypt_with_ad(b"", tampered(ct, 3))
        raise Fail("dissononce accepted a tampered transport message")
    except Fail:
        raise
    except Exception:
        print("  ok: dissononce rejects our tampered transport message")
    ours.close()


def run_tamper_to_dissononce(tool):
    """Our message 2 with a flipped bit must be refused by dissononce."""
    print("dissononce refuses our tampered handshake message 2")
    ours = Peer(tool, "responder")
    theirs, _ = dissononce_hs(True)
    buf = bytearray()
    theirs.write_message(b"", buf)
    ours.must("read", bytes(buf))
    msg2 = ours.must("write", b"payload")
    try:
        theirs.read_message(tampered(msg2, 40), bytearray())
        raise Fail("dissononce accepted a tampered message 2")
    except Fail:
        raise
    except Exception:
        print("  ok: rejected")
    ours.close()


def main():
    tool = sys.argv[1]
    try:
        run(tool, True)
        run(tool, False)
        run_tamper_to_dissononce(tool)
    except Fail as e:
        print("FAIL: " + str(e), file=sys.stderr)
        return 1
    except Exception as e:  # dissononce raises on a bad tag: a deviation, not a crash
        print("FAIL: %s: %r" % (type(e).__name__, e), file=sys.stderr)
        return 1
    print("noise interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
