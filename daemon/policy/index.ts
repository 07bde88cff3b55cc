/** Authorization evaluation as pure, table-tested functions. Issue 5. */

export {};
