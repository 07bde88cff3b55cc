/**
 * The control-plane APIs: .proto files beside this module, loaded at run time with
 * @grpc/proto-loader, and the TypeScript shapes of their messages (camelCase fields, int64 as
 * number, bytes as Buffer).
 */
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../paths.js';

export { grpc };

const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export function protoPath(file: string): string {
  return join(packageRoot(), 'daemon', 'proto', file);
}

function loadService(file: string, name: string): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync(protoPath(file), LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    meshd: { v1alpha1: Record<string, grpc.ServiceClientConstructor> };
  };
  const service = pkg.meshd.v1alpha1[name];
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
