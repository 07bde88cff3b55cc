/** Resource kinds, validation, selectors and the shared in-memory state. Pure. Issue 4. */

export {};
