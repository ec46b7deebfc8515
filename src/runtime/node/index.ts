/** Node runtime adapter: durable storage on node:fs. */
export { NodeFileOps, storageErrorFromNode } from './file-ops.js'
export { defaultDataDir, openNodeStorage } from './storage.js'
