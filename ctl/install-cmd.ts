/** `meshctl install …` (being written). */
import type { Command } from 'commander';

export function registerInstallCommands(_program: Command): void {}
