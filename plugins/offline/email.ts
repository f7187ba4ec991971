// One e-mail through SMTP with nodemailer, and what the server's answer means for a retry.
import nodemailer, { type Transporter } from 'nodemailer'
import type SMTPTransport from 'nodemailer/lib/smtp-transport/index.js'
import { InvalidOptionError } from '../errors.js'
import type { Attempt } from './retry.js'

/** What an e-mail template is given: one offline user's copy of a message. */
export interface OfflineEmailMessage {
  user: string
  stream: string
  id: string
  ts: number
  data: unknown
}

/** The mail for one copy; `html` is optional. */
export interface EmailContent {
  subject: string
  text: string
  html?: string
}

export type EmailTemplate = (message: OfflineEmailMessage) => EmailContent

export interface OfflineEmailOptions {
  /**
   * An SMTP URL (`smtp://user:pass@host:587`, `smtps://…`), nodemailer SMTP options, or a
   * nodemailer transporter of your own (not closed by the plugin).
   */
  transport: string | SMTPTransport.Options | Transporter
  /** The sender, e.g. `"Shop" <notify@shop.example>`. */
  from: string
  /** The user's address, or null for none (no e-mail then). */
  address: (user: string) => string | null | undefined | Promise<string | null | undefined>
}

export class EmailSender {
  readonly #transporter: Transporter
  readonly #own: boolean
  readonly #from: string

  constructor (opts: OfflineEmailOptions, timeout: number) {
    if (typeof opts.from !== 'string' || opts.from === '') throw new InvalidOptionError('email.from must be an address')
    if (typeof opts.address !== 'function') throw new InvalidOptionError('email.address must be a function')
    const { transport } = opts
    this.#own = typeof (transport as Transporter)?.sendMail !== 'function'
    if (!this.#own) {
      this.#transporter = transport as Transporter
    } else if (typeof transport === 'string' || (typeof transport === 'object' && transport !== null)) {
      const base = typeof transport === 'string' ? { url: transport } : transport
      // Bounded like a push: a server that stops answering costs one timeout, not a stuck slot.
      this.#transporter = nodemailer.createTransport({ connectionTimeout: timeout, greetingTimeout: timeout, socketTimeout: timeout, ...base } as SMTPTransport.Options)
    } else {
      throw new InvalidOptionError('email.transport must be an SMTP URL, SMTP options or a nodemailer transporter')
    }
    this.#from = opts.from
  }

  async send (to: string, content: EmailContent): Promise<Attempt> {
    try {
      await this.#transporter.sendMail({ from: this.#from, to, subject: content.subject, text: content.text, html: content.html })
      return { outcome: 'sent' }
    } catch (err) {
      const { responseCode, code, message } = err as { responseCode?: number, code?: string, message?: string }
      // 4xx: a transient refusal (greylisting, a full queue); 5xx: permanent.
      if (responseCode !== undefined && responseCode >= 400 && responseCode < 500) return { outcome: 'retry', after: null, reason: `SMTP ${responseCode}` }
      return { outcome: 'failed', reason: responseCode !== undefined ? `SMTP ${responseCode}` : code ?? message ?? 'unknown error' }
    }
  }

  close (): void {
    if (this.#own) this.#transporter.close()
  }
}
