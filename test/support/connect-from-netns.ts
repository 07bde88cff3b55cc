/**
 * Run inside a node namespace: opens a TCP connection whose socket the addon creates inside a
 * workload namespace (as the agent will), sends an HTTP GET and prints the response body.
 * Usage: connect-from-netns.js NETNS_PATH HOST PORT
 */
import { connectFromNetns } from '../../daemon/net/index.js';

const [netns, host, port] = process.argv.slice(2);
const family = host?.includes(':') ? 6 : 4;
const socket = await connectFromNetns({
  netns: netns ?? '',
  family,
  host: host ?? '',
  port: Number(port),
});
const chunks: Buffer[] = [];
socket.on('data', (c: Buffer) => chunks.push(c));
socket.on('end', () => {
  const response = Buffer.concat(chunks).toString();
  process.stdout.write(response.slice(response.indexOf('\r\n\r\n') + 4));
});
socket.end(`GET / HTTP/1.1\r\nhost: ${host}\r\nconnection: close\r\n\r\n`);
