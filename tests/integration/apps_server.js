// An HTTP server for test_shim_listen_apps.sh: node (libuv) under SST_LISTEN, alone or as a
// cluster (the primary accepts and hands each connection to a worker).  POST: answers the peer
// as the server sees it, the body's length and SHA-256; GET /big: 3 MB of a fixed pattern.
// argv: PORT WORKERS (0: no cluster).
'use strict';
const cluster = require('cluster'), http = require('http'), crypto = require('crypto');
const port = +process.argv[2], workers = +process.argv[3];
const big = Buffer.alloc(3 << 20);
for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 10)) & 255;
if (workers > 0 && cluster.isPrimary) {
  for (let i = 0; i < workers; i++) cluster.fork();
  process.on('SIGTERM', () => {
    for (const id in cluster.workers) cluster.workers[id].process.kill('SIGTERM');
    process.exit(0);
  });
} else {
  http.createServer((req, res) => {
    let n = 0;
    const h = crypto.createHash('sha256');
    req.on('data', (d) => { n += d.length; h.update(d); });
    req.on('end', () => {
      if (req.url === '/big') return res.end(big);
      res.end(`peer=${req.socket.remoteAddress} got=${n} sha=${h.digest('hex').slice(0, 16)}\n`);
    });
  }).listen(port, '0.0.0.0');
}
