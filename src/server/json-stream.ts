/**
 * Splits a body of concatenated JSON values (`{...}{...}` or one per line), as etcd's streaming gateway endpoints
 * (`/v3/watch`, `/v3/lease/keepalive`) read them. Incremental: feed text as it arrives, get whole values' text back.
 */
export class JsonValueSplitter {
  private buf = ''
  private depth = 0
  private inString = false
  private escaped = false
  private start = -1
  private scanned = 0

  /** Adds text and returns the complete top-level values found so far (as text). */
  push(text: string): string[] {
    this.buf += text
    const out: string[] = []
    const s = this.buf
    let i = this.scanned
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i)
      if (this.inString) {
        if (this.escaped) this.escaped = false
        else if (c === 92) this.escaped = true
        else if (c === 34) this.inString = false
        continue
      }
      if (this.depth === 0 && this.start < 0) {
        if (c === 32 || c === 10 || c === 13 || c === 9) continue
        this.start = i
        if (c !== 123 && c !== 91) {
          // A scalar at top level (e.g. `null`): take it up to the next separator.
          let j = i
          while (j < s.length && !/[\s{[]/.test(s[j]!)) j++
          if (j === s.length) break
          out.push(s.slice(i, j))
          this.start = -1
          i = j - 1
          continue
        }
      }
      if (c === 34) this.inString = true
      else if (c === 123 || c === 91) this.depth++
      else if (c === 125 || c === 93) {
        this.depth--
        if (this.depth === 0) {
          out.push(s.slice(this.start, i + 1))
          this.start = -1
        }
      }
    }
    // Keep only the unfinished value.
    if (this.start >= 0) {
      this.buf = s.slice(this.start)
      this.scanned = i - this.start
      this.start = 0
    } else {
      this.buf = ''
      this.scanned = 0
    }
    return out
  }

  /** Text left over at end of body: an unfinished value, if any. */
  rest(): string {
    return this.buf.trim()
  }
}
