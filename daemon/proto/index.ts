/** The control-plane APIs: .proto files, their loader, message shapes and the shared client. */
export {
  CHANNEL_OPTIONS,
  type ClientCredentials,
  type ConnectOptions,
  ControlPlaneCallError,
  ControlPlaneClient,
  channelCredentials,
  controlPlaneError,
  DEFAULT_TIMEOUT_MS,
  IdentityClient,
} from './identity-client.js';
export * from './issuer.js';
export { loadServices } from './loader.js';
export type * from './messages.js';
export { RegistryClient, type WatchStream } from './registry-client.js';
export { grpc, identityService, protoPath, registryService } from './service.js';
