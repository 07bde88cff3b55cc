/**
 * How every meshd role runs as a process: started, then SIGTERM/SIGINT → graceful stop (bounded
 * by the role's own close()), SIGHUP → reload where the role has one. Resolves once stopped.
 */
import { describeError } from './errors.js';

interface LifecycleLogger {
  info(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export interface Running {
  close(): Promise<void>;
  reload?(): Promise<void>;
}

export function runUntilSignalled(running: Running, logger: LifecycleLogger): Promise<void> {
  return new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      logger.info({ signal }, 'signal received; stopping');
      running.close().then(resolve, (err: unknown) => {
        logger.error({ err: describeError(err) }, 'shutdown failed');
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    const reload = running.reload?.bind(running);
    if (reload) {
      process.on('SIGHUP', () => {
        logger.info({ signal: 'SIGHUP' }, 'signal received; reloading');
        reload().catch(() => {}); // the role logs why; it keeps its old state
      });
    }
  });
}
