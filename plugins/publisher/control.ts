import { CONTROL_ACTIONS, controlCommand, controlTopic, noControl, type ControlAction, type ControlCommand, type ControlResult, type NotifyControl } from '../control-commands.js'
import { BusUnavailableError, ControlUnavailableError } from '../errors.js'
import type { BusMessage } from '../bus/index.js'
import type { RevocationStore } from '../control/store.js'
import type { FastifyBaseLogger } from 'fastify'

/** How a publisher's checked admin action reaches the edges: the caller's input (to forward) and the command it amounts to. */
export type ControlSender = (action: ControlAction, input: unknown, command: ControlCommand) => Promise<ControlResult>

/**
 * `app.notify`'s control methods on a publisher: checked as the edge checks them, then sent; each
 * action is logged once, as on the edge. Without a sender they answer 501 (gRPC, AMQP).
 */
export function publisherControl (send: ControlSender | undefined, declared: ReadonlySet<string>, maxTokenLifetime: number, log: FastifyBaseLogger): NotifyControl {
  if (send === undefined) return noControl('the publisher\'s transport carries no admin actions (use redis or http)')
  const act = async (action: ControlAction, input: unknown, by = 'app'): Promise<ControlResult> => {
    const command = controlCommand(action, input, declared, maxTokenLifetime)
    const result = await send(action, input, command)
    log.info({ control: { by, action, input, ...result } }, 'notify control action')
    return result
  }
  return Object.fromEntries(CONTROL_ACTIONS.map((action) =>
    [action, (input: unknown, caller?: { by?: string }) => act(action, input, caller?.by)])) as unknown as NotifyControl
}

/**
 * Over the edges' Redis: a revocation goes into their list first, then the command onto their bus
 * (as an edge's would, without asking for answers: the publisher subscribes to nothing). What it
 * reached is the number of instances listening; the connections it touched are not known here.
 */
export function redisControlSender (store: RevocationStore, publish: (message: BusMessage) => Promise<number | null>, prefix: string): ControlSender {
  return async (_action, _input, command) => {
    try {
      if (command.action === 'revoke') await store.add(command.revocation)
      const id = crypto.randomUUID()
      const instances = await publish({ topic: controlTopic(prefix), id, frame: JSON.stringify({ ...command, ref: id }) })
      return { instances, connections: null }
    } catch (err) {
      if (err instanceof BusUnavailableError) throw new ControlUnavailableError((err as Error).message)
      throw new ControlUnavailableError(`edge's Redis unreachable: ${(err as Error).message}`)
    }
  }
}
