/** The control plane (`meshd server`): CA, registry, store, discovery. Issues 3 and 4. */

export {};
