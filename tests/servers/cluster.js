// A node server that uses the cluster module itself: a primary forking two
// workers that share one http server, answering with their pid.  Under
// clusterize, the clusterize worker is this app's primary.  A worker that
// finds itself a primary (NODE_UNIQUE_ID lost) says so and stops, instead
// of forking on without end.
//   node cluster.js PORT
'use strict';
const cluster = require('cluster');
const http = require('http');

const port = Number(process.argv[2]);

if (cluster.isPrimary) {
	if (process.env.CZ_CLUSTER_JS_CHILD) {
		console.log(`recursion: pid ${process.pid} is a primary again`);
		process.exit(3);
	}
	process.env.CZ_CLUSTER_JS_CHILD = '1';
	for (let i = 0; i < 2; i++) {
		cluster.fork();
	}
	console.log(`primary ${process.pid}`);
} else {
	http.createServer((req, res) => res.end(`${process.pid}\n`))
		.listen(port, '127.0.0.1', () => console.log(`node worker ${process.pid}`));
}
