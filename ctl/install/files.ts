/**
 * Writing a set of installed files under a root directory, all or nothing: every target is
 * checked before the first one is written, so a refusal (a file the operator changed) leaves
 * the system exactly as it was.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { MeshdError } from '../../daemon/errors.js';
import { writeFileAtomic } from '../../daemon/files.js';

/** One file as it should be on the target system. */
export interface InstallFile {
  /** Absolute path on the target system, e.g. /etc/meshd/agent.env. */
  path: string;
  text: string;
  /** 0o600 for files holding secrets. */
  mode: number;
}

export type InstallAction = 'created' | 'replaced' | 'unchanged' | 'mode fixed';

export interface InstallResult {
  /** Where it was written: the root joined with InstallFile.path. */
  written: string;
  mode: number;
  action: InstallAction;
}

/**
 * A usage or install problem of meshctl install. There is no install-specific code yet, so these
 * carry MESHD_E_INSTALL: a flag or an existing file does not allow the install.
 */
export function installError(message: string, hint: string): MeshdError {
  return new MeshdError('MESHD_E_INSTALL', message, { hint });
}

export function targetPath(root: string, path: string): string {
  if (!isAbsolute(path)) throw new Error(`installed file path must be absolute: ${path}`);
  return join(root, path);
}

function planAction(target: string, file: InstallFile): InstallAction {
  if (!existsSync(target)) return 'created';
  const stat = statSync(target);
  if (!stat.isFile()) {
    throw installError(`${target} exists and is not a regular file`, 'move it away first');
  }
  if (readFileSync(target, 'utf8') !== file.text) return 'replaced';
  return (stat.mode & 0o777) === file.mode ? 'unchanged' : 'mode fixed';
}

/**
 * Writes `files` under `root` (atomically each, with their modes). Refuses, before writing
 * anything, when a file exists with other contents and `force` is false.
 */
export function writeInstallFiles(
  root: string,
  files: readonly InstallFile[],
  force: boolean,
): InstallResult[] {
  if (!isAbsolute(root)) throw installError(`--root ${root}: not absolute`, 'give a full path');
  const planned = files.map((file) => {
    const written = targetPath(root, file.path);
    return { file, written, action: planAction(written, file) };
  });
  const changed = planned.filter((p) => p.action === 'replaced');
  if (changed.length > 0 && !force) {
    const list = changed.map((p) => p.written).join(', ');
    throw installError(
      `refusing to overwrite ${changed.length === 1 ? 'a file that differs' : 'files that differ'} from what this install writes: ${list}; nothing was written`,
      'an earlier install with other flags, or local edits: review them, keep unit changes in drop-ins (systemctl edit), and run again with --force to replace them',
    );
  }
  for (const { file, written, action } of planned) {
    if (action === 'unchanged') continue;
    if (action === 'mode fixed') {
      chmodSync(written, file.mode);
      continue;
    }
    mkdirSync(dirname(written), { recursive: true, mode: 0o755 });
    writeFileAtomic(written, file.text, file.mode);
    // writeFileSync's mode is masked by the umask; the mode of a secret must not depend on it.
    chmodSync(written, file.mode);
  }
  return planned
    .map(({ file, written, action }) => ({ written, mode: file.mode, action }))
    .sort((a, b) => a.written.localeCompare(b.written));
}
