/** The control-plane APIs: .proto files, their loader, message shapes and the shared client. */
export {
  CHANNEL_OPTIONS,
  type ClientCredentials,
  type ConnectOptions,
  ControlPlaneCallError,
  channelCredentials,
  controlPlaneError,
  DEFAULT_TIMEOUT_MS,
  IdentityClient,
} from './identity-client.js';
export type * from './messages.js';
export { grpc, identityService, protoPath } from './service.js';
