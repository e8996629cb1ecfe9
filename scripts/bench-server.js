// The Node server for scripts/bench: one handler, run three ways.
//   node bench-server.js PORT          a plain server (alone, or under clusterize)
//   node bench-server.js PORT N        Node's own cluster module with N workers
//                                      (NODE_CLUSTER_SCHED_POLICY picks rr/none)
'use strict';
const cluster = require('cluster');
const http = require('http');

const port = Number(process.argv[2]);
const workers = Number(process.argv[3] || 0);

if (workers > 0 && cluster.isPrimary) {
	for (let i = 0; i < workers; i++) {
		cluster.fork();
	}
	process.on('SIGTERM', () => {
		for (const w of Object.values(cluster.workers)) {
			w.process.kill('SIGTERM');
		}
		process.exit(0);
	});
} else {
	http.createServer((req, res) => {
		res.writeHead(200, { 'Content-Type': 'text/plain' });
		res.end('hello world\n');
	}).listen(port, '127.0.0.1');
}
