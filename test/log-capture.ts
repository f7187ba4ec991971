// A Fastify logger stream that lets a test wait for a log line, e.g. the bus noticing an outage.

export type LogLine = Record<string, unknown> & { level: number, msg: string }

export interface LogCapture {
  stream: { write (line: string): void }
  lines: LogLine[]
  /** The first line (already logged or still to come) whose `msg` contains `text`. */
  next (text: string, timeout?: number): Promise<LogLine>
}

export function logCapture (): LogCapture {
  const lines: LogLine[] = []
  const waiting = new Set<(line: LogLine) => void>()
  return {
    lines,
    stream: {
      write (raw) {
        const line = JSON.parse(raw) as LogLine
        lines.push(line)
        for (const wake of waiting) wake(line)
      }
    },
    next (text, timeout = 5000) {
      const seen = lines.find((line) => line.msg?.includes(text))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiting.delete(wake)
          reject(new Error(`no log line with "${text}" within ${timeout} ms`))
        }, timeout)
        const wake = (line: LogLine): void => {
          if (!line.msg?.includes(text)) return
          clearTimeout(timer)
          waiting.delete(wake)
          resolve(line)
        }
        waiting.add(wake)
      })
    }
  }
}
