/** meshd-cni entry: reads the CNI environment, answers on stdout, never logs there. */
import { handleCni } from './plugin.js';

const outcome = handleCni(process.env);
process.stdout.write(outcome.stdout);
process.exitCode = outcome.exitCode;
