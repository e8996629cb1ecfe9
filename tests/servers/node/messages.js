// A cluster worker that talks to its primary: GET /send?m=JSON sends the
// message with process.send(); what arrives on process.on('message') is
// kept, and GET /last answers {"id": cluster.worker.id, "last": the last
// one, or null}; GET /disconnect answers, then calls
// cluster.worker.disconnect(), GET /kill cluster.worker.kill(); GET /
// answers with the worker id.
// On start it sends {"cmd":"ready","id":ID}.
//   node messages.js PORT
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');

let last = null;
process.on('message', (m) => {
	last = m;
});

const server = http.createServer((req, res) => {
	const url = new URL(req.url, 'http://x');
	res.setHeader('Connection', 'close');
	if (url.pathname === '/send') {
		process.send(JSON.parse(url.searchParams.get('m')));
		res.end('sent\n');
	} else if (url.pathname === '/last') {
		res.end(JSON.stringify({ id: cluster.worker.id, last }) + '\n');
	} else if (url.pathname === '/disconnect') {
		res.end('bye\n', () => cluster.worker.disconnect());
	} else if (url.pathname === '/kill') {
		res.end('bye\n', () => cluster.worker.kill());
	} else {
		res.end(`${cluster.worker.id}\n`);
	}
});
server.listen(Number(process.argv[2]), '127.0.0.1', () => {
	process.send({ cmd: 'ready', id: cluster.worker.id });
});
