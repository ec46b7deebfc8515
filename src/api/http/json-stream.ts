/**
 * Splits a body of concatenated JSON values (`{...}{...}` or one per line), as etcd's streaming gateway endpoints
 * (`/v3/watch`, `/v3/lease/keepalive`) read them. Incremental: feed text as it arrives, get whole values' text back.
 */
export class JsonValueSplitter {
  /** The unfinished value's text from earlier pushes (kept as pieces: never re-joined or re-scanned per push). */
  private parts: string[] = []
  /** Whether a value has started and not ended. */
  private open = false
  private depth = 0
  private inString = false
  private escaped = false
  /** Inside a top-level scalar (e.g. `null`), which ends at whitespace or at the next `{` / `[`. */
  private inScalar = false

  /**
   * Adds text and returns the complete top-level values found so far (as text). Each character is scanned once, so
   * a long value arriving in many chunks costs linear time (a 32 MiB garbage body used to take ~11 s of CPU).
   */
  push(text: string): string[] {
    const out: string[] = []
    let from = 0 // where the unfinished value starts in `text` (0 if it began in an earlier push)
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i)
      if (this.inString) {
        if (this.escaped) this.escaped = false
        else if (c === 92) this.escaped = true
        else if (c === 34) this.inString = false
        continue
      }
      if (this.inScalar) {
        // The scalar ends at the next separator, which is then scanned again as the next value's start.
        if (c !== 32 && c !== 10 && c !== 13 && c !== 9 && c !== 123 && c !== 91) continue
        out.push(this.take(text, from, i))
        this.inScalar = false
        i--
        continue
      }
      if (!this.open) {
        if (c === 32 || c === 10 || c === 13 || c === 9) continue
        this.open = true
        from = i
        if (c !== 123 && c !== 91) {
          this.inScalar = true
          continue
        }
      }
      if (c === 34) this.inString = true
      else if (c === 123 || c === 91) this.depth++
      else if (c === 125 || c === 93) {
        this.depth--
        if (this.depth === 0) out.push(this.take(text, from, i + 1))
      }
    }
    if (this.open) this.parts.push(text.slice(from))
    return out
  }

  /** The finished value: earlier pieces plus text[from, to); resets to "between values". */
  private take(text: string, from: number, to: number): string {
    const tail = text.slice(from, to)
    const v = this.parts.length === 0 ? tail : this.parts.join('') + tail
    this.parts = []
    this.open = false
    return v
  }

  /** Text left over at end of body: an unfinished value, if any. */
  rest(): string {
    return this.parts.join('').trim()
  }
}
