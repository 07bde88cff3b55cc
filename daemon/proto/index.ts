/** The .proto files of the control-plane APIs and their loader. Issues 3 and 4. */

export {};
