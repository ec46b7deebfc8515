/** Browser runtime adapter: durable storage in IndexedDB through idb-keyval. */
export { type ClosableStore, createDurableStore } from './durable-store.js'
export {
  IndexedDbStorage,
  type IndexedDbStorageOptions,
  idbFormat,
  idbFormatVersion,
  openIndexedDbStorage,
} from './indexeddb-storage.js'
