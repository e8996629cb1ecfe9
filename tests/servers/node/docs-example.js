// The example of Node's cluster documentation, as an app written for the
// cluster module is: a primary branch that forks one worker per CPU, and a
// worker branch that serves.  The worker answers with who it is, as JSON:
// {"id": cluster.worker.id, "pid", "workerId": CLUSTERIZE_WORKER_ID,
//  "isWorker", "isPrimary", "workerPid": cluster.worker.process.pid,
//  "policy": NODE_CLUSTER_SCHED_POLICY}.
//   node docs-example.js PORT
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const numCPUs = require('node:os').availableParallelism();
const process = require('node:process');

const port = Number(process.argv[2]);

if (cluster.isPrimary) {
	console.log(`Primary ${process.pid} is running`);
	for (let i = 0; i < numCPUs; i++) {
		cluster.fork();
	}
	cluster.on('exit', (worker) => {
		console.log(`worker ${worker.process.pid} died`);
	});
} else {
	http.createServer((req, res) => {
		res.setHeader('Connection', 'close');
		res.end(JSON.stringify({
			id: cluster.worker.id,
			pid: process.pid,
			workerId: process.env.CLUSTERIZE_WORKER_ID,
			isWorker: cluster.isWorker,
			isPrimary: cluster.isPrimary,
			workerPid: cluster.worker.process.pid,
			policy: process.env.NODE_CLUSTER_SCHED_POLICY,
		}) + '\n');
	}).listen(port, '127.0.0.1');
	console.log(`Worker ${process.pid} started`);
}
