/** The pure Raft core: no I/O, no timers, no wall clock, no ambient randomness. */

export { decodeConfChange, encodeConfChange } from './confchange.js'
export * from './config.js'
export * from './errors.js'
export { Inflights, Progress, ProgressState } from './progress.js'
export { campaignTransfer, Raft } from './raft.js'
export * from './rand.js'
export { type ProgressStatus, RawNode, type Ready, type Status } from './raw-node.js'
export * from './storage.js'
export * from './types.js'
