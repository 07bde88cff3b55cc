/** The Registry API client shared by meshctl (apply/get/delete) and the agent (Watch). */
import { type ConnectOptions, ControlPlaneClient, controlPlaneError } from './identity-client.js';
import type {
  ApplyRequest,
  ApplyResponse,
  DeleteRequest,
  DeleteResponse,
  GetRequest,
  GetResponse,
  ListNodesRequest,
  ListNodesResponse,
  ListRequest,
  ListResponse,
  WatchRequest,
  WatchResponse,
} from './messages.js';
import { grpc, registryService } from './service.js';

export interface WatchStream {
  cancel(): void;
}

export class RegistryClient extends ControlPlaneClient {
  constructor(options: ConnectOptions) {
    super(registryService(), options);
  }

  apply(request: ApplyRequest): Promise<ApplyResponse> {
    return this.unary('Apply', request);
  }
  get(request: GetRequest): Promise<GetResponse> {
    return this.unary('Get', request);
  }
  list(request: ListRequest): Promise<ListResponse> {
    return this.unary('List', request);
  }
  listNodes(request: ListNodesRequest = {}): Promise<ListNodesResponse> {
    return this.unary('ListNodes', request);
  }
  delete(request: DeleteRequest): Promise<DeleteResponse> {
    return this.unary('Delete', request);
  }

  /**
   * A long-lived stream (no deadline). `onEnd` gets the reason the stream ended: an error with
   * the status (the caller reconnects), or undefined after cancel().
   */
  watch(
    request: WatchRequest,
    onMessage: (message: WatchResponse) => void,
    onEnd: (err: Error | undefined) => void,
  ): WatchStream {
    const stream = (
      this.client as unknown as {
        Watch(req: WatchRequest, meta: grpc.Metadata): grpc.ClientReadableStream<WatchResponse>;
      }
    ).Watch(request, new grpc.Metadata());
    let cancelled = false;
    let ended = false;
    const end = (err: Error | undefined) => {
      if (ended) return;
      ended = true;
      onEnd(err);
    };
    stream.on('data', onMessage);
    stream.on('error', (err: grpc.ServiceError) => {
      if (cancelled && err.code === grpc.status.CANCELLED) end(undefined);
      else end(controlPlaneError('Watch', this.server, err));
    });
    stream.on('end', () =>
      end(
        cancelled
          ? undefined
          : controlPlaneError('Watch', this.server, {
              code: grpc.status.UNAVAILABLE,
              details: 'the server ended the stream',
            }),
      ),
    );
    return {
      cancel() {
        cancelled = true;
        stream.cancel();
      },
    };
  }
}
