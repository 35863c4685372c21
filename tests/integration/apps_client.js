// test_shim_apps.sh: node (libuv: non-blocking connect, epoll) against B's echo (7000) and HTTP
// (8080) servers.  Prints only lines that must be the same over kernel TCP and under the shim.
'use strict';
const net = require('net'), http = require('http'), crypto = require('crypto');
const H = process.argv[2], H6 = process.argv[3];

function echo(host, size) {
  return new Promise(res => {
    const s = net.connect({ host, port: 7000, allowHalfOpen: true }, () => {
      s.setNoDelay(true);
      s.setKeepAlive(true, 1000);
      console.log(`echo ${host} ${size}: remote ${s.remoteAddress}:${s.remotePort} ${s.remoteFamily}` +
                  ` local ${s.localAddress} port>0 ${s.localPort > 0}`);
      const buf = crypto.randomBytes(size), got = [];
      s.on('data', d => got.push(d));
      s.on('end', () => { console.log(`echo ${host} ${size}: same ${Buffer.concat(got).equals(buf)}`); s.end(); });
      s.end(buf);   // half-close: the server echoes everything, then closes
    });
    s.on('error', e => { console.log(`echo ${host} ${size}: error ${e.code}`); res(); });
    s.on('close', () => res());
  });
}

function refused() {
  return new Promise(res => {
    const s = net.connect({ host: H, port: 7999 });
    s.on('connect', () => { console.log('refused port: connected'); s.destroy(); res(); });
    s.on('error', e => { console.log(`refused port: ${e.code}`); res(); });
  });
}

async function keepalive(n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
  let ok = 0;
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise(res => {
    const k = i % 20 + 1;
    http.get({ host: H, port: 8080, path: `/o${k}.txt`, agent }, r => {
      let b = '';
      r.on('data', d => b += d);
      r.on('end', () => { if (b === `obj ${k}\n`) ok++; res(); });
    }).on('error', e => { console.log(`keep-alive: ${e.code}`); res(); });
  })));
  agent.destroy();
  console.log(`keep-alive agent: ${ok}/${n} bodies right`);
}

function destroyMidway() {
  return new Promise(res => {
    http.get({ host: H, port: 8080, path: '/big' }, r => {
      let n = 0;
      r.on('data', d => {
        n += d.length;
        if (n > 100000 && !r.socket.destroyed) { r.socket.destroy(); console.log('destroy() mid-transfer: ok'); res(); }
      });
      r.on('end', () => { console.log('destroy() mid-transfer: body ended first'); res(); });
    }).on('error', e => { console.log(`destroy(): ${e.code}`); res(); });
  });
}

function big() {
  return new Promise(res => {
    http.get({ host: H, port: 8080, path: '/big' }, r => {
      const h = crypto.createHash('sha256');
      let n = 0;
      r.on('data', d => { n += d.length; h.update(d); });
      r.on('end', () => { console.log(`big: ${n} bytes sha256 ${h.digest('hex').slice(0, 16)}`); res(); });
    }).on('error', e => { console.log(`big: ${e.code}`); res(); });
  });
}

(async () => {
  await echo(H, 10);
  await echo(H, 2000000);
  await echo(H6, 5000);
  await refused();
  await keepalive(100);
  await destroyMidway();
  await big();
  await keepalive(10);   // the process goes on normally after the destroy
  // Destroyed sockets leave the handle list on a later loop turn: a leak would stay.
  setTimeout(() => console.log(`handles left: ${process._getActiveHandles().length}`), 300);
})();
