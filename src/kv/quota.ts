/**
 * The storage quota and alarms (etcdserver/quota.go, etcdserver/api/v3alarm). The store estimates its size as the
 * bytes of every retained key and value plus a fixed overhead per revision row and per lease; a write whose cost
 * would take the estimate to the quota raises the NOSPACE alarm, and while any NOSPACE alarm is active, puts, txns
 * with puts and lease grants are refused with ErrNoSpace (etcd's applierV3Capped); deletes, compaction and revokes
 * still work, so an operator can make room, then disarm the alarm.
 */
import type { PutRequest, RequestOp, TxnRequest } from '../protocol/types.js'
import { type AlarmMember, AlarmType } from '../protocol/types.js'

/** Estimated bytes of one revision row beyond its key and value: revision key, KeyValue fields, B-tree slot. */
export const changeOverheadBytes = 64
/** Estimated bytes of one lease (etcd's leaseOverhead). */
export const leaseOverheadBytes = 64
/** The member id recorded on a NOSPACE alarm that apply raises: every member raises it at the same entry. */
export const quotaAlarmMemberId = '0'

/** What a put adds to the estimated size. */
export function costPut(p: PutRequest): number {
  return p.key.length + p.value.length + changeOverheadBytes
}

/** What a txn may add: the larger branch, nested txns included (etcd's costTxnReq). */
export function costTxn(t: TxnRequest): number {
  const branch = (ops: RequestOp[]) => {
    let n = 0
    for (const op of ops) {
      if (op.request_put) n += costPut(op.request_put)
      else if (op.request_txn) n += costTxn(op.request_txn)
    }
    return n
  }
  return Math.max(branch(t.success), branch(t.failure))
}

/** etcd's alarm store: at most one alarm of each type per member, replicated (it is part of the snapshot). */
export class AlarmStore {
  private alarms: AlarmMember[] = []

  /** Whether an alarm of this type is active on any member. */
  has(type: AlarmType): boolean {
    return this.alarms.some((a) => a.alarm === type)
  }

  /** The active alarms of a type, or all of them for NONE, sorted by member then type. */
  get(type: AlarmType): AlarmMember[] {
    return this.alarms.filter((a) => type === AlarmType.NONE || a.alarm === type).map((a) => ({ ...a }))
  }

  /** Activates; returns the alarm, or undefined when it was already active (etcd answers no alarm then). */
  activate(memberID: string, type: AlarmType): AlarmMember | undefined {
    if (this.alarms.some((a) => a.memberID === memberID && a.alarm === type)) return undefined
    const m: AlarmMember = { memberID, alarm: type }
    this.alarms.push(m)
    this.alarms.sort((a, b) => (a.memberID < b.memberID ? -1 : a.memberID > b.memberID ? 1 : a.alarm - b.alarm))
    return { ...m }
  }

  /** Deactivates; returns the alarm, or undefined when it was not active. */
  deactivate(memberID: string, type: AlarmType): AlarmMember | undefined {
    const i = this.alarms.findIndex((a) => a.memberID === memberID && a.alarm === type)
    if (i < 0) return undefined
    const [m] = this.alarms.splice(i, 1)
    return { ...m! }
  }

  toSnapshot(): [string, number][] {
    return this.alarms.map((a) => [a.memberID, a.alarm])
  }

  loadSnapshot(rows: [string, number][]): void {
    this.alarms = []
    for (const [memberID, alarm] of rows) this.activate(memberID, alarm)
  }
}
