// An unmodified node server: no signal handling, no cluster code.  Each
// connection is answered after 50 ms with "<pid>\n", then closed.
//   node slow.js PORT
'use strict';
const net = require('node:net');

net.createServer((sock) => {
	sock.on('error', () => {});
	setTimeout(() => sock.end(`${process.pid}\n`), 50);
}).listen(Number(process.argv[2]), '127.0.0.1');
