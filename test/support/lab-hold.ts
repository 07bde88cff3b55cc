/**
 * Builds a lab in this process and holds it until signalled, so tests can check what happens to
 * it on SIGINT, SIGTERM or SIGKILL. Usage: lab-hold.js ID NODES WORKLOADS; prints "ready".
 */
import { Lab } from '../../ctl/lab/index.js';

const [id, nodes, workloads] = process.argv.slice(2);
Lab.create({ id, nodes: Number(nodes ?? 1), workloads: Number(workloads ?? 1) }).then(
  () => {
    console.log('ready');
    setInterval(() => {}, 60_000);
  },
  (err: unknown) => {
    console.error(
      err instanceof Error
        ? `${err.message}\n  caused by: ${String((err.cause as Error)?.message)}`
        : err,
    );
    process.exit(3);
  },
);
