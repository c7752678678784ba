// The fan-out baseline of the web benchmark: a broadcast server written the
// way the `ws` README shows it, as many teams would. Subscribers connect to
// /sub (and get {"op":"ready"}); the producer connects to /producer. Every
// message the producer sends is sent, as the same bytes, to every open
// subscriber, and then answered with "ok" (so the producer can keep a window
// of items in flight). No durability, no per-subscriber state.
//
//   node ws_server.js [port]     prints "port N" once listening
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2] || 0);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false,
                                  clientTracking: false });
const subscribers = new Set();

wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  if (req.url === '/producer') {
    ws.on('message', (data, isBinary) => {
      for (const s of subscribers) {
        if (s.readyState === WebSocket.OPEN) s.send(data, { binary: isBinary });
      }
      ws.send('ok');
    });
    return;
  }
  subscribers.add(ws);
  ws.on('close', () => subscribers.delete(ws));
  ws.send('{"op":"ready"}');
});

wss.on('listening', () => console.log(`port ${wss.address().port}`));
const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
