/** Shared by the workerd tests: bundling a worker entry for workerd (RUNTIMES.md §3 and §5). */
export { bundleWorkerEntry as bundleWorker } from '../../src/runtime/node/workerd-bundle.js'
