# An asyncio echo server for test_shim_listen_apps.sh: start_server(None, PORT) listens on
# 0.0.0.0 and on [::] (IPV6_V6ONLY), two sockets of one port, as asyncio does for a host of
# None.  Each connection: the peer as the server sees it, the length and SHA-256 of what came
# until EOF, then the data back.
import asyncio, hashlib, sys

async def handle(r, w):
    data = await r.read()
    peer = w.get_extra_info('peername')[0]
    w.write(b"peer=%s got=%d sha=%s\n" % (peer.encode(), len(data), hashlib.sha256(data).hexdigest()[:16].encode()))
    w.write(data)
    await w.drain()
    w.close()

async def main():
    s = await asyncio.start_server(handle, None, int(sys.argv[1]), backlog=128)
    async with s:
        await s.serve_forever()

asyncio.run(main())
