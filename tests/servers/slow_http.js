// A plain node http server with no cluster code and no signal handling
// (SIGTERM kills it mid-request): every answer takes DELAY_MS (default
// 50) and is "<pid>\n".  Keep-alive as node does it by default (an idle
// connection is closed after 5 s).  Usage: node slow_http.js PORT [DELAY_MS]
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
const delay = Number(process.argv[3] || 50);

http.createServer((req, res) => {
	setTimeout(() => res.end(process.pid + '\n'), delay);
}).listen(port, '127.0.0.1');
