/**
 * Keeps the agent's MeshState in step with the registry: one Watch stream to one of several
 * servers (failover in order, with capped backoff), resumed from the last revision seen; the
 * state is saved to disk after changes and loaded at start, so an agent that starts while
 * every server is down serves from what it knew (static stability).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describeError } from '../errors.js';
import { writeFileAtomic } from '../files.js';
import { MeshState, type Resource, type StateChange, validateResource } from '../model/index.js';
import { meshdVersion } from '../paths.js';
import {
  type ClientCredentials,
  RegistryClient,
  type WatchResponse,
  type WatchStream,
} from '../proto/index.js';
import type { Logger } from '../telemetry/index.js';

export interface StateSyncOptions {
  servers: string[];
  node: string;
  credentials: () => ClientCredentials;
  stateFile: string;
  logger: Logger;
  backoff?: { initialMs: number; maxMs: number };
  /** Delay before writing the state file after a change (writes coalesce). */
  saveDelayMs?: number;
}

export type SyncSource = 'empty' | 'disk' | 'server';

export class StateSync {
  readonly state: MeshState;
  readonly #options: StateSyncOptions;
  #source: SyncSource;
  #serverIndex = 0;
  #failures = 0;
  #client: RegistryClient | undefined;
  #stream: WatchStream | undefined;
  #retry: NodeJS.Timeout | undefined;
  #save: NodeJS.Timeout | undefined;
  #closed = false;
  #connectedTo: string | undefined;
  readonly #listeners = new Set<(change: StateChange | 'snapshot') => void>();

  constructor(options: StateSyncOptions) {
    this.#options = options;
    const loaded = loadState(options.stateFile, options.logger);
    this.state = loaded ?? new MeshState();
    this.#source = loaded ? 'disk' : 'empty';
  }

  /** Where the current state came from: nothing yet, the file on disk, or a server. */
  get source(): SyncSource {
    return this.#source;
  }

  get connectedTo(): string | undefined {
    return this.#connectedTo;
  }

  onChange(listener: (change: StateChange | 'snapshot') => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  start(): void {
    this.#connect();
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#stream?.cancel();
    this.#client?.close();
    if (this.#save) {
      clearTimeout(this.#save);
      this.#saveNow();
    }
  }

  #connect(): void {
    if (this.#closed) return;
    const { servers, node, logger } = this.#options;
    const server = servers[this.#serverIndex % servers.length] ?? '';
    this.#client?.close();
    const client = new RegistryClient({ ...this.#options.credentials(), server });
    this.#client = client;
    const from = this.state.revision;
    logger.info({ server, fromRevision: from }, 'watching the registry');
    this.#stream = client.watch(
      { node, fromRevision: from, sentAtUnixMs: Date.now(), version: meshdVersion() },
      (message) => this.#onMessage(server, message),
      (err) => this.#onEnd(server, err),
    );
  }

  #onMessage(server: string, message: WatchResponse): void {
    if (this.#connectedTo !== server) {
      this.#connectedTo = server;
      this.#failures = 0;
      this.#options.logger.info(
        { server, revision: message.revision, type: message.type },
        'registry stream established',
      );
    }
    this.#source = 'server';
    if (message.type === 'snapshot') {
      this.state.replaceAll(parseAll(message.resources, this.#options.logger), message.revision);
      this.#emit('snapshot');
    } else {
      for (const change of message.changes) {
        const resource = parseOne(change.resource, this.#options.logger);
        if (!resource) continue;
        const event =
          change.type === 'put'
            ? { type: 'put' as const, resource, revision: message.revision }
            : { type: 'delete' as const, resource, revision: message.revision };
        this.#emit(this.state.apply(event));
      }
    }
    this.#scheduleSave();
  }

  #onEnd(server: string, err: Error | undefined): void {
    if (this.#closed || !err) return;
    this.#connectedTo = undefined;
    this.#failures += 1;
    this.#serverIndex += 1; // fail over to the next server
    const { initialMs, maxMs } = this.#options.backoff ?? { initialMs: 200, maxMs: 10_000 };
    const servers = this.#options.servers.length;
    // A full round over every server without success backs off; moving to the next one is quick.
    const rounds = Math.floor((this.#failures - 1) / servers);
    const delay = Math.min(maxMs, initialMs * 2 ** rounds) * (1 + Math.random() * 0.2);
    this.#options.logger.warn(
      {
        server,
        err: describeError(err),
        retryInMs: Math.round(delay),
        next: this.#options.servers[this.#serverIndex % servers],
      },
      'registry stream lost',
    );
    this.#retry = setTimeout(() => this.#connect(), delay);
    this.#retry.unref();
  }

  #emit(change: StateChange | 'snapshot'): void {
    for (const listener of this.#listeners) listener(change);
  }

  #scheduleSave(): void {
    if (this.#save) return;
    this.#save = setTimeout(() => {
      this.#save = undefined;
      this.#saveNow();
    }, this.#options.saveDelayMs ?? 200);
    this.#save.unref();
  }

  #saveNow(): void {
    const file = this.#options.stateFile;
    try {
      writeFileAtomic(file, JSON.stringify(this.state.toJSON()), 0o600);
    } catch (err) {
      this.#options.logger.warn(
        { file, err: describeError(err) },
        'could not save the registry state',
      );
    }
  }
}

function loadState(file: string, logger: Logger): MeshState | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const state = MeshState.fromJSON(JSON.parse(readFileSync(file, 'utf8')));
    logger.info(
      { file, revision: state.revision },
      'serving the saved registry state until a server answers',
    );
    return state;
  } catch (err) {
    logger.warn(
      { file, err: describeError(err) },
      'saved registry state unreadable; starting empty',
    );
    return undefined;
  }
}

function parseOne(text: string, logger: Logger): Resource | undefined {
  const result = validateResource(JSON.parse(text));
  if (result.ok) return result.resource;
  logger.warn(
    { errors: result.errors.slice(0, 3) },
    'ignoring a resource the registry sent that does not validate',
  );
  return undefined;
}

function parseAll(texts: string[], logger: Logger): Resource[] {
  return texts.flatMap((t) => parseOne(t, logger) ?? []);
}
