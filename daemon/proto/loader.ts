/**
 * gRPC service definitions from a .proto file, made with protobufjs directly. It does what
 * @grpc/proto-loader's loadSync does for meshd's options (camelCase fields, int64 as number,
 * enums as strings, defaults, oneofs) without the reflection descriptors that proto-loader
 * builds for every message type, which no meshd process uses: 1 to 1.5 MiB of every
 * process's memory (docs/benchmarks.md, "Agent memory").
 */
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/** As proto-loader's { longs: Number, enums: String, defaults: true, oneofs: true }. */
const TO_OBJECT: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

function serializer(type: protobuf.Type): (value: object) => Buffer {
  return (value) => {
    if (Array.isArray(value))
      throw new TypeError(`cannot serialize an array as message ${type.fullName}`);
    return Buffer.from(type.encode(type.fromObject(value)).finish());
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => object {
  return (bytes) => type.toObject(type.decode(bytes), TO_OBJECT);
}

const lowerFirst = (name: string) => name.charAt(0).toLowerCase() + name.slice(1);

function serviceDefinition(service: protobuf.Service): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = method.resolvedRequestType;
    const response = method.resolvedResponseType;
    if (!request || !response) throw new Error(`${method.fullName}: unresolved message types`);
    definition[method.name] = {
      path: `/${service.fullName.replace(/^\./, '')}/${method.name}`,
      requestStream: method.requestStream === true,
      responseStream: method.responseStream === true,
      requestSerialize: serializer(request),
      requestDeserialize: deserializer(request),
      responseSerialize: serializer(response),
      responseDeserialize: deserializer(response),
      originalName: lowerFirst(method.name),
    };
  }
  return definition;
}

/**
 * The services of package `pkg` in `file`, as client constructors (`.service` is the
 * definition servers register). Throws when the file does not parse or holds no such package.
 */
export function loadServices(
  file: string,
  pkg: string,
): Record<string, grpc.ServiceClientConstructor> {
  const root = new protobuf.Root().loadSync(file, { keepCase: false });
  root.resolveAll();
  const namespace = root.lookup(pkg);
  if (!(namespace instanceof protobuf.Namespace))
    throw new Error(`package ${pkg} not found in ${file}`);
  const services: Record<string, grpc.ServiceClientConstructor> = {};
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service)
      services[nested.name] = grpc.makeClientConstructor(
        serviceDefinition(nested),
        nested.fullName.replace(/^\./, ''),
      );
  }
  return services;
}
