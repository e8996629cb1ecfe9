// A plain node http server with no cluster code: answers every request with
// its pid.  Usage: node http.js [port] [host]
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 0);
const host = process.argv[3] || '127.0.0.1';
const server = http.createServer((req, res) => {
	res.setHeader('Connection', 'close');
	res.end(process.pid + '\n');
});

// A clean exit on the stop signal (a coverage build then writes the
// preloaded shim's counters).
process.on('SIGTERM', () => process.exit(0));

server.listen(port, host, () => {
	console.log('port ' + server.address().port);
});
