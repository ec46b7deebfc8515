// The worker thread's entry: registers tsx in this thread (module hooks are per thread on Node 20), then loads the
// TypeScript fleet (bench/lib/replica-fleet.ts).
import { register } from 'tsx/esm/api'

register()
await import('./replica-fleet.ts')
