/**
 * Calls between the agent's main thread and its data-path threads over a worker's message
 * channel: named methods with one structured-clonable argument, each call with a timeout,
 * and one-way notices. Errors cross as their message and code.
 */

export interface MessageEnd {
  postMessage(message: unknown): void;
  on(event: 'message', listener: (message: unknown) => void): unknown;
}

type Handler = (arg: never) => unknown;

interface CallMessage {
  rpc: 'call';
  id: number;
  method: string;
  arg: unknown;
}

interface NoticeMessage {
  rpc: 'notify';
  method: string;
  arg: unknown;
}

interface ReplyMessage {
  rpc: 'reply';
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { message: string; code?: string | undefined };
}

type RpcMessage = CallMessage | NoticeMessage | ReplyMessage;

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class ThreadRpcError extends Error {
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.name = 'ThreadRpcError';
    this.code = code;
  }
}

export class ThreadRpc {
  readonly #end: MessageEnd;
  readonly #handlers: Readonly<Record<string, Handler>>;
  readonly #pending = new Map<number, Pending>();
  readonly #where: string;
  readonly #onNoticeError: (method: string, err: unknown) => void;
  #nextId = 1;
  #closedWith: string | undefined;

  /**
   * `where` names the other side in errors ("data-path thread 2"); a notice has nobody to
   * answer, so its handler's failure goes to `onNoticeError`.
   */
  constructor(
    end: MessageEnd,
    handlers: Readonly<Record<string, Handler>>,
    where: string,
    onNoticeError: (method: string, err: unknown) => void = () => {},
  ) {
    this.#end = end;
    this.#handlers = handlers;
    this.#where = where;
    this.#onNoticeError = onNoticeError;
    end.on('message', (message) => this.#receive(message as RpcMessage));
  }

  call<T>(method: string, arg: unknown, timeoutMs: number): Promise<T> {
    if (this.#closedWith !== undefined) {
      return Promise.reject(new ThreadRpcError(`${this.#where}: ${this.#closedWith}`));
    }
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new ThreadRpcError(`${this.#where}: no answer to ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#end.postMessage({ rpc: 'call', id, method, arg } satisfies CallMessage);
    });
  }

  notify(method: string, arg: unknown): void {
    if (this.#closedWith !== undefined) return;
    this.#end.postMessage({ rpc: 'notify', method, arg } satisfies NoticeMessage);
  }

  /** The other side is gone: fails every call still waiting. */
  close(reason: string): void {
    this.#closedWith = reason;
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      this.#pending.delete(id);
      pending.reject(new ThreadRpcError(`${this.#where}: ${reason}`));
    }
  }

  #receive(message: RpcMessage): void {
    if (message.rpc === 'reply') {
      const pending = this.#pending.get(message.id);
      if (!pending) return;
      this.#pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.value);
      else pending.reject(new ThreadRpcError(message.error?.message ?? '', message.error?.code));
      return;
    }
    const handler = this.#handlers[message.method];
    if (message.rpc === 'notify') {
      if (!handler) {
        this.#onNoticeError(message.method, new Error(`unknown notice ${message.method}`));
        return;
      }
      Promise.resolve()
        .then(() => handler(message.arg as never))
        .catch((err: unknown) => this.#onNoticeError(message.method, err));
      return;
    }
    const reply = (fields: Omit<ReplyMessage, 'rpc' | 'id'>) =>
      this.#end.postMessage({ rpc: 'reply', id: message.id, ...fields } satisfies ReplyMessage);
    if (!handler) {
      reply({ ok: false, error: { message: `unknown method ${message.method}` } });
      return;
    }
    Promise.resolve()
      .then(() => handler(message.arg as never))
      .then(
        (value) => reply({ ok: true, value }),
        (err: unknown) => {
          const e = err as { message?: string; code?: string };
          reply({ ok: false, error: { message: String(e?.message ?? err), code: e?.code } });
        },
      );
  }
}
