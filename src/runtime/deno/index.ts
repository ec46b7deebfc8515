/** Deno runtime adapter: durable storage on Deno's file API. */
export { DenoFileOps, storageErrorFromDeno } from './file-ops.js'
export { openDenoStorage } from './storage.js'
