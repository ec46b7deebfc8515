/**
 * The few Cloudflare Workers / Durable Object APIs this runtime adapter uses, typed locally (as deno-api.ts does for
 * Deno) so the project's type check needs neither @cloudflare/workers-types' globals (they clash with the DOM lib)
 * nor a second tsconfig. The names and shapes follow @cloudflare/workers-types (latest).
 */

/** A value a SQLite column holds, as the DO SQL API hands it back (BLOBs come back as ArrayBuffer). */
export type SqlStorageValue = ArrayBuffer | string | number | null

export interface SqlStorageCursor<T extends Record<string, SqlStorageValue>> extends Iterable<T> {
  toArray(): T[]
  one(): T
  raw<U extends SqlStorageValue[]>(): IterableIterator<U>
  readonly rowsRead: number
  readonly rowsWritten: number
}

/** `ctx.storage.sql`: synchronous SQLite in a SQLite-backed Durable Object. */
export interface SqlStorage {
  exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: unknown[]): SqlStorageCursor<T>
  readonly databaseSize: number
}

/** `ctx.storage` of a SQLite-backed Durable Object (the subset used here). */
export interface DurableObjectStorage {
  readonly sql: SqlStorage
  /** Runs `fn` as one SQLite transaction: all of its writes or none (it rolls back if `fn` throws). */
  transactionSync<T>(fn: () => T): T
  /** Resolves once every write made so far is durable. */
  sync(): Promise<void>
  get<T = unknown>(key: string): Promise<T | undefined>
  put<T>(key: string, value: T): Promise<void>
  getAlarm(): Promise<number | null>
  setAlarm(scheduledTime: number | Date): Promise<void>
  deleteAlarm(): Promise<void>
}

export interface DurableObjectId {
  toString(): string
  readonly name?: string
}

/** The `ctx` (state) a Durable Object's constructor receives. */
export interface DurableObjectState {
  readonly id: DurableObjectId
  readonly storage: DurableObjectStorage
  blockConcurrencyWhile<T>(fn: () => Promise<T>): Promise<T>
  waitUntil(p: Promise<unknown>): void
  abort(reason?: string): void
}

export interface DurableObjectStub {
  fetch(input: Request | string, init?: RequestInit): Promise<Response>
}

export interface DurableObjectNamespace {
  idFromName(name: string): DurableObjectId
  get(id: DurableObjectId): DurableObjectStub
}

/** The server side of a WebSocketPair, or the client side of an outbound upgrade, before accept(). */
export interface WorkersWebSocket extends WebSocket {
  accept(): void
}

/** `new WebSocketPair()`: [client, server]. */
export interface WebSocketPairCtor {
  new (): { 0: WorkersWebSocket; 1: WorkersWebSocket }
}

/** The Workers runtime's globals that other runtimes lack. */
export const workersGlobals = globalThis as unknown as { WebSocketPair: WebSocketPairCtor }

/** A Response as the Workers runtime extends it: an accepted upgrade carries the client socket. */
export type WorkersResponse = Response & { webSocket?: WorkersWebSocket | null }

/** `new Response(null, { status: 101, webSocket })`, which only the Workers runtime understands. */
export function upgradeResponse(webSocket: WebSocket, headers?: HeadersInit): Response {
  return new Response(null, { status: 101, webSocket, headers } as ResponseInit)
}
