/** `meshctl completion …` (being written). */
import type { Command } from 'commander';

export function registerCompletionCommands(_program: Command): void {}
