// Types for scripts/setup-node22.mjs, imported by test/support/requirements.ts and bench/cli.ts.
export declare const node22Major: 22
export declare function node22Dir(env?: Record<string, string | undefined>): string
export declare function node22Package(): string
export declare function node22Binary(env?: Record<string, string | undefined>): string | undefined
