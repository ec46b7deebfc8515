/** The CLI bundles scripts/build-cli.mjs builds: entry (under src/) and output (under dist/). */
export declare const cliBundles: { entry: string; out: string; minify?: boolean }[]
/** Bundles the CLI into `<dist>/cli/` (esbuild only: no tsc, no stamp). */
export declare function buildCliBundles(dist: string): Promise<void>
