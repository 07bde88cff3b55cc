/**
 * The control-plane APIs: .proto files beside this module, loaded at run time with protobufjs
 * (./loader.ts), and the TypeScript shapes of their messages (camelCase fields, int64 as
 * number, bytes as Buffer).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { packageRoot } from '../paths.js';
import { loadServices } from './loader.js';

export { grpc };

export function protoPath(file: string): string {
  return join(packageRoot(), 'daemon', 'proto', file);
}

function loadService(file: string, name: string): grpc.ServiceClientConstructor {
  const service = loadServices(protoPath(file), 'meshd.v1alpha1')[name];
  if (!service) throw new Error(`service meshd.v1alpha1.${name} not found in ${file}`);
  return service;
}

let identity: grpc.ServiceClientConstructor | undefined;
let registry: grpc.ServiceClientConstructor | undefined;

/** The Registry service (resources, Watch for agents). */
export function registryService(): grpc.ServiceClientConstructor {
  registry ??= loadService('registry.proto', 'Registry');
  return registry;
}

/** The Identity service: `.service` for servers, `new IdentityClient(addr, creds)` for clients. */
export function identityService(): grpc.ServiceClientConstructor {
  identity ??= loadService('identity.proto', 'Identity');
  return identity;
}
