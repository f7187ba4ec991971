// Message ids are `<ms>-<seq>` and increase per stream topic (SPEC section 4).

function parse (id: string): [number, number] | null {
  const match = /^(\d{1,15})-(\d{1,15})$/.exec(id)
  return match === null ? null : [Number(match[1]), Number(match[2])]
}

/** Whether `id` comes after `last`; an id of another shape counts as new unless it is `last` itself. */
export function isNewer (id: string, last: string | undefined): boolean {
  if (last === undefined) return true
  const a = parse(id)
  const b = parse(last)
  if (a === null || b === null) return id !== last
  return a[0] > b[0] || (a[0] === b[0] && a[1] > b[1])
}
