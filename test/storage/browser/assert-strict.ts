/**
 * `node:assert/strict` for the browser bundle of the contract suite (chromium.test.ts aliases it here): the npm
 * `assert` package, a port of Node's assert, in strict mode like the real `node:assert/strict`.
 */
import assert from 'assert'

export default assert.strict
