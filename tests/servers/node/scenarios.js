// Listening the ways Node's own cluster tests do, in a cluster worker whose
// primary is the launcher.  Every worker prints one line per result,
//   result {"id": cluster.worker.id, "pid": ..., ...}
// and its servers answer each connection (or datagram) with "<pid>\n".
//   node scenarios.js NAME [ARGS...]
//
//   port0               listen(0): {port}
//   eaddrinuse PORT     listen(PORT) until it works, 100 ms apart:
//                       {error} for the first failure, then {port, tries}
//   unix PATH           listen(PATH): {path}
//   dgram               a UDP socket bound to port 0: {port}
//   exclusive           listen({port: 0, exclusive: true}): {port}
//   relisten PORT       listen(PORT), close, listen(PORT) again: {port, again}
//   many N              N servers on port 0: {ports}
//   ipv6only            listen({host: '::', port: 0, ipv6Only: true}): {port}
//   fd N                listen({fd: N}): {error} or {port}
//   tls                 a TLS server on port 0: {port, ticketKeys}
'use strict';
const cluster = require('node:cluster');
const dgram = require('node:dgram');
const net = require('node:net');
const tls = require('node:tls');

const [name, arg] = process.argv.slice(2);
const id = cluster.worker ? cluster.worker.id : null;

function result(fields) {
	console.log('result ' + JSON.stringify({ id, pid: process.pid, ...fields }));
}

function answer(sock) {
	sock.on('error', () => {});
	sock.end(`${process.pid}\n`);
}

function server() {
	return net.createServer(answer);
}

const scenarios = {
	port0() {
		const s = server().listen(0, '127.0.0.1', () => result({ port: s.address().port }));
	},
	eaddrinuse(port) {
		let tries = 0;
		const s = server();
		s.on('error', (err) => {
			if (tries++ === 0) {
				result({ error: err.code, syscall: err.syscall });
			}
			setTimeout(() => s.listen(Number(port), '127.0.0.1'), 100).unref();
		});
		s.on('listening', () => result({ port: s.address().port, tries }));
		s.listen(Number(port), '127.0.0.1');
	},
	unix(path) {
		const s = server().listen(path, () => result({ path: s.address() }));
	},
	dgram() {
		const s = dgram.createSocket('udp4');
		s.on('message', (msg, rinfo) => s.send(`${process.pid}\n`, rinfo.port, rinfo.address));
		s.bind(0, '127.0.0.1', () => result({ port: s.address().port }));
	},
	exclusive() {
		const s = server().listen({ port: 0, host: '127.0.0.1', exclusive: true },
			() => result({ port: s.address().port }));
	},
	relisten(port) {
		const s = server().listen(Number(port), '127.0.0.1', () => {
			s.close(() => s.listen(Number(port), '127.0.0.1',
				() => result({ port: s.address().port, again: true })));
		});
	},
	many(n) {
		const ports = [];
		for (let i = 0; i < Number(n); i++) {
			const s = server().listen(0, '127.0.0.1', () => {
				ports.push(s.address().port);
				if (ports.length === Number(n)) {
					result({ ports });
				}
			});
		}
	},
	ipv6only() {
		const s = server().listen({ host: '::', port: 0, ipv6Only: true },
			() => result({ port: s.address().port, address: s.address().address }));
	},
	fd(n) {
		const s = server();
		s.on('error', (err) => result({ error: err.code }));
		s.listen({ fd: Number(n) }, () => result({ port: s.address().port }));
	},
	tls() {
		const s = tls.createServer({}, answer);
		s.listen(0, '127.0.0.1', () => result({
			port: s.address().port,
			ticketKeys: s.getTicketKeys().toString('hex'),
		}));
	},
};

scenarios[name](arg);
