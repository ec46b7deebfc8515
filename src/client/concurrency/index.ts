/** Recipes on top of the client, as etcd's concurrency and recipe packages. */
export { Election, observeLeader } from './election.js'
export { Mutex } from './mutex.js'
export { Queue } from './queue.js'
export { type Registration, type ServiceInstance, ServiceRegistry } from './service-registry.js'
export { Session, type SessionOptions } from './session.js'
export { abortable, waitDeletes } from './wait.js'
